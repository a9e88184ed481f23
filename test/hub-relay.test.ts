/**
 * A hub passes on what a session brought: its clients meet only through it, and gossip does not
 * carry what anti-entropy delivered, so writes a client made while cut off reach the other clients
 * by the hub's relay pushes, not at their next periodic round (600 s here).
 */
import { afterEach, describe, expect, it } from 'vitest'
import { connected, eventually, startTestPeer, type TestPeer } from './helpers/mesh-peers.ts'

const te = new TextEncoder()
const WRITES = 20
let peers: TestPeer[] = []

afterEach(async () => {
  await Promise.all(peers.map((p) => p.stop()))
  peers = []
})

async function peer(options: Parameters<typeof startTestPeer>[0] = {}): Promise<TestPeer> {
  const p = await startTestPeer({ syncIntervalMs: 600_000, ...options })
  peers.push(p)
  return p
}

describe('a hub relays what sessions bring', () => {
  it("writes a client made alone reach the hub's other clients soon after it connects", async () => {
    const hub = await peer({ isHub: true })
    const [a, b] = [await peer({ hub: [hub.address] }), await peer({ hub: [hub.address] })]
    expect(await eventually(() => connected(a, hub) && connected(b, hub), 15_000)).toBe(true)

    // c writes with nobody connected, then meets the hub: only a session can carry these writes.
    const late = await peer({ syncIntervalMs: 300 })
    for (let i = 0; i < WRITES; i++)
      await late.peer.namespace('ns').put(`late${i}`, te.encode(String(i)), 'text/plain')
    const context = late.peer.namespace('ns').context()
    await late.mesh.node.dial(hub.address.toString())

    const holdsAll = (p: TestPeer) => p.peer.namespace('ns').context().covers(context)
    expect(await eventually(() => holdsAll(hub), 20_000)).toBe(true)
    expect(await eventually(() => holdsAll(a) && holdsAll(b), 20_000)).toBe(true)
    expect(hub.mesh.scheduler.requested.relay).toBeGreaterThanOrEqual(2)
    // The clients started nothing after their first sessions: what they hold came by the hub's push.
    for (const client of [a, b]) expect(client.mesh.scheduler.requested.periodic).toBe(0)
  }, 60_000)
})

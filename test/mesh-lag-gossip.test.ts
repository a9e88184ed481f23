/**
 * The replication figures learn from gossip: three real peers over TCP in a line (writer — relay —
 * reader), periodic anti-entropy far apart, so once the first sessions are over only gossip can
 * teach the figures anything. What gossip teaches never counts as durable (acks, collection).
 */
import { afterEach, describe, expect, it } from 'vitest'
import { type MeshEvent, replicationRows } from '../src/peer/replication-state.ts'
import { connected, eventually, startTestPeer, type TestPeer } from './helpers/mesh-peers.ts'

const te = new TextEncoder()
const WRITES = 40
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

/** The replication row `at` shows for `of`, as GET /v1/ns/ns/replication builds it. */
function row(at: TestPeer, of: TestPeer) {
  const insight = at.mesh.insight
  return replicationRows({
    namespace: 'ns',
    own: at.peer.namespace('ns').context(),
    members: insight.members(),
    activity: insight.activity,
    connected: new Set(insight.connectedPeers()),
    self: at.mesh.peerId,
  }).find((r) => r.peerId === of.mesh.peerId)
}

const meshPeers = (p: TestPeer) => p.mesh.node.status().topics.reduce((n, t) => n + t.meshPeers, 0)

describe('replication figures from gossip', () => {
  it('show a relay and a writer holding gossiped writes without a session, and never count them for acks', async () => {
    // A hub and its clients: the clients never meet, so every write reaches the reader through the relay.
    const relay = await peer({ isHub: true })
    const [writer, reader] = [await peer({ hub: [relay.address] }), await peer({ hub: [relay.address] })]
    expect(await eventually(() => connected(writer, relay) && connected(reader, relay), 15_000)).toBe(true)
    // The first sessions taught each side the other's context; the gossip mesh formed on both links.
    expect(
      await eventually(
        () =>
          row(relay, writer)?.contextKnown === true &&
          row(reader, relay)?.contextKnown === true &&
          meshPeers(writer) >= 1 &&
          meshPeers(relay) >= 2 &&
          meshPeers(reader) >= 1,
        20_000,
      ),
    ).toBe(true)

    const sessions: MeshEvent[] = []
    for (const p of [relay, reader])
      p.mesh.insight.activity.on((event) => {
        if (event.type === 'sync-completed') sessions.push(event)
      })
    let last = { replica: '', counter: 0 }
    for (let i = 0; i < WRITES; i++) {
      const write = await writer.peer.namespace('ns').put(`k${i}`, te.encode(String(i)), 'text/plain')
      last = { replica: write.replica, counter: write.counter }
    }
    const arrived = () => reader.peer.namespace('ns').context().has(last.replica, last.counter)
    expect(await eventually(arrived, 20_000)).toBe(true)

    // The relay learned from its neighbour the writer (the author), the reader from its neighbour
    // the relay (which forwarded after accepting) and of the writer only as the author.
    expect(
      await eventually(
        () =>
          row(relay, writer)?.theyLack === 0 &&
          row(relay, writer)?.weLack === 0 &&
          row(reader, relay)?.theyLack === 0 &&
          row(reader, relay)?.weLack === 0,
        20_000,
      ),
    ).toBe(true)
    // Gossip alone, not a session: none completed on the receiving side since the writes began.
    expect(sessions).toEqual([])

    // Seen is not held: the relay counts for neither an ack nor garbage collection at the reader.
    const membership = reader.mesh.membership
    expect(membership.get(relay.mesh.peerId)?.seen.get('ns')?.has(last.replica, last.counter)).toBe(true)
    expect(membership.hasDot(relay.mesh.peerId, 'ns', last.replica, last.counter)).toBe(false)
    expect(membership.holdersOf('ns', last.replica, last.counter)).toBe(0)
    // Publishing teaches the writer nothing: gossip has no receipt.
    expect(writer.mesh.membership.get(relay.mesh.peerId)?.seen.has('ns')).toBe(false)
    // The writer, known at the reader only as the author of gossip, has no durable context there.
    expect(row(reader, writer)).toMatchObject({ contextKnown: false, theyLack: null, weLack: null })
    expect(membership.get(writer.mesh.peerId)?.holds.has('ns')).toBe(false)
  }, 90_000)
})

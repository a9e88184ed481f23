import { afterEach, describe, expect, it } from 'vitest'
import { eventually, startTestPeer, type TestPeer } from './helpers/mesh-peers.ts'

/** Forgetting a member that never comes back lets tombstone collection go on (real libp2p peers). */

const running: TestPeer[] = []
afterEach(async () => {
  await Promise.allSettled(running.splice(0).map((p) => p.stop()))
})

async function start(): Promise<TestPeer> {
  const peer = await startTestPeer({ gcIntervalMs: 100, syncIntervalMs: 200 })
  running.push(peer)
  return peer
}

describe('peers forget', () => {
  it('a member that never returns holds tombstones back until it is forgotten', async () => {
    const a = await start()
    const b = await start()
    const c = await start()
    await b.peer.dial(a.address)
    await c.peer.dial(a.address)
    const ns = a.peer.namespace('ns')
    const put = await ns.put('k', Buffer.from('v'), 'text/plain')
    // A knows (from anti-entropy) that C holds the write.
    expect(
      await eventually(() => a.mesh.membership.hasDot(c.peer.peerId, 'ns', put.replica, put.counter)),
    ).toBe(true)

    await c.stop()
    running.splice(running.indexOf(c), 1)
    const removed = await ns.delete('k')
    expect(removed).toBeDefined()
    // B holds the tombstone; C, gone, is still a member whose last known context lacks it.
    expect(
      await eventually(() =>
        a.mesh.membership.hasDot(b.peer.peerId, 'ns', removed!.replica, removed!.counter),
      ),
    ).toBe(true)
    const stableBefore = a.mesh.membership.stableContext('ns', ns.context(), () => true)
    expect(stableBefore?.has(removed!.replica, removed!.counter)).toBe(false)
    expect(ns.tombstoneCount).toBe(1)

    // Connected members cannot be forgotten; a departed one can, once.
    const gone = () => a.peer.peers().find((p) => p.peerId === c.peer.peerId)?.connected === false
    expect(await eventually(gone)).toBe(true)
    expect(a.peer.forgetPeer(b.peer.peerId)).toBe(false)
    expect(a.peer.forgetPeer(c.peer.peerId)).toBe(true)
    expect(a.peer.forgetPeer(c.peer.peerId)).toBe(false)
    expect(a.peer.peers().map((p) => p.peerId)).not.toContain(c.peer.peerId)
    expect(await eventually(() => ns.tombstoneCount === 0)).toBe(true)
    expect(ns.get('k')).toBeUndefined()
  })
})

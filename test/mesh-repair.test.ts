import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { afterAll, afterEach, describe, expect, it } from 'vitest'
import { openSqliteStore } from '../src/store/sqlite.ts'
import { allEqual, digests, eventually, startTestPeer, type TestPeer } from './helpers/mesh-peers.ts'

const te = new TextEncoder()

let running: TestPeer[] = []
afterEach(async () => {
  await Promise.allSettled(running.map((p) => p.stop()))
  running = []
})

async function start(count: number, options: Parameters<typeof startTestPeer>[0] = {}): Promise<TestPeer[]> {
  const peers: TestPeer[] = []
  for (let i = 0; i < count; i++) peers.push(await startTestPeer({ syncIntervalMs: 500, ...options }))
  running.push(...peers)
  return peers
}

describe('anti-entropy repairs what gossip could not carry', () => {
  const dir = mkdtempSync(join(tmpdir(), 'hearsay-repair-'))
  afterAll(() => rmSync(dir, { recursive: true, force: true }))

  it('a peer offline during 10,000 writes (puts and deletes) joins and converges, every delete included', async () => {
    const [a, b] = await start(2)
    await a.peer.dial(b.address)
    const ns = a.peer.namespace('ns')
    // Some keys exist on both before the late joiner goes away, so their deletes must reach it.
    for (let i = 0; i < 500; i++) await ns.put(`early/${i}`, te.encode(`${i}`), 'text/plain')
    const lateKey = await generateKeyPair('Ed25519')
    const latePath = join(dir, 'late.db')
    const [late] = await start(1, { privateKey: lateKey, store: openSqliteStore({ path: latePath }) })
    await late.peer.dial(a.address)
    expect(await eventually(() => late.peer.namespace('ns').get('early/499') !== undefined)).toBe(true)
    await late.stop()

    const writes: Promise<unknown>[] = []
    for (let i = 0; i < 10_000; i++) {
      if (i % 4 === 3) writes.push(ns.delete(`early/${(i >> 2) % 500}`).catch(() => undefined))
      else writes.push(ns.put(`bulk/${i}`, te.encode(`{"i":${i}}`), 'application/json'))
      if (writes.length >= 500) await Promise.all(writes.splice(0))
    }
    await Promise.all(writes)
    // 10,000 signatures to check on the receiving side: give a loaded machine time.
    expect(await eventually(() => allEqual(digests([a, b])), 60_000)).toBe(true)

    // The late joiner comes back with its old state (same file) under its old identity.
    const rejoined = await startTestPeer({ store: openSqliteStore({ path: latePath }), privateKey: lateKey })
    running.push(rejoined)
    await rejoined.peer.dial(b.address)
    await eventually(() => allEqual(digests([a, b, rejoined])), {
      timeout: 60_000,
      message: () => `equal digests after the rejoin; digests ${digests([a, b, rejoined])}`,
    })
    const replica = rejoined.peer.namespace('ns')
    for (let i = 0; i < 500; i++) expect(replica.get(`early/${i}`), `early/${i}`).toBeUndefined()
    expect(replica.list('bulk/', { limit: 10_000 }).items.length).toBe(7500)
  })

  it('catches up a namespace larger than a stream buffer in one session', async () => {
    const [a] = await start(1)
    const ns = a.peer.namespace('ns')
    const value = new Uint8Array(1024).fill(7)
    const writes: Promise<unknown>[] = []
    // About 8 MiB: twice what libp2p buffers unread on one stream.
    for (let i = 0; i < 8000; i++) writes.push(ns.put(`blob/${i}`, value, 'application/octet-stream'))
    await Promise.all(writes)
    const [b] = await start(1)
    await b.peer.dial(a.address)
    expect(await eventually(() => allEqual(digests([a, b])), 60_000)).toBe(true)
    expect(b.mesh.counters.syncFailures + a.mesh.counters.syncFailures).toBe(0)
  })

  it('a write made right after connecting arrives in seconds, with periodic anti-entropy a minute apart', async () => {
    for (let round = 0; round < 3; round++) {
      const [a, b] = await start(2, { syncIntervalMs: 60_000 })
      await b.peer.dial(a.address)
      // Gossip links may still be forming: the publish can reach nobody, and then a pushed
      // anti-entropy round must carry it.
      await a.peer.namespace('ns').put(`early/${round}`, te.encode('x'), 'text/plain')
      expect(await eventually(() => b.peer.namespace('ns').get(`early/${round}`) !== undefined, 5000)).toBe(
        true,
      )
    }
  })

  it('heals a partition: both sides write, reconnect, converge', async () => {
    const peers = await start(4)
    const [a, b, c, d] = peers
    await a.peer.dial(b.address)
    await c.peer.dial(d.address)
    await b.peer.dial(c.address)
    await a.peer.namespace('ns').put('before', te.encode('1'), 'text/plain')
    expect(await eventually(() => allEqual(digests(peers)))).toBe(true)

    // Split {a, b} from {c, d}: peer exchange has meshed everyone, so block every cross link.
    const left = [a, b]
    const right = [c, d]
    for (const x of left) {
      for (const y of right) {
        await x.mesh.block(y.mesh.peerId)
        await y.mesh.block(x.mesh.peerId)
      }
    }
    const crossLinks = () =>
      left.some((x) => right.some((y) => x.mesh.node.peers().some((p) => p.toString() === y.mesh.peerId)))
    expect(await eventually(() => !crossLinks())).toBe(true)

    await a.peer.namespace('ns').put('left', te.encode('from a'), 'text/plain')
    await d.peer.namespace('ns').put('right', te.encode('from d'), 'text/plain')
    await a.peer.namespace('ns').put('both', te.encode('a'), 'text/plain')
    await d.peer.namespace('ns').put('both', te.encode('d'), 'text/plain')
    await d.peer.namespace('ns').delete('before')
    expect(await eventually(() => allEqual(digests([a, b])) && allEqual(digests([c, d])))).toBe(true)
    expect(b.peer.namespace('ns').get('right')).toBeUndefined()
    expect(c.peer.namespace('ns').get('left')).toBeUndefined()

    for (const x of left) {
      for (const y of right) {
        x.mesh.unblock(y.mesh.peerId)
        y.mesh.unblock(x.mesh.peerId)
      }
    }
    await b.peer.dial(c.address)
    expect(await eventually(() => allEqual(digests(peers)))).toBe(true)
    for (const p of peers) {
      const ns = p.peer.namespace('ns')
      expect(ns.get('left')).toBeDefined()
      expect(ns.get('right')).toBeDefined()
      expect(ns.get('before')).toBeUndefined()
      expect(ns.get('both')?.siblings).toHaveLength(2)
    }
  })
})

/**
 * Replication over libp2p's in-memory transport: the real gossipsub, sync protocol, membership, GC
 * and `?ack` stack, no sockets. The same behaviours keep smaller TCP tests (mesh-convergence,
 * mesh-ack, crdt-gc over daemons); these run in well under a second each.
 */
import { afterEach, describe, expect, it } from 'vitest'
import { eventually } from './helpers/eventually.ts'
import { allEqual, connected, digests, startTestPeer, type TestPeer } from './helpers/mesh-peers.ts'

const te = new TextEncoder()
let peers: TestPeer[] = []

afterEach(async () => {
  await Promise.allSettled(peers.map((p) => p.stop()))
  peers = []
})

async function memoryPeer(options: Parameters<typeof startTestPeer>[0] = {}): Promise<TestPeer> {
  const p = await startTestPeer({ transport: { kind: 'memory' }, ...options })
  peers.push(p)
  return p
}

describe('replication in memory', () => {
  it('four peers in a line converge on concurrent writes by gossip and anti-entropy', async () => {
    const line = [await memoryPeer(), await memoryPeer(), await memoryPeer(), await memoryPeer()]
    for (let i = 1; i < line.length; i++) await line[i].peer.dial(line[i - 1].address)
    await Promise.all(
      line.map((p, i) => p.peer.namespace('ns').put(`from/${i}`, te.encode(String(i)), 'text/plain')),
    )
    await Promise.all(line.map((p) => p.peer.namespace('ns').increment('hits', 1)))
    await eventually(() => allEqual(digests(line)), { message: () => `equal digests: ${digests(line)}` })
    for (const p of line) {
      expect(p.peer.namespace('ns').counter('hits')).toBe(4)
      for (let i = 0; i < line.length; i++) expect(p.peer.namespace('ns').get(`from/${i}`)).toBeDefined()
    }
  })

  it('membership learns what each peer holds, and ?ack=2 answers once two peers hold a write', async () => {
    const [writer, x, y] = [
      await memoryPeer({ syncIntervalMs: 60_000 }),
      await memoryPeer(),
      await memoryPeer(),
    ]
    await writer.peer.dial(x.address)
    await writer.peer.dial(y.address)
    await eventually(() => connected(writer, x) && connected(writer, y), {
      message: 'writer connected to x and y',
    })
    const write = await writer.peer.namespace('ns').put('acked', te.encode('v'), 'text/plain')
    const count = await writer.peer.replicatedTo(
      'ns',
      write.replica,
      write.counter,
      2,
      AbortSignal.timeout(10_000),
    )
    expect(count).toBe(2)
    for (const other of [x, y]) {
      expect(writer.mesh.membership.hasDot(other.mesh.peerId, 'ns', write.replica, write.counter)).toBe(true)
      expect(other.peer.namespace('ns').get('acked')).toBeDefined()
    }
    expect(writer.mesh.scheduler.requested.ack + writer.mesh.scheduler.requested.connected).toBeGreaterThan(0)
  })

  it('collects a tombstone on both peers once each is known to hold it', async () => {
    const a = await memoryPeer({ gcIntervalMs: 50, syncIntervalMs: 100 })
    const b = await memoryPeer({ gcIntervalMs: 50, syncIntervalMs: 100 })
    await a.peer.dial(b.address)
    await a.peer.namespace('ns').put('doomed', te.encode('v'), 'text/plain')
    await eventually(() => b.peer.namespace('ns').get('doomed') !== undefined, { message: 'b holds the key' })
    await a.peer.namespace('ns').delete('doomed')
    await eventually(
      () => a.mesh.counters.tombstonesCollected > 0 && b.mesh.counters.tombstonesCollected > 0,
      {
        message: () =>
          `both collected the tombstone (a ${a.mesh.counters.tombstonesCollected}, b ${b.mesh.counters.tombstonesCollected})`,
      },
    )
    expect(a.peer.namespace('ns').get('doomed')).toBeUndefined()
    expect(b.peer.namespace('ns').get('doomed')).toBeUndefined()
    await eventually(() => allEqual(digests([a, b])), { message: 'equal digests after collection' })
  })

  it('heals a partition made with block: both sides write apart, then converge after unblock', async () => {
    const a = await memoryPeer({ syncIntervalMs: 200 })
    const b = await memoryPeer({ syncIntervalMs: 200 })
    await a.peer.dial(b.address)
    await eventually(() => connected(a, b), { message: 'a and b connected' })
    await a.mesh.block(b.mesh.peerId)
    await b.mesh.block(a.mesh.peerId)
    await eventually(() => !connected(a, b) && !connected(b, a), { message: 'the partition closed the link' })
    await a.peer.namespace('ns').put('side', te.encode('a'), 'text/plain')
    await b.peer.namespace('ns').put('side', te.encode('b'), 'text/plain')
    await b.peer.namespace('ns').put('only-b', te.encode('b'), 'text/plain')
    expect(a.peer.namespace('ns').get('only-b')).toBeUndefined()
    a.mesh.unblock(b.mesh.peerId)
    b.mesh.unblock(a.mesh.peerId)
    await a.peer.dial(b.address)
    await eventually(() => allEqual(digests([a, b])), { message: () => `equal digests: ${digests([a, b])}` })
    expect(a.peer.namespace('ns').get('only-b')).toBeDefined()
  })

  it('a lossy link still converges: lost buffers reset connections, redials and anti-entropy repair', async () => {
    let lost = 0
    // 2% of buffers lost, each resetting its connection: handshakes, gossip and sync sessions all fail
    // at times.
    const lossy = (seed: number) =>
      memoryPeer({
        transport: { kind: 'memory', loss: { rate: 0.02, seed, onLost: () => lost++ } },
        syncIntervalMs: 300,
      })
    const line = [await lossy(1), await lossy(2), await lossy(3)]
    for (let i = 1; i < line.length; i++) {
      // A dial may itself lose its handshake: retry until linked.
      await eventually(
        async () => {
          if (!connected(line[i], line[i - 1])) await line[i].peer.dial(line[i - 1].address).catch(() => {})
          return connected(line[i], line[i - 1])
        },
        { timeout: 30_000, message: `peer ${i} linked to peer ${i - 1}` },
      )
    }
    const rounds = 30
    for (let round = 0; round < rounds; round++) {
      await Promise.all(
        line.map((p, i) =>
          p.peer.namespace('ns').put(`k/${i}/${round}`, te.encode(String(round)), 'text/plain'),
        ),
      )
    }
    await eventually(() => lost > 0, { timeout: 30_000, message: 'the links lost at least one buffer' })
    await eventually(
      () => allEqual(digests(line)) && line.every((p) => p.peer.namespace('ns').get(`k/2/${rounds - 1}`)),
      { timeout: 60_000, message: () => `equal digests after loss (${lost} buffers lost): ${digests(line)}` },
    )
    for (const p of line)
      for (let i = 0; i < line.length; i++)
        for (let round = 0; round < rounds; round++)
          expect(p.peer.namespace('ns').get(`k/${i}/${round}`)).toBeDefined()
    expect(lost).toBeGreaterThan(0)
  }, 120_000)
})

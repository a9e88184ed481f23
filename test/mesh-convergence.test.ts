import { afterEach, describe, expect, it } from 'vitest'
import { allEqual, digests, eventually, startTestPeer, type TestPeer } from './helpers/mesh-peers.ts'

const te = new TextEncoder()
const td = new TextDecoder()

let running: TestPeer[] = []
afterEach(async () => {
  await Promise.allSettled(running.map((p) => p.stop()))
  running = []
})

async function startPeers(count: number): Promise<TestPeer[]> {
  const peers: TestPeer[] = []
  for (let i = 0; i < count; i++) peers.push(await startTestPeer({ syncIntervalMs: 500 }))
  running.push(...peers)
  return peers
}

/** Connects peers along the given edges (index pairs). */
async function connect(peers: TestPeer[], edges: Array<[number, number]>): Promise<void> {
  for (const [a, b] of edges) await peers[a].peer.dial(peers[b].address)
}

function read(peer: TestPeer, key: string): string | undefined {
  const value = peer.peer.namespace('ns').get(key)
  return value === undefined ? undefined : td.decode(value.winner.value)
}

const topologies: Record<string, (n: number) => Array<[number, number]>> = {
  line: (n) => Array.from({ length: n - 1 }, (_, i) => [i, i + 1] as [number, number]),
  ring: (n) => Array.from({ length: n }, (_, i) => [i, (i + 1) % n] as [number, number]),
  full: (n) => {
    const edges: Array<[number, number]> = []
    for (let i = 0; i < n; i++) for (let j = i + 1; j < n; j++) edges.push([i, j])
    return edges
  },
}

describe('mesh convergence over TCP on 127.0.0.1', () => {
  for (const [shape, count] of [
    ['line', 3],
    ['ring', 5],
    ['full', 4],
    ['line', 8],
  ] as const) {
    it(`a write on one of ${count} peers in a ${shape} is read on all`, async () => {
      const peers = await startPeers(count)
      await connect(peers, topologies[shape](count))
      await peers[0].peer.namespace('ns').put('greeting', te.encode('"hello"'), 'application/json')
      await eventually(() => peers.every((p) => read(p, 'greeting') === '"hello"'), {
        message: () => `every peer reads the greeting; values: ${peers.map((p) => read(p, 'greeting'))}`,
      })
      // Concurrent writes to the same keys from every peer converge to one state.
      await Promise.all(
        peers.map((p, i) =>
          p.peer.namespace('ns').put('contended', te.encode(`"peer ${i}"`), 'application/json'),
        ),
      )
      await Promise.all(peers.map((p, i) => p.peer.namespace('ns').increment('hits', i + 1)))
      await eventually(() => allEqual(digests(peers)), {
        message: () => `equal digests; digests: ${digests(peers)}`,
      })
      const expectedHits = (count * (count + 1)) / 2
      for (const p of peers) expect(p.peer.namespace('ns').counter('hits')).toBe(expectedHits)
    })
  }
})

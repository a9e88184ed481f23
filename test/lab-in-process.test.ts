/**
 * The in-process lab: real HearsayPeers and meshes over libp2p's in-memory transport, a short
 * workload per shape, and a partition that heals. The pure parts (topology, latency summary) are
 * checked on their own.
 */
import { describe, expect, it } from 'vitest'
import {
  equalFraction,
  meshNeighbours,
  partitioned,
  partitionGroups,
  runInProcess,
  summarizeLatencies,
} from '../src/lab/in-process.ts'
import type { LabShape, RunResult, Scenario } from '../src/lab/types.ts'

function scenario(overrides: Partial<Scenario> = {}): Scenario {
  return {
    name: 'in-process-test',
    shapes: ['mesh'],
    n: [8],
    mode: 'in-process',
    workload: {
      writers: 2,
      ratePerSecond: 20,
      keys: 8,
      valueBytes: 128,
      durationMs: 2000,
      readFraction: 0.2,
    },
    timeline: [],
    // Generous: the run ends as soon as every write is visible everywhere.
    settleMs: 20_000,
    visibleBoundMs: 15_000,
    seed: 11,
    ...overrides,
  }
}

async function run(shape: LabShape, n: number, overrides: Partial<Scenario> = {}): Promise<RunResult> {
  const lines: string[] = []
  const result = await runInProcess(scenario(overrides), shape, n, (line) => lines.push(line))
  expect(lines.length).toBeGreaterThan(0)
  return result
}

/** Every acknowledged write was seen by every peer; latency and traffic figures are present and sane. */
function expectEverythingVisible(result: RunResult, valueBytes: number): void {
  const { writes, latency } = result
  expect(writes.attempted).toBeGreaterThan(10)
  expect(writes.acknowledged).toBe(writes.attempted)
  expect(writes.lost).toBe(0)
  expect(writes.notSeenWithinBound).toBe(0)
  expect(latency.count).toBe(writes.acknowledged)
  expect(latency.p50).toBeGreaterThan(0)
  expect(latency.max).toBeGreaterThanOrEqual(latency.p99)
  expect(latency.cdf.at(-1)![1]).toBe(1)
  expect(result.timeline.length).toBeGreaterThan(4)
  expect(result.timeline.at(-1)!.visibleFraction).toBe(1)
  expect(result.reads.served).toBe(result.reads.attempted)
  for (const peer of result.peers.filter((p) => p.role !== 'hub')) {
    // Each peer must at least receive the value of every write it did not make.
    const othersWrites = writes.acknowledged - Math.ceil(writes.acknowledged / 2)
    expect(peer.bytesReceived).toBeGreaterThan(valueBytes * othersWrites)
    expect(peer.cpuMs).toBeGreaterThan(0)
    expect(peer.rssBytes).toBeGreaterThan(0)
  }
}

describe('in-process lab', () => {
  it('a mesh of 8 peers sees every write on every peer, nothing lost', async () => {
    const result = await run('mesh', 8)
    expect(result).toMatchObject({
      shape: 'mesh',
      n: 8,
      mode: 'in-process',
      transport: 'memory',
      emulation: 'none',
    })
    expect(result.peers).toHaveLength(8)
    expectEverythingVisible(result, 128)
    expect(result.process!.cpuMs).toBeGreaterThan(0)
  })

  it('a hub with 6 clients relays every write; the hub sends each write to every other client', async () => {
    const result = await run('hub', 6, {
      link: { preset: 'lan', delayMs: 0.5, jitterMs: 0, lossPercent: 0 },
    })
    expect(result.emulation).toBe('memory')
    expect(result.peers.filter((p) => p.role === 'client')).toHaveLength(6)
    const hub = result.peers.find((p) => p.role === 'hub')!
    expect(hub.index).toBe(-1)
    expectEverythingVisible(result, 128)
    // Clients talk to the hub only: every client receives every other client's write from it.
    expect(hub.bytesSent).toBeGreaterThan(128 * result.writes.acknowledged * 5)
  })

  it('an http hub with 6 clients: writes through the hub, every client watch sees them', async () => {
    const result = await run('http-hub', 6)
    expectEverythingVisible(result, 128)
    const hub = result.peers.find((p) => p.role === 'hub')!
    expect(hub.bytesSent).toBeGreaterThan(128 * result.writes.acknowledged * 5)
    expect(result.notes?.join(' ')).toContain('no HTTP server')
  })

  it('a partitioned mesh keeps accepting writes on both sides and converges after the heal', async () => {
    const result = await run('mesh', 8, {
      workload: { writers: 2, ratePerSecond: 20, keys: 8, valueBytes: 64, durationMs: 2000, readFraction: 0 },
      timeline: [
        {
          atMs: 300,
          kind: 'partition',
          groups: [
            [0, 2, 4, 6],
            [1, 3, 5, 7],
          ],
        },
        { atMs: 1300, kind: 'heal' },
      ],
    })
    expect(result.writes.lost).toBe(0)
    expect(result.firedEvents!.map((e) => e.kind)).toEqual(['partition', 'heal'])
    for (const e of result.firedEvents!) expect(e.firedAtMs).toBeGreaterThanOrEqual(e.atMs)
    const [heal] = result.convergence
    expect(heal).toMatchObject({ event: 'heal', atMs: 1300 })
    expect(heal.convergedAfterMs).not.toBeNull()
    const [partition] = result.availability
    expect(partition).toMatchObject({ event: 'partition', fromMs: 300, toMs: 1300, writesRefused: 0 })
    expect(partition.writesAccepted).toBeGreaterThan(0)
    // Both sides wrote while apart, so the peers were not all equal for a while, and are at the end.
    expect(result.timeline.some((s) => s.peersEqualFraction < 1)).toBe(true)
    expect(result.timeline.at(-1)!.peersEqualFraction).toBe(1)
  })

  it('churn: a peer that leaves and joins again and a late joiner catch up; writes to a left writer are refused', async () => {
    const result = await run('mesh', 6, {
      workload: { writers: 3, ratePerSecond: 30, keys: 8, valueBytes: 64, durationMs: 2000, readFraction: 0 },
      timeline: [
        { atMs: 300, kind: 'leave', peers: [2] },
        { atMs: 600, kind: 'late-join', peers: [5] },
        { atMs: 1200, kind: 'join', peers: [2] },
      ],
    })
    expect(result.writes.lost).toBe(0)
    // Peer 2 writes every third write; while it is away those writes cannot be made.
    expect(result.writes.refused).toBeGreaterThan(0)
    expect(result.writes.acknowledged + result.writes.refused).toBe(result.writes.attempted)
    expect(result.convergence.map((c) => c.event)).toEqual(['late-join', 'join'])
    for (const c of result.convergence) expect(c.convergedAfterMs).not.toBeNull()
    expect(result.timeline.at(-1)!.peersEqualFraction).toBe(1)
  })
})

describe('in-process lab, pure parts', () => {
  it('mesh neighbours: ring neighbours plus seeded chords, never itself, the same for the same seed', () => {
    const neighbours = meshNeighbours(100, 5)
    expect(neighbours).toEqual(meshNeighbours(100, 5))
    neighbours.forEach((list, i) => {
      expect(list).toContain((i + 1) % 100)
      expect(list).toContain((i + 99) % 100)
      expect(list).not.toContain(i)
      expect(new Set(list).size).toBe(4)
    })
    expect(meshNeighbours(2, 1)).toEqual([[1], [0]])
  })

  it('partition groups: the groups are cut from each other, a peer in no group reaches all', () => {
    const groups = partitionGroups([[0, 1], [2]], 5)
    expect(groups).toEqual([0, 0, 1, -1, -1])
    expect(partitioned(groups, 0, 2)).toBe(true)
    expect(partitioned(groups, 0, 1)).toBe(false)
    expect(partitioned(groups, 2, 3)).toBe(false)
    expect(partitioned(groups, 3, 4)).toBe(false)
    expect(partitioned(undefined, 0, 2)).toBe(false)
  })

  it('latency summary: percentiles, and a CDF that stays below 1 when writes never showed', () => {
    const latencies = Array.from({ length: 1000 }, (_, i) => i + 1)
    const summary = summarizeLatencies(latencies, 1250)
    expect(summary).toMatchObject({ count: 1000, p50: 501, p90: 901, p99: 991, max: 1000 })
    expect(summary.cdf.length).toBeLessThanOrEqual(200)
    expect(summary.cdf.at(-1)).toEqual([1000, 0.8])
    expect(summarizeLatencies([], 0)).toMatchObject({ count: 0, p50: 0, max: 0, cdf: [] })
    expect(equalFraction(['a', 'a', 'b', 'a'])).toBe(0.75)
  })
})

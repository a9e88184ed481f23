import { describe, expect, it } from 'vitest'
import {
  availability,
  buildTimeline,
  caughtUpAfter,
  digestsEqualAfter,
  faultWindows,
  gossipMessages,
  type Liveness,
  lostWrites,
  peersEqualFraction,
  percentile,
  summarizeLatency,
  VisibilityLog,
  type WriteRecord,
  writeLatency,
} from '../src/lab/measure.ts'
import { parseSs } from '../src/lab/processes.ts'
import { resultsMarkdown } from '../src/lab/results.ts'
import {
  checkEnvironment,
  parseEventFlag,
  parseScenario,
  ScenarioError,
  scenarioFromFlags,
} from '../src/lab/scenario.ts'
import { networkGroups, planShape } from '../src/lab/shapes.ts'
import type { LabResults } from '../src/lab/types.ts'
import { labValue, parseKey, parseValue, planOperations } from '../src/lab/workload.ts'

function fieldOf(thunk: () => unknown): string {
  try {
    thunk()
  } catch (error) {
    expect(error).toBeInstanceOf(ScenarioError)
    return (error as ScenarioError).field
  }
  throw new Error('expected a ScenarioError')
}

const base = { shapes: ['mesh', 'hub'], n: [3], workload: { durationMs: 5000 } }

describe('lab scenario validation', () => {
  it('fills the defaults of a minimal scenario', () => {
    const { scenario } = parseScenario({})
    expect(scenario.shapes).toEqual(['mesh', 'hub', 'http-hub'])
    expect(scenario.n).toEqual([4])
    expect(scenario.mode).toBe('processes')
    expect(scenario.link).toBeUndefined()
    expect(scenario.workload.writers).toBe(2)
    expect(scenario.timeline).toEqual([])
  })

  it('names the field of every bad value', () => {
    expect(fieldOf(() => parseScenario({ n: [1] }))).toBe('n[0]')
    expect(fieldOf(() => parseScenario({ n: 1 }))).toBe('n')
    expect(fieldOf(() => parseScenario({ n: [4, 0] }))).toBe('n[1]')
    expect(fieldOf(() => parseScenario({ shapes: ['mesh', 'star'] }))).toBe('shapes[1]')
    expect(fieldOf(() => parseScenario({ link: 'moon' }))).toBe('link')
    expect(fieldOf(() => parseScenario({ link: { delayMs: -1 } }))).toBe('link.delayMs')
    expect(fieldOf(() => parseScenario({ link: { lossPercent: 120 } }))).toBe('link.lossPercent')
    expect(fieldOf(() => parseScenario({ workload: { ratePerSecond: -5 } }))).toBe('workload.ratePerSecond')
    expect(fieldOf(() => parseScenario({ workload: { valueBytes: 1.5 } }))).toBe('workload.valueBytes')
    expect(fieldOf(() => parseScenario({ workload: { readFraction: 1 } }))).toBe('workload.readFraction')
    expect(fieldOf(() => parseScenario({ workload: { speed: 3 } }))).toBe('workload.speed')
    expect(fieldOf(() => parseScenario({ mode: 'threads' }))).toBe('mode')
    expect(fieldOf(() => parseScenario({ colour: 'red' }))).toBe('colour')
    expect(fieldOf(() => parseScenario({ n: [100] }))).toBe('n[0]')
    expect(fieldOf(() => parseScenario({ n: [2], workload: { writers: 3 } }))).toBe('workload.writers')
  })

  it('says what is wrong in words', () => {
    expect(() => parseScenario({ n: [1] })).toThrow('n[0]: a run needs at least 2 peers, got 1')
    expect(() => parseScenario({ shapes: ['star'] })).toThrow(
      /unknown shape "star" \(known: mesh, hub, http-hub\)/,
    )
    expect(() => parseScenario({ link: 'moon' })).toThrow(
      /unknown preset "moon" \(known: lan, wifi, edge, satellite/,
    )
    expect(() => parseScenario({ workload: { ratePerSecond: -5 } })).toThrow(/no negative values/)
  })

  it('refuses a timeline event after the end of the write phase', () => {
    const scenario = { ...base, timeline: [{ atMs: 5000, kind: 'kill-hub' }] }
    expect(fieldOf(() => parseScenario(scenario))).toBe('timeline[0].atMs')
    expect(() => parseScenario(scenario)).toThrow(
      /after the end of the write phase \(workload.durationMs = 5000\)/,
    )
  })

  it('refuses partition groups out of range or overlapping, and heal without partition', () => {
    const outOfRange = { ...base, timeline: [{ atMs: 100, kind: 'partition', groups: [[0], [1, 3]] }] }
    expect(fieldOf(() => parseScenario(outOfRange))).toBe('timeline[0].groups[1][1]')
    const overlap = {
      ...base,
      timeline: [
        {
          atMs: 100,
          kind: 'partition',
          groups: [
            [0, 1],
            [1, 2],
          ],
        },
      ],
    }
    expect(fieldOf(() => parseScenario(overlap))).toBe('timeline[0].groups[1]')
    const oneGroup = { ...base, timeline: [{ atMs: 100, kind: 'partition', groups: [[0, 1, 2]] }] }
    expect(fieldOf(() => parseScenario(oneGroup))).toBe('timeline[0].groups')
    expect(fieldOf(() => parseScenario({ ...base, timeline: [{ atMs: 100, kind: 'heal' }] }))).toBe(
      'timeline[0]',
    )
  })

  it('refuses hub events in a mesh-only scenario, and a restart without a kill', () => {
    const meshOnly = { ...base, shapes: ['mesh'], timeline: [{ atMs: 100, kind: 'kill-hub' }] }
    expect(() => parseScenario(meshOnly)).toThrow(/kill-hub in a mesh-only scenario/)
    expect(fieldOf(() => parseScenario({ ...base, timeline: [{ atMs: 100, kind: 'restart-hub' }] }))).toBe(
      'timeline[0]',
    )
  })

  it('checks churn: leave a running peer, join a left one, late-join once', () => {
    const ok = parseScenario({
      ...base,
      timeline: [
        { atMs: 100, kind: 'leave', peers: [1] },
        { atMs: 200, kind: 'join', peers: [1] },
        { atMs: 300, kind: 'late-join', peers: [2] },
      ],
    })
    expect(ok.scenario.timeline).toHaveLength(3)
    expect(() => parseScenario({ ...base, timeline: [{ atMs: 100, kind: 'join', peers: [1] }] })).toThrow(
      /already up/,
    )
    expect(() =>
      parseScenario({
        ...base,
        timeline: [
          { atMs: 100, kind: 'leave', peers: [0, 1] },
          { atMs: 200, kind: 'leave', peers: [2] },
        ],
      }),
    ).toThrow(/at least one peer must stay up/)
    expect(
      fieldOf(() => parseScenario({ ...base, timeline: [{ atMs: 100, kind: 'leave', peers: [5] }] })),
    ).toBe('timeline[0].peers[0]')
    expect(() =>
      parseScenario({
        ...base,
        timeline: [
          { atMs: 200, kind: 'kill-hub' },
          { atMs: 100, kind: 'restart-hub' },
        ],
      }),
    ).toThrow(/time order/)
  })

  it('needs root and ip for loss and rate limits, not for delay alone', () => {
    const lossy = parseScenario({ ...base, link: 'edge' }).scenario
    expect(() => checkEnvironment(lossy, { isRoot: false, hasIp: true })).toThrow(/link: .*need root/)
    expect(() => checkEnvironment(lossy, { isRoot: true, hasIp: false })).toThrow(/no "ip" found/)
    expect(() => checkEnvironment(lossy, { isRoot: true, hasIp: true })).not.toThrow()
    const delayed = parseScenario({ ...base, link: 'satellite' }).scenario
    expect(() => checkEnvironment(delayed, { isRoot: false, hasIp: false })).not.toThrow()
    const inProcess = parseScenario({ ...base, mode: 'in-process', link: 'edge' }).scenario
    expect(() => checkEnvironment(inProcess, { isRoot: false, hasIp: false })).not.toThrow()
  })

  it('builds a scenario from flags over a file, events included', () => {
    const { scenario, out } = scenarioFromFlags(
      {
        shapes: 'mesh,http-hub',
        n: '3,5',
        duration: '4s',
        'write-rate': '10',
        link: 'wifi',
        delay: '8',
        event: ['kill-hub@1s', 'restart-hub@2500', 'partition@3s:0,1/2'],
        out: '/tmp/x',
      },
      { name: 'from-file', seed: 7 },
    )
    expect(scenario.name).toBe('from-file')
    expect(scenario.seed).toBe(7)
    expect(scenario.shapes).toEqual(['mesh', 'http-hub'])
    expect(scenario.n).toEqual([3, 5])
    expect(scenario.workload.durationMs).toBe(4000)
    expect(scenario.workload.ratePerSecond).toBe(10)
    expect(scenario.link).toEqual({ delayMs: 8, jitterMs: 2, lossPercent: 0.5, preset: 'wifi' })
    expect(scenario.timeline).toEqual([
      { atMs: 1000, kind: 'kill-hub' },
      { atMs: 2500, kind: 'restart-hub' },
      { atMs: 3000, kind: 'partition', groups: [[0, 1], [2]] },
    ])
    expect(out).toBe('/tmp/x')
    expect(() => parseEventFlag('kill-hub', 0)).toThrow(/--event\[0\]: expected kind@time/)
    expect(() => scenarioFromFlags({ n: 'four' })).toThrow(/n: must be a number/)
  })
})

describe('lab workload', () => {
  it('plans the rate over the duration, round robin, with reads at the given share and the same plan for one seed', () => {
    const workload = {
      writers: 2,
      ratePerSecond: 20,
      keys: 3,
      valueBytes: 64,
      durationMs: 2000,
      readFraction: 0.25,
    }
    const ops = planOperations(workload, 5)
    expect(ops).toHaveLength(40)
    expect(ops[1]!.atMs).toBe(50)
    expect(ops.map((op) => op.writer).slice(0, 4)).toEqual([0, 1, 0, 1])
    const reads = ops.filter((op) => op.kind === 'read').length
    expect(reads).toBeGreaterThan(2)
    expect(reads).toBeLessThan(20)
    expect(planOperations(workload, 5)).toEqual(ops)
    const writesOf0 = ops.filter((op) => op.kind === 'write' && op.writer === 0)
    expect(writesOf0.map((op) => op.seq)).toEqual(writesOf0.map((_, i) => i + 1))
    expect(writesOf0.every((op) => parseKey(op.key)?.writer === 0)).toBe(true)
  })

  it('makes values of exactly the asked size that name their writer and sequence', () => {
    const value = labValue(3, 17, 64)
    expect(Buffer.byteLength(value)).toBe(64)
    expect(parseValue(JSON.parse(value))).toEqual({ writer: 3, seq: 17 })
    expect(parseValue('plain')).toBeUndefined()
    expect(parseKey('w2/k9')).toEqual({ writer: 2, index: 9 })
    expect(parseKey('_warmup/1')).toBeUndefined()
  })
})

describe('lab measures', () => {
  const write = (id: number, issuedMs: number, ackMs?: number, writer = 0, seq = id + 1): WriteRecord => ({
    id,
    writer,
    key: `w${writer}/k0`,
    seq,
    issuedMs,
    ackMs,
    refused: ackMs === undefined,
  })
  const always: Liveness = [[[0, Number.POSITIVE_INFINITY]], [[0, Number.POSITIVE_INFINITY]]]

  it('takes nearest-rank percentiles and a CDF against all writes', () => {
    expect(percentile([1, 2, 3, 4], 50)).toBe(2)
    expect(percentile([1, 2, 3, 4], 99)).toBe(4)
    expect(Number.isNaN(percentile([], 50))).toBe(true)
    const summary = summarizeLatency([30, 10, 20], 4)
    expect(summary).toMatchObject({ count: 3, p50: 20, max: 30 })
    expect(summary.cdf).toEqual([
      [10, 0.25],
      [20, 0.5],
      [30, 0.75],
    ])
    const many = summarizeLatency(
      Array.from({ length: 1000 }, (_, i) => i),
      1000,
    )
    expect(many.cdf.length).toBeLessThanOrEqual(200)
    expect(many.cdf[many.cdf.length - 1]).toEqual([999, 1])
  })

  it('marks a superseded write seen with the later one, and times a write by its slowest live peer', () => {
    const log = new VisibilityLog(2, 3)
    const writes = [write(0, 0, 5), write(1, 10, 12), write(2, 20, 21)]
    for (const w of writes) log.add(w)
    log.observe(0, 'w0/k0', 1, 6)
    log.observe(0, 'w0/k0', 3, 25) // write 2 (seq 2) arrived only inside write 3 (seq 3)
    log.observe(1, 'w0/k0', 3, 40)
    log.observe(1, 'w0/k0', 2, 50) // older than what it showed: changes nothing
    expect([...log.seen[0]!]).toEqual([6, 25, 25])
    expect([...log.seen[1]!]).toEqual([40, 40, 40])
    expect(writeLatency(writes[0]!, log.seen, always, 100)).toBe(40)
    expect(writeLatency(writes[2]!, log.seen, always, 100)).toBe(20)
  })

  it('leaves out a peer that went down before showing a write, and counts a peer up all along as not visible', () => {
    const seen = [Float64Array.from([5]), Float64Array.from([Number.NaN])]
    const w = write(0, 0, 1)
    const down: Liveness = [[[0, Number.POSITIVE_INFINITY]], [[0, 3]]]
    expect(writeLatency(w, seen, down, 100)).toBe(5)
    expect(writeLatency(w, seen, always, 100)).toBeUndefined()
    expect(lostWrites([w], seen, always, 100, (x) => x)).toHaveLength(1)
    expect(lostWrites([w], seen, down, 100, (x) => x)).toHaveLength(0)
    expect(lostWrites([write(1, 0)], seen, always, 100, (x) => x)).toHaveLength(0) // never acknowledged
  })

  it('finds when every live peer caught up after an event, and when digests were equal', () => {
    const writes = [write(0, 0, 1), write(1, 100, 101)]
    const seen = [Float64Array.from([2, 102]), Float64Array.from([300, 350])]
    expect(caughtUpAfter(200, writes, seen, always, 1000, (x) => x)).toBe(150)
    expect(
      caughtUpAfter(200, writes, [seen[0]!, Float64Array.from([300, Number.NaN])], always, 1000, (x) => x),
    ).toBeNull()
    const samples = [
      { tMs: 0, digests: ['a', 'a'] },
      { tMs: 250, digests: ['a', 'b'] },
      { tMs: 500, digests: ['b', undefined] },
    ]
    expect(digestsEqualAfter(samples, 100)).toBe(400)
    expect(peersEqualFraction(['a', 'b', 'b', undefined])).toBeCloseTo(2 / 3)
  })

  it('samples the visible fraction over time: it drops while writes are not propagated', () => {
    const writes = [write(0, 0, 10), write(1, 300, 310), write(2, 600, 610)]
    const seen = [Float64Array.from([20, 320, 620]), Float64Array.from([30, 900, 900])]
    const timeline = buildTimeline(writes, seen, always, [{ tMs: 0, digests: ['a', 'a'] }], 1000, 250)
    expect(timeline.map((s) => s.tMs)).toEqual([0, 250, 500, 750, 1000])
    expect(timeline.map((s) => s.visibleFraction)).toEqual([1, 1, 0.5, 1 / 3, 1])
    expect(timeline[4]!.writesAccepted).toBe(3)
  })

  it('counts writes and reads per fault window, per peer', () => {
    const windows = faultWindows(
      [
        { kind: 'kill-hub', atMs: 100 },
        { kind: 'restart-hub', atMs: 500 },
        { kind: 'partition', atMs: 600 },
      ],
      1000,
    )
    expect(windows).toEqual([
      { event: 'kill-hub', fromMs: 100, toMs: 500 },
      { event: 'partition', fromMs: 600, toMs: 1000 },
    ])
    const rows = availability(
      windows,
      [write(0, 50, 60), write(1, 200, 210, 1), write(2, 300, undefined, 0), write(3, 700, 710)],
      [
        { peer: 1, atMs: 250, served: true },
        { peer: 1, atMs: 800, served: false },
      ],
      (x) => x,
    )
    expect(rows[0]).toMatchObject({ writesAccepted: 1, writesRefused: 1, readsServed: 1, readsFailed: 0 })
    expect(rows[0]!.perPeer).toEqual([
      { index: 0, writesAccepted: 0, writesRefused: 1, readsServed: 0, readsFailed: 0 },
      { index: 1, writesAccepted: 1, writesRefused: 0, readsServed: 1, readsFailed: 0 },
    ])
    expect(rows[1]).toMatchObject({ writesAccepted: 1, readsFailed: 1 })
  })
})

describe('lab shapes and kernel counters', () => {
  it('plans the daemons and dial topology of each shape', () => {
    const dial = (d: number) => `/addr/${d}`
    const mesh = planShape('mesh', 3)
    expect(mesh.daemons).toEqual([0, 1, 2])
    expect(mesh.topologyArgs(1, dial)).toEqual(['--bootstrap', '/addr/0', '--bootstrap', '/addr/2'])
    const hub = planShape('hub', 3)
    expect(hub.daemons).toEqual([3, 0, 1, 2])
    expect(hub.command(3)).toBe('hub')
    expect(hub.topologyArgs(0, dial)).toEqual(['--hub', '/addr/3'])
    expect(networkGroups(hub, [[0], [1, 2]])).toEqual([
      [0, 3],
      [1, 2],
    ])
    const http = planShape('http-hub', 3)
    expect(http.daemons).toEqual([3])
    expect(http.peersAreDaemons).toBe(false)
    expect(http.daemonOf(2)).toBe(3)
  })

  it('reads the gossip batches of a daemon from its metrics', () => {
    const text = [
      '# TYPE hearsay_gossip_messages_total counter',
      'hearsay_gossip_messages_total{direction="published"} 12',
      'hearsay_gossip_messages_total{direction="received"} 40',
      'hearsay_gossip_messages_total{direction="rejected"} 0',
    ].join('\n')
    expect(gossipMessages(text)).toEqual({ published: 12, received: 40 })
    expect(gossipMessages('')).toEqual({ published: 0, received: 0 })
  })

  it('parses ss socket byte counters', () => {
    const text = [
      '0      0      127.0.0.1:40000     127.0.0.1:7601 users:(("node",pid=123,fd=20))',
      '\t cubic wscale:7,7 rto:204 bytes_sent:900 bytes_acked:801 bytes_received:1200 segs_out:5',
      '0      0      10.1.0.2:7601     10.1.0.3:50000 users:(("node",pid=124,fd=21))',
      '\t cubic bytes_received:77',
    ].join('\n')
    expect(parseSs(text)).toEqual([
      { localPort: 40000, peerPort: 7601, pid: 123, received: 1200, sent: 800 },
      { localPort: 7601, peerPort: 50000, pid: 124, received: 77, sent: 0 },
    ])
  })

  it('renders a results table with the faults', () => {
    const { scenario } = parseScenario({ ...base, timeline: [{ atMs: 100, kind: 'kill-hub' }] })
    const results: LabResults = {
      version: 1,
      scenario,
      startedAt: '2026-01-01T00:00:00.000Z',
      machine: { cpus: 2, node: 'v22', kernel: '6' },
      runs: [
        {
          shape: 'hub',
          n: 3,
          mode: 'processes',
          transport: 'tcp',
          emulation: 'none',
          latency: summarizeLatency([5, 7], 2),
          writes: { attempted: 2, acknowledged: 2, refused: 0, lost: 0, notSeenWithinBound: 0 },
          reads: { attempted: 0, served: 0, failed: 0 },
          peers: [
            { index: -1, role: 'hub', bytesSent: 4096, bytesReceived: 100, cpuMs: 10, rssBytes: 1 << 20 },
            { index: 0, role: 'client', bytesSent: 100, bytesReceived: 2048, cpuMs: 5, rssBytes: 1 << 20 },
          ],
          convergence: [
            {
              event: 'restart-hub',
              atMs: 300,
              convergedAfterMs: 120,
              effectiveAtMs: 310,
              digestsEqualAfterMs: 250,
            },
          ],
          availability: [
            {
              event: 'kill-hub',
              fromMs: 100,
              toMs: 310,
              writesAccepted: 1,
              writesRefused: 0,
              readsServed: 0,
              readsFailed: 0,
            },
          ],
          timeline: [],
          durationMs: 1000,
          crashes: [],
        },
      ],
    }
    const markdown = resultsMarkdown(results)
    expect(markdown).toContain(
      '| hub | 3 | processes | none | 2 / 2 | 0 | 0 | 5.0 ms | 7.0 ms | 7.0 ms | 7.0 ms | 100 B | 2.0 KiB | 4.0 KiB |',
    )
    expect(markdown).toContain(
      'restart-hub at 310 ms | every live peer caught up after 120 ms; digests equal after 250 ms',
    )
    expect(markdown).toContain('kill-hub 100 ms–310 ms | writes accepted 1, refused 0')
  })
})

describe('lab example scenarios', () => {
  it('every examples/lab scenario is valid, JSON and YAML alike', async () => {
    const { readdirSync } = await import('node:fs')
    const { loadScenarioFile } = await import('../src/lab/scenario.ts')
    const folder = new URL('../examples/lab/', import.meta.url).pathname
    const files = readdirSync(folder).filter((file) => file.endsWith('.json'))
    expect(files.sort()).toEqual([
      'edge.json',
      'hub-kill.json',
      'medium.json',
      'partition.json',
      'small.json',
    ])
    for (const file of files)
      expect(loadScenarioFile(folder + file).scenario.name).toBe(file.replace('.json', ''))
    // The YAML form of small.json says the same.
    const yaml = loadScenarioFile(`${folder}small.yaml`).scenario
    expect({ ...yaml, name: 'small' }).toEqual(loadScenarioFile(`${folder}small.json`).scenario)
    expect(() => loadScenarioFile(`${folder}missing.yaml`)).toThrow(/scenario: cannot read/)
  })
})

describe('lab command dispatch', () => {
  function io() {
    let out = ''
    let err = ''
    return {
      io: {
        stdout: {
          write(text: string) {
            out += text
            return true
          },
        } as unknown as NodeJS.WritableStream,
        stderr: {
          write(text: string) {
            err += text
            return true
          },
        } as unknown as NodeJS.WritableStream,
      },
      out: () => out,
      err: () => err,
    }
  }

  it('answers a missing or unknown subcommand and a failed report with one line and an exit code', async () => {
    const { labMain } = await import('../src/lab/main.ts')
    const none = io()
    expect(await labMain([], {}, none.io)).toBe(2)
    expect(none.err()).toContain('lab needs a subcommand')
    const unknown = io()
    expect(await labMain(['draw'], {}, unknown.io)).toBe(2)
    expect(unknown.err()).toContain('unknown lab subcommand "draw"')
    const missing = io()
    expect(await labMain(['report', '/nonexistent/lab-results'], {}, missing.io)).toBe(1)
    expect(missing.err()).toMatch(/^hearsay lab: the report failed: /)
    const compare = io()
    expect(await labMain(['report', 'a'], { compare: true }, compare.io)).toBe(2)
    expect(compare.err()).toContain('takes two result folders')
    const invalid = io()
    expect(await labMain(['run'], { n: '1' }, invalid.io)).toBe(2)
    expect(invalid.err()).toBe('hearsay lab: invalid scenario: n: a run needs at least 2 peers, got 1\n')
  })
})

/**
 * Lab reports from a synthetic results.json: the markdown table, the SVG plots (each parsed as
 * XML, with its series named in the legend), a bad results file, and two results side by side.
 */
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { basename, join } from 'node:path'
import { XMLParser, XMLValidator } from 'fast-xml-parser'
import { afterEach, describe, expect, it } from 'vitest'
import { compareResults, LabResultsError, plotSpecs, renderReport } from '../src/lab/report.ts'
import type {
  LabResults,
  LabShape,
  PeerFigures,
  RunResult,
  Scenario,
  TimelineSample,
} from '../src/lab/types.ts'

const dirs: string[] = []
afterEach(async () => {
  if (process.env.KEEP_LAB_REPORT === undefined)
    await Promise.all(dirs.splice(0).map((d) => rm(d, { recursive: true, force: true })))
})

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'hearsay-lab-report-'))
  dirs.push(dir)
  return dir
}

const SCENARIO: Scenario = {
  name: 'kill-and-heal',
  shapes: ['mesh', 'hub', 'http-hub'],
  n: [4, 8],
  mode: 'processes',
  link: { preset: 'edge', delayMs: 40, jitterMs: 10, lossPercent: 1 },
  workload: {
    writers: 2,
    ratePerSecond: 40,
    keys: 16,
    valueBytes: 64,
    durationMs: 12_000,
    readFraction: 0.2,
  },
  timeline: [
    { atMs: 3000, kind: 'kill-hub' },
    { atMs: 6000, kind: 'restart-hub' },
    {
      atMs: 7000,
      kind: 'partition',
      groups: [
        [0, 1],
        [2, 3],
      ],
    },
    { atMs: 9000, kind: 'heal' },
  ],
  settleMs: 3000,
  visibleBoundMs: 5000,
  seed: 7,
}

/** A run with latency ~ base ms (log-normal-ish spread), bytes that grow like a hub's when it has one. */
function buildRun(shape: LabShape, n: number, baseMs: number): RunResult {
  const writes = 480
  const latencies = Array.from({ length: writes }, (_, i) => baseMs * (0.6 + 2.4 * (i / writes) ** 3))
  const cdf: [number, number][] = latencies
    .filter((_, i) => i % 4 === 3)
    .map((ms, i, all) => [Math.round(ms * 10) / 10, (i + 1) / all.length])
  const payload = writes * 64
  const peers: PeerFigures[] = Array.from({ length: n }, (_, index) => ({
    index,
    role: shape === 'mesh' ? 'peer' : 'client',
    bytesSent: shape === 'mesh' ? payload * 5 + index * 100 : payload * 2 + index * 50,
    bytesReceived: payload * 4,
    messagesSent: writes,
    messagesReceived: writes * 2,
    cpuMs: 800 + index,
    rssBytes: 70 * 1024 * 1024,
  }))
  if (shape !== 'mesh')
    peers.push({
      index: -1,
      role: 'hub',
      bytesSent: payload * 1.5 * n,
      bytesReceived: payload * 2,
      cpuMs: 1500,
      rssBytes: 90 * 1024 * 1024,
    })
  const timeline: TimelineSample[] = Array.from({ length: 60 }, (_, i) => {
    const tMs = i * 250
    const hubDown = shape !== 'mesh' && tMs >= 3000 && tMs < 6000
    const partitioned = tMs >= 7000 && tMs < 9250
    return {
      tMs,
      writesIssued: Math.min(writes, i * 10),
      writesAccepted: Math.min(writes, i * 10),
      visibleFraction: hubDown ? 0.5 : 1,
      peersEqualFraction: partitioned ? 0.5 : 1,
    }
  })
  return {
    shape,
    n,
    mode: 'processes',
    transport: 'tcp',
    emulation: 'netns-proxy',
    latency: {
      count: writes,
      p50: latencies[writes / 2],
      p90: latencies[Math.floor(writes * 0.9)],
      p99: latencies[Math.floor(writes * 0.99)],
      max: latencies[writes - 1],
      cdf,
    },
    writes: { attempted: writes, acknowledged: writes, refused: 0, lost: 0, notSeenWithinBound: 0 },
    reads: { attempted: 120, served: 120, failed: 0 },
    peers,
    convergence: [
      { event: 'restart-hub', atMs: 6000, convergedAfterMs: shape === 'mesh' ? 0 : 420 },
      { event: 'heal', atMs: 9000, convergedAfterMs: 310 },
    ],
    availability: [
      {
        event: 'kill-hub',
        fromMs: 3000,
        toMs: 6000,
        writesAccepted: 120,
        writesRefused: 0,
        readsServed: 30,
        readsFailed: shape === 'http-hub' ? 30 : 0,
      },
    ],
    timeline,
    durationMs: 15_000,
    crashes: [],
  }
}

function buildResults(scale = 1, shapes: LabShape[] = ['mesh', 'hub', 'http-hub'], ns = [4, 8]): LabResults {
  const base: Record<LabShape, number> = { mesh: 45, hub: 85, 'http-hub': 95 }
  return {
    version: 1,
    scenario: { ...SCENARIO, shapes, n: ns },
    startedAt: '2026-11-30T06:00:00.000Z',
    machine: { cpus: 2, node: 'v22.23.3', kernel: '6.1.0' },
    runs: shapes.flatMap((shape) => ns.map((n) => buildRun(shape, n, base[shape] * scale))),
  }
}

async function writeResults(results: unknown): Promise<string> {
  const dir = await tempDir()
  await writeFile(join(dir, 'results.json'), JSON.stringify(results, null, 2))
  return dir
}

const xml = new XMLParser({ ignoreAttributes: false, preserveOrder: false })

/** Parses an SVG file, checks its root, and returns every text the drawing shows. */
async function readSvg(path: string): Promise<{ root: Record<string, unknown>; texts: string[] }> {
  const text = await readFile(path, 'utf8')
  expect(XMLValidator.validate(text)).toBe(true)
  const document = xml.parse(text) as Record<string, unknown>
  expect(Object.keys(document)).toEqual(['svg'])
  const root = document.svg as Record<string, unknown>
  expect(root['@_xmlns']).toBe('http://www.w3.org/2000/svg')
  const texts: string[] = []
  const walk = (node: unknown, depth: number): void => {
    if (depth > 200 || node === null || typeof node !== 'object') return
    for (const [key, value] of Object.entries(node)) {
      if (key === 'text') {
        for (const t of [value].flat()) {
          if (typeof t === 'string' || typeof t === 'number') texts.push(String(t))
          else if (t !== null && typeof t === 'object' && '#text' in t) texts.push(String(t['#text']))
        }
      }
      walk(value, depth + 1)
    }
  }
  walk(root, 0)
  return { root, texts }
}

describe('lab report', () => {
  it('writes report.md with a row per run and the four plots, each a parseable SVG naming its series', async () => {
    const dir = await writeResults(buildResults())
    const { markdown, files } = await renderReport(dir)
    expect(await readFile(join(dir, 'report.md'), 'utf8')).toBe(markdown)
    expect(markdown).toContain('# Lab report: kill-and-heal')
    const rows = markdown.split('\n').filter((line) => /^\| (mesh|hub|http-hub) \| \d+ \|/.test(line))
    expect(rows).toHaveLength(6)
    const mesh8 = rows.find((r) => r.startsWith('| mesh | 8 |'))!
    const cells = mesh8.split(' | ')
    expect(cells[2]).toBe('processes / tcp / netns-proxy')
    expect(cells).toContain('480') // writes attempted and acknowledged
    expect(mesh8).toMatch(/\| 0 \| 0 \|/) // lost, not seen
    expect(mesh8).toContain('150.3 KiB / 120.0 KiB') // sent per peer (avg) / received per peer
    const hub8 = rows.find((r) => r.startsWith('| hub | 8 |'))!
    expect(hub8).toContain('360.0 KiB / 60.0 KiB') // the hub's egress, 1.5 × payload × n
    expect(markdown).toContain('| http-hub n=8 | kill-hub | 3000 ms – 6000 ms | 120 | 0 | 30 | 30 |')
    expect(markdown).toContain('| hub n=4 | restart-hub | 6000 ms | 420 ms |')
    expect(markdown).not.toContain('## Notes')

    const plots = ['latency-cdf', 'bytes-per-n', 'convergence', 'hub-restart']
    expect(files.map((f) => f.slice(dir.length + 1)).sort()).toEqual(
      ['report.md', ...plots.map((p) => `plots/${p}.svg`)].sort(),
    )
    for (const plot of plots) expect(markdown).toContain(`](plots/${plot}.svg)`)

    const cdf = await readSvg(join(dir, 'plots', 'latency-cdf.svg'))
    for (const series of ['mesh n=4', 'mesh n=8', 'hub n=4', 'hub n=8', 'http-hub n=4', 'http-hub n=8'])
      expect(cdf.texts).toContain(series)
    const bytes = await readSvg(join(dir, 'plots', 'bytes-per-n.svg'))
    for (const series of [
      'mesh: per-peer egress',
      'hub: hub egress',
      'hub: per-client egress',
      'http-hub: hub egress',
    ])
      expect(bytes.texts).toContain(series)
    const convergence = await readSvg(join(dir, 'plots', 'convergence.svg'))
    expect(convergence.texts).toEqual(expect.arrayContaining(['partition', 'heal', 'mesh n=8']))
    const hub = await readSvg(join(dir, 'plots', 'hub-restart.svg'))
    expect(hub.texts).toEqual(expect.arrayContaining(['kill-hub', 'restart-hub', 'hub n=4', 'http-hub n=8']))
  })

  it('draws only the plots the results hold data for', async () => {
    const results = buildResults(1, ['mesh'], [8])
    results.scenario.timeline = []
    for (const run of results.runs) {
      run.timeline = []
      run.convergence = []
      run.availability = []
    }
    expect(plotSpecs(results).map((p) => p.name)).toEqual(['latency-cdf'])
    results.runs[0].process = { cpuMs: 8846, rssBytes: 613 * 1024 * 1024 }
    results.runs[0].notes = ['Jitter (10 ms) is not emulated in one process.']
    const dir = await writeResults(results)
    const { files, markdown } = await renderReport(dir)
    expect(markdown).toContain('- mesh n=8: the whole process used 8846 ms of CPU, peak RSS 613.0 MiB.')
    expect(markdown).toContain('- mesh n=8: Jitter (10 ms) is not emulated in one process.')
    expect(files.map((f) => f.slice(dir.length + 1))).toEqual(['report.md', 'plots/latency-cdf.svg'])
    expect(markdown).not.toContain('## Convergence')
    expect(markdown).not.toContain('## Availability')
    await expect(stat(join(dir, 'plots', 'convergence.svg'))).rejects.toThrow()
  })

  it('marks events where the runner says they really took effect', () => {
    const results = buildResults(1, ['mesh'], [8])
    results.runs[0].firedEvents = [
      { kind: 'partition', atMs: 7000, firedAtMs: 7400 },
      { kind: 'heal', atMs: 9000, firedAtMs: 9800 },
    ]
    const convergence = plotSpecs(results).find((p) => p.name === 'convergence')!
    const rules = (convergence.spec as unknown as { layer: { data: { values: unknown[] } }[] }).layer[1].data
      .values
    expect(rules).toEqual([
      { seconds: 7.4, event: 'partition' },
      { seconds: 9.8, event: 'heal' },
    ])
  })

  it('refuses a bad results.json with a message naming the file and the field', async () => {
    const missing = await tempDir()
    await expect(renderReport(missing)).rejects.toThrow(/results\.json does not exist/)

    const notJson = await tempDir()
    await writeFile(join(notJson, 'results.json'), '{"version": 1, "runs": [')
    await expect(renderReport(notJson)).rejects.toThrow(LabResultsError)
    await expect(renderReport(notJson)).rejects.toThrow(/is not JSON/)

    const future = await writeResults({ ...buildResults(), version: 2 })
    await expect(renderReport(future)).rejects.toThrow(/version must be 1 .* got 2/)

    const broken = buildResults() as unknown as { runs: Record<string, unknown>[] }
    ;(broken.runs[3].latency as Record<string, unknown>).p99 = 'fast'
    await expect(renderReport(await writeResults(broken))).rejects.toThrow(
      /runs\[3\]\.latency\.p99 must be a number, got "fast"/,
    )

    const badShape = buildResults() as unknown as { runs: Record<string, unknown>[] }
    badShape.runs[0].shape = 'star'
    await expect(renderReport(await writeResults(badShape))).rejects.toThrow(
      /runs\[0\]\.shape must be one of/,
    )
    await expect(renderReport(await writeResults([]))).rejects.toThrow(/must be an object/)
  })

  it('compares two results side by side, with ratios and one CDF holding both', async () => {
    const root = await tempDir()
    const a = await writeResults(buildResults(1))
    const b = await writeResults(buildResults(2, ['mesh', 'hub'], [8, 16]))
    const out = join(root, 'compare')
    const { markdown, files } = await compareResults(a, b, out)
    expect(await readFile(join(out, 'compare.md'), 'utf8')).toBe(markdown)
    expect(files.map((f) => f.slice(out.length + 1))).toEqual(['compare.md', 'plots/compare-latency-cdf.svg'])
    // Runs of the same shape and n are matched: mesh n=8 and hub n=8.
    expect(markdown).toContain('## mesh n=8')
    expect(markdown).toContain('## hub n=8')
    expect(markdown).not.toContain('## mesh n=4')
    expect(markdown).toMatch(/\| latency p50 \| \d+ ms \| \d+ ms \| 2\.00× \|/)
    expect(markdown).toContain('Runs in one result only:')
    expect(markdown).toContain(`- A: ${basename(a)}: scenario kill-and-heal`)
    const svg = await readSvg(join(out, 'plots', 'compare-latency-cdf.svg'))
    expect(svg.texts).toEqual(
      expect.arrayContaining(['A: mesh n=4', 'A: mesh n=8', 'B: mesh n=16', 'B: hub n=8']),
    )
  })
})

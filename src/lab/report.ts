/**
 * The lab's reports: results.json → report.md and SVG plots (plots/), and two runs side by side.
 * The figures and plot specifications are pure functions of `LabResults`; the plots are Vega-Lite
 * specifications rendered to SVG by Vega's headless view (no canvas, no browser, no network).
 */
import { mkdir, readFile, writeFile } from 'node:fs/promises'
import { basename, join, resolve } from 'node:path'
import type { TopLevelSpec } from 'vega-lite'
import { LAB_SHAPES, type LabResults, type PeerFigures, type RunResult, type TimelineEvent } from './types.ts'

export const RESULTS_FILE = 'results.json'
export const REPORT_FILE = 'report.md'
export const COMPARE_FILE = 'compare.md'
export const PLOTS_DIR = 'plots'

/** results.json is missing, is not JSON, or does not have the shape of LabResults. */
export class LabResultsError extends Error {
  override readonly name = 'LabResultsError'
}

// ---- reading and checking results.json ---------------------------------------------------------

/** Reads and checks `<dir>/results.json`. */
export async function readLabResults(dir: string): Promise<LabResults> {
  const path = join(dir, RESULTS_FILE)
  let text: string
  try {
    text = await readFile(path, 'utf8')
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code
    throw new LabResultsError(
      code === 'ENOENT'
        ? `${path} does not exist: give the folder a lab run wrote its results to`
        : `cannot read ${path}: ${(error as Error).message}`,
    )
  }
  return parseLabResults(text, path)
}

/** Parses results.json text; throws LabResultsError naming the first field that is wrong. */
export function parseLabResults(text: string, source = RESULTS_FILE): LabResults {
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch (error) {
    throw new LabResultsError(`${source} is not JSON: ${(error as Error).message}`)
  }
  const fail = (field: string, what: string): never => {
    throw new LabResultsError(`${source}: ${field} ${what}`)
  }
  if (!isObject(value)) return fail('the top level', 'must be an object')
  if (value.version !== 1)
    fail('version', `must be 1 (this hearsay reads version 1), got ${JSON.stringify(value.version)}`)
  if (!isObject(value.scenario)) fail('scenario', 'must be an object')
  const scenario = value.scenario as Record<string, unknown>
  if (typeof scenario.name !== 'string') fail('scenario.name', 'must be a string')
  if (!Array.isArray(scenario.timeline)) fail('scenario.timeline', 'must be an array')
  if (!Array.isArray(value.runs)) fail('runs', 'must be an array')
  const runs = value.runs as unknown[]
  for (const [i, run] of runs.entries()) checkRun(run, `runs[${i}]`, fail)
  return value as unknown as LabResults
}

type Fail = (field: string, what: string) => never

function checkRun(run: unknown, at: string, fail: Fail): void {
  if (!isObject(run)) fail(at, 'must be an object')
  const r = run as Record<string, unknown>
  if (!LAB_SHAPES.includes(r.shape as never))
    fail(`${at}.shape`, `must be one of ${LAB_SHAPES.join(', ')}, got ${JSON.stringify(r.shape)}`)
  checkNumber(r.n, `${at}.n`, fail)
  checkNumber(r.durationMs, `${at}.durationMs`, fail)
  if (!isObject(r.latency)) fail(`${at}.latency`, 'must be an object')
  const latency = r.latency as Record<string, unknown>
  for (const field of ['count', 'p50', 'p90', 'p99', 'max'])
    checkNumber(latency[field], `${at}.latency.${field}`, fail)
  if (!Array.isArray(latency.cdf)) fail(`${at}.latency.cdf`, 'must be an array')
  for (const [j, point] of (latency.cdf as unknown[]).entries())
    if (!Array.isArray(point) || point.length !== 2 || !point.every(Number.isFinite))
      fail(`${at}.latency.cdf[${j}]`, 'must be a pair of numbers [ms, fraction]')
  if (!isObject(r.writes)) fail(`${at}.writes`, 'must be an object')
  const writes = r.writes as Record<string, unknown>
  for (const field of ['attempted', 'acknowledged', 'refused', 'lost', 'notSeenWithinBound'])
    checkNumber(writes[field], `${at}.writes.${field}`, fail)
  if (!Array.isArray(r.peers)) fail(`${at}.peers`, 'must be an array')
  for (const [j, peer] of (r.peers as unknown[]).entries()) {
    if (!isObject(peer)) fail(`${at}.peers[${j}]`, 'must be an object')
    const p = peer as Record<string, unknown>
    if (!['peer', 'hub', 'client'].includes(p.role as string))
      fail(`${at}.peers[${j}].role`, `must be peer, hub or client, got ${JSON.stringify(p.role)}`)
    for (const field of ['bytesSent', 'bytesReceived', 'cpuMs', 'rssBytes'])
      checkNumber(p[field], `${at}.peers[${j}].${field}`, fail)
  }
  for (const field of ['timeline', 'convergence', 'availability', 'crashes'])
    if (!Array.isArray(r[field])) fail(`${at}.${field}`, 'must be an array')
  for (const [j, sample] of (r.timeline as unknown[]).entries()) {
    if (!isObject(sample)) fail(`${at}.timeline[${j}]`, 'must be an object')
    const s = sample as Record<string, unknown>
    for (const field of ['tMs', 'writesIssued', 'writesAccepted', 'visibleFraction', 'peersEqualFraction'])
      checkNumber(s[field], `${at}.timeline[${j}].${field}`, fail)
  }
}

function checkNumber(value: unknown, field: string, fail: Fail): void {
  if (typeof value !== 'number' || !Number.isFinite(value))
    fail(field, `must be a number, got ${JSON.stringify(value)}`)
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

// ---- figures -----------------------------------------------------------------------------------

/** The label of a run in tables and plot legends. */
export function runLabel(run: RunResult): string {
  return `${run.shape} n=${run.n}`
}

/** The peers that are not the hub (mesh peers, or a hub's clients). */
function members(run: RunResult): PeerFigures[] {
  return run.peers.filter((p) => p.role !== 'hub')
}

function hubOf(run: RunResult): PeerFigures | undefined {
  return run.peers.find((p) => p.role === 'hub')
}

function average(values: number[]): number {
  return values.length === 0 ? 0 : values.reduce((a, b) => a + b, 0) / values.length
}

/** The figures a run is compared on; undefined where the run has no such figure (no hub). */
export interface RunFigures {
  p50: number
  p90: number
  p99: number
  max: number
  attempted: number
  acknowledged: number
  lost: number
  notSeen: number
  bytesSentPerPeer: number
  bytesReceivedPerPeer: number
  hubBytesSent: number | undefined
  hubBytesReceived: number | undefined
  cpuMsPerPeer: number
  rssPerPeer: number
  /** The slowest convergence after an event; null when one never converged, undefined with no event. */
  slowestConvergenceMs: number | null | undefined
}

export function runFigures(run: RunResult): RunFigures {
  const peers = members(run)
  const hub = hubOf(run)
  const converged = run.convergence.map((c) => c.convergedAfterMs)
  return {
    p50: run.latency.p50,
    p90: run.latency.p90,
    p99: run.latency.p99,
    max: run.latency.max,
    attempted: run.writes.attempted,
    acknowledged: run.writes.acknowledged,
    lost: run.writes.lost,
    notSeen: run.writes.notSeenWithinBound,
    bytesSentPerPeer: average(peers.map((p) => p.bytesSent)),
    bytesReceivedPerPeer: average(peers.map((p) => p.bytesReceived)),
    hubBytesSent: hub?.bytesSent,
    hubBytesReceived: hub?.bytesReceived,
    cpuMsPerPeer: average(peers.map((p) => p.cpuMs)),
    rssPerPeer: average(peers.map((p) => p.rssBytes)),
    slowestConvergenceMs:
      converged.length === 0
        ? undefined
        : converged.includes(null)
          ? null
          : Math.max(...(converged as number[])),
  }
}

export function formatMs(ms: number | null | undefined): string {
  if (ms === undefined) return '–'
  if (ms === null) return 'never'
  if (ms < 10) return `${ms.toFixed(1)} ms`
  if (ms < 10_000) return `${Math.round(ms)} ms`
  return `${(ms / 1000).toFixed(1)} s`
}

export function formatBytes(bytes: number | undefined): string {
  if (bytes === undefined) return '–'
  if (bytes < 1024) return `${Math.round(bytes)} B`
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KiB`
  return `${(bytes / 1024 / 1024).toFixed(1)} MiB`
}

function formatRatio(a: number | null | undefined, b: number | null | undefined): string {
  if (a === undefined || b === undefined || a === null || b === null) return '–'
  if (a === 0) return b === 0 ? '1.00×' : '–'
  return `${(b / a).toFixed(2)}×`
}

function table(header: string[], rows: string[][]): string {
  const line = (cells: string[]) => `| ${cells.map((c) => c.replaceAll('|', '\\|')).join(' | ')} |`
  return [line(header), line(header.map(() => '---')), ...rows.map(line)].join('\n')
}

function describeEvent(event: TimelineEvent): string {
  switch (event.kind) {
    case 'partition':
      return `partition ${event.groups.map((g) => `[${g.join(',')}]`).join(' | ')}`
    case 'leave':
    case 'join':
    case 'late-join':
      return `${event.kind} of peers ${event.peers.join(', ')}`
    default:
      return event.kind
  }
}

// ---- report.md ---------------------------------------------------------------------------------

/** The markdown report of a results file; `plots` are the plot files (relative paths) to embed. */
export function reportMarkdown(results: LabResults, plots: string[] = []): string {
  const { scenario } = results
  const out: string[] = [`# Lab report: ${scenario.name}`, '']
  out.push(
    `Started ${results.startedAt} on ${results.machine?.cpus ?? '?'} CPUs, Node ${results.machine?.node ?? '?'}, kernel ${results.machine?.kernel ?? '?'}.`,
  )
  const w = scenario.workload
  if (w !== undefined)
    out.push(
      `Workload: ${w.writers} writers, ${w.ratePerSecond} writes/s in all, ${w.keys} keys, ${w.valueBytes}-byte values, ${w.durationMs} ms, read fraction ${w.readFraction}.`,
    )
  if (scenario.link !== undefined)
    out.push(
      `Links: ${scenario.link.preset ?? 'custom'}: ${scenario.link.delayMs} ms ± ${scenario.link.jitterMs} ms, ${scenario.link.lossPercent} % loss${scenario.link.rateKbit === undefined ? '' : `, ${scenario.link.rateKbit} kbit/s`}.`,
    )
  if (scenario.timeline.length > 0)
    out.push(`Timeline: ${scenario.timeline.map((e) => `${describeEvent(e)} at ${e.atMs} ms`).join('; ')}.`)
  out.push(
    `Settle ${scenario.settleMs} ms; a write not visible on every live peer within ${scenario.visibleBoundMs} ms counts as not seen.`,
    '',
    '## Runs',
    '',
    'Latency: from a write being acknowledged by its writer to it being visible on every live peer.',
    'Bytes: sent / received over the whole run; per peer is the average of the non-hub peers.',
    '',
  )
  out.push(
    table(
      [
        'shape',
        'n',
        'mode / transport / emulation',
        'p50',
        'p90',
        'p99',
        'max',
        'writes attempted',
        'acked',
        'lost',
        'not seen',
        'bytes per peer (sent / recv)',
        'hub (sent / recv)',
        'CPU per peer',
        'RSS per peer',
        'duration',
      ],
      results.runs.map((run) => {
        const f = runFigures(run)
        return [
          run.shape,
          String(run.n),
          `${run.mode} / ${run.transport} / ${run.emulation}`,
          formatMs(f.p50),
          formatMs(f.p90),
          formatMs(f.p99),
          formatMs(f.max),
          String(f.attempted),
          String(f.acknowledged),
          String(f.lost),
          String(f.notSeen),
          `${formatBytes(f.bytesSentPerPeer)} / ${formatBytes(f.bytesReceivedPerPeer)}`,
          f.hubBytesSent === undefined
            ? '–'
            : `${formatBytes(f.hubBytesSent)} / ${formatBytes(f.hubBytesReceived)}`,
          formatMs(f.cpuMsPerPeer),
          formatBytes(f.rssPerPeer),
          formatMs(run.durationMs),
        ]
      }),
    ),
    '',
  )
  const convergence = results.runs.flatMap((run) =>
    run.convergence.map((c) => [runLabel(run), c.event, formatMs(c.atMs), formatMs(c.convergedAfterMs)]),
  )
  if (convergence.length > 0)
    out.push(
      '## Convergence',
      '',
      'After each heal, hub restart, join or late join: how long until every live peer held every write acknowledged before the event.',
      '',
      table(['run', 'event', 'at', 'all peers equal after'], convergence),
      '',
    )
  const availability = results.runs.flatMap((run) =>
    run.availability.map((a) => [
      runLabel(run),
      a.event,
      `${formatMs(a.fromMs)} – ${formatMs(a.toMs)}`,
      String(a.writesAccepted),
      String(a.writesRefused),
      String(a.readsServed),
      String(a.readsFailed),
    ]),
  )
  if (availability.length > 0)
    out.push(
      '## Availability',
      '',
      'While a fault held: what the peers could still do.',
      '',
      table(
        ['run', 'fault', 'from – to', 'writes accepted', 'writes refused', 'reads served', 'reads failed'],
        availability,
      ),
      '',
    )
  const reads = results.runs.filter((run) => run.reads !== undefined && run.reads.attempted > 0)
  if (reads.length > 0)
    out.push(
      '## Reads',
      '',
      table(
        ['run', 'attempted', 'served', 'failed'],
        reads.map((run) => [
          runLabel(run),
          String(run.reads.attempted),
          String(run.reads.served),
          String(run.reads.failed),
        ]),
      ),
      '',
    )
  const crashes = results.runs.flatMap((run) => run.crashes.map((c) => ({ run, crash: c })))
  if (crashes.length > 0) {
    out.push('## Crashes', '')
    for (const { run, crash } of crashes)
      out.push(
        `- ${runLabel(run)}, peer ${crash.index}: exit code ${crash.code ?? '–'}, signal ${crash.signal ?? '–'}`,
        '',
        '```',
        crash.logTail.trimEnd(),
        '```',
        '',
      )
  }
  const notes = results.runs.flatMap((run) => [
    ...(run.process === undefined
      ? []
      : [
          `- ${runLabel(run)}: the whole process used ${formatMs(run.process.cpuMs)} of CPU, peak RSS ${formatBytes(run.process.rssBytes)}.`,
        ]),
    ...(run.notes ?? []).map((note) => `- ${runLabel(run)}: ${note}`),
  ])
  if (notes.length > 0) out.push('## Notes', '', ...notes, '')
  if (plots.length > 0) {
    out.push('## Plots', '')
    for (const plot of plots) out.push(`![${plotTitle(plot)}](${plot})`, '')
  }
  return `${out.join('\n').trimEnd()}\n`
}

function plotTitle(file: string): string {
  return PLOT_TITLES[basename(file, '.svg')] ?? basename(file, '.svg')
}

const PLOT_TITLES: Record<string, string> = {
  'latency-cdf': 'Time to visible on every peer (CDF)',
  'bytes-per-n': 'Bytes sent per peer and by the hub versus N',
  convergence: 'Peers equal over time, partition and heal marked',
  'hub-restart': 'Writes visible over time, hub kill and restart marked',
  'compare-latency-cdf': 'Time to visible on every peer, both results (CDF)',
}

// ---- plots (Vega-Lite specifications) ----------------------------------------------------------

export interface PlotSpec {
  /** File name without extension. */
  name: string
  spec: TopLevelSpec
}

const WIDTH = 560
const HEIGHT = 300
/** Log scales cannot show 0: a latency below this is drawn at it. */
const SMALLEST_MS = 0.1

function cdfRows(runs: RunResult[], prefix = ''): { ms: number; fraction: number; series: string }[] {
  return runs.flatMap((run) =>
    run.latency.cdf.map(([ms, fraction]) => ({
      ms: Math.max(ms, SMALLEST_MS),
      fraction,
      series: `${prefix}${runLabel(run)}`,
    })),
  )
}

function latencyCdfSpec(
  rows: { ms: number; fraction: number; series: string }[],
  title: string,
): TopLevelSpec {
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title,
    width: WIDTH,
    height: HEIGHT,
    data: { values: rows },
    mark: { type: 'line', interpolate: 'step-after', point: false },
    encoding: {
      x: {
        field: 'ms',
        type: 'quantitative',
        scale: { type: 'log' },
        title: 'time to visible on every live peer (ms, log)',
      },
      y: {
        field: 'fraction',
        type: 'quantitative',
        scale: { domain: [0, 1] },
        axis: { format: '%' },
        title: 'writes visible everywhere',
      },
      color: { field: 'series', type: 'nominal', title: 'run' },
    },
  }
}

/** Bytes per peer versus N: only when some shape ran at two values of n or more. */
function bytesPerNSpec(runs: RunResult[]): TopLevelSpec | undefined {
  const rows: { n: number; bytes: number; series: string }[] = []
  for (const run of runs) {
    const f = runFigures(run)
    rows.push({
      n: run.n,
      bytes: f.bytesSentPerPeer,
      series: run.shape === 'mesh' ? 'mesh: per-peer egress' : `${run.shape}: per-client egress`,
    })
    if (f.hubBytesSent !== undefined)
      rows.push({ n: run.n, bytes: f.hubBytesSent, series: `${run.shape}: hub egress` })
  }
  const valuesOfN = new Map<string, Set<number>>()
  for (const row of rows) valuesOfN.set(row.series, (valuesOfN.get(row.series) ?? new Set()).add(row.n))
  if (![...valuesOfN.values()].some((ns) => ns.size >= 2)) return undefined
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: 'Egress per peer and of the hub versus N',
    width: WIDTH,
    height: HEIGHT,
    data: { values: rows.map((r) => ({ ...r, bytes: Math.max(r.bytes, 1) })) },
    mark: { type: 'line', point: true },
    encoding: {
      x: {
        field: 'n',
        type: 'quantitative',
        scale: { type: 'log', base: 2 },
        axis: { values: [...new Set(rows.map((r) => r.n))].sort((a, b) => a - b), format: 'd' },
        title: 'N (peers, or clients of the hub; log)',
      },
      y: {
        field: 'bytes',
        type: 'quantitative',
        scale: { type: 'log' },
        title: 'bytes sent over the run (log)',
      },
      color: { field: 'series', type: 'nominal', title: 'who' },
    },
  }
}

/** A time series of the runs' timelines with the scenario's events as labelled rules. */
function timelineSpec(
  runs: RunResult[],
  events: TimelineEvent[],
  panels: { field: 'visibleFraction' | 'peersEqualFraction' | 'writesAccepted'; title: string }[],
  title: string,
): TopLevelSpec {
  const samples = runs.flatMap((run) =>
    run.timeline.map((s) => ({
      seconds: s.tMs / 1000,
      visibleFraction: s.visibleFraction,
      peersEqualFraction: s.peersEqualFraction,
      writesAccepted: s.writesAccepted,
      series: runLabel(run),
    })),
  )
  // Where the runner says when the events really took effect, mark those times.
  const kinds = new Set(events.map((e) => e.kind))
  const fired = runs.flatMap((run) => (run.firedEvents ?? []).filter((e) => kinds.has(e.kind)))
  const times =
    fired.length > 0
      ? fired.map((e) => ({ t: e.firedAtMs, kind: e.kind }))
      : events.map((e) => ({ t: e.atMs, kind: e.kind }))
  const marks = [...new Map(times.map((e) => [`${e.kind}@${Math.round(e.t / 100)}`, e])).values()].map(
    (e) => ({
      seconds: e.t / 1000,
      event: e.kind,
    }),
  )
  const panel = (field: (typeof panels)[number]['field'], axisTitle: string) => ({
    width: WIDTH,
    height: Math.round(HEIGHT * (panels.length > 1 ? 0.6 : 1)),
    layer: [
      {
        data: { values: samples },
        mark: { type: 'line' as const, interpolate: 'step-after' as const },
        encoding: {
          x: {
            field: 'seconds',
            type: 'quantitative' as const,
            title: 'time since the write phase began (s)',
          },
          y: {
            field,
            type: 'quantitative' as const,
            title: axisTitle,
            ...(field === 'writesAccepted' ? {} : { scale: { domain: [0, 1] }, axis: { format: '%' } }),
          },
          color: { field: 'series', type: 'nominal' as const, title: 'run' },
        },
      },
      {
        data: { values: marks },
        mark: { type: 'rule' as const, strokeDash: [4, 3], color: '#888' },
        encoding: { x: { field: 'seconds', type: 'quantitative' as const } },
      },
      {
        data: { values: marks },
        mark: {
          type: 'text' as const,
          align: 'left' as const,
          dx: 3,
          dy: -4,
          color: '#555',
          baseline: 'top' as const,
        },
        encoding: {
          x: { field: 'seconds', type: 'quantitative' as const },
          y: { value: 0 },
          text: { field: 'event', type: 'nominal' as const },
        },
      },
    ],
  })
  if (panels.length === 1)
    return {
      $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
      title,
      ...panel(panels[0].field, panels[0].title),
    }
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title,
    vconcat: panels.map((p) => panel(p.field, p.title)),
  }
}

/** The plots the results hold data for. */
export function plotSpecs(results: LabResults): PlotSpec[] {
  const plots: PlotSpec[] = []
  const withCdf = results.runs.filter((run) => run.latency.cdf.length > 0)
  if (withCdf.length > 0)
    plots.push({
      name: 'latency-cdf',
      spec: latencyCdfSpec(cdfRows(withCdf), 'Time to visible on every live peer (CDF)'),
    })
  const bytes = bytesPerNSpec(results.runs)
  if (bytes !== undefined) plots.push({ name: 'bytes-per-n', spec: bytes })
  const timeline = results.scenario.timeline
  const sampled = results.runs.filter((run) => run.timeline.length > 0)
  if (sampled.length > 0 && timeline.some((e) => e.kind === 'heal'))
    plots.push({
      name: 'convergence',
      spec: timelineSpec(
        sampled,
        timeline.filter((e) => e.kind === 'partition' || e.kind === 'heal'),
        [{ field: 'peersEqualFraction', title: 'live peers with the common digest' }],
        'Convergence: peers equal over time, partition and heal marked',
      ),
    })
  if (sampled.length > 0 && timeline.some((e) => e.kind === 'kill-hub'))
    plots.push({
      name: 'hub-restart',
      spec: timelineSpec(
        sampled,
        timeline.filter((e) => e.kind === 'kill-hub' || e.kind === 'restart-hub'),
        [
          { field: 'visibleFraction', title: 'accepted writes visible everywhere' },
          { field: 'writesAccepted', title: 'writes accepted' },
        ],
        'Writes visible over time, hub killed and restarted',
      ),
    })
  return plots
}

/** Renders a Vega-Lite specification to an SVG document. */
export async function renderSvg(spec: TopLevelSpec): Promise<string> {
  // Legends name runs in full (the default cuts labels at 160 px).
  const config = { legend: { labelLimit: 0 }, font: 'sans-serif', ...spec.config }
  // Loaded on first use: the plotting libraries are large and most hearsay commands never draw.
  const [{ parse, View }, { compile }] = await Promise.all([import('vega'), import('vega-lite')])
  const view = new View(parse(compile({ ...spec, config } as TopLevelSpec).spec), { renderer: 'none' })
  try {
    return await view.toSVG()
  } finally {
    view.finalize()
  }
}

async function writePlots(outDir: string, plots: PlotSpec[]): Promise<string[]> {
  if (plots.length === 0) return []
  await mkdir(join(outDir, PLOTS_DIR), { recursive: true })
  const files: string[] = []
  for (const plot of plots) {
    const file = join(PLOTS_DIR, `${plot.name}.svg`)
    await writeFile(join(outDir, file), await renderSvg(plot.spec))
    files.push(file)
  }
  return files
}

// ---- the commands ------------------------------------------------------------------------------

/** Writes report.md and the SVG plots of the results in `dir` (its results.json) into `dir`. */
export async function renderReport(dir: string): Promise<{ markdown: string; files: string[] }> {
  const results = await readLabResults(dir)
  const plots = await writePlots(dir, plotSpecs(results))
  const markdown = reportMarkdown(results, plots)
  await writeFile(join(dir, REPORT_FILE), markdown)
  return { markdown, files: [REPORT_FILE, ...plots].map((f) => join(dir, f)) }
}

/** The side-by-side markdown of two results; runs are matched by shape and n. */
export function compareMarkdown(
  a: LabResults,
  b: LabResults,
  labels: [string, string],
  plots: string[] = [],
): string {
  const [la, lb] = labels
  const out: string[] = [
    `# Lab comparison: ${la} and ${lb}`,
    '',
    `- A: ${la}: scenario ${a.scenario.name}, started ${a.startedAt}`,
    `- B: ${lb}: scenario ${b.scenario.name}, started ${b.startedAt}`,
    '',
    'Ratios are B / A.',
    '',
  ]
  const key = (run: RunResult) => `${run.shape}/${run.n}`
  const inB = new Map(b.runs.map((run) => [key(run), run]))
  const pairs = a.runs.flatMap((run) => (inB.has(key(run)) ? [[run, inB.get(key(run))!] as const] : []))
  const metrics: {
    name: string
    value: (f: RunFigures) => number | null | undefined
    format: (v: number | null | undefined) => string
  }[] = [
    { name: 'latency p50', value: (f) => f.p50, format: formatMs },
    { name: 'latency p90', value: (f) => f.p90, format: formatMs },
    { name: 'latency p99', value: (f) => f.p99, format: formatMs },
    { name: 'latency max', value: (f) => f.max, format: formatMs },
    { name: 'writes attempted', value: (f) => f.attempted, format: String },
    { name: 'writes lost', value: (f) => f.lost, format: String },
    { name: 'writes not seen within bound', value: (f) => f.notSeen, format: String },
    {
      name: 'bytes sent per peer',
      value: (f) => f.bytesSentPerPeer,
      format: (v) => formatBytes(v ?? undefined),
    },
    { name: 'hub bytes sent', value: (f) => f.hubBytesSent, format: (v) => formatBytes(v ?? undefined) },
    { name: 'CPU per peer', value: (f) => f.cpuMsPerPeer, format: formatMs },
    { name: 'slowest convergence', value: (f) => f.slowestConvergenceMs, format: formatMs },
  ]
  if (pairs.length === 0) {
    out.push('The two results have no run of the same shape and n in common.', '')
  }
  for (const [runA, runB] of pairs) {
    const fa = runFigures(runA)
    const fb = runFigures(runB)
    out.push(
      `## ${runLabel(runA)}`,
      '',
      `A: ${runA.mode} / ${runA.transport} / ${runA.emulation}; B: ${runB.mode} / ${runB.transport} / ${runB.emulation}`,
      '',
      table(
        ['figure', `A: ${la}`, `B: ${lb}`, 'B / A'],
        metrics.map((m) => [
          m.name,
          m.format(m.value(fa)),
          m.format(m.value(fb)),
          formatRatio(m.value(fa), m.value(fb)),
        ]),
      ),
      '',
    )
  }
  const unmatched = [
    ...a.runs.filter((run) => !pairs.some(([x]) => x === run)).map((run) => `A: ${runLabel(run)}`),
    ...b.runs.filter((run) => !pairs.some(([, y]) => y === run)).map((run) => `B: ${runLabel(run)}`),
  ]
  if (unmatched.length > 0) out.push(`Runs in one result only: ${unmatched.join(', ')}.`, '')
  for (const plot of plots) out.push(`![${plotTitle(plot)}](${plot})`, '')
  return `${out.join('\n').trimEnd()}\n`
}

/** Lays two runs side by side: writes compare.md and plots into `outDir`. */
export async function compareResults(
  dirA: string,
  dirB: string,
  outDir: string,
): Promise<{ markdown: string; files: string[] }> {
  const [a, b] = await Promise.all([readLabResults(dirA), readLabResults(dirB)])
  let labels: [string, string] = [basename(resolve(dirA)), basename(resolve(dirB))]
  if (labels[0] === labels[1]) labels = [resolve(dirA), resolve(dirB)]
  const rows = [
    ...cdfRows(
      a.runs.filter((run) => run.latency.cdf.length > 0),
      'A: ',
    ),
    ...cdfRows(
      b.runs.filter((run) => run.latency.cdf.length > 0),
      'B: ',
    ),
  ]
  await mkdir(outDir, { recursive: true })
  const plots =
    rows.length === 0
      ? []
      : await writePlots(outDir, [
          {
            name: 'compare-latency-cdf',
            spec: latencyCdfSpec(rows, 'Time to visible on every live peer: A and B'),
          },
        ])
  const markdown = compareMarkdown(a, b, labels, plots)
  await writeFile(join(outDir, COMPARE_FILE), markdown)
  return { markdown, files: [COMPARE_FILE, ...plots].map((f) => join(outDir, f)) }
}

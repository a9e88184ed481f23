import { mkdirSync, writeFileSync } from 'node:fs'
import { cpus, release } from 'node:os'
import { join } from 'node:path'
import type { LabResults, RunResult, Scenario } from './types.ts'

/** results.json (LabResults as JSON) and results.md (one table row per run, then the faults). */

export function newResults(scenario: Scenario, startedAt: Date): LabResults {
  return {
    version: 1,
    scenario,
    startedAt: startedAt.toISOString(),
    machine: { cpus: cpus().length, node: process.version, kernel: release() },
    runs: [],
  }
}

const ms = (value: number | null | undefined) =>
  value === null || value === undefined || Number.isNaN(value)
    ? '–'
    : value >= 1000
      ? `${(value / 1000).toFixed(2)} s`
      : `${value.toFixed(value < 10 ? 1 : 0)} ms`

function bytes(value: number): string {
  if (value >= 1 << 20) return `${(value / (1 << 20)).toFixed(1)} MiB`
  if (value >= 1 << 10) return `${(value / (1 << 10)).toFixed(1)} KiB`
  return `${value} B`
}

function mean(values: number[]): number {
  return values.length === 0 ? 0 : values.reduce((a, b) => a + b, 0) / values.length
}

/** The figures of one run that the table shows. */
export function runSummary(run: RunResult): {
  peerSentMean: number
  peerReceivedMean: number
  hubSent: number | undefined
  cpuPeerMean: number
  rssPeerMean: number
} {
  const nonHub = run.peers.filter((peer) => peer.role !== 'hub')
  const hub = run.peers.find((peer) => peer.role === 'hub')
  return {
    peerSentMean: mean(nonHub.map((peer) => peer.bytesSent)),
    peerReceivedMean: mean(nonHub.map((peer) => peer.bytesReceived)),
    hubSent: hub?.bytesSent,
    cpuPeerMean: mean(nonHub.map((peer) => peer.cpuMs)),
    rssPeerMean: mean(nonHub.map((peer) => peer.rssBytes)),
  }
}

export function resultsMarkdown(results: LabResults): string {
  const { scenario } = results
  const link =
    scenario.link === undefined
      ? 'loopback'
      : (scenario.link.preset ??
        `${scenario.link.delayMs} ms ± ${scenario.link.jitterMs} ms, ${scenario.link.lossPercent} % loss${scenario.link.rateKbit === undefined ? '' : `, ${scenario.link.rateKbit} kbit/s`}`)
  const w = scenario.workload
  const lines = [
    `# Lab results: ${scenario.name}`,
    '',
    `Started ${results.startedAt} on ${results.machine.cpus} CPUs, Node ${results.machine.node}, kernel ${results.machine.kernel}.`,
    `Workload: ${w.writers} writer(s), ${w.ratePerSecond} op/s for ${w.durationMs / 1000} s, ${w.keys} keys per writer, ${w.valueBytes}-byte values, ${Math.round(w.readFraction * 100)} % reads. Links: ${link}. Seed ${scenario.seed}.`,
    scenario.timeline.length === 0
      ? 'Timeline: none.'
      : `Timeline: ${scenario.timeline.map((event) => `${event.kind}@${event.atMs / 1000}s${'peers' in event ? `[${event.peers.join(',')}]` : 'groups' in event ? `[${event.groups.map((g) => g.join(',')).join(' | ')}]` : ''}`).join(', ')}.`,
    '',
    '| shape | n | mode | emulation | writes acked / attempted | lost | not seen ≤ bound | visible p50 | p90 | p99 | max | bytes out / peer | bytes in / peer | hub bytes out | CPU / peer | RSS / peer | crashes |',
    '|---|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
  ]
  for (const run of results.runs) {
    const summary = runSummary(run)
    lines.push(
      `| ${run.shape} | ${run.n} | ${run.mode} | ${run.emulation} | ${run.writes.acknowledged} / ${run.writes.attempted} | ${run.writes.lost} | ${run.writes.notSeenWithinBound} | ${ms(run.latency.p50)} | ${ms(run.latency.p90)} | ${ms(run.latency.p99)} | ${ms(run.latency.max)} | ${bytes(summary.peerSentMean)} | ${bytes(summary.peerReceivedMean)} | ${summary.hubSent === undefined ? '–' : bytes(summary.hubSent)} | ${summary.cpuPeerMean === 0 ? '–' : `${Math.round(summary.cpuPeerMean)} ms`} | ${summary.rssPeerMean === 0 ? '–' : bytes(summary.rssPeerMean)} | ${run.crashes.length} |`,
    )
  }
  const faults = results.runs.flatMap((run) => [
    ...run.availability.map(
      (window) =>
        `| ${run.shape} | ${run.n} | ${window.event} ${ms(window.fromMs)}–${ms(window.toMs)} | writes accepted ${window.writesAccepted}, refused ${window.writesRefused}; reads served ${window.readsServed}, failed ${window.readsFailed} |`,
    ),
    ...run.convergence.map(
      (entry) =>
        `| ${run.shape} | ${run.n} | ${entry.event} at ${ms(entry.effectiveAtMs ?? entry.atMs)} | every live peer caught up after ${entry.convergedAfterMs === null ? 'never (within the run)' : ms(entry.convergedAfterMs)}; digests equal after ${entry.digestsEqualAfterMs === null || entry.digestsEqualAfterMs === undefined ? '–' : ms(entry.digestsEqualAfterMs)} |`,
    ),
  ])
  if (faults.length > 0) {
    lines.push(
      '',
      '## Faults: availability while they held, convergence after',
      '',
      '| shape | n | event | figures |',
      '|---|---:|---|---|',
      ...faults,
    )
  }
  const failedEvents = results.runs.flatMap((run) =>
    (run.failedEvents ?? []).map((why) => `- ${run.shape} n=${run.n}: ${why.split('\n')[0]}`),
  )
  if (failedEvents.length > 0) lines.push('', '## Timeline events that failed', '', ...failedEvents)
  const crashes = results.runs.flatMap((run) => run.crashes.map((crash) => ({ run, crash })))
  if (crashes.length > 0) {
    lines.push('', '## Crashed peers', '')
    for (const { run, crash } of crashes) {
      lines.push(
        `${run.shape} n=${run.n}, peer ${crash.index} (${crash.code ?? crash.signal}):`,
        '',
        '```',
        crash.logTail.trim(),
        '```',
        '',
      )
    }
  }
  lines.push(
    '',
    'Visible = for each write, the max over the peers up at the time of (first time its watch stream showed the write − the write call).',
    'Bytes: `tcp-socket` = kernel counters of the daemon’s TCP sockets other than its HTTP API (libp2p: noise, yamux, gossipsub, anti-entropy); `http-socket` = the HTTP client sockets of the lab process (requests and SSE).',
    '',
  )
  return lines.join('\n')
}

/** Writes results.json and results.md into `dir` (created if needed). */
export function writeResults(dir: string, results: LabResults): { json: string; markdown: string } {
  mkdirSync(dir, { recursive: true })
  const json = join(dir, 'results.json')
  const markdown = join(dir, 'results.md')
  writeFileSync(
    json,
    `${JSON.stringify(results, (_, value) => (typeof value === 'number' && !Number.isFinite(value) ? null : value), 2)}\n`,
  )
  writeFileSync(markdown, resultsMarkdown(results))
  return { json, markdown }
}

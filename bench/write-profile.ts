/**
 * The writer's and a watcher's cost, measured and profiled: a mesh of N daemons (the real CLI), one SSE
 * watch stream per reader daemon, W PUTs with 16 in flight to daemon 0; then the same PUTs to the
 * relay baseline (bench/relay.ts) in the same run. Prints CPU ms per write (from /proc), SSE bytes per
 * change event (default and `?format=compact`), both times with their ratio, the gossip messages the
 * writer published per write (how well commits and gossip batch), and then ack and visibility
 * latency of 400 writes paced at 200/s.
 *
 *   npx node bench/write-profile.ts [--n 4] [--writes 2000] [--profile DIR]
 *
 * With --profile, every daemon runs under `node --cpu-prof` and, after a graceful stop, the top
 * functions (self time) of the writer and of reader d1 are printed, grouped by source area.
 */
import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { DEFAULT_TARGET_CONNECTIONS } from '../src/mesh/constants.ts'
import { seenByAll, WatchReader, Writer, waitSeen } from './e2e-clients.ts'
import {
  cpuMs,
  type Daemon,
  installCleanup,
  pause,
  startDaemon,
  startRelay,
  tempDir,
  writeSwarmKey,
} from './e2e-procs.ts'
import { percentile, seededRandom } from './harness.ts'

const IN_FLIGHT = 16

const { values } = parseArgs({
  options: {
    n: { type: 'string', default: '4' },
    writes: { type: 'string', default: '2000' },
    profile: { type: 'string' },
  },
})
const n = Number(values.n)
const writes = Number(values.writes)
const profileDir = values.profile

installCleanup()

async function startMesh(): Promise<Daemon[]> {
  const dir = tempDir('hearsay-write-')
  const swarmKey = writeSwarmKey(dir)
  const saved = process.env.NODE_OPTIONS
  if (profileDir !== undefined)
    process.env.NODE_OPTIONS = `${saved ?? ''} --cpu-prof --cpu-prof-dir=${profileDir}`.trim()
  try {
    const first = await startDaemon({ name: 'd0', command: 'up', home: join(dir, 'd0'), swarmKey })
    const rest: Daemon[] = []
    for (let i = 1; i < n; i++) {
      rest.push(
        await startDaemon({
          name: `d${i}`,
          command: 'up',
          home: join(dir, `d${i}`),
          swarmKey,
          args: ['--bootstrap', first.address],
        }),
      )
    }
    return [first, ...rest]
  } finally {
    if (saved === undefined) delete process.env.NODE_OPTIONS
    else process.env.NODE_OPTIONS = saved
  }
}

async function connected(daemons: Daemon[]): Promise<void> {
  const deadline = Date.now() + 60_000
  while (Date.now() < deadline) {
    const counts = await Promise.all(
      daemons.map(async (d) => {
        try {
          const body = (await (await fetch(`${d.url}/v1/peers`)).json()) as {
            peers: Array<{ connected: boolean }>
          }
          return body.peers.filter((p) => p.connected).length
        } catch {
          return 0
        }
      }),
    )
    // Each keeps its neighbour target (or everyone, below it), not a connection to every other.
    if (counts.every((c) => c >= Math.min(n - 1, DEFAULT_TARGET_CONNECTIONS))) return
    await pause(100)
  }
  console.error('warning: not every daemon reached its neighbour target')
}

/** A `?format=compact` watch stream's bytes and change events, counted as they arrive. */
function compactCounter(url: string): { bytes: number; events: number; close(): void } {
  const controller = new AbortController()
  const counter = { bytes: 0, events: 0, close: () => controller.abort() }
  void (async () => {
    try {
      const response = await fetch(`${url}/v1/ns/default/watch?format=compact`, { signal: controller.signal })
      const decoder = new TextDecoder()
      for await (const chunk of response.body!) {
        counter.bytes += chunk.length
        const text = decoder.decode(chunk, { stream: true })
        for (let at = text.indexOf('event: change'); at >= 0; at = text.indexOf('event: change', at + 1))
          counter.events++
      }
    } catch {
      // Closed by the caller.
    }
  })()
  return counter
}

interface Run {
  /** CLOCK_MONOTONIC µs (the clock of V8's profile timestamps) at the measured phase's ends. */
  window: [number, number]
  seconds: number
  seen: number
  writerCpu: number
  readerCpu: number
  sseBytes: number
  compactBytes: number
  /** Gossip messages the writer published per write (NaN for the relay). */
  messagesPerWrite: number
  latency: { ack50: number; ack99: number; seen50: number; seen99: number }
}

async function run(url: string, writerPid: number, readerPids: number[], readerUrls: string[]): Promise<Run> {
  const writer = new Writer(seededRandom(1))
  const readers = readerUrls.map((u, i) => new WatchReader(`r${i}`, u))
  await Promise.all(readers.map((r) => r.open()))
  // The relay has no formats: it is counted there only for symmetry.
  const compact = compactCounter(readerUrls[0])
  // Warm up: JIT, meshes, SQLite.
  const warm = await writer.saturate(url, 200, IN_FLIGHT)
  await waitSeen(readers, warm.first, 200, performance.now() + 10_000)
  const published = async (): Promise<number> => {
    try {
      const text = await (await fetch(`${url}/metrics`)).text()
      const line = text
        .split('\n')
        .find((l) => l.startsWith('hearsay_gossip_messages_total{direction="published"}'))
      return line === undefined ? Number.NaN : Number(line.split(' ').pop())
    } catch {
      return Number.NaN
    }
  }
  const publishedBefore = await published()
  const before = { writer: cpuMs(writerPid), readers: readerPids.map(cpuMs) }
  const sseBefore = readers.map((r) => ({ bytes: r.bytes, events: r.changeEvents }))
  const compactBefore = { bytes: compact.bytes, events: compact.events }
  const started = performance.now()
  const from = monotonicMicros()
  const { first } = await writer.saturate(url, writes, IN_FLIGHT)
  await waitSeen(readers, first, writes, performance.now() + 60_000)
  const seconds = (performance.now() - started) / 1000
  const window: [number, number] = [from, monotonicMicros()]
  const writerCpu = (cpuMs(writerPid) - before.writer) / writes
  const messagesPerWrite = ((await published()) - publishedBefore) / writes
  const readerCpu =
    readerPids.length === 0
      ? Number.NaN
      : readerPids.reduce((sum, pid, i) => sum + cpuMs(pid) - before.readers[i], 0) /
        readerPids.length /
        writes
  let bytes = 0
  let events = 0
  readers.forEach((r, i) => {
    bytes += r.bytes - sseBefore[i].bytes
    events += r.changeEvents - sseBefore[i].events
  })
  const seen = seenByAll(readers, first, writes)
  // Paced: 200 writes/s, as a user's writer; latency of the acknowledgment and to every reader.
  const pacedCount = Math.min(400, writes)
  const paced = await writer.paced(url, pacedCount, 200)
  await waitSeen(readers, paced.first, pacedCount, performance.now() + 30_000)
  const acks: number[] = []
  const visible: number[] = []
  for (let seq = paced.first; seq < paced.first + pacedCount; seq++) {
    const started = writer.startedAt[seq]
    if (writer.ackedAt[seq] !== undefined) acks.push(writer.ackedAt[seq] - started)
    const seen = readers.map((r) => r.seen[seq])
    if (seen.every((at) => at !== undefined)) visible.push(Math.max(...seen) - started)
  }
  for (const r of readers) r.close()
  const compactBytes = (compact.bytes - compactBefore.bytes) / (compact.events - compactBefore.events)
  compact.close()
  writer.close()
  const q = (xs: number[], p: number) =>
    percentile(
      [...xs].sort((a, b) => a - b),
      p,
    )
  const latency = { ack50: q(acks, 50), ack99: q(acks, 99), seen50: q(visible, 50), seen99: q(visible, 99) }
  return {
    messagesPerWrite,
    latency,
    window,
    seconds,
    seen,
    writerCpu,
    readerCpu,
    sseBytes: bytes / events,
    compactBytes,
  }
}

function monotonicMicros(): number {
  return Number(process.hrtime.bigint() / 1000n)
}

/** Self time per function and per source area, of the samples inside `window` only. */
function summarize(file: string, label: string, window: [number, number]): void {
  const profile = JSON.parse(readFileSync(file, 'utf8')) as {
    startTime: number
    nodes: Array<{
      id: number
      children?: number[]
      callFrame: { functionName: string; url: string; lineNumber: number }
    }>
    samples: number[]
    timeDeltas: number[]
  }
  const byId = new Map(profile.nodes.map((node) => [node.id, node]))
  const parent = new Map<number, number>()
  for (const node of profile.nodes) for (const child of node.children ?? []) parent.set(child, node.id)
  const inclusive = new Map<string, number>()
  const self = new Map<string, number>()
  const areas = new Map<string, number>()
  let total = 0
  let at = profile.startTime
  for (let i = 0; i < profile.samples.length; i++) {
    const node = byId.get(profile.samples[i])!
    const dt = profile.timeDeltas[i] ?? 0
    at += dt
    if (at < window[0] || at > window[1]) continue
    const frame = node.callFrame
    if (frame.functionName === '(idle)') continue
    total += dt
    const where = frame.url.replace(/^.*\/(node_modules|src)\//, '$1/')
    const name = `${frame.functionName || '(anonymous)'} ${where}:${frame.lineNumber + 1}`
    self.set(name, (self.get(name) ?? 0) + dt)
    const area = areaOf(frame.url, frame.functionName)
    areas.set(area, (areas.get(area) ?? 0) + dt)
    // Inclusive time of the project's own functions: each counted once per sample.
    const counted = new Set<string>()
    for (let id: number | undefined = node.id; id !== undefined; id = parent.get(id)) {
      const f = byId.get(id)!.callFrame
      if (!f.url.includes('/src/') || f.url.includes('node_modules')) continue
      const key = `${f.functionName || '(anonymous)'} ${f.url.replace(/^.*\/src\//, 'src/')}:${f.lineNumber + 1}`
      if (counted.has(key)) continue
      counted.add(key)
      inclusive.set(key, (inclusive.get(key) ?? 0) + dt)
    }
  }
  const pct = (v: number) => `${((100 * v) / total).toFixed(1)}%`
  console.log(`\n#### ${label}: ${(total / 1000).toFixed(0)} ms busy in the measured phase\n`)
  console.log('| area | self |\n|---|---:|')
  for (const [area, v] of [...areas].sort((a, b) => b[1] - a[1]).slice(0, 14))
    console.log(`| ${area} | ${pct(v)} |`)
  console.log('\n| function | self |\n|---|---:|')
  for (const [name, v] of [...self].sort((a, b) => b[1] - a[1]).slice(0, 25))
    console.log(`| ${name} | ${pct(v)} |`)
  console.log('\n| project function | inclusive |\n|---|---:|')
  for (const [name, v] of [...inclusive].sort((a, b) => b[1] - a[1]).slice(0, 25))
    console.log(`| ${name} | ${pct(v)} |`)
}

function areaOf(url: string, fn: string): string {
  if (url === '') return fn.startsWith('(') ? fn : `native ${fn}`
  const src = /\/src\/([^/]+\/[^/]+)\.ts/.exec(url)
  if (src !== null) return `src/${src[1]}`
  const mod = /node_modules\/((@[^/]+\/)?[^/]+)/.exec(url)
  if (mod !== null) return mod[1]
  if (url.startsWith('node:')) return url
  return url.replace(/^.*\//, '')
}

const daemons = await startMesh()
await connected(daemons)
const mesh = await run(
  daemons[0].url,
  daemons[0].pid,
  daemons.slice(1).map((d) => d.pid),
  daemons.slice(1).map((d) => d.url),
)
await Promise.all(daemons.map((d) => d.stop()))
const relay = await startRelay()
const base = await run(relay.url, relay.pid, [], Array(n - 1).fill(relay.url))
await relay.stop()

const f = (v: number, d = 2) => v.toFixed(d)
console.log(`\n${writes} PUTs, ${IN_FLIGHT} in flight, N=${n}\n`)
console.log(
  '| shape | seen by all (s) | seen | writer CPU ms/write | reader CPU ms/write | SSE B/event | compact B/event |',
)
console.log('|---|---:|---:|---:|---:|---:|---:|')
console.log(
  `| mesh | ${f(mesh.seconds)} | ${mesh.seen} | ${f(mesh.writerCpu, 3)} | ${f(mesh.readerCpu, 3)} | ${f(mesh.sseBytes, 0)} | ${f(mesh.compactBytes, 0)} |`,
)
console.log(
  `| relay | ${f(base.seconds)} | ${base.seen} | ${f(base.writerCpu, 3)} | – | ${f(base.sseBytes, 0)} | – |`,
)
console.log(`\nmesh / relay time: ${f(mesh.seconds / base.seconds, 1)}×`)
console.log(`writer gossip messages per write: ${f(mesh.messagesPerWrite, 3)}`)
console.log('\n| paced 200/s | ack p50 | ack p99 | seen by all p50 | p99 |\n|---|---:|---:|---:|---:|')
for (const [name, r] of [
  ['mesh', mesh],
  ['relay', base],
] as const)
  console.log(
    `| ${name} | ${f(r.latency.ack50, 1)} | ${f(r.latency.ack99, 1)} | ${f(r.latency.seen50, 1)} | ${f(r.latency.seen99, 1)} |`,
  )

if (profileDir !== undefined) {
  const files = readdirSync(profileDir).filter((name) => name.endsWith('.cpuprofile'))
  for (const [label, pid] of [
    ['writer d0', daemons[0].pid],
    ['reader d1', daemons[1].pid],
  ] as const) {
    const file = files.find((name) => name.includes(`.${pid}.`))
    if (file === undefined) console.log(`\n(no profile for ${label}, pid ${pid})`)
    else summarize(join(profileDir, file), label, mesh.window)
  }
}
process.exit(0)

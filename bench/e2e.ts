/**
 * `npm run bench -- e2e`: hearsay measured the way a user runs it. N daemons as separate processes
 * (started with the real CLI), a client PUTting over HTTP to one of them, and one SSE watch subscriber
 * on every other daemon, all clients in this process. Shapes: `mesh` (peer-to-peer), `hub`
 * (`hearsay hub` + N-1 `up --hub` clients) and `relay`, the baseline: a bare node:http relay
 * (bench/relay.ts, its own process) that fans each PUT out as one SSE event to N-1 subscribers.
 *
 * Options (args after the suite name, or env): --n 4,8,16 (E2E_N), --rate 200 (E2E_RATE),
 * --writes 2000 (E2E_WRITES), --seed 1 (E2E_SEED), --shapes mesh,hub,relay (E2E_SHAPES),
 * --quick (E2E_QUICK=1: N=4, fewer writes; a smoke run), --latency-only (skip throughput, catch-up and
 * start), --cpu-prof <dir> with --cpu-prof-roles writer,reader,hub (default reader,hub): those daemons
 * run under `node --cpu-prof` and write a .cpuprofile into <dir> when they stop (only the first reader;
 * summarise with `npx node bench/profile-summary.ts <file>`), --watch-format compact (the daemons'
 * readers ask for `?format=compact` events; default full), --start-only (only the start section: a
 * lone daemon from the build next to a bare node:http process), --built (the cluster daemons run
 * the build through bin/hearsay.cjs, as installed, instead of the sources), --root <checkout> (the
 * start section and --built build and run that checkout instead of this one: before/after in one run).
 */
import { execFileSync, spawn, spawnSync } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import { cpus, loadavg } from 'node:os'
import { join, resolve } from 'node:path'
import { parseArgs } from 'node:util'
import { DEFAULT_TARGET_CONNECTIONS } from '../src/mesh/constants.ts'
import { seenByAll, WatchReader, Writer, waitSeen } from './e2e-clients.ts'
import {
  BUILT_CLI,
  cpuMs,
  type Daemon,
  freePort,
  installCleanup,
  installWatchdog,
  killAllNow,
  memoryMiB,
  p2pBytesBetween,
  pause,
  type SocketBytes,
  sampleSockets,
  startDaemon,
  startRelay,
  tempDir,
  writeSwarmKey,
} from './e2e-procs.ts'
import { formatNumber, percentile, seededRandom } from './harness.ts'

type Shape = 'mesh' | 'hub' | 'relay'
const SHAPES: Shape[] = ['mesh', 'hub', 'relay']

/** A write not seen by every reader this long after its PUT started counts as not delivered. */
const SEEN_WITHIN_MS = 5000
const THROUGHPUT_IN_FLIGHT = 16
const GET_RUNS = 5
/** The first start of the build runs with an empty compile cache; the others reuse it. */
const START_RUNS = 4
const ROOT = resolve(new URL('..', import.meta.url).pathname)
/** Idle RSS is read this long after /healthz first answers: start-up garbage has had time to go. */
const IDLE_SETTLE_MS = 2000

interface Options {
  ns: number[]
  rate: number
  writes: number
  seed: number
  shapes: Shape[]
  quick: boolean
  throughputN: number
  throughputWrites: number
  lateWrites: number
  budgetMs: number
  latencyOnly: boolean
  cpuProfDir: string | undefined
  cpuProfRoles: ProfRole[]
  /** The daemons' watch event format the readers ask for (the relay has one format). */
  watchFormat: 'full' | 'compact'
  startOnly: boolean
  /** Cluster daemons run the build through the launcher, not the sources. */
  built: boolean
  /** The checkout whose build the start section measures. */
  root: string
}

type ProfRole = 'writer' | 'reader' | 'hub'
const PROF_ROLES: ProfRole[] = ['writer', 'reader', 'hub']

function parseOptions(argv: string[]): Options {
  const { values } = parseArgs({
    args: argv,
    options: {
      n: { type: 'string' },
      rate: { type: 'string' },
      writes: { type: 'string' },
      seed: { type: 'string' },
      shapes: { type: 'string' },
      quick: { type: 'boolean' },
      'latency-only': { type: 'boolean' },
      'cpu-prof': { type: 'string' },
      'cpu-prof-roles': { type: 'string' },
      'watch-format': { type: 'string' },
      'start-only': { type: 'boolean' },
      built: { type: 'boolean' },
      root: { type: 'string' },
    },
    strict: true,
  })
  const env = process.env
  const quick = values.quick === true || env.E2E_QUICK === '1'
  const positive = (name: string, text: string | undefined, fallback: number): number => {
    if (text === undefined) return fallback
    const n = Number(text)
    if (!Number.isInteger(n) || n <= 0)
      throw new Error(`--${name} must be a positive whole number, not '${text}'`)
    return n
  }
  const nText = values.n ?? env.E2E_N
  const ns =
    nText === undefined ? (quick ? [4] : [4, 8, 16]) : nText.split(',').map((n) => positive('n', n, 0))
  for (const n of ns) if (n < 3 || n > 32) throw new Error(`--n: each N must be within 3..32, not ${n}`)
  const shapes = (values.shapes ?? env.E2E_SHAPES ?? SHAPES.join(',')).split(',') as Shape[]
  for (const shape of shapes)
    if (!SHAPES.includes(shape)) throw new Error(`--shapes: unknown shape '${shape}'`)
  const throughputN = ns.includes(8) ? 8 : ns[0]
  const cpuProfRoles = (values['cpu-prof-roles'] ?? 'reader,hub').split(',') as ProfRole[]
  for (const role of cpuProfRoles)
    if (!PROF_ROLES.includes(role)) throw new Error(`--cpu-prof-roles: unknown role '${role}'`)
  const watchFormat = values['watch-format'] ?? env.E2E_WATCH_FORMAT ?? 'full'
  if (watchFormat !== 'full' && watchFormat !== 'compact')
    throw new Error(`--watch-format must be full or compact, not '${watchFormat}'`)
  return {
    watchFormat,
    startOnly: values['start-only'] === true,
    built: values.built === true,
    root: resolve(values.root ?? ROOT),
    latencyOnly: values['latency-only'] === true,
    cpuProfDir: values['cpu-prof'],
    cpuProfRoles,
    ns,
    rate: positive('rate', values.rate ?? env.E2E_RATE, 200),
    writes: positive('writes', values.writes ?? env.E2E_WRITES, quick ? 400 : 2000),
    seed: positive('seed', values.seed ?? env.E2E_SEED, 1),
    shapes,
    quick,
    throughputN,
    throughputWrites: quick ? 2000 : 10_000,
    lateWrites: quick ? 2000 : 10_000,
    budgetMs: quick ? 15 * 60_000 : 90 * 60_000,
  }
}

// ---- clusters ---------------------------------------------------------------------------------------

interface Target {
  name: string
  url: string
  pid: number
  role: 'peer' | 'hub' | 'relay'
}

interface Cluster {
  shape: Shape
  n: number
  writer: Target
  /** One SSE subscriber each (the relay: N-1 subscribers of the one process). */
  readers: Target[]
  /** The hub or the relay process. */
  server: Target | undefined
  daemons: Daemon[]
  p2pPorts: Set<number>
  swarmKey: string
  /** What waiting for the peers found, for the output. */
  connectivity: string
  /** The program the daemons run (undefined: the sources). */
  entry: string | undefined
  stop(): Promise<void>
}

async function startAll<T>(count: number, start: (i: number) => Promise<T>, concurrency = 4): Promise<T[]> {
  const results: T[] = []
  let next = 0
  const worker = async () => {
    while (next < count) {
      const i = next++
      results[i] = await start(i)
    }
  }
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, worker))
  return results
}

async function connectedPeers(url: string): Promise<number> {
  const response = await fetch(`${url}/v1/peers`, { signal: AbortSignal.timeout(5000) })
  const body = (await response.json()) as { peers: Array<{ connected: boolean }> }
  return body.peers.filter((peer) => peer.connected).length
}

/** Polls /v1/peers until each daemon is connected to `want(i)` peers, or the deadline. */
async function waitConnected(
  daemons: Daemon[],
  want: (i: number) => number,
  timeoutMs: number,
): Promise<string> {
  const deadline = Date.now() + timeoutMs
  let counts: number[] = []
  for (;;) {
    counts = await Promise.all(daemons.map((d) => connectedPeers(d.url).catch(() => 0)))
    if (counts.every((count, i) => count >= want(i))) return `all connected (${counts.join(',')})`
    if (Date.now() > deadline) {
      const message = `peers connected after ${timeoutMs} ms: ${counts.join(',')} (wanted ${daemons.map((_, i) => want(i)).join(',')})`
      console.error(`warning: ${message}`)
      return message
    }
    await pause(100)
  }
}

const target = (d: Daemon, role: 'peer' | 'hub' = 'peer'): Target => ({
  name: d.name,
  url: d.url,
  pid: d.pid,
  role,
})

async function startCluster(shape: Shape, n: number, options: Options): Promise<Cluster> {
  const dir = tempDir('hearsay-e2e-')
  /** `node --cpu-prof` for the daemon playing `role`, when asked for; one directory per daemon. */
  const prof = (role: ProfRole): string[] => {
    if (options.cpuProfDir === undefined || !options.cpuProfRoles.includes(role)) return []
    return ['--cpu-prof', '--cpu-prof-dir', join(options.cpuProfDir, `${shape}-n${n}-${role}`)]
  }
  const swarmKey = writeSwarmKey(dir)
  const home = (i: number) => join(dir, `d${i}`)
  const entry = options.built ? join(options.root, 'bin', 'hearsay.cjs') : undefined
  const connectTimeout = 30_000 + 2000 * n
  if (shape === 'relay') {
    const relay = await startRelay()
    const server: Target = { name: 'relay', url: relay.url, pid: relay.pid, role: 'relay' }
    return {
      shape,
      n,
      writer: server,
      readers: Array.from({ length: n - 1 }, (_, i) => ({ ...server, name: `relay-sub${i + 1}` })),
      server,
      daemons: [],
      p2pPorts: new Set(),
      swarmKey,
      connectivity: 'n/a',
      entry,
      stop: () => relay.stop(),
    }
  }
  let daemons: Daemon[]
  let connectivity: string
  let cluster: Omit<Cluster, 'connectivity' | 'p2pPorts' | 'stop' | 'daemons' | 'entry'>
  if (shape === 'mesh') {
    const first = await startDaemon({
      name: 'd0',
      command: 'up',
      home: home(0),
      swarmKey,
      nodeArgs: prof('writer'),
      entry,
    })
    const rest = await startAll(n - 1, (i) =>
      startDaemon({
        name: `d${i + 1}`,
        command: 'up',
        home: home(i + 1),
        swarmKey,
        args: ['--bootstrap', first.address],
        nodeArgs: i === 0 ? prof('reader') : [],
        entry,
      }),
    )
    daemons = [first, ...rest]
    // Each mesh daemon keeps its neighbour target (or everyone, below it).
    connectivity = await waitConnected(
      daemons,
      () => Math.min(n - 1, DEFAULT_TARGET_CONNECTIONS),
      connectTimeout,
    )
    cluster = {
      shape,
      n,
      writer: target(first),
      readers: rest.map((d) => target(d)),
      server: undefined,
      swarmKey,
    }
  } else {
    const hub = await startDaemon({
      name: 'hub',
      command: 'hub',
      home: home(0),
      swarmKey,
      nodeArgs: prof('hub'),
      entry,
    })
    const clients = await startAll(n - 1, (i) =>
      startDaemon({
        name: `c${i + 1}`,
        command: 'up',
        home: home(i + 1),
        swarmKey,
        args: ['--hub', hub.address],
        // c1 writes, c2 is the first reading client.
        nodeArgs: i === 0 ? prof('writer') : i === 1 ? prof('reader') : [],
        entry,
      }),
    )
    daemons = [hub, ...clients]
    connectivity = await waitConnected(daemons, (i) => (i === 0 ? n - 1 : 1), connectTimeout)
    cluster = {
      shape,
      n,
      // The writer is a client: every write travels client → hub → clients.
      writer: target(clients[0]),
      readers: [target(hub, 'hub'), ...clients.slice(1).map((d) => target(d))],
      server: target(hub, 'hub'),
      swarmKey,
    }
  }
  return {
    ...cluster,
    daemons,
    p2pPorts: new Set(daemons.map((d) => d.p2pPort)),
    connectivity,
    entry,
    stop: async () => void (await Promise.allSettled(daemons.map((d) => d.stop()))),
  }
}

// ---- the measured phases ------------------------------------------------------------------------------

interface LatencyResult {
  shape: Shape
  n: number
  writes: number
  p50: number
  p90: number
  p99: number
  max: number
  ackP50: number
  /** p50 of (last reader's observation − PUT acknowledged): propagation without the writer's queue. */
  afterAckP50: number
  /** Writes acknowledged per second over the phase: below the target rate, the writer daemon saturated. */
  ackedRate: number
  notSeen: number
  failed: number
  lastError: string | undefined
  writerCpu: number
  readerCpuMean: number
  readerCpuMax: number
  serverCpu: number
  /** libp2p TCP bytes received per write, mean and max over reader daemons (hub excluded). */
  wireInMean: number
  wireInMax: number
  wireOutReaderMean: number
  /** libp2p TCP bytes sent per write by the writer daemon, and by the hub. */
  wireOutWriter: number
  wireOutHub: number
  sseBytesPerEvent: number
  peakRssMax: number
  peakRssMean: number
  idleRssMean: number
  benchCpu: number
  /** Gossip batches the writer daemon published per write (below 1: several writes per batch). */
  batchesPerWrite: number
  /** Mean reader CPU per gossip batch it accepted (robust to how many writes a batch holds). */
  readerCpuPerBatch: number
  connectivity: string
}

/** A daemon's gossip message counters (hearsay_gossip_messages_total) from /metrics; NaN when unreadable. */
async function gossipMessages(url: string): Promise<{ published: number; received: number }> {
  try {
    const response = await fetch(`${url}/metrics`, { signal: AbortSignal.timeout(5000) })
    const text = await response.text()
    const read = (direction: string) => {
      const match = new RegExp(
        `^hearsay_gossip_messages_total\\{direction="${direction}"\\} (\\d+)`,
        'm',
      ).exec(text)
      return match === null ? Number.NaN : Number(match[1])
    }
    return { published: read('published'), received: read('received') }
  } catch {
    return { published: Number.NaN, received: Number.NaN }
  }
}

function cpuOf(pids: number[]): Map<number, number> {
  return new Map(pids.map((pid) => [pid, cpuMs(pid)]))
}

const mean = (xs: number[]) => (xs.length === 0 ? Number.NaN : xs.reduce((a, b) => a + b, 0) / xs.length)
const max = (xs: number[]) => (xs.length === 0 ? Number.NaN : Math.max(...xs))

/** Writes one key at a time until a write reaches every reader within 3 s: the paths are wired. */
async function warmUp(
  cluster: Cluster,
  writer: Writer,
  readers: WatchReader[],
  options: Options,
): Promise<void> {
  const deadline = Date.now() + 30_000
  for (;;) {
    const { first } = await writer.paced(cluster.writer.url, 1, 1)
    if (await waitSeen(readers, first, 1, performance.now() + 3000)) break
    if (Date.now() > deadline)
      throw new Error(`${cluster.shape} N=${cluster.n}: a write did not reach every reader`)
  }
  // One second at the measured rate, unmeasured: JIT, gossip meshes settled, SQLite warm.
  const count = Math.max(1, Math.round(options.rate * (options.quick ? 0.5 : 1)))
  const { first } = await writer.paced(cluster.writer.url, count, options.rate)
  await waitSeen(readers, first, count, performance.now() + SEEN_WITHIN_MS)
}

async function measureLatency(
  cluster: Cluster,
  writer: Writer,
  readers: WatchReader[],
  options: Options,
): Promise<LatencyResult> {
  const readerDaemons = cluster.readers.filter((r) => r.role === 'peer')
  const pids = [...new Set([cluster.writer.pid, ...cluster.readers.map((r) => r.pid)])]
  const idleRss = pids.map((pid) => memoryMiB(pid, 'VmRSS'))
  const failedBefore = writer.failed
  const sseBefore = readers.map((r) => ({ bytes: r.bytes, events: r.changeEvents }))
  const isDaemonShape = cluster.shape !== 'relay'
  const readerUrls = cluster.readers.filter((r) => r.role === 'peer').map((r) => r.url)
  const gossipBefore = isDaemonShape
    ? await Promise.all([cluster.writer.url, ...readerUrls].map(gossipMessages))
    : []
  const socketsBefore = sampleSockets()
  const cpuBefore = cpuOf(pids)
  const benchBefore = process.cpuUsage()

  const phaseStartUs = process.hrtime.bigint() / 1000n
  const { first } = await writer.paced(cluster.writer.url, options.writes, options.rate)
  const lastStart = writer.startedAt[first + options.writes - 1]
  await waitSeen(readers, first, options.writes, lastStart + SEEN_WITHIN_MS)
  if (options.cpuProfDir !== undefined) {
    // The clock of a .cpuprofile's timestamps (CLOCK_MONOTONIC, µs): bench/profile-summary.ts --window.
    const phaseEndUs = process.hrtime.bigint() / 1000n
    console.error(
      `e2e: ${cluster.shape} N=${cluster.n} measured phase: --window ${phaseStartUs}..${phaseEndUs} --writes ${options.writes}`,
    )
  }

  const cpuAfter = cpuOf(pids)
  const benchCpu = process.cpuUsage(benchBefore)
  const socketsAfter = sampleSockets()
  const gossipAfter = isDaemonShape
    ? await Promise.all([cluster.writer.url, ...readerUrls].map(gossipMessages))
    : []
  const perWrite = (pid: number) => (cpuAfter.get(pid)! - cpuBefore.get(pid)!) / options.writes
  const bytes = (pid: number) => p2pBytesBetween(socketsBefore, socketsAfter, pid, cluster.p2pPorts)

  let lastAck = Number.NEGATIVE_INFINITY
  for (let seq = first; seq < first + options.writes; seq++)
    lastAck = Math.max(lastAck, writer.ackedAt[seq] ?? lastAck)
  const latencies: number[] = []
  const acks: number[] = []
  const afterAck: number[] = []
  let notSeen = 0
  for (let seq = first; seq < first + options.writes; seq++) {
    const start = writer.startedAt[seq]
    if (writer.ackedAt[seq] !== undefined) acks.push(writer.ackedAt[seq] - start)
    let last = 0
    for (const reader of readers)
      last = Math.max(last, (reader.seen[seq] ?? Number.POSITIVE_INFINITY) - start)
    if (last > SEEN_WITHIN_MS) notSeen++
    else {
      latencies.push(last)
      if (writer.ackedAt[seq] !== undefined) afterAck.push(start + last - writer.ackedAt[seq])
    }
  }
  latencies.sort((a, b) => a - b)
  acks.sort((a, b) => a - b)
  afterAck.sort((a, b) => a - b)
  const sseBytes = readers.reduce((sum, r, i) => sum + r.bytes - sseBefore[i].bytes, 0)
  const sseEvents = readers.reduce((sum, r, i) => sum + r.changeEvents - sseBefore[i].events, 0)
  const readerCpu = readerDaemons.map((r) => perWrite(r.pid))
  const wireIn = readerDaemons.map((r) => bytes(r.pid).received / options.writes)
  const wireOut = readerDaemons.map((r) => bytes(r.pid).sent / options.writes)
  const peakRss = pids.map((pid) => memoryMiB(pid, 'VmHWM'))
  const isDaemon = cluster.shape !== 'relay'
  return {
    shape: cluster.shape,
    n: cluster.n,
    writes: options.writes,
    p50: percentile(latencies, 50),
    p90: percentile(latencies, 90),
    p99: percentile(latencies, 99),
    max: latencies.at(-1) ?? Number.NaN,
    ackP50: percentile(acks, 50),
    afterAckP50: percentile(afterAck, 50),
    ackedRate: (acks.length * 1000) / (lastAck - writer.startedAt[first]),
    notSeen,
    failed: writer.failed - failedBefore,
    lastError: writer.failed > failedBefore ? writer.lastError : undefined,
    writerCpu: perWrite(cluster.writer.pid),
    readerCpuMean: mean(readerCpu),
    readerCpuMax: max(readerCpu),
    serverCpu: cluster.server === undefined ? Number.NaN : perWrite(cluster.server.pid),
    wireInMean: mean(wireIn),
    wireInMax: max(wireIn),
    wireOutReaderMean: mean(wireOut),
    wireOutWriter: isDaemon ? bytes(cluster.writer.pid).sent / options.writes : Number.NaN,
    wireOutHub: cluster.shape === 'hub' ? bytes(cluster.server!.pid).sent / options.writes : Number.NaN,
    sseBytesPerEvent: sseEvents === 0 ? Number.NaN : sseBytes / sseEvents,
    peakRssMax: max(peakRss),
    peakRssMean: mean(peakRss),
    idleRssMean: mean(idleRss),
    benchCpu: (benchCpu.user + benchCpu.system) / 1000 / options.writes,
    batchesPerWrite: isDaemonShape
      ? (gossipAfter[0].published - gossipBefore[0].published) / options.writes
      : Number.NaN,
    readerCpuPerBatch: isDaemonShape
      ? mean(
          readerDaemons.map(
            (r, i) =>
              (perWrite(r.pid) * options.writes) /
              (gossipAfter[i + 1].received - gossipBefore[i + 1].received),
          ),
        )
      : Number.NaN,
    connectivity: cluster.connectivity,
  }
}

interface ThroughputResult {
  shape: Shape
  n: number
  writes: number
  ackedS: number
  seenS: number
  seenByAll: number
  failed: number
}

async function measureThroughput(
  cluster: Cluster,
  writer: Writer,
  readers: WatchReader[],
  options: Options,
): Promise<ThroughputResult> {
  const count = options.throughputWrites
  const failedBefore = writer.failed
  const start = performance.now()
  const { first } = await writer.saturate(cluster.writer.url, count, THROUGHPUT_IN_FLIGHT)
  const acked = performance.now()
  const all = await waitSeen(readers, first, count, acked + 120_000)
  const seen = performance.now()
  return {
    shape: cluster.shape,
    n: cluster.n,
    writes: count,
    ackedS: (acked - start) / 1000,
    seenS: all ? (seen - start) / 1000 : Number.NaN,
    seenByAll: seenByAll(readers, first, count),
    failed: writer.failed - failedBefore,
  }
}

interface JoinResult {
  name: string
  keys: number
  /** Keys the joiner lacked when it started. */
  missing: number
  fromSpawnS: number
  fromReadyS: number
  bytesReceived: number
}

async function namespaceOf(url: string): Promise<{ digest: string; entries: number }> {
  const response = await fetch(`${url}/v1/ns/default`, { signal: AbortSignal.timeout(5000) })
  if (response.status !== 200) {
    await response.arrayBuffer()
    return { digest: '', entries: 0 }
  }
  return (await response.json()) as { digest: string; entries: number }
}

/** Starts a daemon bootstrapped to daemon 0 and times it until its namespace digest equals daemon 0's. */
async function timeJoin(
  cluster: Cluster,
  name: string,
  home: string,
  keys: number,
  missing: number,
): Promise<JoinResult> {
  const source = cluster.daemons[0]
  const want = await namespaceOf(source.url)
  const joiner = await startDaemon({
    name,
    command: 'up',
    home,
    swarmKey: cluster.swarmKey,
    args: ['--bootstrap', source.address],
    entry: cluster.entry,
  })
  cluster.daemons.push(joiner)
  cluster.p2pPorts.add(joiner.p2pPort)
  const deadline = performance.now() + 180_000
  let converged = Number.NaN
  while (performance.now() < deadline) {
    const have = await namespaceOf(joiner.url).catch(() => ({ digest: '', entries: 0 }))
    if (have.digest === want.digest) {
      converged = performance.now()
      break
    }
    await pause(20)
  }
  const received = p2pBytesBetween(
    new Map<string, SocketBytes>(),
    sampleSockets(),
    joiner.pid,
    cluster.p2pPorts,
  )
  if (Number.isNaN(converged)) console.error(`warning: ${name} did not converge within 180 s`)
  return {
    name,
    keys,
    missing,
    fromSpawnS: (converged - joiner.spawnedAt) / 1000,
    fromReadyS: (converged - joiner.readyAt) / 1000,
    bytesReceived: received.received,
  }
}

/** Stops the last daemon, writes `lateWrites` keys, restarts it; then a fresh empty peer joins. */
async function measureJoins(cluster: Cluster, writer: Writer, options: Options): Promise<JoinResult[]> {
  const victim = cluster.daemons[cluster.daemons.length - 1]
  const held = (await namespaceOf(victim.url)).entries
  await victim.stop()
  await writer.saturate(cluster.writer.url, options.lateWrites, THROUGHPUT_IN_FLIGHT)
  const entries = (await namespaceOf(cluster.daemons[0].url)).entries
  const restarted = await timeJoin(
    cluster,
    `${victim.name} (restarted)`,
    victim.home,
    entries,
    entries - held,
  )
  const freshHome = join(tempDir('hearsay-e2e-fresh-'), 'home')
  const fresh = await timeJoin(cluster, 'fresh empty peer', freshHome, entries, entries)
  return [
    { ...restarted, name: `restarted after missing ${formatNumber(options.lateWrites)} writes` },
    { ...fresh, name: 'fresh empty peer' },
  ]
}

interface StartFigures {
  healthzMs: number
  readyLineMs: number
  rssMiB: number
  /** RSS split: private memory, and pages of files (mostly the node binary, shared between processes). */
  rssAnonMiB: number
  rssFileMiB: number
  heapUsedMiB: number
  heapTotalMiB: number
  externalMiB: number
}

interface StartResult {
  /** `hearsay up` from the build: the first start (empty compile cache), and the median of the others. */
  cold: StartFigures
  warm: StartFigures
  /** A node process that only serves node:http, measured the same way. */
  bare: StartFigures
}

const NO_START: StartFigures = {
  healthzMs: Number.NaN,
  readyLineMs: Number.NaN,
  rssMiB: Number.NaN,
  rssAnonMiB: Number.NaN,
  rssFileMiB: Number.NaN,
  heapUsedMiB: Number.NaN,
  heapTotalMiB: Number.NaN,
  externalMiB: Number.NaN,
}

function statusMiB(pid: number, field: 'RssAnon' | 'RssFile'): number {
  const match = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
  return match === null ? Number.NaN : Number(match[1]) / 1024
}

/** The daemon's V8 heap and external memory from its /metrics (prom-client's process gauges). */
async function heapOf(
  url: string,
): Promise<Pick<StartFigures, 'heapUsedMiB' | 'heapTotalMiB' | 'externalMiB'>> {
  const text = await (await fetch(`${url}/metrics`, { signal: AbortSignal.timeout(5000) })).text()
  const read = (name: string) => {
    const match = new RegExp(`^${name} (\\S+)`, 'm').exec(text)
    return match === null ? Number.NaN : Number(match[1]) / 2 ** 20
  }
  return {
    heapUsedMiB: read('nodejs_heap_size_used_bytes'),
    heapTotalMiB: read('nodejs_heap_size_total_bytes'),
    externalMiB: read('nodejs_external_memory_bytes'),
  }
}

/** RSS first (reading /metrics allocates), then the heap. */
async function idleFigures(
  pid: number,
  spawnedAt: number,
  readyAt: number,
  healthyAt: number,
  heap: () => Promise<Pick<StartFigures, 'heapUsedMiB' | 'heapTotalMiB' | 'externalMiB'>>,
): Promise<StartFigures> {
  const rssMiB = memoryMiB(pid, 'VmRSS')
  const rssAnonMiB = statusMiB(pid, 'RssAnon')
  const rssFileMiB = statusMiB(pid, 'RssFile')
  return {
    healthzMs: healthyAt - spawnedAt,
    readyLineMs: readyAt - spawnedAt,
    rssMiB,
    rssAnonMiB,
    rssFileMiB,
    ...(await heap()),
  }
}

/** The floor under any daemon: node, node:http listening, a ready line, nothing else. */
const BARE_SERVER = `
const server = require('node:http').createServer((request, response) => {
  if (request.url === '/memory') return response.end(JSON.stringify(process.memoryUsage()))
  response.end('{"ok":true}')
})
server.listen(Number(process.argv[1]), '127.0.0.1', () => console.log('{"event":"ready"}'))`

async function measureBare(): Promise<StartFigures> {
  const port = await freePort()
  const url = `http://127.0.0.1:${port}`
  const spawnedAt = performance.now()
  const child = spawn(process.execPath, ['-e', BARE_SERVER, String(port)], {
    stdio: ['ignore', 'pipe', 'inherit'],
  })
  try {
    let readyAt = Number.NaN
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      if (Number.isNaN(readyAt) && chunk.includes('"event":"ready"')) readyAt = performance.now()
    })
    let healthyAt = Number.NaN
    const deadline = Date.now() + 30_000
    while (Date.now() < deadline && (Number.isNaN(healthyAt) || Number.isNaN(readyAt))) {
      if (Number.isNaN(healthyAt)) {
        const ok = await fetch(`${url}/healthz`, { signal: AbortSignal.timeout(1000) }).then(
          async (response) => {
            await response.arrayBuffer()
            return response.status === 200
          },
          () => false,
        )
        if (ok) healthyAt = performance.now()
      }
      await pause(5)
    }
    if (Number.isNaN(healthyAt) || Number.isNaN(readyAt))
      throw new Error('the bare node:http process did not start')
    await pause(IDLE_SETTLE_MS)
    return await idleFigures(child.pid!, spawnedAt, readyAt, healthyAt, async () => {
      const memory = (await (await fetch(`${url}/memory`)).json()) as NodeJS.MemoryUsage
      return {
        heapUsedMiB: memory.heapUsed / 2 ** 20,
        heapTotalMiB: memory.heapTotal / 2 ** 20,
        externalMiB: memory.external / 2 ** 20,
      }
    })
  } finally {
    child.kill('SIGKILL')
  }
}

/** The build `hearsay up` runs: the daemon bundle is what the start section measures. */
function build(root: string): void {
  console.error(`e2e: npm run build in ${root} (the start section measures the daemon bundle)`)
  execFileSync('npm', ['run', '--silent', 'build'], { cwd: root, stdio: ['ignore', 'ignore', 'inherit'] })
}

/**
 * A lone `hearsay up` from the build (bin/hearsay.cjs, as installed) on an empty data dir: spawn →
 * /healthz, spawn → ready line, memory once idle; the first start with an empty compile cache, the
 * median of the others; and a bare node:http process before each, as the floor.
 */
async function measureStart(root: string): Promise<StartResult> {
  const cache = tempDir('hearsay-e2e-cache-')
  const runs: StartFigures[] = []
  const bare: StartFigures[] = []
  for (let i = 0; i < START_RUNS; i++) {
    bare.push(await measureBare())
    const dir = tempDir('hearsay-e2e-start-')
    const daemon = await startDaemon({
      name: 'start',
      command: 'up',
      home: join(dir, 'home'),
      swarmKey: writeSwarmKey(dir),
      entry: join(root, 'bin', 'hearsay.cjs'),
      env: { XDG_CACHE_HOME: cache },
    })
    try {
      await pause(IDLE_SETTLE_MS)
      runs.push(
        await idleFigures(daemon.pid, daemon.spawnedAt, daemon.readyAt, daemon.healthyAt, () =>
          heapOf(daemon.url),
        ),
      )
    } finally {
      await daemon.stop()
    }
  }
  return { cold: runs[0], warm: medianFigures(runs.slice(1)), bare: medianFigures(bare) }
}

function medianFigures(runs: StartFigures[]): StartFigures {
  const median = (pick: (r: StartFigures) => number) =>
    runs.map(pick).sort((a, b) => a - b)[Math.floor(runs.length / 2)]
  const out = { ...NO_START }
  for (const key of Object.keys(NO_START) as Array<keyof StartFigures>) out[key] = median((r) => r[key])
  return out
}

function printStart(start: StartResult, root: string): void {
  const rows: Array<[string, keyof StartFigures, number]> = [
    ['spawn → /healthz answers (ms)', 'healthzMs', 0],
    ['spawn → ready line (ms)', 'readyLineMs', 0],
    [`idle RSS ${IDLE_SETTLE_MS / 1000} s after start (MiB)`, 'rssMiB', 1],
    ['  private (RssAnon, MiB)', 'rssAnonMiB', 1],
    ['  file pages, shared (RssFile, MiB)', 'rssFileMiB', 1],
    ['V8 heap used (MiB)', 'heapUsedMiB', 1],
    ['V8 heap total (MiB)', 'heapTotalMiB', 1],
    ['external (MiB)', 'externalMiB', 1],
  ]
  table(
    `Start and idle memory: \`hearsay up\` from the build (bin/hearsay.cjs${root === ROOT ? '' : ` of ${root}`}), empty data dir; bare = node:http only`,
    [
      'measure',
      '',
      `hearsay, median of ${START_RUNS - 1}`,
      'first start (empty compile cache)',
      'bare node:http',
      'ratio to bare',
    ],
    rows.map(([name, key, digits]) => [
      name,
      '',
      f(start.warm[key], digits),
      f(start.cold[key], digits),
      f(start.bare[key], digits),
      ratio(start.warm[key], start.bare[key]),
    ]),
  )
}

/** `hearsay get <key>` with the built command against a running daemon: median wall time. */
function measureGet(daemon: Daemon, key: string): number {
  if (!existsSync(BUILT_CLI)) {
    console.error('dist/ is missing: building it (tsc -p tsconfig.build.json)')
    const tsc = new URL('../node_modules/typescript/bin/tsc', import.meta.url).pathname
    execFileSync(process.execPath, [tsc, '-p', new URL('../tsconfig.build.json', import.meta.url).pathname], {
      stdio: 'inherit',
    })
  }
  const env: NodeJS.ProcessEnv = {}
  for (const [name, value] of Object.entries(process.env)) if (!name.startsWith('HEARSAY_')) env[name] = value
  env.HEARSAY_HOME = daemon.home
  const times: number[] = []
  for (let i = 0; i < GET_RUNS; i++) {
    const start = performance.now()
    const result = spawnSync(process.execPath, [BUILT_CLI, 'get', key], {
      env,
      encoding: 'utf8',
      timeout: 30_000,
    })
    times.push(performance.now() - start)
    if (result.status !== 0) throw new Error(`hearsay get ${key} exited ${result.status}: ${result.stderr}`)
  }
  times.sort((a, b) => a - b)
  return times[Math.floor(times.length / 2)]
}

// ---- output -------------------------------------------------------------------------------------------

const f = (n: number, digits = 0) => (Number.isNaN(n) ? '–' : formatNumber(n, digits))
const ratio = (a: number, b: number) =>
  Number.isNaN(a) || Number.isNaN(b) || b === 0 ? '–' : formatNumber(a / b, 1)

function table(title: string, head: string[], rows: string[][]): void {
  console.log(`\n### ${title}\n`)
  console.log(`| ${head.join(' | ')} |`)
  console.log(`|${head.map((_, i) => (i < 2 ? '---' : '---:')).join('|')}|`)
  for (const row of rows) console.log(`| ${row.join(' | ')} |`)
}

function loadLine(): string {
  return `load average ${loadavg()
    .map((x) => x.toFixed(1))
    .join(', ')}`
}

function printMethod(options: Options): void {
  console.log('\n## e2e: hearsay as a user runs it\n')
  console.log(
    [
      `seed ${options.seed}, ${options.writes} writes at ${options.rate}/s per run, N ∈ {${options.ns.join(', ')}}, shapes ${options.shapes.join(', ')}${options.quick ? ' (--quick)' : ''}.`,
      'Each daemon is `node src/cli/main.ts up|hub` (SQLite, default log level, swarm key shared by the cluster, mDNS off,',
      '--loopback-testing, 127.0.0.1). The writer PUTs 68-byte JSON values (distinct keys) to daemon 0 (hub shape: a client)',
      'over keep-alive connections; one SSE watch stream per other daemon (hub shape: the hub and the N-2 other clients) is read in this',
      'process. Relay = bench/relay.ts, one node:http process: PUT → one SSE event to each of N-1 subscribers.',
      `Latency = max over readers of (first observation − PUT call start); a write not seen by every reader within ${SEEN_WITHIN_MS / 1000} s`,
      'is counted, not timed. CPU = utime+stime from /proc/<pid>/stat over the measured phase / writes (10 ms ticks).',
      'Wire bytes = per daemon, the change of bytes_received / bytes_acked (`ss -tinp`) over its TCP sockets to or from',
      'a libp2p port of the cluster (payload after pnet + noise + yamux, not IP/TCP headers; sockets closed mid-phase',
      'are not counted). SSE bytes = bytes read from the watch streams / change events. RSS from /proc/<pid>/status.',
      `Machine: ${cpus().length} cores, ${loadLine()} at the start.`,
    ].join('\n'),
  )
}

function printLatency(results: LatencyResult[], rate: number): void {
  table(
    `Latency: PUT on the writer daemon → seen on every reader's watch (${results[0]?.writes ?? 0} writes)`,
    [
      'shape',
      'N',
      'p50 ms',
      'p90 ms',
      'p99 ms',
      'max ms',
      'not seen in 5 s',
      'PUT failed',
      'PUT ack p50 ms',
      'ack → seen by all, p50 ms',
      'acknowledged writes/s',
    ],
    results.map((r) => [
      r.shape,
      String(r.n),
      f(r.p50, 1),
      f(r.p90, 1),
      f(r.p99, 1),
      f(r.max, 1),
      String(r.notSeen),
      String(r.failed),
      f(r.ackP50, 2),
      f(r.afterAckP50, 1),
      f(r.ackedRate),
    ]),
  )
  table(
    'Cost per write: CPU (ms), wire bytes, SSE bytes, memory',
    [
      'shape',
      'N',
      'CPU writer',
      'CPU reader mean',
      'CPU reader max',
      'CPU hub/relay',
      'wire in / reader (B)',
      'max',
      'wire out / reader (B)',
      'wire out writer (B)',
      'wire out hub (B)',
      'SSE B/event',
      'peak RSS max (MiB)',
      'RSS before phase, mean',
      'bench process CPU',
      'gossip batches / write',
      'CPU reader / batch',
    ],
    results.map((r) => [
      r.shape,
      String(r.n),
      f(r.writerCpu, 2),
      f(r.readerCpuMean, 2),
      f(r.readerCpuMax, 2),
      f(r.serverCpu, 3),
      f(r.wireInMean),
      f(r.wireInMax),
      f(r.wireOutReaderMean),
      f(r.wireOutWriter),
      f(r.wireOutHub),
      f(r.sseBytesPerEvent),
      f(r.peakRssMax),
      f(r.idleRssMean),
      f(r.benchCpu, 2),
      f(r.batchesPerWrite, 2),
      f(r.readerCpuPerBatch, 2),
    ]),
  )
  const notes = results.filter((r) => !r.connectivity.startsWith('all') && r.connectivity !== 'n/a')
  for (const r of notes) console.log(`\n${r.shape} N=${r.n}: ${r.connectivity}`)
  for (const r of results) {
    if (r.lastError !== undefined)
      console.log(`\n${r.shape} N=${r.n}: ${r.failed} PUT failed, e.g. ${r.lastError}`)
    if (r.ackedRate >= 0.95 * rate) continue
    console.log(
      `\n${r.shape} N=${r.n}: the writer acknowledged ${f(r.ackedRate)} writes/s of the ${rate}/s sent (PUT ack p50 ${f(r.ackP50)} ms): ` +
        'it saturated, so writes queued and were committed and gossiped in larger batches; the latency includes that queue ' +
        'and the per-write CPU and bytes are lower than an unsaturated daemon pays.',
    )
  }
  const rows: string[][] = []
  for (const r of results) {
    if (r.shape === 'relay') continue
    const relay = results.find((x) => x.shape === 'relay' && x.n === r.n)
    if (relay === undefined) continue
    rows.push([
      r.shape,
      String(r.n),
      ratio(r.p50, relay.p50),
      ratio(r.p99, relay.p99),
      ratio(r.writerCpu, relay.serverCpu),
      r.shape === 'hub' ? ratio(r.serverCpu, relay.serverCpu) : '–',
      ratio(r.readerCpuMean, relay.serverCpu / (r.n - 1)),
    ])
  }
  if (rows.length > 0) {
    table(
      'Ratios to the relay (same N)',
      [
        'shape',
        'N',
        'p50 latency',
        'p99 latency',
        'writer daemon CPU / relay CPU',
        'hub CPU / relay CPU',
        'reader daemon CPU / (relay CPU / subscribers)',
      ],
      rows,
    )
  }
}

function printThroughput(results: ThroughputResult[]): void {
  if (results.length === 0) return
  const relay = results.find((r) => r.shape === 'relay')
  table(
    `Throughput: ${formatNumber(results[0].writes)} PUTs, ${THROUGHPUT_IN_FLIGHT} in flight`,
    [
      'shape',
      'N',
      'all acknowledged (s)',
      'PUT/s',
      'all seen by every reader (s)',
      'seen by all',
      'failed',
      'time ratio to relay (seen)',
    ],
    results.map((r) => [
      r.shape,
      String(r.n),
      f(r.ackedS, 2),
      f(r.writes / r.ackedS),
      f(r.seenS, 2),
      `${r.seenByAll}/${r.writes}`,
      String(r.failed),
      relay === undefined ? '–' : ratio(r.seenS, relay.seenS),
    ]),
  )
}

function printJoins(joins: JoinResult[], n: number): void {
  if (joins.length === 0) return
  table(
    `Catch-up, mesh N=${n}: until the peer's namespace digest equals daemon 0's`,
    [
      'case',
      'keys held by daemon 0',
      'from spawn (s)',
      'from ready (s)',
      'keys missing',
      'libp2p bytes received',
      'bytes / missing key',
    ],
    joins.map((j) => [
      j.name,
      formatNumber(j.keys),
      f(j.fromSpawnS, 2),
      f(j.fromReadyS, 2),
      formatNumber(j.missing),
      f(j.bytesReceived),
      f(j.bytesReceived / j.missing, 1),
    ]),
  )
}

interface Results {
  latency: LatencyResult[]
  throughput: ThroughputResult[]
  joins: JoinResult[]
  getMs: number
}

/** One cluster of one shape and size: latency phase, then (at the throughput N) the longer phases. */
async function runShape(shape: Shape, n: number, options: Options, results: Results): Promise<void> {
  const cluster = await startCluster(shape, n, options)
  const writer = new Writer(seededRandom(options.seed * 1000 + n))
  const query = shape !== 'relay' && options.watchFormat === 'compact' ? '?format=compact' : ''
  const readers = cluster.readers.map((r) => new WatchReader(r.name, r.url, query))
  try {
    await Promise.all(readers.map((r) => r.open()))
    await warmUp(cluster, writer, readers, options)
    results.latency.push(await measureLatency(cluster, writer, readers, options))
    if (n !== options.throughputN || options.latencyOnly) return
    results.throughput.push(await measureThroughput(cluster, writer, readers, options))
    if (shape !== 'mesh') return
    results.getMs = measureGet(cluster.daemons[0], 'e2e-0')
    for (const reader of readers) reader.close()
    results.joins = await measureJoins(cluster, writer, options)
  } finally {
    for (const reader of readers) reader.close()
    writer.close()
    await cluster.stop()
  }
}

// ---- main ---------------------------------------------------------------------------------------------

export async function main(argv: string[] = []): Promise<void> {
  let options: Options
  try {
    options = parseOptions(argv)
  } catch (error) {
    console.error(`e2e: ${(error as Error).message}`)
    process.exit(2)
  }
  installCleanup()
  const watchdog = installWatchdog('e2e', options.budgetMs)
  printMethod(options)
  const results: Results = { latency: [], throughput: [], joins: [], getMs: Number.NaN }
  const failures: string[] = []
  try {
    if (!options.latencyOnly || options.built) build(options.root)
    const start: StartResult = options.latencyOnly
      ? { cold: NO_START, warm: NO_START, bare: NO_START }
      : await measureStart(options.root)
    if (options.startOnly) {
      printStart(start, options.root)
      console.log(`\nMachine: ${loadLine()} at the end.`)
      return
    }
    for (const n of options.ns) {
      for (const shape of options.shapes) {
        console.error(`e2e: ${shape} N=${n}…`)
        try {
          await runShape(shape, n, options, results)
        } catch (error) {
          // One shape failing (say, N=16 not connecting on a loaded machine) still reports the others.
          console.error(`e2e: ${shape} N=${n} failed: ${(error as Error).message}`)
          failures.push(`${shape} N=${n}: ${(error as Error).message.split('\n')[0]}`)
          process.exitCode = 1
          killAllNow()
        }
      }
    }
    const { latency, throughput, joins, getMs } = results
    printLatency(latency, options.rate)
    printThroughput(throughput)
    printJoins(joins, options.throughputN)
    printStart(start, options.root)
    table(
      'The CLI',
      ['measure', '', 'value'],
      [[`\`node dist/cli/main.js get e2e-0\` wall time (ms, median of ${GET_RUNS})`, '', f(getMs)]],
    )
    for (const failure of failures) console.log(`\nFAILED: ${failure}`)
    console.log(`\nMachine: ${loadLine()} at the end.`)
  } finally {
    clearTimeout(watchdog)
    killAllNow()
  }
}

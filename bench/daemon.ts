/**
 * Daemon benchmarks: the HTTP API of a real `hearsay up` process on loopback, driven by autocannon.
 *
 * - GET throughput and p99 of one key, against a bare node:http server (also its own process)
 *   answering a constant body of the same size with the same Content-Type: the cost of hearsay's
 *   routing, read and headers over the least a Node server can do.
 * - PUT throughput with durability (synchronous=FULL: every 200 is fsynced) from 64 connections.
 * - Start to ready (spawn → the ready line) with 100k keys in the store, and RSS idle and at 100k.
 *
 * autocannon runs in this process; the server under test in another, so each gets a core of two.
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Replica } from '../src/replica/replica.ts'
import { openSqliteStore } from '../src/store/sqlite.ts'
import { startDaemon as launchDaemon } from '../test/helpers/daemon.ts'
import { formatNumber, now, printTable, type Row } from './harness.ts'

const DURATION_S = 5
const WARMUP_S = 1
const GET_CONNECTIONS = 32
const PUT_CONNECTIONS = 64
const KEYS = 100_000
const START_RUNS = 3
const GET_RUNS = 3
const GET_RUN_S = 3

interface AutocannonResult {
  requests: { average: number; total: number }
  latency: { p50: number; p99: number; average: number }
  non2xx: number
  errors: number
}
type Autocannon = (options: Record<string, unknown>) => Promise<AutocannonResult>
// autocannon ships no types; this is the part of its API used here.
const autocannon = createRequire(import.meta.url)('autocannon') as Autocannon

interface Daemon {
  url: string
  pid: number
  child: ChildProcess
  readyMs: number
}

/** `hearsay up` in its own process (the tests' launcher), timed from spawn to its ready line. */
async function startDaemon(home: string): Promise<Daemon> {
  const started = now()
  const daemon = await launchDaemon({ home, args: ['--log-level', 'warn'] })
  return { url: daemon.url, pid: daemon.pid, child: daemon.child, readyMs: now() - started }
}

function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve()
  return new Promise((resolve) => {
    child.once('exit', () => resolve())
    child.kill('SIGTERM')
  })
}

/** A bare node:http server answering `body` with `contentType`: the baseline, in its own process. */
function startBaseline(body: Buffer, contentType: string): Promise<{ url: string; child: ChildProcess }> {
  const source = `
    import { createServer } from 'node:http'
    const body = Buffer.from(${JSON.stringify(body.toString('base64'))}, 'base64')
    const server = createServer((req, res) => {
      res.writeHead(200, { 'content-type': ${JSON.stringify(contentType)}, 'content-length': body.length })
      res.end(body)
    })
    server.listen(0, '127.0.0.1', () => console.log(server.address().port))
  `
  const child = spawn(process.execPath, ['--input-type=module', '-e', source], {
    stdio: ['ignore', 'pipe', 'inherit'],
  })
  return new Promise((resolve) => {
    child
      .stdout!.setEncoding('utf8')
      .once('data', (port: string) => resolve({ url: `http://127.0.0.1:${port.trim()}`, child }))
  })
}

async function load(options: Record<string, unknown>): Promise<AutocannonResult> {
  await autocannon({ ...options, duration: WARMUP_S })
  return measure({ ...options, duration: DURATION_S })
}

/** One autocannon run that must see only 2xx answers. */
async function measure(options: Record<string, unknown>): Promise<AutocannonResult> {
  const result = await autocannon(options)
  if (result.non2xx > 0 || result.errors > 0) {
    throw new Error(
      `${result.non2xx} non-2xx answers and ${result.errors} errors from ${String(options.url)}`,
    )
  }
  return result
}

async function rssMiB(url: string): Promise<number> {
  const status = (await (await fetch(`${url}/v1/status`)).json()) as { process: { rssBytes: number } }
  return status.process.rssBytes / 1024 / 1024
}

export async function runDaemon(): Promise<Row[]> {
  const rows: Row[] = []
  const home = mkdtempSync(join(tmpdir(), 'hearsay-bench-daemon-'))
  const fullHome = mkdtempSync(join(tmpdir(), 'hearsay-bench-daemon-100k-'))
  let daemon: Daemon | undefined
  try {
    daemon = await startDaemon(home)
    const idleRss = await rssMiB(daemon.url)

    // 1. GET of one key vs the bare server answering the same bytes.
    const value = Buffer.from(
      JSON.stringify({ celsius: 21.5, humidity: 48, device: 'greenhouse-1', seq: 123456 }),
    )
    const key = `${daemon.url}/v1/ns/bench/kv/sensors/greenhouse-1`
    await fetch(key, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: value })
    const baseline = await startBaseline(value, 'application/json')
    // Alternating runs, medians: a machine shared with other work drifts, and both sides see the drift.
    const bare: AutocannonResult[] = []
    const ours: AutocannonResult[] = []
    try {
      await autocannon({ url: baseline.url, connections: GET_CONNECTIONS, duration: WARMUP_S })
      await autocannon({ url: key, connections: GET_CONNECTIONS, duration: WARMUP_S })
      for (let run = 0; run < GET_RUNS; run++) {
        bare.push(await measure({ url: baseline.url, connections: GET_CONNECTIONS, duration: GET_RUN_S }))
        ours.push(await measure({ url: key, connections: GET_CONNECTIONS, duration: GET_RUN_S }))
      }
    } finally {
      await stop(baseline.child)
    }
    const bareRate = median(bare.map((r) => r.requests.average))
    const ourRate = median(ours.map((r) => r.requests.average))
    const bareP99 = median(bare.map((r) => r.latency.p99))
    const ourP99 = median(ours.map((r) => r.latency.p99))
    const ratio = ourRate / bareRate
    rows.push({
      name: `GET one key, ${value.length} B JSON, ${GET_CONNECTIONS} connections, median of ${GET_RUNS} (req/s)`,
      hearsay: formatNumber(ourRate),
      baseline: formatNumber(bareRate),
      ratio: ratio.toFixed(2),
      goal: '≥ 0.6',
      met: ratio >= 0.6,
    })
    rows.push({
      // autocannon records whole milliseconds: "< 1" is all it can say of a faster answer.
      name: 'GET p99 latency (ms)',
      hearsay: ourP99 < 1 ? '< 1' : formatNumber(ourP99),
      baseline: bareP99 < 1 ? '< 1' : formatNumber(bareP99),
      ratio: bareP99 >= 1 ? (ourP99 / bareP99).toFixed(2) : '',
      goal: '',
      met: undefined,
    })

    // 2. Durable PUTs, each to a new key, from 64 connections.
    let next = 0
    const put = await load({
      url: daemon.url,
      connections: PUT_CONNECTIONS,
      requests: [
        {
          method: 'PUT',
          headers: { 'content-type': 'application/json' },
          body: value,
          setupRequest: (request: Record<string, unknown>) => ({
            ...request,
            path: `/v1/ns/bench/kv/put/${next++}`,
          }),
        },
      ],
    })
    rows.push({
      name: `PUT new keys, durable (synchronous=FULL), ${PUT_CONNECTIONS} connections (req/s)`,
      hearsay: formatNumber(put.requests.average),
      baseline: '',
      ratio: '',
      goal: '≥ 5,000/s',
      met: put.requests.average >= 5_000,
    })
    rows.push({
      name: 'PUT p50 / p99 latency (ms)',
      hearsay: `${formatNumber(put.latency.p50, 1)} / ${formatNumber(put.latency.p99, 1)}`,
      baseline: '',
      ratio: '',
      goal: '',
      met: undefined,
    })
    await stop(daemon.child)
    daemon = undefined

    // 3. A store of exactly 100k keys (written directly, as a daemon would have), then time starts.
    const written = await fill(fullHome)
    const starts: number[] = []
    let fullRss = 0
    for (let run = 0; run < START_RUNS; run++) {
      daemon = await startDaemon(fullHome)
      starts.push(daemon.readyMs)
      if (run === START_RUNS - 1) fullRss = await rssMiB(daemon.url)
      await stop(daemon.child)
      daemon = undefined
    }
    starts.sort((a, b) => a - b)
    const startMs = starts[Math.floor(starts.length / 2)]
    rows.push({
      name: `start to ready with ${formatNumber(written)} keys, median of ${START_RUNS} (ms)`,
      hearsay: formatNumber(startMs),
      baseline: '',
      ratio: '',
      goal: '≤ 1,500 ms',
      met: startMs <= 1_500,
    })
    rows.push({
      name: 'RSS idle, empty store (MiB)',
      hearsay: formatNumber(idleRss),
      baseline: '',
      ratio: '',
      goal: '',
      met: undefined,
    })
    rows.push({
      name: `RSS after start with ${formatNumber(written)} keys (MiB)`,
      hearsay: formatNumber(fullRss),
      baseline: '',
      ratio: '',
      goal: '',
      met: undefined,
    })
  } finally {
    if (daemon !== undefined) await stop(daemon.child)
    rmSync(home, { recursive: true, force: true })
    rmSync(fullHome, { recursive: true, force: true })
  }
  return rows
}

/** Writes KEYS keys into the `bench` namespace of a data dir's store, through a Replica. */
async function fill(home: string): Promise<number> {
  const store = openSqliteStore({ path: join(home, 'hearsay.db') })
  try {
    const replica = Replica.open({ namespace: 'bench', store })
    const present = countKeys(replica)
    const value = new TextEncoder().encode('{"celsius":21.5,"humidity":48}')
    for (let i = present; i < KEYS; i += 1_000) {
      const batch: Promise<unknown>[] = []
      for (let j = i; j < Math.min(i + 1_000, KEYS); j++)
        batch.push(replica.put(`fill/${j}`, value, 'application/json'))
      await Promise.all(batch)
    }
    const total = countKeys(replica)
    await replica.close()
    return total
  } finally {
    store.close()
  }
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.floor(sorted.length / 2)]
}

function countKeys(replica: Replica): number {
  let count = 0
  let cursor: string | undefined
  for (;;) {
    const page = replica.list('', { cursor, limit: 10_000 })
    count += page.items.length
    if (page.cursor === undefined) return count
    cursor = page.cursor
  }
}

export async function main(): Promise<void> {
  console.log(`## Daemon HTTP API (Node ${process.version}, ${new Date().toISOString()})`)
  console.log(
    `\nautocannon in this process (GET: ${GET_RUNS} alternating runs of ${GET_RUN_S} s per server; PUT: ${DURATION_S} s), ` +
      `each after a ${WARMUP_S} s warm-up; servers in their own processes.`,
  )
  printTable('Local API on loopback', 'bare node:http', await runDaemon())
}

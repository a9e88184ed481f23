/**
 * `node bench/join-catchup.ts [--n 4] [--keys 10000] [--cpu-prof <dir>]`: the late joiner, alone.
 * N mesh daemons (the e2e benchmark's way: real CLI, loopback, private mesh); the last one stops,
 * `--keys` keys are PUT to daemon 0, the stopped one restarts (it missed them all), then a fresh
 * empty peer joins. Each is timed from spawn and from its ready line until its namespace digest
 * equals daemon 0's, with the libp2p bytes it received (`ss`) and the anti-entropy payload it
 * received (its own /metrics): the latter over the keys shows whether catch-up came once.
 * With --cpu-prof, the joiners run under `node --cpu-prof` and leave their profiles in <dir>.
 */
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { Writer } from './e2e-clients.ts'
import {
  cpuMs,
  type Daemon,
  installCleanup,
  installWatchdog,
  killAllNow,
  p2pBytesBetween,
  pause,
  type SocketBytes,
  sampleSockets,
  startDaemon,
  tempDir,
  writeSwarmKey,
} from './e2e-procs.ts'
import { seededRandom } from './harness.ts'

const { values } = parseArgs({
  options: {
    n: { type: 'string', default: '4' },
    keys: { type: 'string', default: '10000' },
    'cpu-prof': { type: 'string' },
  },
})
const n = Number(values.n)
const keys = Number(values.keys)
if (!Number.isInteger(n) || n < 2 || n > 16) throw new Error('--n must be within 2..16')
if (!Number.isInteger(keys) || keys < 1 || keys > 200_000) throw new Error('--keys must be within 1..200000')

interface Namespace {
  digest: string
  entries: number
}

async function namespaceOf(url: string): Promise<Namespace> {
  const response = await fetch(`${url}/v1/ns/default`, { signal: AbortSignal.timeout(5000) })
  if (response.status !== 200) {
    await response.arrayBuffer()
    return { digest: '', entries: 0 }
  }
  return (await response.json()) as Namespace
}

/** Anti-entropy payload bytes a daemon received, from its own metrics. */
async function syncBytesReceived(url: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`, { signal: AbortSignal.timeout(5000) })).text()
  const match = /hearsay_protocol_bytes_total\{protocol="sync",direction="received"\} (\d+)/.exec(text)
  return match === null ? Number.NaN : Number(match[1])
}

async function connected(url: string): Promise<number> {
  const body = (await (await fetch(`${url}/v1/peers`, { signal: AbortSignal.timeout(5000) })).json()) as {
    peers: Array<{ connected: boolean }>
  }
  return body.peers.filter((p) => p.connected).length
}

interface Row {
  name: string
  missing: number
  fromSpawnMs: number
  fromReadyMs: number
  wireBytes: number
  syncBytes: number
  /** CPU the joiner spent from its ready line to convergence (less sensitive to a loaded machine). */
  cpuAfterReadyMs: number
}

async function timeJoin(
  name: string,
  home: string,
  source: Daemon,
  swarmKey: string,
  ports: Set<number>,
  missing: number,
): Promise<{ row: Row; daemon: Daemon }> {
  const want = await namespaceOf(source.url)
  const profile = values['cpu-prof']
  const savedOptions = process.env.NODE_OPTIONS
  if (profile !== undefined) process.env.NODE_OPTIONS = `--cpu-prof --cpu-prof-dir=${profile}`
  const daemon = await startDaemon({
    name,
    command: 'up',
    home,
    swarmKey,
    args: ['--bootstrap', source.address],
  }).finally(() => {
    if (savedOptions === undefined) delete process.env.NODE_OPTIONS
    else process.env.NODE_OPTIONS = savedOptions
  })
  ports.add(daemon.p2pPort)
  const cpuAtReady = cpuMs(daemon.pid)
  let cpuAtConverged = Number.NaN
  const deadline = performance.now() + 120_000
  let converged = Number.NaN
  while (performance.now() < deadline) {
    const have = await namespaceOf(daemon.url).catch(() => ({ digest: '', entries: 0 }))
    if (have.digest === want.digest) {
      converged = performance.now()
      cpuAtConverged = cpuMs(daemon.pid)
      break
    }
    await pause(10)
  }
  if (Number.isNaN(converged)) console.error(`warning: ${name} did not converge within 120 s`)
  // Let sessions that started after convergence (the other neighbours) finish: their bytes count too.
  await pause(1500)
  const wire = p2pBytesBetween(new Map<string, SocketBytes>(), sampleSockets(), daemon.pid, ports)
  return {
    daemon,
    row: {
      name,
      missing,
      fromSpawnMs: converged - daemon.spawnedAt,
      fromReadyMs: converged - daemon.readyAt,
      wireBytes: wire.received,
      syncBytes: await syncBytesReceived(daemon.url),
      cpuAfterReadyMs: cpuAtConverged - cpuAtReady,
    },
  }
}

async function main(): Promise<void> {
  installCleanup()
  const watchdog = installWatchdog('join-catchup', 10 * 60_000)
  const dir = tempDir('hearsay-join-')
  const swarmKey = writeSwarmKey(dir)
  const home = (i: number | string) => join(dir, `d${i}`)
  const first = await startDaemon({ name: 'd0', command: 'up', home: home(0), swarmKey })
  const daemons: Daemon[] = [first]
  for (let i = 1; i < n; i++) {
    daemons.push(
      await startDaemon({
        name: `d${i}`,
        command: 'up',
        home: home(i),
        swarmKey,
        args: ['--bootstrap', first.address],
      }),
    )
  }
  const ports = new Set(daemons.map((d) => d.p2pPort))
  const connectDeadline = Date.now() + 60_000
  while (Date.now() < connectDeadline) {
    const counts = await Promise.all(daemons.map((d) => connected(d.url).catch(() => 0)))
    if (counts.every((c) => c >= n - 1)) break
    await pause(100)
  }
  const writer = new Writer(seededRandom(1))
  // One key before the victim leaves, so it restarts with a store and a context of its own.
  await writer.saturate(first.url, 1, 1)
  await pause(500)
  const victim = daemons.pop()!
  await victim.stop()
  const putStart = performance.now()
  await writer.saturate(first.url, keys, 32)
  console.error(`${keys} PUTs in ${((performance.now() - putStart) / 1000).toFixed(1)} s`)
  // Every remaining daemon holds them before anyone joins: a joiner could take them from any.
  const target = await namespaceOf(first.url)
  const syncedDeadline = Date.now() + 60_000
  while (Date.now() < syncedDeadline) {
    const all = await Promise.all(daemons.map((d) => namespaceOf(d.url)))
    if (all.every((ns) => ns.digest === target.digest)) break
    await pause(100)
  }
  const rows: Row[] = []
  const restarted = await timeJoin(`restarted (missed ${keys})`, victim.home, first, swarmKey, ports, keys)
  rows.push(restarted.row)
  daemons.push(restarted.daemon)
  const fresh = await timeJoin('fresh empty peer', home('fresh'), first, swarmKey, ports, target.entries)
  rows.push(fresh.row)
  daemons.push(fresh.daemon)
  writer.close()
  console.log(`\n### Late joiner: mesh of ${n}, ${keys} keys written while one peer was away\n`)
  console.log(
    '| case | keys missing | from spawn (ms) | from ready (ms) | CPU ready → converged (ms) | libp2p bytes received | sync payload received | sync B / missing key |',
  )
  console.log('|---|---:|---:|---:|---:|---:|---:|---:|')
  for (const r of rows)
    console.log(
      `| ${r.name} | ${r.missing} | ${r.fromSpawnMs.toFixed(0)} | ${r.fromReadyMs.toFixed(0)} | ${r.cpuAfterReadyMs.toFixed(0)} | ${r.wireBytes} | ${r.syncBytes} | ${(r.syncBytes / r.missing).toFixed(1)} |`,
    )
  await Promise.allSettled(daemons.map((d) => d.stop()))
  clearTimeout(watchdog)
  killAllNow()
}

await main()

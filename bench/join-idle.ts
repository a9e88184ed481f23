/**
 * `node bench/join-idle.ts [--n 16] [--window-s 30] [--cpu-prof <dir>]`: what N idle mesh daemons cost.
 * Starts N `hearsay up` processes (the e2e benchmark's way: real CLI, loopback, private mesh,
 * bootstrapped to daemon 0, finding the others by peer exchange up to each one's neighbour target),
 * lets them settle, then reads each
 * one's CPU from /proc over a window with no writes at all. Prints CPU per daemon (ms per second and
 * share of one core), the total in cores, and RSS. With --cpu-prof, daemon 1 runs under
 * `--cpu-prof` so the profile shows where its idle time goes.
 */
import { parseArgs } from 'node:util'
import { DEFAULT_TARGET_CONNECTIONS } from '../src/mesh/constants.ts'
import {
  cpuMs,
  type Daemon,
  installCleanup,
  installWatchdog,
  killAllNow,
  memoryMiB,
  pause,
  startDaemon,
  tempDir,
  writeSwarmKey,
} from './e2e-procs.ts'

const { values } = parseArgs({
  options: {
    n: { type: 'string', default: '16' },
    'window-s': { type: 'string', default: '30' },
    'settle-s': { type: 'string', default: '15' },
    'cpu-prof': { type: 'string' },
  },
})
const n = Number(values.n)
const windowS = Number(values['window-s'])
const settleS = Number(values['settle-s'])
if (!Number.isInteger(n) || n < 2 || n > 32) throw new Error('--n must be within 2..32')
if (!(windowS > 0 && windowS <= 300)) throw new Error('--window-s must be within (0, 300]')

async function connectedPeers(url: string): Promise<number> {
  const response = await fetch(`${url}/v1/peers`, { signal: AbortSignal.timeout(5000) })
  const body = (await response.json()) as { peers: Array<{ connected: boolean }> }
  return body.peers.filter((peer) => peer.connected).length
}

async function main(): Promise<void> {
  installCleanup()
  const watchdog = installWatchdog('join-idle', 10 * 60_000)
  const dir = tempDir('hearsay-idle-')
  const swarmKey = writeSwarmKey(dir)
  const first = await startDaemon({ name: 'd0', command: 'up', home: `${dir}/d0`, swarmKey })
  const daemons: Daemon[] = [first]
  const profile = values['cpu-prof']
  if (profile !== undefined) {
    // Only daemon 1 (NODE_OPTIONS is read at its spawn, then restored).
    const saved = process.env.NODE_OPTIONS
    process.env.NODE_OPTIONS = `--cpu-prof --cpu-prof-dir=${profile}`
    daemons.push(
      await startDaemon({
        name: 'd1',
        command: 'up',
        home: `${dir}/d1`,
        swarmKey,
        args: ['--bootstrap', first.address],
      }).finally(() => {
        if (saved === undefined) delete process.env.NODE_OPTIONS
        else process.env.NODE_OPTIONS = saved
      }),
    )
  }
  // Two at a time: sixteen cold starts at once on two cores would time out.
  for (let i = daemons.length; i < n; i += 2) {
    const batch = [i, i + 1].filter((j) => j < n)
    daemons.push(
      ...(await Promise.all(
        batch.map((j) =>
          startDaemon({
            name: `d${j}`,
            command: 'up',
            home: `${dir}/d${j}`,
            swarmKey,
            args: ['--bootstrap', first.address],
          }),
        ),
      )),
    )
  }
  const deadline = Date.now() + 60_000 + 2000 * n
  let counts: number[] = []
  for (;;) {
    counts = await Promise.all(daemons.map((d) => connectedPeers(d.url).catch(() => 0)))
    // Each daemon dials until it has its target of neighbours (or everyone, in a smaller mesh).
    if (
      counts.every((count) => count >= Math.min(n - 1, DEFAULT_TARGET_CONNECTIONS)) ||
      Date.now() > deadline
    )
      break
    await pause(200)
  }
  console.error(`connected: ${counts.join(',')}; settling ${settleS} s`)
  await pause(settleS * 1000)
  const before = daemons.map((d) => cpuMs(d.pid))
  const started = performance.now()
  await pause(windowS * 1000)
  const elapsedS = (performance.now() - started) / 1000
  const after = daemons.map((d) => cpuMs(d.pid))
  const neighboursAtEnd = await Promise.all(daemons.map((d) => connectedPeers(d.url).catch(() => 0)))
  const perSecond = daemons.map((_, i) => (after[i] - before[i]) / elapsedS)
  const rss = daemons.map((d) => memoryMiB(d.pid, 'VmRSS'))
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length
  const total = perSecond.reduce((a, b) => a + b, 0)
  console.log(
    `\n### Idle cost: ${n} mesh daemons, neighbours ${counts.join(',')} at start, ${neighboursAtEnd.join(',')} at end, ${elapsedS.toFixed(1)} s window\n`,
  )
  console.log('| measure | value |')
  console.log('|---|---:|')
  console.log(`| CPU per daemon, mean (ms/s) | ${mean(perSecond).toFixed(1)} |`)
  console.log(`| CPU per daemon, max (ms/s) | ${Math.max(...perSecond).toFixed(1)} |`)
  console.log(`| CPU of all daemons (cores) | ${(total / 1000).toFixed(3)} |`)
  console.log(`| RSS per daemon, mean (MiB) | ${mean(rss).toFixed(0)} |`)
  console.log(`| RSS per daemon, max (MiB) | ${Math.max(...rss).toFixed(0)} |`)
  await Promise.allSettled(daemons.map((d) => d.stop()))
  clearTimeout(watchdog)
  killAllNow()
}

await main()

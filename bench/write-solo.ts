/**
 * The write path alone: one daemon (the real CLI, no peers), PUTs with 16 in flight over keep-alive
 * HTTP, and the relay baseline in the same run. Prints the time, PUTs/s and the daemon's CPU ms per
 * write (from /proc): HTTP in, Replica write, group commit, ack — without gossip or watchers.
 *
 *   npx node bench/write-solo.ts [--writes 3000] [--in-flight 16] [--profile DIR]
 */
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { Writer } from './e2e-clients.ts'
import { cpuMs, installCleanup, startDaemon, startRelay, tempDir, writeSwarmKey } from './e2e-procs.ts'
import { seededRandom } from './harness.ts'

const { values } = parseArgs({
  options: {
    writes: { type: 'string', default: '3000' },
    'in-flight': { type: 'string', default: '16' },
    /** Run the daemon under `node --cpu-prof`, writing its profile here. */
    profile: { type: 'string' },
  },
})
const writes = Number(values.writes)
const inFlight = Number(values['in-flight'])
installCleanup()

async function measure(url: string, pid: number): Promise<{ seconds: number; cpu: number; failed: number }> {
  const writer = new Writer(seededRandom(1))
  await writer.saturate(url, 300, inFlight)
  const cpuBefore = cpuMs(pid)
  const started = performance.now()
  await writer.saturate(url, writes, inFlight)
  const seconds = (performance.now() - started) / 1000
  const cpu = (cpuMs(pid) - cpuBefore) / writes
  writer.close()
  return { seconds, cpu, failed: writer.failed }
}

const dir = tempDir('hearsay-write-solo-')
if (values.profile !== undefined) process.env.NODE_OPTIONS = `--cpu-prof --cpu-prof-dir=${values.profile}`
const daemon = await startDaemon({
  name: 'solo',
  command: 'up',
  home: join(dir, 'd'),
  swarmKey: writeSwarmKey(dir),
})
delete process.env.NODE_OPTIONS
const solo = await measure(daemon.url, daemon.pid)
await daemon.stop()
const relay = await startRelay()
const base = await measure(relay.url, relay.pid)
await relay.stop()

const f = (v: number, d = 2) => v.toFixed(d)
console.log(`\n${writes} PUTs, ${inFlight} in flight, one daemon without peers\n`)
console.log('| target | time (s) | PUT/s | CPU ms/write | failed |\n|---|---:|---:|---:|---:|')
for (const [name, r] of [
  ['daemon', solo],
  ['relay', base],
] as const)
  console.log(`| ${name} | ${f(r.seconds)} | ${f(writes / r.seconds, 0)} | ${f(r.cpu, 3)} | ${r.failed} |`)
console.log(`\ndaemon / relay time: ${f(solo.seconds / base.seconds, 1)}×`)
process.exit(0)

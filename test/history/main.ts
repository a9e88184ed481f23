/**
 * `npm run check:history -- --duration S --seed N [--daemons D] [--sessions C]`: a long run of the
 * history checker against real daemons; prints the figures and every violation, exits 1 on any.
 */
import { writeFileSync } from 'node:fs'
import { parseArgs } from 'node:util'
import { removeHomes, stopAllDaemons } from '../helpers/daemon.ts'
import { checkHistory } from './checker.ts'
import { runHistory } from './harness.ts'

const { values } = parseArgs({
  options: {
    duration: { type: 'string', default: '60' },
    seed: { type: 'string', default: String(Date.now() % 100_000) },
    daemons: { type: 'string', default: '3' },
    sessions: { type: 'string', default: '2' },
    /** Writes the recorded history as JSON, to study a violation. */
    dump: { type: 'string' },
  },
})
const seed = Number(values.seed)
const durationMs = Number(values.duration) * 1000
if (!Number.isSafeInteger(seed) || !(durationMs > 0)) {
  console.error('usage: npm run check:history -- --duration <seconds> --seed <integer>')
  process.exit(2)
}
const stop = () => {
  void stopAllDaemons().finally(() => {
    removeHomes()
    process.exit(130)
  })
}
process.once('SIGINT', stop)
process.once('SIGTERM', stop)

let exitCode = 0
try {
  console.log(
    `history check: seed ${seed}, ${values.duration} s, ${values.daemons} daemons × ${values.sessions} sessions`,
  )
  const { history, figures } = await runHistory({
    seed,
    durationMs,
    daemons: Number(values.daemons),
    sessionsPerDaemon: Number(values.sessions),
    log: (line) => console.log(`  ${line}`),
  })
  // The daemons are not needed for the check, which can take a while on a long history.
  await stopAllDaemons()
  removeHomes()
  if (values.dump !== undefined) writeFileSync(values.dump, JSON.stringify(history))
  const checkStarted = performance.now()
  const violations = checkHistory(history)
  const checkMs = Math.round(performance.now() - checkStarted)
  console.log(JSON.stringify({ seed, ...figures, checkMs, violations: violations.length }, null, 2))
  for (const violation of violations) console.log(`✗ ${violation.guarantee}: ${violation.detail}`)
  if (violations.length === 0) console.log(`✓ ${figures.operations} operations checked, no violation`)
  exitCode = violations.length === 0 ? 0 : 1
} catch (error) {
  console.error(`✗ ${(error as Error).stack ?? error}`)
  exitCode = 1
} finally {
  await stopAllDaemons()
  removeHomes()
}
process.exit(exitCode)

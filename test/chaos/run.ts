/**
 * `npm run chaos -- [--duration S] [--seed N] [--peers N] [--converge S] [--keep]`: a seeded chaos
 * run of real daemons in network namespaces (see docs/reliability.md). Prints the fault log, a
 * summary table and every violation; exits 1 on any violation, 2 when the run could not be made.
 */
import { parseArgs } from 'node:util'
import { ChaosUnavailableError, cleanUpAll, runChaos } from './runner.ts'

const { values } = parseArgs({
  options: {
    duration: { type: 'string', default: '60' },
    seed: { type: 'string' },
    peers: { type: 'string', default: '5' },
    converge: { type: 'string', default: '90' },
    keep: { type: 'boolean', default: false },
  },
})

function wholeNumber(name: string, raw: string, min: number): number {
  const value = Number(raw)
  if (!Number.isSafeInteger(value) || value < min) {
    process.stderr.write(`--${name} must be a whole number ≥ ${min}, got ${raw}\n`)
    process.exit(2)
  }
  return value
}

const seed =
  values.seed === undefined ? Math.floor(Math.random() * 2 ** 31) : wholeNumber('seed', values.seed, 0)
const onSignal = (signal: NodeJS.Signals) => {
  process.stderr.write(`chaos: ${signal}: tearing down (seed ${seed})\n`)
  void cleanUpAll().finally(() => process.exit(130))
}
process.on('SIGINT', onSignal)
process.on('SIGTERM', onSignal)

try {
  const result = await runChaos({
    seed,
    durationS: wholeNumber('duration', values.duration!, 5),
    peers: wholeNumber('peers', values.peers!, 2),
    convergeTimeoutS: wholeNumber('converge', values.converge!, 1),
    keep: values.keep,
  })
  process.stdout.write(`${result.summary}\n`)
  process.exit(result.violations.length === 0 ? 0 : 1)
} catch (error) {
  if (error instanceof ChaosUnavailableError) {
    process.stderr.write(`chaos: cannot run here: ${error.message}\n`)
    process.exit(2)
  }
  process.stderr.write(`chaos: the run failed (seed ${seed}): ${(error as Error).stack}\n`)
  process.exit(2)
}

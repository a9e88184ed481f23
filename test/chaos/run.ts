/**
 * `npm run chaos -- [--duration S] [--seed N] [--peers N] [--converge S] [--keep] [--json]`: a seeded
 * chaos run of real daemons in network namespaces (see docs/reliability.md). Prints the fault log, a
 * summary table and every violation (--json: then the result as one JSON line); exits 1 on any
 * violation, 2 when the run could not be made. Not root, it re-runs itself in a user namespace.
 */
import { spawn } from 'node:child_process'
import { parseArgs } from 'node:util'
import { IN_USER_NAMESPACE, userNamespacePrefix, whyNoNamespaces } from './netns.ts'
import { ChaosUnavailableError, cleanUpAll, runChaos } from './runner.ts'

const { values } = parseArgs({
  options: {
    duration: { type: 'string', default: '60' },
    seed: { type: 'string' },
    peers: { type: 'string', default: '5' },
    converge: { type: 'string', default: '90' },
    keep: { type: 'boolean', default: false },
    json: { type: 'boolean', default: false },
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

// Not root: the same run inside a user namespace, where it is root of its own namespaces.
const why = whyNoNamespaces()
if (why !== undefined) {
  const prefix = userNamespacePrefix()
  if (prefix !== undefined) {
    process.stderr.write(`chaos: ${why}: running inside a user namespace (unshare)\n`)
    const args = process.argv.slice(2)
    if (values.seed === undefined) args.push(`--seed=${seed}`)
    const child = spawn(
      prefix[0]!,
      [...prefix.slice(1), process.execPath, '--no-warnings', process.argv[1]!, ...args],
      { stdio: 'inherit', env: { ...process.env, [IN_USER_NAMESPACE]: '1' } },
    )
    // unshare passes a signal on to the runner inside (--kill-child); the kernel then ends every
    // process of the run's pid namespace, and its network namespaces go with them.
    for (const signal of ['SIGINT', 'SIGTERM'] as const) process.on(signal, () => child.kill(signal))
    child.once('exit', (code) => process.exit(code ?? 2))
    await new Promise(() => {
      // Until the run inside exits.
    })
  }
}
// A reader that went away (`| head`) must not end the run before its teardown.
process.stdout.on('error', () => {})
process.stderr.on('error', () => {})
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
  if (values.json) {
    const { seed: _, summary, violations, figures, runDir } = result
    process.stdout.write(`${JSON.stringify({ seed, summary, violations, figures, runDir })}\n`)
  }
  process.exit(result.violations.length === 0 ? 0 : 1)
} catch (error) {
  if (error instanceof ChaosUnavailableError) {
    process.stderr.write(`chaos: cannot run here: ${error.message}\n`)
    process.exit(2)
  }
  process.stderr.write(`chaos: the run failed (seed ${seed}): ${(error as Error).stack}\n`)
  process.exit(2)
}

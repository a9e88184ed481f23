import { buildCorpus, type Corpus } from './corpus.ts'
import { inputSeed, Rng } from './rng.ts'
import { TARGETS, type Target } from './targets.ts'

/**
 * The fuzz loop shared by `npm run fuzz` and the CI test: inputs round-robin over the targets, each
 * made from (seed, index) alone, until the input count or the time budget runs out. Every thrown
 * error is classified; an untyped one, or one input that runs longer than `slowMs`, is a failure
 * reported with the seed, the index and the input as hex (`--seed S --replay I` makes it again).
 */

export interface FuzzOptions {
  seed: number
  /** Total inputs over all targets. */
  inputs: number
  /** Time budget; the run stops early when it is spent. */
  seconds: number
  /** Only these targets (default all). */
  targets?: readonly string[]
  /** An input slower than this counts as a hang. Default 2,000 ms. */
  slowMs?: number
  /** Stop at the first failure (default false: collect up to 20). */
  stopOnFailure?: boolean
  /** Called every ~50,000 inputs. */
  progress?(report: FuzzReport): void
  /**
   * Cell 0 gets the index of the input being run (Atomics), so a watchdog on another thread can
   * name the input of a run that hangs for good.
   */
  current?: Int32Array
}

export interface TargetStats {
  inputs: number
  /** Inputs that decoded and were consumed without error. */
  accepted: number
  /** Inputs refused with a typed error. */
  refused: number
  /** Refusals by error name and reason (DecodeError reason, SyncProtocolError code, ...). */
  reasons: Record<string, number>
  slowestMs: number
}

export interface FuzzFailure {
  target: string
  seed: number
  index: number
  kind: 'untyped-error' | 'hang'
  error: string
  inputHex: string
}

export interface FuzzReport {
  seed: number
  /** `--target` flags that select the same targets (empty when all ran), for the replay hint. */
  replayFlags: string
  inputs: number
  elapsedMs: number
  targets: Record<string, TargetStats>
  failures: FuzzFailure[]
}

const MAX_FAILURES = 20

export function selectTargets(names?: readonly string[]): Target[] {
  if (names === undefined || names.length === 0) return [...TARGETS]
  const unknown = names.filter((name) => !TARGETS.some((target) => target.name === name))
  if (unknown.length > 0) {
    throw new Error(`unknown target ${unknown.join(', ')}; targets: ${TARGETS.map((t) => t.name).join(', ')}`)
  }
  return TARGETS.filter((target) => names.includes(target.name))
}

/** The target and input of run `index`: the same for the same seed, whatever ran before. */
export function inputAt(seed: number, index: number, targets: readonly Target[], corpus: Corpus) {
  const target = targets[index % targets.length]
  return { target, input: target.generate(new Rng(inputSeed(seed, index)), corpus) }
}

export async function runFuzz(options: FuzzOptions): Promise<FuzzReport> {
  const targets = selectTargets(options.targets)
  const corpus = await buildCorpus(options.seed)
  const slowMs = options.slowMs ?? 2_000
  const replayFlags =
    targets.length === TARGETS.length ? '' : targets.map((target) => ` --target ${target.name}`).join('')
  const report: FuzzReport = {
    seed: options.seed,
    replayFlags,
    inputs: 0,
    elapsedMs: 0,
    targets: {},
    failures: [],
  }
  for (const target of targets) {
    report.targets[target.name] = { inputs: 0, accepted: 0, refused: 0, reasons: {}, slowestMs: 0 }
  }
  const started = performance.now()
  const deadline = started + options.seconds * 1_000
  for (let index = 0; index < options.inputs; index++) {
    // The clock is read every 64 inputs: cheap, and a budget overrun stays small.
    if ((index & 63) === 0 && performance.now() > deadline) break
    if (options.current !== undefined) Atomics.store(options.current, 0, index)
    const { target, input } = inputAt(options.seed, index, targets, corpus)
    const stats = report.targets[target.name]
    const before = performance.now()
    let failure: FuzzFailure | undefined
    try {
      if (await target.run(input, corpus)) stats.accepted++
      else stats.refused++
    } catch (error) {
      if (target.typed(error)) {
        stats.refused++
        const reason = reasonOf(error)
        stats.reasons[reason] = (stats.reasons[reason] ?? 0) + 1
      } else {
        failure = failureOf(target, options.seed, index, 'untyped-error', describe(error), input)
      }
    }
    const took = performance.now() - before
    if (took > stats.slowestMs) stats.slowestMs = took
    if (failure === undefined && took > slowMs) {
      failure = failureOf(target, options.seed, index, 'hang', `took ${took.toFixed(0)} ms`, input)
    }
    stats.inputs++
    report.inputs++
    if (failure !== undefined && report.failures.length < MAX_FAILURES) report.failures.push(failure)
    if (failure !== undefined && (options.stopOnFailure || report.failures.length >= MAX_FAILURES)) break
    if (options.progress !== undefined && index % 50_000 === 49_999) {
      report.elapsedMs = performance.now() - started
      options.progress(report)
    }
  }
  report.elapsedMs = performance.now() - started
  return report
}

function failureOf(
  target: Target,
  seed: number,
  index: number,
  kind: FuzzFailure['kind'],
  error: string,
  input: Uint8Array,
): FuzzFailure {
  return { target: target.name, seed, index, kind, error, inputHex: Buffer.from(input).toString('hex') }
}

function reasonOf(error: unknown): string {
  const named = error as { name?: string; reason?: string; code?: string }
  const detail = named.reason ?? named.code
  return detail === undefined ? String(named.name) : `${named.name}:${detail}`
}

function describe(error: unknown): string {
  if (error instanceof Error) return error.stack ?? `${error.name}: ${error.message}`
  return `non-Error thrown: ${String(error)}`
}

/** A report as the lines a person reads: per target, inputs, accepted, refused, slowest; then failures. */
export function formatReport(report: FuzzReport): string {
  const lines = [
    `seed ${report.seed}: ${report.inputs.toLocaleString('en')} inputs in ${(report.elapsedMs / 1_000).toFixed(1)} s, ` +
      `${report.failures.length} failures`,
  ]
  for (const [name, stats] of Object.entries(report.targets)) {
    lines.push(
      `  ${name.padEnd(14)} ${String(stats.inputs).padStart(9)} inputs  ${String(stats.accepted).padStart(8)} accepted  ` +
        `${String(stats.refused).padStart(8)} refused  slowest ${stats.slowestMs.toFixed(1)} ms`,
    )
  }
  for (const failure of report.failures) {
    lines.push(
      `FAILURE ${failure.kind} in ${failure.target} (seed ${failure.seed}, input ${failure.index}; ` +
        `replay: npm run fuzz -- --seed ${failure.seed}${report.replayFlags} --replay ${failure.index})`,
      `  input: ${failure.inputHex}`,
      `  ${failure.error.split('\n').join('\n  ')}`,
    )
  }
  return lines.join('\n')
}

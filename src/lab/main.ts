import { execFileSync } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { runInProcess } from './in-process.ts'
import { installLabCleanup, onCleanup } from './processes.ts'
import { compareResults, renderReport } from './report.ts'
import { newResults, writeResults } from './results.ts'
import { runProcesses } from './runner.ts'
import {
  checkEnvironment,
  type LabEnvironment,
  readScenarioObject,
  ScenarioError,
  type ScenarioFlags,
  scenarioFromFlags,
} from './scenario.ts'
import type { LabProgress, LabResults } from './types.ts'
import { LAB_USAGE } from './usage.ts'

export { LAB_USAGE }

/**
 * `hearsay lab run <scenario.json> [flags]`, `hearsay lab report <dir>`,
 * `hearsay lab report --compare <dirA> <dirB>`: the lab's entry, behind the CLI command
 * (src/cli/commands-lab.ts) and `npm run lab`.
 */

export interface LabIo {
  stdout: NodeJS.WritableStream & { isTTY?: boolean }
  stderr: NodeJS.WritableStream & { isTTY?: boolean }
}

/** A failure of the lab command: one line, an exit code. */
export class LabError extends Error {
  override readonly name = 'LabError'
  readonly exitCode: number
  constructor(message: string, exitCode = 2) {
    super(message)
    this.exitCode = exitCode
  }
}

export function labEnvironment(): LabEnvironment {
  let hasIp = false
  try {
    execFileSync('ip', ['-V'], { stdio: 'ignore', timeout: 5000 })
    hasIp = true
  } catch {
    hasIp = false
  }
  return { isRoot: typeof process.getuid === 'function' && process.getuid() === 0, hasIp }
}

/**
 * One live line: on a terminal it is rewritten in place (events and warnings stay above it); elsewhere
 * a line at most every 3 s, plus every event line.
 */
export function progressLine(stream: LabIo['stderr'], intervalMs = 3000): LabProgress & { done(): void } {
  let last = 0
  let shown = false
  const isStatus = (line: string) => /\s\d+(\.\d)?\/\d+ s\s/.test(line)
  const progress = ((line: string) => {
    if (stream.isTTY === true) {
      const width = (stream as { columns?: number }).columns ?? 120
      if (isStatus(line)) {
        stream.write(`\r\x1b[K${line.slice(0, width - 1)}`)
        shown = true
      } else {
        stream.write(`${shown ? '\r\x1b[K' : ''}${line}\n`)
        shown = false
      }
      return
    }
    if (isStatus(line)) {
      if (Date.now() - last < intervalMs) return
      last = Date.now()
    }
    stream.write(`${line}\n`)
  }) as LabProgress & { done(): void }
  progress.done = () => {
    if (shown) stream.write('\n')
    shown = false
  }
  return progress
}

export async function labRun(
  positionals: string[],
  flags: ScenarioFlags & { json?: boolean },
  io: LabIo,
): Promise<number> {
  const [file, extra] = positionals
  if (extra !== undefined)
    throw new LabError(`lab run takes one scenario file, got also ${JSON.stringify(extra)}`)
  const { scenario, out } = scenarioFromFlags(flags, file === undefined ? {} : readScenarioObject(file))
  const env = labEnvironment()
  checkEnvironment(scenario, env)
  const outDir = resolve(
    out ?? join('lab-results', `${scenario.name}-${new Date().toISOString().replace(/[:.]/g, '-')}`),
  )
  installLabCleanup((line) => io.stderr.write(`${line}\n`))
  const progress = progressLine(io.stderr)
  const results: LabResults = newResults(scenario, new Date())
  const workRoot = mkdtempSync(join(tmpdir(), 'hearsay-lab-'))
  const removeWorkRoot = () => rmSync(workRoot, { recursive: true, force: true })
  const forgetWorkRoot = onCleanup(removeWorkRoot)
  // Also when the process ends some other way (an uncaught error): the daemons are killed first.
  process.once('exit', removeWorkRoot)
  let failed: Error | undefined
  try {
    for (const n of scenario.n) {
      for (const shape of scenario.shapes) {
        progress(`${shape} n=${n}: ${scenario.mode}`)
        try {
          const run =
            scenario.mode === 'in-process'
              ? await runInProcess(scenario, shape, n, progress)
              : await runProcesses({
                  scenario,
                  shape,
                  n,
                  progress,
                  workDir: join(workRoot, `${shape}-n${n}`),
                  logDir: join(outDir, 'logs', `${shape}-n${n}`),
                  env,
                })
          results.runs.push(run)
          writeResults(outDir, results)
          progress.done()
          progress(
            `${shape} n=${n}: ${run.writes.acknowledged}/${run.writes.attempted} writes acked, ${run.writes.lost} lost, visible p50 ${run.latency.p50} ms p99 ${run.latency.p99} ms`,
          )
        } catch (error) {
          failed = error as Error
          progress.done()
          progress(`${shape} n=${n} failed: ${failed.message}`)
          break
        }
      }
      if (failed !== undefined) break
    }
  } finally {
    progress.done()
    forgetWorkRoot()
    removeWorkRoot()
  }
  const paths = writeResults(outDir, results)
  io.stderr.write(`results: ${paths.json}\n         ${paths.markdown}\n`)
  try {
    const report = await renderReport(outDir)
    io.stderr.write(`report:  ${report.files.join(', ')}\n`)
  } catch (error) {
    io.stderr.write(`plots unavailable: ${(error as Error).message}\n`)
  }
  if (flags.json === true) io.stdout.write(`${JSON.stringify({ out: outDir, runs: results.runs.length })}\n`)
  if (failed !== undefined) throw new LabError(`the lab stopped: ${failed.message}`, 1)
  return 0
}

export async function labReport(positionals: string[], compare: boolean, io: LabIo): Promise<number> {
  try {
    return await renderOrCompare(positionals, compare, io)
  } catch (error) {
    if (error instanceof LabError) throw error
    throw new LabError(`the report failed: ${(error as Error).message}`, 1)
  }
}

async function renderOrCompare(positionals: string[], compare: boolean, io: LabIo): Promise<number> {
  if (compare) {
    const [a, b, out] = positionals
    if (a === undefined || b === undefined)
      throw new LabError('lab report --compare takes two result folders: <dirA> <dirB> [outDir]')
    const result = await compareResults(a, b, out ?? join(a, `compare-${Date.now()}`))
    io.stdout.write(`${result.markdown}\n`)
    return 0
  }
  const [dir] = positionals
  if (dir === undefined) throw new LabError('lab report takes a result folder (with results.json)')
  const result = await renderReport(dir)
  io.stdout.write(`${result.markdown}\n`)
  return 0
}

/** Dispatches `lab <run|report> …`. */
export async function labMain(
  positionals: string[],
  flags: ScenarioFlags & { json?: boolean; compare?: boolean },
  io: LabIo,
): Promise<number> {
  const [sub, ...rest] = positionals
  try {
    if (sub === 'run') return await labRun(rest, flags, io)
    if (sub === 'report') return await labReport(rest, flags.compare === true, io)
    throw new LabError(
      sub === undefined
        ? `lab needs a subcommand:\n${LAB_USAGE}`
        : `unknown lab subcommand "${sub}":\n${LAB_USAGE}`,
    )
  } catch (error) {
    if (error instanceof ScenarioError) {
      io.stderr.write(`hearsay lab: invalid scenario: ${error.message}\n`)
      return 2
    }
    if (error instanceof LabError) {
      io.stderr.write(`hearsay lab: ${error.message}\n`)
      return error.exitCode
    }
    throw error
  }
}

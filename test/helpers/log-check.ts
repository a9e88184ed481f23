/**
 * Scans a daemon's log output (its stderr: pino JSON lines, or the short text form on a terminal)
 * for lines that mean a bug: error and fatal levels, unhandled rejections, uncaught exceptions, and
 * Node's own unhandled-rejection and crash reports. A test that runs daemons as child processes
 * calls `expectCleanLog` on each one's stderr, because vitest only sees failures in its own process.
 */

export interface LogProblem {
  /** 1-based line number in the scanned text. */
  line: number
  /** 'error', 'fatal', 'unhandled rejection', 'uncaught exception' or 'node crash report'. */
  kind: string
  text: string
}

export interface LogCheckOptions {
  /** Lines matching any of these are expected in this test (e.g. a deliberate failure) and skipped. */
  allow?: RegExp[]
}

const ERROR_LEVEL = 50
const FATAL_LEVEL = 60

/** Node's own reports, printed when no handler took an error. */
const NODE_REPORTS: Array<[RegExp, string]> = [
  [/UnhandledPromiseRejection|Unhandled promise rejection/i, 'unhandled rejection'],
  [/^Uncaught |uncaughtException/, 'uncaught exception'],
  [/^(TypeError|ReferenceError|RangeError|SyntaxError|Error)( \[[A-Z_]+\])?: /, 'node crash report'],
]

export function findLogProblems(text: string, options: LogCheckOptions = {}): LogProblem[] {
  const problems: LogProblem[] = []
  const lines = text.split('\n')
  for (let i = 0; i < lines.length; i++) {
    const raw = lines[i]!.trimEnd()
    if (raw === '') continue
    if (options.allow?.some((pattern) => pattern.test(raw))) continue
    const kind = classify(raw)
    if (kind !== undefined) problems.push({ line: i + 1, kind, text: raw.slice(0, 500) })
  }
  return problems
}

/** Throws, listing every problem line, unless the log is clean. */
export function expectCleanLog(text: string, label = 'daemon', options: LogCheckOptions = {}): void {
  const problems = findLogProblems(text, options)
  if (problems.length === 0) return
  const listing = problems.map((p) => `  line ${p.line} [${p.kind}] ${p.text}`).join('\n')
  throw new Error(`${label} logged ${problems.length} problem line(s):\n${listing}`)
}

function classify(line: string): string | undefined {
  const record = parseJson(line)
  if (record !== undefined) {
    const message = typeof record.msg === 'string' ? record.msg : ''
    if (/unhandled rejection/i.test(message)) return 'unhandled rejection'
    if (/uncaught exception/i.test(message)) return 'uncaught exception'
    const level = typeof record.level === 'number' ? record.level : 0
    if (level >= FATAL_LEVEL) return 'fatal'
    if (level >= ERROR_LEVEL) return 'error'
    return undefined
  }
  // The text form: "HH:MM:SS.mmm LEVEL message key=value…".
  if (/unhandled rejection/i.test(line)) return 'unhandled rejection'
  if (/uncaught exception/i.test(line)) return 'uncaught exception'
  if (/^(\d\d:\d\d:\d\d\.\d{3} )?FATAL\b/.test(line)) return 'fatal'
  if (/^(\d\d:\d\d:\d\d\.\d{3} )?ERROR\b/.test(line)) return 'error'
  for (const [pattern, kind] of NODE_REPORTS) if (pattern.test(line)) return kind
  return undefined
}

function parseJson(line: string): Record<string, unknown> | undefined {
  if (!line.startsWith('{')) return undefined
  try {
    const value: unknown = JSON.parse(line)
    return typeof value === 'object' && value !== null ? (value as Record<string, unknown>) : undefined
  } catch {
    return undefined
  }
}

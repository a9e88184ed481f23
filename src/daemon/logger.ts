import { writeSync } from 'node:fs'
import { type DestinationStream, type Logger, pino } from 'pino'
import type { Settings } from './config.ts'

export type { Logger }

/**
 * Structured logs on stderr (stdout belongs to `hearsay up`'s own output): JSON lines when stderr is
 * not a terminal (journald, docker, files), short text lines on a terminal. No pretty-printer
 * dependency: the text form is a dozen lines below.
 */
export function createLogger(options: {
  level: Settings['logLevel']
  format: Settings['logFormat']
  /** Where lines go; default stderr. Tests pass a collecting stream. */
  destination?: DestinationStream
  isTTY?: boolean
}): Logger {
  const pretty =
    options.format === 'pretty' ||
    (options.format === 'auto' && (options.isTTY ?? process.stderr.isTTY === true))
  const sink = options.destination ?? stderrSink()
  return pino(
    { level: options.level, base: { pid: process.pid }, timestamp: pino.stdTimeFunctions.isoTime },
    pretty ? textSink(sink) : sink,
  )
}

/** Synchronous writes: log volume is low (requests log at debug) and a crash must not eat the last lines. */
function stderrSink(): DestinationStream {
  return {
    write(line: string) {
      writeSync(2, line)
    },
  }
}

const LEVEL_NAMES: Record<number, string> = {
  10: 'TRACE',
  20: 'DEBUG',
  30: 'INFO ',
  40: 'WARN ',
  50: 'ERROR',
  60: 'FATAL',
}
const HIDDEN = new Set(['level', 'time', 'pid', 'hostname', 'msg'])

function textSink(next: DestinationStream): DestinationStream {
  return {
    write(line: string) {
      let record: Record<string, unknown>
      try {
        record = JSON.parse(line)
      } catch {
        next.write(line)
        return
      }
      const time = typeof record.time === 'string' ? record.time.slice(11, 23) : ''
      const fields = Object.entries(record)
        .filter(([key]) => !HIDDEN.has(key))
        .map(([key, value]) => `${key}=${typeof value === 'string' ? value : JSON.stringify(value)}`)
      const level = LEVEL_NAMES[record.level as number] ?? String(record.level)
      next.write(`${time} ${level} ${record.msg ?? ''}${fields.length > 0 ? `  ${fields.join(' ')}` : ''}\n`)
    },
  }
}

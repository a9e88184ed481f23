/** Exit codes of the `hearsay` command (docs/cli.md lists them; scripts may rely on them). */
export const EXIT = {
  /** Done. */
  OK: 0,
  /** The daemon failed the request (5xx), or something unexpected happened. */
  FAILURE: 1,
  /** Bad command line: unknown command or option, missing argument. */
  USAGE: 2,
  /** No daemon is running for the data dir, or it does not answer. */
  NO_DAEMON: 3,
  /** The key (or namespace) does not exist. */
  NOT_FOUND: 4,
  /** The daemon refused the request as invalid (a 4xx other than 404). */
  REJECTED: 5,
  /** The write is durable here, but fewer peers than --ack held it before the timeout (HTTP 202). */
  ACK_TIMEOUT: 6,
  /**
   * `hearsay up`/`hub` could not start the daemon (data dir locked, port in use, bad config, store,
   * a full disk); `init` or `join` could not write the data dir.
   */
  START_FAILED: 7,
  // 8: `hearsay hub` exited 8 before hub mode existed; nothing uses it now. Left unassigned so it
  // takes no second meaning for scripts written against older versions.
} as const

export type ExitCode = (typeof EXIT)[keyof typeof EXIT]

/** A failure the CLI reports as one line and an exit code, never as a stack trace. */
export class CliError extends Error {
  override readonly name = 'CliError'
  readonly exitCode: ExitCode
  /** The daemon's error code, when the daemon refused the request. */
  readonly code: string | undefined

  constructor(exitCode: ExitCode, message: string, code?: string) {
    super(message)
    this.exitCode = exitCode
    this.code = code
  }
}

/** ENOSPC anywhere in an error's cause chain (the store and the key files wrap the system error). */
export function isDiskFull(error: unknown): boolean {
  let current = error
  for (let depth = 0; depth < 8 && current instanceof Error; depth++) {
    if (
      (current as NodeJS.ErrnoException).code === 'ENOSPC' ||
      /ENOSPC|SQLITE_FULL|database or disk is full/.test(current.message)
    ) {
      return true
    }
    current = current.cause
  }
  return false
}

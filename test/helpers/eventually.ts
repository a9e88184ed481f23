/** Options of `eventually`: how long to poll, how often, and what the condition means. */
export interface EventuallyOptions {
  /** Milliseconds before giving up (default 20,000). */
  timeout?: number
  /** Milliseconds between polls (default 20). */
  interval?: number
  /** What is awaited, in words; the failure names it (defaults to the condition's source). */
  message?: string | (() => string)
}

/** Thrown when a polled condition did not hold by its deadline. */
export class EventuallyTimeoutError extends Error {
  override readonly name = 'EventuallyTimeoutError'
}

/**
 * Polls `condition` until it holds, or throws at the deadline saying what it waited for (and the
 * last error the condition threw, if any). Resolves to `true` so `expect(await eventually(...))`
 * reads naturally. A number as second argument is the timeout.
 */
export async function eventually(
  condition: () => boolean | Promise<boolean>,
  options: EventuallyOptions | number = {},
): Promise<true> {
  const {
    timeout = 20_000,
    interval = 20,
    message,
  } = typeof options === 'number' ? { timeout: options } : options
  const deadline = Date.now() + timeout
  let lastError: unknown
  for (;;) {
    try {
      if (await condition()) return true
    } catch (error) {
      lastError = error
    }
    if (Date.now() > deadline) {
      const what = (typeof message === 'function' ? message() : message) ?? describe(condition)
      const cause =
        lastError === undefined ? '' : ` (last error: ${(lastError as Error)?.message ?? lastError})`
      throw new EventuallyTimeoutError(`timed out after ${timeout} ms waiting for: ${what}${cause}`)
    }
    await new Promise((resolve) => setTimeout(resolve, interval))
  }
}

function describe(condition: () => unknown): string {
  const source = condition.toString().replace(/\s+/g, ' ').trim()
  return source.length > 200 ? `${source.slice(0, 200)}…` : source
}

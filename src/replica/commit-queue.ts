/**
 * Group commit: every write of one event-loop turn shares one batch, committed in one store
 * transaction. An urgent batch (it holds a local write) commits on the next turn; a lazy one (remote
 * merges, collection) may wait `delayMs` for company. Pure scheduling: the store work is the
 * caller's `write`, and the timers come from an injected scheduler.
 */

/** When to run deferred work: `defer` on the next event-loop turn, `after` a delay in ms. */
export interface Scheduler {
  defer(fn: () => void): void
  after(ms: number, fn: () => void): void
}

export const eventLoopScheduler: Scheduler = {
  defer: (fn) => {
    setImmediate(fn)
  },
  after: (ms, fn) => {
    setTimeout(fn, ms)
  },
}

export interface CommitHandlers<Batch> {
  /** A fresh, empty batch. */
  create(): Batch
  /** Writes the batch (durably when `urgent`); throws when the store failed. */
  write(batch: Batch, urgent: boolean): void
  /** The batch is written and its waiters resolved: announce what it holds. */
  committed(batch: Batch): void
  /** Writing failed; the batch's waiters are rejected with the same error. */
  failed(error: Error): void
}

export interface CommitQueueOptions {
  /** How long a lazy batch waits for company, ms. 0: the rest of the event-loop turn. */
  delayMs?: number
  scheduler?: Scheduler
}

interface Pending<Batch> {
  batch: Batch
  urgent: boolean
  waiters: Array<{ resolve: () => void; reject: (error: Error) => void }>
}

export class CommitQueue<Batch> {
  private pending: Pending<Batch> | undefined
  private readonly delayMs: number
  private readonly scheduler: Scheduler
  private readonly handlers: CommitHandlers<Batch>

  constructor(handlers: CommitHandlers<Batch>, options: CommitQueueOptions = {}) {
    this.handlers = handlers
    this.delayMs = options.delayMs ?? 0
    this.scheduler = options.scheduler ?? eventLoopScheduler
  }

  /** The batch being gathered, if any (not yet written). */
  get current(): Batch | undefined {
    return this.pending?.batch
  }

  /**
   * The batch being gathered, created and scheduled when there is none. Joining urgently brings a
   * lazy batch's commit forward to the next turn.
   */
  join(urgent: boolean): Batch {
    let pending = this.pending
    if (pending === undefined) {
      pending = { batch: this.handlers.create(), urgent, waiters: [] }
      this.pending = pending
      const scheduled = pending
      if (urgent || this.delayMs === 0) this.scheduler.defer(() => this.commit(scheduled))
      else this.scheduler.after(this.delayMs, () => this.commit(scheduled))
    } else if (urgent && !pending.urgent) {
      pending.urgent = true
      const scheduled = pending
      this.scheduler.defer(() => this.commit(scheduled))
    }
    return pending.batch
  }

  /** Resolves once the batch being gathered is written (at once when there is none). */
  wait(): Promise<void> {
    const pending = this.pending
    if (pending === undefined) return Promise.resolve()
    return new Promise((resolve, reject) => pending.waiters.push({ resolve, reject }))
  }

  private commit(pending: Pending<Batch>): void {
    if (this.pending !== pending) return // already committed by an earlier schedule
    this.pending = undefined
    try {
      this.handlers.write(pending.batch, pending.urgent)
    } catch (error) {
      const failure = error instanceof Error ? error : new Error(String(error))
      this.handlers.failed(failure)
      for (const waiter of pending.waiters) waiter.reject(failure)
      return
    }
    for (const waiter of pending.waiters) waiter.resolve()
    this.handlers.committed(pending.batch)
  }
}

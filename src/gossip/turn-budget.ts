/**
 * Spreads bursts of work over event-loop turns: at most `perTurn` callers proceed per turn, the rest
 * wait for the next turn (setImmediate, after pending I/O). gossipsub starts the validation of every
 * message it has buffered at once, as promise chains that never yield to I/O: thousands of signature
 * checks and merges in one turn would stall the HTTP API (and pings) for seconds. Order is kept.
 */
export class TurnBudget {
  private readonly perTurn: number
  private readonly defer: (next: () => void) => void
  private used = 0
  private readonly waiting: Array<() => void> = []
  private scheduled = false

  constructor(init: { perTurn: number; defer?: (next: () => void) => void }) {
    this.perTurn = Math.max(1, init.perTurn)
    this.defer = init.defer ?? ((next) => void setImmediate(next))
  }

  /** Waiting now (for tests and metrics). */
  get queued(): number {
    return this.waiting.length
  }

  /** Resolves when the caller may do one unit of work. */
  take(): Promise<void> {
    this.schedule()
    if (this.waiting.length === 0 && this.used < this.perTurn) {
      this.used++
      return Promise.resolve()
    }
    return new Promise((resolve) => this.waiting.push(resolve))
  }

  private schedule(): void {
    if (this.scheduled) return
    this.scheduled = true
    this.defer(() => {
      this.scheduled = false
      this.used = 0
      while (this.used < this.perTurn && this.waiting.length > 0) {
        this.used++
        this.waiting.shift()!()
      }
      if (this.waiting.length > 0 || this.used > 0) this.schedule()
    })
  }
}

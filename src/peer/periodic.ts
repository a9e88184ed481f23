/**
 * A repeating task that never overlaps itself, with ±25 % jitter so peers do not synchronise. The
 * task's failures are its own business (it is called again next period). Timers are unref'd: a
 * periodic task never keeps the process alive.
 */
export interface PeriodicTaskInit {
  periodMs: number
  task(): Promise<unknown>
  /** Returns a number in [0, 1). Default Math.random. */
  random?: () => number
}

export class PeriodicTask {
  private readonly init: PeriodicTaskInit
  private timer: NodeJS.Timeout | undefined
  private running = false

  constructor(init: PeriodicTaskInit) {
    this.init = init
  }

  start(): void {
    if (this.running) return
    this.running = true
    this.schedule()
  }

  stop(): void {
    this.running = false
    clearTimeout(this.timer)
    this.timer = undefined
  }

  private schedule(): void {
    if (!this.running) return
    const random = this.init.random ?? Math.random
    this.timer = setTimeout(
      () => {
        this.timer = undefined
        this.init
          .task()
          .catch(() => {})
          .finally(() => this.schedule())
      },
      this.init.periodMs * (0.75 + random() * 0.5),
    )
    this.timer.unref()
  }
}

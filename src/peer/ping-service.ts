import { PeriodicTask } from './periodic.ts'

export interface RttPingerInit {
  periodMs: number
  /** Connected peers now. */
  peers(): string[]
  /** Pings a peer; resolves to the round-trip time in ms. */
  ping(peer: string, signal: AbortSignal): Promise<number>
  /** Told each measured round-trip time. */
  measured(peer: string, rttMs: number): void
  /** How long one ping may take. Default 5 s. */
  timeoutMs?: number
  random?: () => number
}

/** Pings every connected peer each period, for the round-trip times `/v1/peers` shows. */
export class RttPinger {
  private readonly init: RttPingerInit
  private readonly task: PeriodicTask

  constructor(init: RttPingerInit) {
    this.init = init
    this.task = new PeriodicTask({ periodMs: init.periodMs, task: () => this.pingAll(), random: init.random })
  }

  start(): void {
    this.task.start()
  }

  stop(): void {
    this.task.stop()
  }

  async pingAll(): Promise<void> {
    await Promise.allSettled(
      this.init.peers().map(async (peer) => {
        const rttMs = await this.init.ping(peer, AbortSignal.timeout(this.init.timeoutMs ?? 5000))
        this.init.measured(peer, rttMs)
      }),
    )
  }
}

import { PeriodicTask } from './periodic.ts'

export interface RttPingerInit {
  periodMs: number
  /** Connected peers now. */
  peers(): string[]
  /** Pings a peer; resolves to the round-trip time in ms. */
  ping(peer: string, signal: AbortSignal): Promise<number>
  /**
   * The round-trip time libp2p's connection monitor last measured on a connection to the peer (it
   * pings every connection anyway, to keep it alive): when known, it is reported instead of a ping
   * of our own, so an idle mesh opens one ping stream per connection and period, not two.
   */
  knownRtt?(peer: string): number | undefined
  /** Told each measured round-trip time. */
  measured(peer: string, rttMs: number): void
  /** How long one ping may take. Default 5 s. */
  timeoutMs?: number
  random?: () => number
}

/** Reports the round-trip time of every connected peer each period, for what `/v1/peers` shows. */
export class RttPinger {
  private readonly init: RttPingerInit
  private readonly task: PeriodicTask
  /** Pings sent so far (tests: known RTTs send none). */
  pingsSent = 0

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
        const known = this.init.knownRtt?.(peer)
        if (known !== undefined && Number.isFinite(known)) {
          this.init.measured(peer, known)
          return
        }
        this.pingsSent++
        const rttMs = await this.init.ping(peer, AbortSignal.timeout(this.init.timeoutMs ?? 5000))
        this.init.measured(peer, rttMs)
      }),
    )
  }
}

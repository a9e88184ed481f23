import type { CausalContext } from '../crdt/context.ts'
import { PeriodicTask } from './periodic.ts'

/** What the collector needs of a joined namespace. */
export interface Collectable {
  readonly namespace: string
  context(): CausalContext
  collectGarbage(stable: CausalContext): Promise<number>
}

export interface GarbageCollectorInit {
  periodMs: number
  /** The namespaces joined now. */
  replicas(): Iterable<Collectable>
  /** What every current member holds of a namespace (`Membership.stableContext`), if known. */
  stableContext(namespace: string, own: CausalContext): CausalContext | undefined
  /** Told how many tombstones a pass collected. */
  collected(count: number): void
  random?: () => number
}

/** Collects, every period, the tombstones every current member is known to hold. */
export class GarbageCollector {
  private readonly init: GarbageCollectorInit
  private readonly task: PeriodicTask

  constructor(init: GarbageCollectorInit) {
    this.init = init
    this.task = new PeriodicTask({
      periodMs: init.periodMs,
      task: () => this.collectOnce(),
      random: init.random,
    })
  }

  start(): void {
    this.task.start()
  }

  stop(): void {
    this.task.stop()
  }

  /** One pass over every joined namespace; returns how many tombstones it collected. */
  async collectOnce(): Promise<number> {
    let total = 0
    for (const replica of this.init.replicas()) {
      const stable = this.init.stableContext(replica.namespace, replica.context())
      if (stable === undefined) continue
      const count = await replica.collectGarbage(stable)
      this.init.collected(count)
      total += count
    }
    return total
  }
}

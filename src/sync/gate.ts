/**
 * One anti-entropy session at a time per namespace, so a peer that catches up takes what it lacks
 * once, not once from every neighbour: a session that starts after another one finished compares
 * against the context that one left, and finds nothing (or only the rest) to send.
 *
 * Sessions we start wait here for their turn (locally: nothing of another peer is held meanwhile).
 * Sessions another peer starts never wait: `tryEnter` fails and the responder answers BUSY at once,
 * and that peer tries again later. Waiting on one side only cannot deadlock: no two peers ever
 * wait on each other. Pure: no timers, no I/O.
 */
export class NamespaceGate {
  private readonly held = new Set<string>()
  private readonly waiting = new Map<string, Array<() => void>>()
  /** When the holder of each namespace last made progress (see `touch`), by the injected clock. */
  private readonly active = new Map<string, number>()
  private readonly now: () => number

  constructor(now: () => number = () => performance.now()) {
    this.now = now
  }

  /** The holder of the namespace made progress (a frame read, a chunk merged). */
  touch(namespace: string): void {
    if (this.held.has(namespace)) this.active.set(namespace, this.now())
  }

  /**
   * True when a session holds the namespace and made progress within `stallMs`. A holder that went
   * quiet (a peer that stopped answering) does not keep others out until its idle timeout: they may
   * go ahead without the turn.
   */
  busyWithin(namespace: string, stallMs: number): boolean {
    if (!this.held.has(namespace)) return false
    return this.now() - (this.active.get(namespace) ?? Number.NEGATIVE_INFINITY) < stallMs
  }

  /** True while a session of the namespace runs. */
  busy(namespace: string): boolean {
    return this.held.has(namespace)
  }

  /** Sessions waiting for their turn, per namespace (status, tests). */
  waiters(namespace: string): number {
    return this.waiting.get(namespace)?.length ?? 0
  }

  /** Takes the namespace now, or returns undefined when a session of it runs. */
  tryEnter(namespace: string): (() => void) | undefined {
    if (this.held.has(namespace)) return undefined
    this.held.add(namespace)
    this.active.set(namespace, this.now())
    return this.releaser(namespace)
  }

  /** Waits for the namespace (first come, first served); rejects when the signal aborts first. */
  enter(namespace: string, signal?: AbortSignal): Promise<() => void> {
    const now = this.tryEnter(namespace)
    if (now !== undefined) return Promise.resolve(now)
    signal?.throwIfAborted()
    return new Promise((resolve, reject) => {
      const queue = this.waiting.get(namespace) ?? []
      this.waiting.set(namespace, queue)
      const onAbort = () => {
        const at = queue.indexOf(wake)
        if (at >= 0) queue.splice(at, 1)
        if (queue.length === 0) this.waiting.delete(namespace)
        reject(signal?.reason)
      }
      // Called with the namespace already held for this waiter.
      const wake = () => {
        signal?.removeEventListener('abort', onAbort)
        this.active.set(namespace, this.now())
        resolve(this.releaser(namespace))
      }
      queue.push(wake)
      signal?.addEventListener('abort', onAbort, { once: true })
    })
  }

  /** Hands the namespace to the next waiter, or frees it; a second call does nothing. */
  private releaser(namespace: string): () => void {
    let released = false
    return () => {
      if (released) return
      released = true
      const queue = this.waiting.get(namespace)
      const next = queue?.shift()
      if (queue !== undefined && queue.length === 0) this.waiting.delete(namespace)
      if (next === undefined) {
        this.held.delete(namespace)
        this.active.delete(namespace)
      } else next()
    }
  }
}

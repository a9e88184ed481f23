/**
 * Waits for `?ack=N`: until N other peers are known to hold a write (its dot), or the caller's
 * deadline. Driven by events, not polling: the mesh calls `changed()` when it learns something (a
 * sync session ended, so a peer's holdings are known; a peer connected), and each waiter re-checks.
 *
 * Each lacking peer is pushed to separately (an anti-entropy session per peer), and each holder
 * counts as soon as its own session ends: a silent peer never delays the answer beyond the
 * deadline, and a reachable one is counted without waiting for the others. A session that started
 * before the write (shared with a periodic round) ends without the dot: the peer is pushed to
 * again. A failed session is retried after `retryDelayMs`. No peer connected yet: the waiter waits
 * for one (a laptop waking up) until the deadline.
 *
 * Pure apart from timers: the mesh is reached only through the injected functions.
 */

export interface AckTrackerInit {
  /** Peers a write can be pushed to now. */
  connectedPeers(): string[]
  /** Whether a peer is known to hold the dot. */
  holds(peerId: string, namespace: string, replica: string, counter: number): boolean
  /** How many other peers are known to hold the dot. */
  holders(namespace: string, replica: string, counter: number): number
  /**
   * Pushes a namespace to a peer (one anti-entropy session); resolves when the session ended, after
   * which `holds` tells whether the peer has the dot. May be shared with a session already running.
   * Resolves false when the peer cannot hold the write at all (it does not replicate the namespace):
   * it is not pushed to again for this write.
   */
  push(peerId: string, namespace: string, signal: AbortSignal): Promise<boolean | undefined>
  /** Wait after a failed push before the next one to the same peer. Default 250 ms. */
  retryDelayMs?: number
  /** Pushes to one peer for one write, at most. Default 40. */
  maxAttemptsPerPeer?: number
}

interface Attempts {
  inflight: boolean
  count: number
  /** performance.now() before which no new push to this peer starts. */
  notBefore: number
}

interface Waiter {
  namespace: string
  replica: string
  counter: number
  count: number
  attempts: Map<string, Attempts>
  wake: NodeJS.Timeout | undefined
  finish(): void
}

/** Gap between a push that ended without the dot and the next one: a guard against a busy loop. */
const MIN_GAP_MS = 10

export class AckTracker {
  private readonly init: AckTrackerInit
  private readonly waiters = new Set<Waiter>()
  private readonly controller = new AbortController()
  private running = false

  constructor(init: AckTrackerInit) {
    this.init = init
  }

  start(): void {
    this.running = true
  }

  /** Answers every waiter with what is known now and aborts the pushes it started. */
  stop(): void {
    this.running = false
    for (const waiter of [...this.waiters]) waiter.finish()
    this.controller.abort(new Error('ack tracker stopped'))
  }

  /** Writes being waited for (for tests and metrics). */
  get waiting(): number {
    return this.waiters.size
  }

  /** Something changed: a peer's holdings became known, or a peer connected. */
  changed(): void {
    for (const waiter of [...this.waiters]) this.evaluate(waiter)
  }

  /**
   * Resolves with how many other peers hold the dot: as soon as `count` do, else when `signal`
   * aborts (the deadline), with how many did by then. Never rejects.
   */
  waitFor(
    namespace: string,
    replica: string,
    counter: number,
    count: number,
    signal: AbortSignal,
  ): Promise<number> {
    const holders = () => this.init.holders(namespace, replica, counter)
    if (!this.running || signal.aborted || holders() >= count) return Promise.resolve(holders())
    return new Promise((resolve) => {
      const onAbort = () => waiter.finish()
      const waiter: Waiter = {
        namespace,
        replica,
        counter,
        count,
        attempts: new Map(),
        wake: undefined,
        finish: () => {
          if (!this.waiters.delete(waiter)) return
          signal.removeEventListener('abort', onAbort)
          if (waiter.wake !== undefined) clearTimeout(waiter.wake)
          resolve(holders())
        },
      }
      this.waiters.add(waiter)
      signal.addEventListener('abort', onAbort, { once: true })
      this.evaluate(waiter)
    })
  }

  private evaluate(waiter: Waiter): void {
    if (!this.waiters.has(waiter)) return
    const { namespace, replica, counter } = waiter
    if (this.init.holders(namespace, replica, counter) >= waiter.count) {
      waiter.finish()
      return
    }
    const now = performance.now()
    let nextWake = Number.POSITIVE_INFINITY
    const maxAttempts = this.init.maxAttemptsPerPeer ?? 40
    for (const peerId of this.init.connectedPeers()) {
      if (this.init.holds(peerId, namespace, replica, counter)) continue
      let attempts = waiter.attempts.get(peerId)
      if (attempts === undefined) {
        attempts = { inflight: false, count: 0, notBefore: 0 }
        waiter.attempts.set(peerId, attempts)
      }
      if (attempts.inflight || attempts.count >= maxAttempts) continue
      if (now < attempts.notBefore) {
        nextWake = Math.min(nextWake, attempts.notBefore)
        continue
      }
      this.pushTo(waiter, peerId, attempts)
    }
    if (nextWake !== Number.POSITIVE_INFINITY && waiter.wake === undefined) {
      waiter.wake = setTimeout(
        () => {
          waiter.wake = undefined
          this.evaluate(waiter)
        },
        Math.max(0, nextWake - now),
      )
      waiter.wake.unref()
    }
  }

  private pushTo(waiter: Waiter, peerId: string, attempts: Attempts): void {
    attempts.inflight = true
    attempts.count++
    const settled = (ok: boolean, refused = false) => {
      attempts.inflight = false
      if (refused) attempts.count = Number.POSITIVE_INFINITY
      attempts.notBefore = performance.now() + (ok ? MIN_GAP_MS : (this.init.retryDelayMs ?? 250))
      // Every waiter may learn from this session's outcome, not only the one that started it.
      this.changed()
    }
    // The tracker's own signal, not the request's: a session shared by many waiters must not end
    // with the first one's deadline. Sessions have their own timeouts.
    let pushing: Promise<boolean | undefined>
    try {
      pushing = this.init.push(peerId, waiter.namespace, this.controller.signal)
    } catch {
      pushing = Promise.reject(new Error('push failed to start'))
    }
    pushing.then(
      (result) => settled(true, result === false),
      () => settled(false),
    )
  }
}

/**
 * Anti-entropy sessions of a namespace take turns, so a peer that catches up takes what it lacks
 * once, not once from every neighbour: a session that starts after another one finished compares
 * against the context that one left, and finds nothing (or only the rest) to send.
 *
 * A turn is exclusive unless the session says what it will bring: a responder knows from the
 * initiator's OPEN which writers it lacks dots of, and a session that brings only writers no other
 * session brings goes ahead beside them (a restarted hub takes each client's own writes at once
 * instead of one client after another). Nothing is received twice that way: two sessions with
 * disjoint writers cannot deliver the same entry.
 *
 * Sessions we start wait here for their turn (locally: nothing of another peer is held meanwhile).
 * Sessions another peer starts never wait: `tryEnter` fails and the responder answers BUSY at once,
 * and that peer tries again later. Waiting on one side only cannot deadlock: no two peers ever
 * wait on each other. Pure: no timers, no I/O.
 */

/** What a session may bring: every writer (`'all'`), or the writers it brings dots of. */
export type TurnClaim = 'all' | ReadonlySet<string>

export class NamespaceGate {
  private readonly holders = new Map<string, Set<TurnClaim>>()
  private readonly waiting = new Map<string, Array<() => void>>()
  /** When a holder of each namespace last made progress (see `touch`), by the injected clock. */
  private readonly active = new Map<string, number>()
  private readonly now: () => number

  constructor(now: () => number = () => performance.now()) {
    this.now = now
  }

  /** A holder of the namespace made progress (a frame read, a chunk merged). */
  touch(namespace: string): void {
    if (this.holders.has(namespace)) this.active.set(namespace, this.now())
  }

  /**
   * True when a session holds the namespace and one made progress within `stallMs`. A holder that
   * went quiet (a peer that stopped answering) does not keep others out until its idle timeout:
   * they may go ahead without the turn.
   */
  busyWithin(namespace: string, stallMs: number): boolean {
    if (!this.holders.has(namespace)) return false
    return this.now() - (this.active.get(namespace) ?? Number.NEGATIVE_INFINITY) < stallMs
  }

  /** True while a session of the namespace runs. */
  busy(namespace: string): boolean {
    return this.holders.has(namespace)
  }

  /** Sessions holding the namespace at once (status, tests). */
  holding(namespace: string): number {
    return this.holders.get(namespace)?.size ?? 0
  }

  /** Sessions waiting for their turn, per namespace (status, tests). */
  waiters(namespace: string): number {
    return this.waiting.get(namespace)?.length ?? 0
  }

  /**
   * Takes the namespace now, or returns undefined. With `'all'` (the default) only when no session
   * holds it; with a set of writers also beside holders whose writers are all different, as long as
   * nobody waits for a whole turn (they would otherwise wait behind a stream of such sessions).
   */
  tryEnter(namespace: string, claim: TurnClaim = 'all'): (() => void) | undefined {
    const holders = this.holders.get(namespace)
    if (holders !== undefined) {
      if (claim === 'all' || this.waiters(namespace) > 0) return undefined
      for (const held of holders) if (held === 'all' || overlaps(held, claim)) return undefined
    }
    return this.take(namespace, claim)
  }

  /** Waits for the whole namespace (first come, first served); rejects when the signal aborts first. */
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
      const wake = () => {
        signal?.removeEventListener('abort', onAbort)
        resolve(this.take(namespace, 'all'))
      }
      queue.push(wake)
      signal?.addEventListener('abort', onAbort, { once: true })
    })
  }

  private take(namespace: string, claim: TurnClaim): () => void {
    // A claim is held by identity: two sessions may pass equal sets.
    const token: TurnClaim = claim === 'all' ? 'all' : new Set(claim)
    let holders = this.holders.get(namespace)
    if (holders === undefined) {
      holders = new Set()
      this.holders.set(namespace, holders)
    }
    holders.add(token)
    this.active.set(namespace, this.now())
    return this.releaser(namespace, token)
  }

  /** Gives the turn back; the last holder out hands it to the next waiter. A second call does nothing. */
  private releaser(namespace: string, token: TurnClaim): () => void {
    let released = false
    return () => {
      if (released) return
      released = true
      const holders = this.holders.get(namespace)
      holders?.delete(token)
      if (holders !== undefined && holders.size > 0) return
      this.holders.delete(namespace)
      this.active.delete(namespace)
      const queue = this.waiting.get(namespace)
      const next = queue?.shift()
      if (queue !== undefined && queue.length === 0) this.waiting.delete(namespace)
      next?.()
    }
  }
}

function overlaps(a: ReadonlySet<string>, b: ReadonlySet<string>): boolean {
  const [small, large] = a.size <= b.size ? [a, b] : [b, a]
  for (const writer of small) if (large.has(writer)) return true
  return false
}

import { estimateEncodedSize } from '../codec/delta.ts'
import type { SignedHead } from '../crdt/attest.ts'
import type { Delta, MergeOptions } from '../crdt/causal-map.ts'
import { CausalContext } from '../crdt/context.ts'
import type { Entry } from '../crdt/entry.ts'
import { HearsayError } from '../errors.ts'
import { DEFAULT_CHUNK_BYTES } from './constants.ts'
import type { SyncFrame } from './frames.ts'

/**
 * The anti-entropy protocol as a state machine with no I/O (the y-protocols shape): feed it the
 * frames the other side sent, it says what to send back and what to merge. The transport only moves
 * bytes, so the protocol is tested synchronously.
 *
 *   initiator                          responder
 *   OPEN(ns, digest, context) ──────▶  digests equal?  ──▶ EQUAL, done (one round trip)
 *                             ◀──────  CONTEXT(its context), DELTAS… (what the initiator lacks)
 *   DELTAS… (what it lacks)   ──────▶
 *
 * Each side streams only the deltas the other's context lacks, so the cost grows with the difference,
 * not the state. DELTAS are chunked; the final chunk carries the context difference, which is what
 * makes removals (and writes superseded in between) reach the other side.
 *
 * Equal-context repair: honest peers with equal contexts hold equal states, so equal contexts with
 * unequal digests mean one side dropped an entry the other still holds (a hostile partner claimed it
 * removed). Shipping only differences would never close that gap, so both final chunks then also
 * carry the dots their sender holds, and each side completes the join: an entry whose dot the other
 * side has seen but does not hold goes. The cost is one context more, and only in that case.
 */

/** What the session needs of a replica: the pure queries of replication. */
export interface SyncState {
  digest(): string
  context(): CausalContext
  deltasSince(remote: CausalContext): Delta
  /** The signed head of a replica's highest entry this side verified (to vouch for its context). */
  head?(replica: string): SignedHead | undefined
  /** The dots of every entry held (for the equal-context repair). */
  heldDots?(): CausalContext
}

/** What to merge: a delta, the dots shipped before it (chunking) and heads vouching for its context. */
export type SessionMergeOptions = MergeOptions & { heads?: readonly SignedHead[] }

export interface SyncStep {
  /** Frames to send, in order. */
  send: SyncFrame[]
  /** A delta to merge (await durability before feeding the next frame). */
  merge?: { delta: Delta; options: SessionMergeOptions }
  /** The session is over; close the stream. */
  done: boolean
}

/** Why a sync session ended; sent to the other side in the ERROR frame. */
export type SyncErrorCode =
  /** A frame that the protocol does not allow at this point of the session. */
  | 'unexpected-frame'
  /** OPEN names another namespace than the session's. */
  | 'wrong-namespace'
  /** A non-final chunk carries context beyond its own entries. */
  | 'bad-chunk'
  /** The namespace is not joined on this peer. */
  | 'not-joined'
  /** The session passed its byte limit. */
  | 'too-much-data'
  /** The peer passed its sync quota per minute. */
  | 'quota-exceeded'
  /** An entry or head without its author's valid signature. */
  | 'bad-signature'
  /** The responder runs another session of the namespace: try again shortly. */
  | 'busy'
  /** The other side refused with its own code (untrusted text, so any string). */
  | `remote-${string}`

export class SyncProtocolError extends HearsayError<SyncErrorCode> {
  override readonly name = 'SyncProtocolError'

  /** Whether the other side ended the session (it needs no ERROR frame back). */
  get remote(): boolean {
    return this.code.startsWith('remote-')
  }
}

export interface SessionStats {
  /** Frames received carrying deltas, and entries in them. */
  chunksReceived: number
  entriesReceived: number
  entriesSent: number
  /** True when the digests matched and nothing was exchanged. */
  equal: boolean
  /** The other side's context as it told us (undefined when digests matched and it did not say). */
  remoteContext?: CausalContext
}

export class SyncSession {
  readonly role: 'initiator' | 'responder'
  readonly stats: SessionStats = { chunksReceived: 0, entriesReceived: 0, entriesSent: 0, equal: false }
  private readonly namespace: string
  private readonly state: SyncState
  private readonly chunkBytes: number
  private started = false
  private sentFinal = false
  private receivedFinal = false
  private finished = false
  /** Dots received in earlier chunks of this session (see MergeOptions.shipped). */
  private readonly shipped = new CausalContext()

  constructor(init: {
    role: 'initiator' | 'responder'
    namespace: string
    state: SyncState
    chunkBytes?: number
  }) {
    this.role = init.role
    this.namespace = init.namespace
    this.state = init.state
    this.chunkBytes = init.chunkBytes ?? DEFAULT_CHUNK_BYTES
  }

  get done(): boolean {
    return this.finished
  }

  /** The initiator's opening frame. */
  open(): SyncFrame[] {
    if (this.role !== 'initiator' || this.started) throw new Error('open() is for a new initiator session')
    this.started = true
    return [
      { type: 'open', namespace: this.namespace, digest: this.state.digest(), context: this.state.context() },
    ]
  }

  receive(frame: SyncFrame): SyncStep {
    if (this.finished)
      throw new SyncProtocolError('unexpected-frame', `${frame.type} after the session ended`)
    switch (frame.type) {
      case 'open':
        return this.onOpen(frame.namespace, frame.digest, frame.context)
      case 'equal':
        if (this.role !== 'initiator' || this.sentFinal || this.receivedFinal) {
          throw new SyncProtocolError('unexpected-frame', 'EQUAL out of turn')
        }
        this.stats.equal = true
        return this.finish([])
      case 'context':
        if (this.role !== 'initiator' || this.sentFinal) {
          throw new SyncProtocolError('unexpected-frame', 'CONTEXT out of turn')
        }
        this.stats.remoteContext = frame.context
        this.sentFinal = true
        return this.step(this.chunks(this.state.deltasSince(frame.context), frame.context))
      case 'deltas':
        return this.onDeltas(frame.final, frame.delta, frame.heads ?? [], frame.held)
      case 'error':
        throw new SyncProtocolError(`remote-${frame.code}`, `peer refused: ${frame.message}`)
    }
  }

  private onOpen(namespace: string, digest: string, context: CausalContext): SyncStep {
    if (this.role !== 'responder' || this.started)
      throw new SyncProtocolError('unexpected-frame', 'OPEN out of turn')
    this.started = true
    if (namespace !== this.namespace) {
      throw new SyncProtocolError('wrong-namespace', `session is for ${this.namespace}, not ${namespace}`)
    }
    this.stats.remoteContext = context
    if (digest === this.state.digest()) {
      this.stats.equal = true
      return this.finish([{ type: 'equal' }])
    }
    this.sentFinal = true
    const send: SyncFrame[] = [{ type: 'context', context: this.state.context() }]
    send.push(...this.chunks(this.state.deltasSince(context), context))
    return this.step(send)
  }

  private onDeltas(
    final: boolean,
    delta: Delta,
    heads: readonly SignedHead[],
    held: CausalContext | undefined,
  ): SyncStep {
    if (!this.started || this.receivedFinal)
      throw new SyncProtocolError('unexpected-frame', 'DELTAS out of turn')
    this.stats.chunksReceived++
    this.stats.entriesReceived += delta.entries.length
    if (!final) {
      // A middle chunk's context may only name its own entries: removals travel with the final one.
      const own = CausalContext.fromDots(delta.entries)
      if (!own.covers(delta.context)) {
        throw new SyncProtocolError('bad-chunk', 'a non-final chunk carries context beyond its entries')
      }
      for (const entry of delta.entries) this.shipped.add(entry.replica, entry.counter)
      return { send: [], merge: { delta, options: {} }, done: false }
    }
    this.receivedFinal = true
    const shipped = this.shipped.clone()
    if (held !== undefined && this.stats.remoteContext !== undefined) {
      // The other side has seen these dots (its context, as it sent it) and holds only `held` of them:
      // naming them as seen and listing what it holds drops exactly what it does not hold. Only dots
      // this side has seen too, so the repair removes and never adds.
      const seenByBoth = this.stats.remoteContext.intersection(this.state.context())
      const context = delta.context.clone()
      context.merge(seenByBoth)
      delta = { entries: delta.entries, context }
      shipped.merge(held)
    }
    const merge = { delta, options: { shipped, heads } }
    const done = this.sentFinal
    if (done) this.finished = true
    return { send: [], merge, done }
  }

  private step(send: SyncFrame[]): SyncStep {
    const done = this.sentFinal && this.receivedFinal
    if (done) this.finished = true
    return { send, done }
  }

  private finish(send: SyncFrame[]): SyncStep {
    this.finished = true
    return { send, done: true }
  }

  /**
   * Splits a delta into chunks of about `chunkBytes`; the last carries the whole context, and the
   * signed heads of the replicas whose context there goes beyond both the entries shipped and what
   * the remote has seen (their latest writes were superseded or collected here): without them the
   * receiver would drop those claims as unattested.
   */
  private chunks(delta: Delta, remote: CausalContext): SyncFrame[] {
    this.stats.entriesSent += delta.entries.length
    const frames: SyncFrame[] = []
    let current: Entry[] = []
    let size = 0
    for (const entry of delta.entries) {
      const estimate = estimateEncodedSize(entry)
      if (current.length > 0 && size + estimate > this.chunkBytes) {
        frames.push({
          type: 'deltas',
          final: false,
          delta: { entries: current, context: CausalContext.fromDots(current) },
        })
        current = []
        size = 0
      }
      current.push(entry)
      size += estimate
    }
    const shippedMax = new Map<string, number>()
    for (const entry of delta.entries) {
      if ((shippedMax.get(entry.replica) ?? 0) < entry.counter) shippedMax.set(entry.replica, entry.counter)
    }
    const heads: SignedHead[] = []
    for (const replica of delta.context.replicas()) {
      const claimed = delta.context.max(replica)
      if (claimed <= Math.max(shippedMax.get(replica) ?? 0, remote.max(replica))) continue
      const head = this.state.head?.(replica)
      if (head !== undefined) heads.push(head)
    }
    const final: SyncFrame = {
      type: 'deltas',
      final: true,
      delta: { entries: current, context: delta.context },
      heads,
    }
    // Reached only when digests differed: with equal contexts, the states differ in what is held.
    if (this.state.heldDots !== undefined && remote.equals(this.state.context())) {
      final.held = this.state.heldDots()
    }
    frames.push(final)
    return frames
  }
}

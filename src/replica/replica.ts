import { EventEmitter } from 'node:events'
import { decodeContext, encodeContext } from '../codec/delta.ts'
import { DecodeError } from '../codec/errors.ts'
import { DEFAULT_LIMITS } from '../codec/limits.ts'
import {
  type CausalToken,
  decodeEntryBody,
  decodeToken,
  encodeEntryBody,
  encodeToken,
  tokenKeyTag,
} from '../codec/stored.ts'
import { attestedBy, clipDelta, type SignedHead } from '../crdt/attest.ts'
import type { Change, Delta, MergeOptions, WriteResult } from '../crdt/causal-map.ts'
import { CausalContext, type VersionVector } from '../crdt/context.ts'
import {
  CrdtDocument,
  internalKey,
  KEY_SEPARATOR,
  type ListedKey,
  parseInternalKey,
  type RegisterRead,
} from '../crdt/document.ts'
import { type Covers, type Entry, EntryKind } from '../crdt/entry.ts'
import { HybridClock, type PhysicalClock } from '../crdt/hlc.ts'
import { type DotRef, type Store, type StoredEntry, StoreError } from '../store/types.ts'
import { CommitQueue, type Scheduler } from './commit-queue.ts'
import { ReplicaError } from './errors.ts'
import { chooseReplicaId, nextIncarnation, type RandomBytes, replicaIdMeta } from './incarnation.ts'
import { keyProblem, MAX_KEY_BYTES, setElementProblem } from './keys.ts'
import {
  decodeHeadList,
  type EntrySigner,
  encodeHeadList,
  generateEntrySigner,
  headOf,
  replicaAuthor,
  SignatureError,
  type SignatureVerifier,
  signEntries,
  verifyEd25519,
  verifyEntry,
  verifyHead,
} from './signing.ts'

/**
 * A Replica is one namespace's CRDT state made durable: local writes are applied in memory, batched
 * with every other write of the same event-loop turn into one store transaction (group commit), and
 * resolved only once that transaction is durable. Change and delta events fire only after commit, so
 * watchers and gossip never see a write that a crash could still take back.
 */

export interface ReplicaInit {
  namespace: string
  store: Store
  /**
   * Signs this replica's entries: normally built from the peer's identity key. Default: a fresh
   * key, whose PeerId is then the default `replicaBase`.
   */
  signer?: EntrySigner
  /** Checks remote entries' signatures (default Ed25519 with the key in the author's PeerId). */
  verifier?: SignatureVerifier
  /**
   * The author part of the replica id (normally the peer id; default the signer's PeerId). A new store gets
   * `<base>~<random incarnation>`; a stored id is kept across restarts, unless the store's data was
   * copied or restored (its identity changed), which starts a new incarnation.
   */
  replicaBase?: string
  /** Physical clock for the HLC (injected in tests). */
  now?: PhysicalClock
  /** Timers of the group commit (injected in tests; default setImmediate/setTimeout). */
  scheduler?: Scheduler
  /** Random source of new incarnations (injected in tests; default node:crypto). */
  randomBytes?: RandomBytes
  /** Largest key, UTF-8 bytes. Default 1023 (the codec's key limit minus the type prefix). */
  maxKeyBytes?: number
  /** Largest value, bytes. Default 1 MiB (the codec's value limit). */
  maxValueBytes?: number
  /**
   * How long remote merges wait to share a commit, ms. Default 0: the rest of the event-loop turn
   * (their commits skip the fsync, so waiting longer mostly adds latency).
   */
  remoteFlushMs?: number
  /** How often expired entries are looked for, to announce them as changes, ms. Default 1000. */
  expirySweepMs?: number
}

/** TTL bounds of an expiring write, ms. */
export const MIN_TTL_MS = 1000
export const MAX_TTL_MS = 30 * 24 * 3600 * 1000

export interface WriteAck {
  namespace: string
  key: string
  /** The write's dot. */
  replica: string
  counter: number
  /** HLC wall time of the write. */
  wall: number
  /** Expiring writes: when the value expires on every peer (HLC wall ms). */
  expiresAt?: number
  /**
   * Causal token of this write: its dot and what it superseded. Sent back as If-Match, it replaces
   * this write alone, never a concurrent write that landed beside it.
   */
  token: string
}

export interface ReadResult extends RegisterRead {
  /** The causal token as an opaque string (an ETag). */
  etag: string
}

export interface ListPage {
  items: Array<{ key: string; read: ReadResult }>
  /** Pass back as `cursor` for the next page; absent on the last page. */
  cursor?: string
}

/** A remote delta's merge options: chunking (see MergeOptions) and the signed heads sent with it. */
export interface RemoteMergeOptions extends MergeOptions {
  /** Heads vouching for context beyond the delta's own entries (anti-entropy's final chunk). */
  heads?: readonly SignedHead[]
}

/** `expire`: an entry's expiry passed on this peer (nothing was written). */
export type ChangeOrigin = 'local' | 'remote' | 'gc' | 'expire'

export interface ChangeEvent {
  namespace: string
  type: 'register' | 'counter' | 'set'
  key: string
  element?: string
  origin: ChangeOrigin
  /**
   * Registers: values the commit added to the key minus those it removed, so the key had
   * (siblings now − this) before it. Absent for other types and for expiry.
   */
  siblingsAdded?: number
}

export interface ReplicaEvents {
  /** A key's visible state may have changed (after commit). */
  change: [ChangeEvent]
  /** A local write is durable: its delta is ready to gossip. */
  delta: [Delta]
  /** The replica took a new id because peers hold writes of its old id that it lost. */
  incarnation: [{ previous: string; next: string }]
  /** The store failed; the replica refuses writes from now on. */
  failed: [Error]
}

interface PendingBatch {
  put: Map<Entry, StoredEntry>
  remove: DotRef[]
  changes: Array<[Change, ChangeOrigin]>
  local: Delta[]
  meta: Map<string, Uint8Array>
  /** Heads raised by this batch, persisted with it (one meta value per replica). */
  raisedHeads: Map<string, SignedHead>
  /** Local entries of this batch, signed together when it is written. */
  unsigned: Entry[]
}

/** The body of a local entry until its batch is signed (never stored: sign replaces it). */
const NOT_ENCODED = new Uint8Array(0)
const META_CONTEXT = 'context'
const META_COLLECTED = 'collected'
/** One meta value per author replica, so raising a head rewrites that head alone. */
const META_HEAD_PREFIX = 'head/'
const CONTENT_TYPE = /^[\x21-\x7e][\x20-\x7e]{0,126}$/

export class Replica extends EventEmitter<ReplicaEvents> {
  readonly namespace: string
  private readonly store: Store
  private readonly doc: CrdtDocument
  private readonly maxKeyBytes: number
  private readonly maxValueBytes: number
  private readonly signer: EntrySigner
  private readonly verifier: SignatureVerifier
  private readonly random: RandomBytes | undefined
  /** Per replica, the signed header of its highest-counter entry we verified (or wrote). */
  private readonly heads = new Map<string, SignedHead>()
  private readonly commits: CommitQueue<PendingBatch>
  private readonly expirySweep: NodeJS.Timeout
  private failure: Error | undefined
  private closed = false

  private constructor(init: ReplicaInit & { signer: EntrySigner }, doc: CrdtDocument) {
    super()
    this.signer = init.signer
    this.verifier = init.verifier ?? verifyEd25519
    this.random = init.randomBytes
    this.namespace = init.namespace
    this.store = init.store
    this.doc = doc
    this.maxKeyBytes = init.maxKeyBytes ?? MAX_KEY_BYTES
    this.maxValueBytes = init.maxValueBytes ?? DEFAULT_LIMITS.maxValueBytes
    // Local writes commit on the next turn of the event loop, durably. Remote merges and collection
    // may wait `remoteFlushMs` for company, and commit without an fsync of their own (the next local
    // write's fsync covers them): a crash can only lose data that peers still hold and anti-entropy
    // brings back, never an acknowledged local write.
    this.commits = new CommitQueue<PendingBatch>(
      {
        create: () => ({
          put: new Map(),
          remove: [],
          changes: [],
          local: [],
          meta: new Map(),
          raisedHeads: new Map(),
          unsigned: [],
        }),
        write: (batch, urgent) => this.write(batch, urgent),
        committed: (batch) => this.announce(batch),
        failed: (error) => this.fail(error),
      },
      { delayMs: init.remoteFlushMs ?? 0, scheduler: init.scheduler },
    )
    // Expiry writes nothing: the sweep only announces keys whose deadline passed, so watchers see
    // them go. Unref'd: it never keeps a process alive.
    this.expirySweep = setInterval(() => this.announceExpired(), init.expirySweepMs ?? 1000)
    this.expirySweep.unref()
  }

  /** Opens a namespace from its store; throws StoreError when the stored data cannot be read. */
  static open(init: ReplicaInit): Replica {
    const signer = init.signer ?? generateEntrySigner()
    const snapshot = init.store.load(init.namespace)
    const random = init.randomBytes
    const chosen = chooseReplicaId(
      init.replicaBase ?? signer.peerId,
      init.store.identity?.(),
      snapshot.meta,
      random,
    )
    let replicaId = chosen.replicaId
    const meta = chosen.meta
    // Writes must be signed by the replica id's author: a store reopened under another identity key
    // continues under a new replica id of that key.
    if (init.signer !== undefined && replicaAuthor(replicaId) !== signer.peerId) {
      replicaId = nextIncarnation(signer.peerId, random)
      meta.push(replicaIdMeta(replicaId))
    }
    const doc = new CrdtDocument({ replica: replicaId, clock: new HybridClock(init.now) })
    const replica = new Replica({ ...init, signer }, doc)
    try {
      const context = decodeOptional(snapshot.meta.get(META_CONTEXT))
      const collected = decodeOptional(snapshot.meta.get(META_COLLECTED))
      for (const [name, value] of snapshot.meta) {
        if (!name.startsWith(META_HEAD_PREFIX)) continue
        for (const head of decodeHeadList(value)) replica.heads.set(head.replica, head)
      }
      doc.load(
        snapshot.entries.map((row) => decodeEntryBody(row.key, row.replica, row.counter, row.data)),
        context,
        collected,
      )
    } catch (error) {
      if (error instanceof DecodeError) {
        throw new StoreError('STORE_CORRUPT', `namespace ${init.namespace}: ${error.message}`, {
          cause: error,
        })
      }
      throw error
    }
    if (meta.length > 0) init.store.commit(init.namespace, { put: [], remove: [], meta })
    return replica
  }

  get replicaId(): string {
    return this.doc.replica
  }

  // ---- registers --------------------------------------------------------------------------

  get(key: string): ReadResult | undefined {
    this.checkKey(key)
    const read = this.doc.get(key)
    return read === undefined ? undefined : withEtag(key, read)
  }

  async put(
    key: string,
    value: Uint8Array,
    contentType: string,
    options: { ifMatch?: string; ttlMs?: number } = {},
  ): Promise<WriteAck> {
    this.checkWritable()
    this.checkKey(key)
    this.checkValue(value)
    if (!CONTENT_TYPE.test(contentType)) {
      throw new ReplicaError('INVALID_CONTENT_TYPE', 'content type must be 1-127 printable ASCII characters')
    }
    checkTtl(options.ttlMs)
    const token = parseToken(key, options.ifMatch)
    return this.local(key, this.doc.put(key, value, contentType, token, options.ttlMs))
  }

  /**
   * Renews a key: a new write of the value a read shows now (the winner), superseding every
   * sibling, with a new TTL (none: the key no longer expires). Undefined when the key is absent.
   */
  async touch(key: string, options: { ttlMs?: number } = {}): Promise<WriteAck | undefined> {
    this.checkWritable()
    this.checkKey(key)
    checkTtl(options.ttlMs)
    const read = this.doc.get(key)
    if (read === undefined) return undefined
    const { value, contentType } = read.winner
    return this.local(key, this.doc.put(key, value, contentType, undefined, options.ttlMs))
  }

  /**
   * Removes every key under `prefix` that a read shows now, as one operation: one tombstone per key,
   * one HLC timestamp, one commit (see CrdtDocument.deletePrefix). Resolves to the writes (empty
   * when nothing matched); the last has the highest dot.
   */
  async deletePrefix(prefix: string): Promise<WriteAck[]> {
    this.checkWritable()
    if (typeof prefix !== 'string' || prefix.includes(KEY_SEPARATOR) || !prefix.isWellFormed())
      throw new ReplicaError('INVALID_KEY', 'prefix must be a well-formed string without NUL')
    // One commit (every write of this turn shares the batch); the gossip batcher coalesces the
    // tombstones into as few messages as its size limit allows.
    return Promise.all(
      this.doc
        .deletePrefix(prefix)
        .map((result) => this.local(parseInternalKey(result.entry.key).key, result)),
    )
  }

  /** Removes a key; resolves undefined when it did not exist. */
  async delete(key: string, options: { ifMatch?: string } = {}): Promise<WriteAck | undefined> {
    this.checkWritable()
    this.checkKey(key)
    const result = this.doc.delete(key, parseToken(key, options.ifMatch))
    return result === undefined ? undefined : this.local(key, result)
  }

  /**
   * Every entry of a register, tombstones and expired values included, with the HLC wall time reads
   * compare expiries with and the dots of collected tombstones: what `explain` shows. Read only.
   */
  inspect(key: string): { entries: readonly Entry[]; now: number; collected: CausalContext } {
    this.checkKey(key)
    const map = this.doc.map
    return {
      entries: map.siblings(internalKey('register', key)),
      now: map.clock.now(),
      collected: map.collectedDots(),
    }
  }

  /** Registers whose key starts with `prefix`, in key order, a page at a time. */
  list(prefix = '', options: { cursor?: string; limit?: number } = {}): ListPage {
    const limit = Math.max(1, Math.min(options.limit ?? 100, 10_000))
    const found: ListedKey[] = this.doc.list(prefix, { after: options.cursor, limit: limit + 1 })
    const more = found.length > limit
    const items = found.slice(0, limit).map(({ key, read }) => ({ key, read: withEtag(key, read) }))
    return more ? { items, cursor: items[items.length - 1].key } : { items }
  }

  // ---- counters and sets ------------------------------------------------------------------

  counter(key: string): number {
    this.checkKey(key)
    return this.doc.counter(key)
  }

  async increment(key: string, by = 1): Promise<WriteAck & { value: number }> {
    this.checkWritable()
    this.checkKey(key)
    if (!Number.isSafeInteger(by))
      throw new ReplicaError('INVALID_NUMBER', 'increment must be a safe integer')
    const next = this.doc.counter(key) + by
    if (!Number.isSafeInteger(next)) throw new ReplicaError('INVALID_NUMBER', 'counter would overflow')
    const ack = await this.local(key, this.doc.increment(key, by))
    return { ...ack, value: this.doc.counter(key) }
  }

  async resetCounter(key: string): Promise<WriteAck | undefined> {
    this.checkWritable()
    this.checkKey(key)
    const result = this.doc.deleteCounter(key)
    return result === undefined ? undefined : this.local(key, result)
  }

  async setAdd(key: string, element: string): Promise<WriteAck> {
    this.checkWritable()
    this.checkSetElement(key, element)
    return this.local(key, this.doc.setAdd(key, element))
  }

  async setRemove(key: string, element: string): Promise<WriteAck | undefined> {
    this.checkWritable()
    this.checkSetElement(key, element)
    const result = this.doc.setRemove(key, element)
    return result === undefined ? undefined : this.local(key, result)
  }

  setMembers(key: string): string[] {
    this.checkKey(key)
    return this.doc.setMembers(key)
  }

  setHas(key: string, element: string): boolean {
    this.checkSetElement(key, element)
    return this.doc.setHas(key, element)
  }

  // ---- replication ------------------------------------------------------------------------

  /**
   * Joins a remote delta; resolves once what it changed is durable. Every entry and head must carry
   * its author's valid signature, or nothing is merged (SignatureError). Context claims beyond what
   * the claimed replica's own signatures attest are dropped (see crdt/attest.ts).
   */
  async merge(delta: Delta, options: RemoteMergeOptions = {}): Promise<Change> {
    this.checkWritable()
    const map = this.doc.map
    const fresh: Entry[] = []
    for (const entry of delta.entries) {
      // A seen dot is skipped by the join whatever it carries: only fresh entries need checking (and
      // replaying old entries costs a hostile partner its bandwidth, not our CPU).
      if (map.hasSeen(entry.replica, entry.counter)) continue
      fresh.push(entry)
      if (!verifyEntry(this.namespace, entry, this.verifier)) {
        throw new SignatureError(
          `entry ${entry.replica}:${entry.counter} does not carry its author's signature`,
        )
      }
    }
    for (const head of options.heads ?? []) {
      if (!verifyHead(this.namespace, head, this.verifier)) {
        throw new SignatureError(`head ${head.replica}:${head.counter} does not carry its author's signature`)
      }
    }
    const vouched = attestedBy(delta, options.heads)
    const clipped = clipDelta(delta, (replica) =>
      Math.max(map.maxCounter(replica), vouched.get(replica) ?? 0),
    )
    const batch = this.commits.join(false)
    this.checkIncarnation(clipped)
    this.raiseHeads(batch, fresh, options.heads ?? [])
    const change = this.doc.merge(clipped, options)
    // Even a merge that changed no entry may have grown the context: recording the (empty) change
    // makes the batch persist it.
    this.record(batch, change, 'remote')
    await this.commits.wait()
    return change
  }

  /** The signed head of a replica's highest entry we know of, to vouch for its context. */
  head(replica: string): SignedHead | undefined {
    return this.heads.get(replica)
  }

  /** Keeps the highest head per replica from verified entries and the heads sent with them. */
  private raiseHeads(batch: PendingBatch, verified: readonly Entry[], heads: readonly SignedHead[]): void {
    const highest = new Map<string, Entry>()
    for (const entry of verified) {
      const best = highest.get(entry.replica)
      if (best === undefined || best.counter < entry.counter) highest.set(entry.replica, entry)
    }
    for (const [replica, entry] of highest) {
      // Hashing the body only for an entry that raises the head.
      if ((this.heads.get(replica)?.counter ?? 0) < entry.counter) this.raiseHead(batch, headOf(entry))
    }
    for (const head of heads) this.raiseHead(batch, head)
  }

  private raiseHead(batch: PendingBatch, head: SignedHead): void {
    const current = this.heads.get(head.replica)
    if (current !== undefined && current.counter >= head.counter) return
    this.heads.set(head.replica, head)
    batch.raisedHeads.set(head.replica, head)
  }

  /**
   * What a peer at `remote` lacks, leaving out local writes not yet durable: a peer must never hold a
   * dot of ours that a crash could still take back, or we would reuse it after the restart.
   */
  deltasSince(remote: CausalContext): Delta {
    const delta = this.doc.deltasSince(remote)
    const unsent = this.undurableLocalDots()
    if (unsent === undefined) return delta
    return {
      entries: delta.entries.filter((entry) => !unsent.has(entry.replica, entry.counter)),
      context: delta.context.difference(unsent),
    }
  }

  /** The causal context as peers may see it: without local writes that are not durable yet. */
  context(): CausalContext {
    const context = this.doc.context()
    const unsent = this.undurableLocalDots()
    return unsent === undefined ? context : context.difference(unsent)
  }

  /**
   * The dots of every entry this replica holds (tombstones included), as peers may see them: what a
   * sync partner with an equal context needs to finish the join (see SyncSession).
   */
  heldDots(): CausalContext {
    const held = CausalContext.fromDots(this.doc.map.allEntries())
    const unsent = this.undurableLocalDots()
    return unsent === undefined ? held : held.difference(unsent)
  }

  private undurableLocalDots(): CausalContext | undefined {
    const local = this.commits.current?.local
    if (local === undefined || local.length === 0) return undefined
    const dots = new CausalContext()
    for (const delta of local) dots.merge(delta.context)
    return dots
  }

  versionVector(): VersionVector {
    return this.doc.versionVector()
  }

  digest(): string {
    return this.doc.digest()
  }

  /** Live entries, tombstones included (a store-size figure for metrics). */
  get entryCount(): number {
    return this.doc.map.size
  }

  get tombstoneCount(): number {
    return this.doc.map.tombstoneCount
  }

  /**
   * Collects tombstones every known member has seen. `stable` is the intersection of the members'
   * contexts; with no other member known, this replica's own context.
   */
  async collectGarbage(stable: CausalContext): Promise<number> {
    this.checkWritable()
    const change = this.doc.collectGarbage(stable)
    if (change.removed.length === 0) return 0
    const batch = this.commits.join(false)
    this.record(batch, change, 'gc')
    batch.meta.set(META_COLLECTED, encodeContext(this.doc.map.collectedDots()))
    await this.commits.wait()
    return change.removed.length
  }

  /** Resolves once everything written so far is durable. */
  async flush(): Promise<void> {
    await this.commits.wait()
  }

  /** Flushes pending writes; the store stays open (it may hold other namespaces). */
  async close(): Promise<void> {
    clearInterval(this.expirySweep)
    if (this.closed) return
    await this.flush().catch(() => {})
    this.closed = true
  }

  // ---- internals --------------------------------------------------------------------------

  /** Emits a change for each key whose entry expired on this peer since the last sweep. */
  announceExpired(): void {
    if (this.closed || this.failure !== undefined) return
    const expired = this.doc.takeExpired()
    if (this.listenerCount('change') === 0) return
    for (const parsed of expired)
      this.emit('change', { namespace: this.namespace, ...parsed, origin: 'expire' })
  }

  private async local(key: string, result: WriteResult): Promise<WriteAck> {
    const batch = this.commits.join(true)
    this.record(batch, result, 'local')
    batch.local.push(result.delta)
    const entry = result.entry
    // Taken now, before any other write or merge: the token names this write, not the key's state
    // after the commit (two writes in one commit must not share a token).
    const covers = this.doc.writeToken(result)
    await this.commits.wait()
    let token: string | undefined
    return {
      namespace: this.namespace,
      key,
      replica: result.entry.replica,
      counter: result.entry.counter,
      wall: result.entry.wall,
      expiresAt: result.entry.expiresAt,
      // Encoded on first use: most callers never look at it.
      get token() {
        token ??= encodeToken(entry.key, covers)
        return token
      },
    }
  }

  private record(batch: PendingBatch, change: Change, origin: ChangeOrigin): void {
    for (const entry of change.added) {
      // A local write is signed with the rest of its batch when the batch is written (see sign),
      // before it is stored or shown to anyone; its body is encoded then, with its proof.
      const unsigned = origin === 'local' && entry.signature === undefined
      if (unsigned) batch.unsigned.push(entry)
      batch.put.set(entry, {
        replica: entry.replica,
        counter: entry.counter,
        key: entry.key,
        data: unsigned ? NOT_ENCODED : encodeEntryBody(entry),
      })
    }
    for (const entry of change.removed) {
      // Added and removed within one batch: it never needs to reach the disk.
      if (!batch.put.delete(entry)) batch.remove.push({ replica: entry.replica, counter: entry.counter })
    }
    batch.changes.push([change, origin])
  }

  /** Writes a batch in one store transaction (durably when it holds a local write). */
  private write(batch: PendingBatch, durable: boolean): void {
    if (this.failure !== undefined) throw this.failure
    if (batch.unsigned.length > 0) this.sign(batch)
    const meta: Array<[string, Uint8Array]> = [...batch.meta]
    // Any recorded change may have grown the context: encode it once per batch, at commit time,
    // however many writes and merges the batch holds.
    if (batch.changes.length > 0) meta.push([META_CONTEXT, encodeContext(this.doc.map.context())])
    for (const [replica, head] of batch.raisedHeads)
      meta.push([META_HEAD_PREFIX + replica, encodeHeadList([head])])
    this.store.commit(
      this.namespace,
      { put: [...batch.put.values()], remove: batch.remove, meta },
      { durable },
    )
  }

  /**
   * Signs the batch's local entries: one signature per tree of up to 32 of them instead of one per
   * entry (see codec/proof.ts). Entries added and removed within the batch are signed too: they
   * may still raise this replica's head.
   */
  private sign(batch: PendingBatch): void {
    const heads = signEntries(this.signer, this.namespace, batch.unsigned)
    batch.unsigned.forEach((entry, i) => {
      entry.signature = heads[i].signature
      this.raiseHead(batch, heads[i])
      const stored = batch.put.get(entry)
      if (stored !== undefined) batch.put.set(entry, { ...stored, data: encodeEntryBody(entry) })
    })
    batch.unsigned = []
  }

  /** The first store failure closes the replica to writes. */
  private fail(failure: Error): void {
    if (this.failure !== undefined) return
    this.failure = failure
    this.emit('failed', failure)
  }

  /** A batch is durable: gossip its local deltas and tell watchers what changed. */
  private announce(batch: PendingBatch): void {
    for (const delta of batch.local) this.emit('delta', delta)
    if (this.listenerCount('change') > 0) this.emitChanges(batch)
  }

  private emitChanges(batch: PendingBatch): void {
    // Per key, values added minus values removed over the whole batch (an entry both added and
    // removed within it counts zero).
    const added = new Map<string, number>()
    for (const [change] of batch.changes) {
      for (const entry of change.added)
        if (entry.kind === EntryKind.Value) added.set(entry.key, (added.get(entry.key) ?? 0) + 1)
      for (const entry of change.removed)
        if (entry.kind === EntryKind.Value) added.set(entry.key, (added.get(entry.key) ?? 0) - 1)
    }
    // One event per key, in first-touched order, with the origin of the first change that was not
    // collection: a key collected and written again in one batch changed by that write, and
    // listeners that ignore `gc` must still see it.
    const origins = new Map<string, ChangeOrigin>()
    for (const [change, origin] of batch.changes) {
      for (const list of [change.added, change.removed]) {
        for (const entry of list) {
          const known = origins.get(entry.key)
          if (known === undefined || (known === 'gc' && origin !== 'gc')) origins.set(entry.key, origin)
        }
      }
    }
    for (const [key, origin] of origins) {
      const parsed = parseInternalKey(key)
      const event: ChangeEvent = { namespace: this.namespace, ...parsed, origin }
      if (parsed.type === 'register') event.siblingsAdded = added.get(key) ?? 0
      this.emit('change', event)
    }
  }

  /**
   * Peers hold a write of ours we no longer have (a restored backup, a copied data dir): going on
   * under the same id would reuse its dot. Take a new id before anything else is written.
   */
  private checkIncarnation(delta: Delta): void {
    const id = this.doc.replica
    const ours = this.doc.map.maxCounter(id)
    if (delta.context.max(id) <= ours) return
    const next = nextIncarnation(id, this.random)
    this.doc.map.replica = next
    const [name, value] = replicaIdMeta(next)
    this.commits.join(true).meta.set(name, value)
    this.emit('incarnation', { previous: id, next })
  }

  private checkWritable(): void {
    if (this.failure !== undefined) {
      throw new ReplicaError(
        'REPLICA_CLOSED',
        `namespace ${this.namespace}: store failed: ${this.failure.message}`,
        {
          cause: this.failure,
        },
      )
    }
    if (this.closed) throw new ReplicaError('REPLICA_CLOSED', `namespace ${this.namespace} is closed`)
  }

  private checkKey(key: string): void {
    const problem = keyProblem(key, this.maxKeyBytes)
    if (problem !== undefined) throw new ReplicaError('INVALID_KEY', problem)
  }

  private checkSetElement(key: string, element: string): void {
    this.checkKey(key)
    const problem = setElementProblem(key, element, this.maxKeyBytes)
    if (problem !== undefined) throw new ReplicaError('INVALID_KEY', problem)
  }

  private checkValue(value: Uint8Array): void {
    if (!(value instanceof Uint8Array)) throw new ReplicaError('VALUE_TOO_LARGE', 'value must be bytes')
    if (value.length > this.maxValueBytes) {
      throw new ReplicaError(
        'VALUE_TOO_LARGE',
        `value is ${value.length} bytes, the limit is ${this.maxValueBytes}`,
      )
    }
  }
}

function checkTtl(ttlMs: number | undefined): void {
  if (ttlMs === undefined) return
  if (!Number.isSafeInteger(ttlMs) || ttlMs < MIN_TTL_MS || ttlMs > MAX_TTL_MS) {
    throw new ReplicaError(
      'INVALID_TTL',
      `ttl must be a whole number of ms from ${MIN_TTL_MS} (1 s) to ${MAX_TTL_MS} (30 days), got ${ttlMs}`,
    )
  }
}

function withEtag(key: string, read: RegisterRead): ReadResult {
  let etag: string | undefined
  return {
    ...read,
    // Encoded on first use: a watch event in compact form or a lag metric never looks at it.
    get etag() {
      etag ??= encodeToken(internalKey('register', key), read.token)
      return etag
    },
  }
}

/** The dots an If-Match token of register `key` names; a token of another key is refused. */
function parseToken(key: string, token: string | undefined): Covers | undefined {
  if (token === undefined) return undefined
  let decoded: CausalToken
  try {
    decoded = decodeToken(token)
  } catch (error) {
    throw new ReplicaError(
      'INVALID_TOKEN',
      `If-Match token is not one this peer issued: ${(error as Error).message}`,
    )
  }
  if (decoded.keyTag !== tokenKeyTag(internalKey('register', key))) {
    throw new ReplicaError(
      'INVALID_TOKEN',
      `If-Match token was issued for another key, not "${key}": send the ETag of a read of this key`,
    )
  }
  return decoded.covers
}

function decodeOptional(bytes: Uint8Array | undefined): CausalContext {
  return bytes === undefined ? new CausalContext() : decodeContext(bytes)
}

export { KEY_SEPARATOR }

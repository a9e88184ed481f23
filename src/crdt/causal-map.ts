import { CausalContext, type VersionVector } from './context.ts'
import {
  type Covers,
  closeCovers,
  compactCovers,
  coversDot,
  type Entry,
  EntryKind,
  foldInto,
  isExpired,
  NO_COVERS,
} from './entry.ts'
import { type Hlc, HybridClock } from './hlc.ts'

/**
 * The delta-state kernel every data type of hearsay is built on: a causal map from keys to sets of
 * sibling entries, plus the causal context of every dot seen (Almeida, Shoker & Baquero, "Delta
 * State Replicated Data Types", 2018), each entry carrying the exact dots it supersedes on its key.
 *
 * Join of states (S1, C1) and (S2, C2): keep an entry when both sides hold it, or one side holds it
 * and the other has not seen its dot; then drop every entry that another entry on the same key
 * covers; the context is C1 ∪ C2. A delta is a small state of the same shape, so one join serves
 * local writes, gossip, anti-entropy replies and full snapshots alike.
 */

export interface Delta {
  readonly entries: readonly Entry[]
  readonly context: CausalContext
}

/** What a mutation or a merge changed: entries that appeared and entries that went away. */
export interface Change {
  readonly added: Entry[]
  readonly removed: Entry[]
}

export interface WriteResult extends Change {
  readonly delta: Delta
  readonly entry: Entry
}

/** Which siblings a new entry supersedes. */
export type Supersede =
  /** Every current sibling (register put and delete, set add and remove). */
  | { mode: 'all' }
  /** Exactly the siblings a reader saw, named by the token it was given. */
  | { mode: 'token'; covers: Covers }
  /** Only this replica's own previous counter entry (PN-counter increments). */
  | { mode: 'own-counter' }

export interface EntryBody {
  kind: Entry['kind']
  value?: Uint8Array
  contentType?: string
  increments?: number
  decrements?: number
  /** Value entries: expire this long (ms) after the write's HLC wall time. */
  ttlMs?: number
}

export interface MergeOptions {
  /**
   * Dots the sender shipped earlier in the same transfer (chunked anti-entropy): they are not
   * treated as removed when the transfer's final context names them.
   */
  shipped?: CausalContext
}

const EMPTY: readonly Entry[] = []

/** Entries of one replica by counter, with a lazily sorted list for range scans. */
class DotIndex {
  readonly byCounter = new Map<number, Entry>()
  private sorted: number[] = []
  private dirty = false
  private stale = 0

  add(entry: Entry): void {
    this.byCounter.set(entry.counter, entry)
    if (!this.dirty && (this.sorted.length === 0 || this.sorted[this.sorted.length - 1] < entry.counter)) {
      this.sorted.push(entry.counter)
    } else {
      this.dirty = true
    }
  }

  delete(counter: number): void {
    if (this.byCounter.delete(counter)) this.stale++
  }

  /** Live entries with counter > after, in counter order. */
  *after(after: number): Generator<Entry> {
    if (this.dirty || (this.stale > 64 && this.stale > this.sorted.length / 2)) {
      this.sorted = [...this.byCounter.keys()].sort((a, b) => a - b)
      this.dirty = false
      this.stale = 0
    }
    const sorted = this.sorted
    let lo = 0
    let hi = sorted.length
    while (lo < hi) {
      const mid = (lo + hi) >> 1
      if (sorted[mid] <= after) lo = mid + 1
      else hi = mid
    }
    for (let i = lo; i < sorted.length; i++) {
      const entry = this.byCounter.get(sorted[i])
      if (entry !== undefined) yield entry
    }
  }
}

export class CausalMap {
  /** The replica id local writes are made under (changes only on a new incarnation). */
  replica: string
  readonly clock: HybridClock
  private readonly byKey = new Map<string, Entry[]>()
  private readonly byDot = new Map<string, DotIndex>()
  private readonly tombstones = new Set<Entry>()
  /** Live entries with an expiry whose passing has not been announced yet (see takeExpired). */
  private readonly expiring = new Set<Entry>()
  /** Every live entry with an expiry (collection looks here for expired ones). */
  private readonly timed = new Set<Entry>()
  private readonly seen = new CausalContext()
  /** Dots of tombstones already collected: a peer lacking any of them gets a full snapshot. */
  private readonly collected = new CausalContext()
  private entryCount = 0
  private sumA = 0
  private sumB = 0
  private readonly replicaHashes = new Map<string, [number, number]>()

  constructor(init: { replica: string; clock?: HybridClock }) {
    this.replica = init.replica
    this.clock = init.clock ?? new HybridClock()
  }

  // ---- reading ----------------------------------------------------------------------------

  /** Every sibling of a key, tombstones included, in no particular order. */
  siblings(key: string): readonly Entry[] {
    return this.byKey.get(key) ?? EMPTY
  }

  keys(): IterableIterator<string> {
    return this.byKey.keys()
  }

  *allEntries(): Generator<Entry> {
    for (const siblings of this.byKey.values()) yield* siblings
  }

  get size(): number {
    return this.entryCount
  }

  get tombstoneCount(): number {
    return this.tombstones.size
  }

  /** A copy of the causal context. */
  context(): CausalContext {
    return this.seen.clone()
  }

  /** A copy of the dots behind collected tombstones. */
  collectedDots(): CausalContext {
    return this.collected.clone()
  }

  versionVector(): VersionVector {
    return this.seen.versionVector()
  }

  /** True when the dot was seen: a merge skips an entry with such a dot. */
  hasSeen(replica: string, counter: number): boolean {
    return this.seen.has(replica, counter)
  }

  /** The highest counter this map has seen from a replica. */
  maxCounter(replica: string): number {
    return this.seen.max(replica)
  }

  /** Every dot the current siblings of a key hold or supersede: what a reader saw (If-Match token). */
  coversOf(key: string): CausalContext {
    const covers = new CausalContext()
    const siblings = this.siblings(key)
    for (const sibling of siblings) foldInto(covers, sibling)
    return compactCovers(covers, siblings, this.seen)
  }

  /**
   * The causal token of a write just made (call it before anything else changes the key): its own
   * dot and what it superseded, compacted as `coversOf` compacts, so a write that left no sibling
   * gets the token a read of the key would. Sent back as If-Match it replaces this write alone.
   */
  writeToken(entry: Entry): CausalContext {
    const token = new CausalContext()
    foldInto(token, entry)
    return compactCovers(token, this.siblings(entry.key), this.seen)
  }

  /**
   * A fingerprint of the observable state: the live entries that are not tombstones, and the causal
   * context. Entries are immutable and named by their dot, so two digests are equal exactly when
   * the same values and counters are live and the same dots have been seen (up to hash collisions).
   * Tombstones are left out: what they removed is already absent and their dots are in the context,
   * and peers collect them at different times (or never receive one that anti-entropy's context
   * made redundant), so counting them would keep equal peers apart for a GC period.
   * The entry part is a sum of per-dot hashes, kept up to date on every change.
   */
  digest(): string {
    let a = 0x811c9dc5
    let b = 0x01000193
    for (const [replica, ranges] of this.seen.entries()) {
      const [ra, rb] = this.replicaHash(replica)
      a = mix(a ^ ra)
      b = mix(b ^ rb)
      for (const n of ranges) {
        a = mix(a ^ lowBits(n) ^ Math.imul(highBits(n), 0x9e3779b1))
        b = mix(b + lowBits(n) + Math.imul(highBits(n), 0x85ebca6b))
      }
    }
    return (
      hex8(this.sumA) + hex8(this.sumB) + hex8(a) + hex8(b) + hex8(this.entryCount - this.tombstones.size)
    )
  }

  // ---- local writes -----------------------------------------------------------------------

  /**
   * Makes a new entry on `key` under the local replica id and applies it. `hlc` (a timestamp this
   * clock issued) lets several writes of one operation share one timestamp.
   */
  write(key: string, body: EntryBody, supersede: Supersede = { mode: 'all' }, hlc?: Hlc): WriteResult {
    const siblings = this.byKey.get(key) ?? EMPTY
    let covers: CausalContext
    if (supersede.mode === 'all') {
      covers = siblings.length === 0 ? NO_COVERS : new CausalContext()
      for (const sibling of siblings) foldInto(covers, sibling)
    } else if (supersede.mode === 'token') {
      covers = closeCovers(supersede.covers.clone(), siblings)
    } else {
      covers = new CausalContext()
      const own = this.ownCounterEntry(siblings)
      if (own !== undefined) {
        foldInto(covers, own)
        closeCovers(covers, siblings)
      }
    }
    covers = compactCovers(covers, siblings, this.seen)
    const counter = this.seen.max(this.replica) + 1
    const stamp = hlc ?? this.clock.tick()
    // One object shape for every kind keeps property access monomorphic on the hot paths.
    const isValue = body.kind === EntryKind.Value
    const isCounter = body.kind === EntryKind.Counter
    const entry: Entry = {
      key,
      replica: this.replica,
      counter,
      wall: stamp.wall,
      logical: stamp.logical,
      covers,
      kind: body.kind,
      value: isValue ? body.value : undefined,
      contentType: isValue ? body.contentType : undefined,
      increments: isCounter ? (body.increments ?? 0) : undefined,
      decrements: isCounter ? (body.decrements ?? 0) : undefined,
      expiresAt: isValue && body.ttlMs !== undefined ? stamp.wall + body.ttlMs : undefined,
      // Signed by the replica when it commits the write (one object shape either way).
      signature: undefined,
    }
    const change: Change = { added: [], removed: [] }
    this.seen.add(this.replica, counter)
    this.insert(entry, siblings, change)
    const context = new CausalContext()
    context.add(this.replica, counter)
    return { ...change, entry, delta: { entries: [entry], context } }
  }

  /** This replica's live counter entry on a key, if any. */
  ownCounterEntry(siblings: readonly Entry[]): Entry | undefined {
    let own: Entry | undefined
    for (const sibling of siblings) {
      if (sibling.replica === this.replica && sibling.kind === EntryKind.Counter) {
        if (own === undefined || own.counter < sibling.counter) own = sibling
      }
    }
    return own
  }

  // ---- merging ----------------------------------------------------------------------------

  /** Joins a delta (or a whole state) into this one. Idempotent, commutative and associative. */
  merge(delta: Delta, options: MergeOptions = {}): Change {
    const change: Change = { added: [], removed: [] }
    for (const entry of delta.entries) {
      // Seen before: either we hold it already or something removed it since.
      if (this.seen.has(entry.replica, entry.counter)) continue
      this.seen.add(entry.replica, entry.counter)
      this.clock.observe(entry)
      const siblings = this.byKey.get(entry.key) ?? EMPTY
      let superseded = false
      for (const sibling of siblings) {
        if (coversDot(sibling, entry.replica, entry.counter)) {
          superseded = true
          break
        }
      }
      if (!superseded) this.insert(entry, siblings, change)
    }
    this.removeUnlisted(delta, options, change)
    this.seen.merge(delta.context)
    return change
  }

  /**
   * An entry we hold whose dot the sender has seen, but which the sender neither holds nor shipped,
   * was removed at the sender by something we may never receive (a collected tombstone): drop it.
   */
  private removeUnlisted(delta: Delta, options: MergeOptions, change: Change): void {
    if (delta.context.isEmpty()) return
    const listed = CausalContext.fromDots(delta.entries)
    if (options.shipped !== undefined) listed.merge(options.shipped)
    const unlisted = delta.context.difference(listed)
    for (const replica of unlisted.replicas()) {
      const index = this.byDot.get(replica)
      if (index === undefined || index.byCounter.size === 0) continue
      const ranges = unlisted.rangesOf(replica)
      let dots = 0
      for (let i = 0; i < ranges.length; i += 2) dots += ranges[i + 1] - ranges[i] + 1
      const victims: Entry[] = []
      if (dots <= index.byCounter.size) {
        for (let i = 0; i < ranges.length; i += 2) {
          for (let c = ranges[i]; c <= ranges[i + 1]; c++) {
            const entry = index.byCounter.get(c)
            if (entry !== undefined) victims.push(entry)
          }
        }
      } else {
        for (const entry of index.byCounter.values())
          if (unlisted.has(replica, entry.counter)) victims.push(entry)
      }
      for (const victim of victims) this.remove(victim, change)
    }
  }

  // ---- anti-entropy -----------------------------------------------------------------------

  /**
   * Everything a peer whose context is `remote` lacks: the entries whose dots it has not seen and
   * the context it has not seen (which carries removals). A peer behind the collection horizon (it
   * missed a tombstone that has since been collected) gets the whole state instead.
   */
  deltasSince(remote: CausalContext): Delta {
    if (!remote.covers(this.collected)) return this.snapshot()
    const entries: Entry[] = []
    for (const [replica, index] of this.byDot) {
      if (index.byCounter.size === 0) continue
      const ranges = remote.rangesOf(replica)
      const prefix = ranges.length > 0 && ranges[0] === 1 ? ranges[1] : 0
      if (ranges.length <= 2 && prefix >= this.seen.max(replica)) continue
      for (const entry of index.after(prefix)) {
        if (ranges.length > 0 && remote.has(replica, entry.counter)) continue
        entries.push(entry)
      }
    }
    return { entries, context: this.seen.difference(remote) }
  }

  /** The whole state as a delta. */
  snapshot(): Delta {
    return { entries: [...this.allEntries()], context: this.seen.clone() }
  }

  // ---- garbage collection -----------------------------------------------------------------

  /**
   * Live entries whose expiry the clock has passed since the last call: each is returned once (the
   * entry stays in the state, hidden from reads, until collected). Writes nothing.
   */
  takeExpired(now: number = this.clock.now()): Entry[] {
    const out: Entry[] = []
    for (const entry of this.expiring) {
      if (isExpired(entry, now)) {
        this.expiring.delete(entry)
        out.push(entry)
      }
    }
    return out
  }

  /**
   * Drops tombstones that every known member has seen, together with everything they cover.
   * `stable` is the intersection of the members' contexts (for one replica alone, its own). An
   * expired entry is a tombstone in all but name (no read shows it ever again): it is collected
   * under the same rule.
   */
  collectGarbage(stable: CausalContext): Change {
    const change: Change = { added: [], removed: [] }
    const now = this.clock.now()
    const candidates = [...this.tombstones]
    for (const entry of this.timed) if (isExpired(entry, now)) candidates.push(entry)
    for (const tombstone of candidates) {
      if (!stable.has(tombstone.replica, tombstone.counter) || !stable.covers(tombstone.covers)) continue
      // The horizon keeps one range per replica: a peer must have seen the writer's dots up to the
      // tombstone. (Exact dots would grow by one range per collected tombstone.)
      this.collected.addRange(tombstone.replica, 1, tombstone.counter)
      this.remove(tombstone, change)
    }
    return change
  }

  // ---- loading ----------------------------------------------------------------------------

  /** Rebuilds state read back from a store; no validation beyond what the store guarantees. */
  load(entries: Iterable<Entry>, context: CausalContext, collected?: CausalContext): void {
    this.seen.merge(context)
    if (collected !== undefined) this.collected.merge(collected)
    const change: Change = { added: [], removed: [] }
    for (const entry of entries) {
      this.seen.add(entry.replica, entry.counter)
      this.insert(entry, this.byKey.get(entry.key) ?? EMPTY, change)
    }
  }

  // ---- internals --------------------------------------------------------------------------

  private insert(entry: Entry, siblings: readonly Entry[], change: Change): void {
    let kept: Entry[]
    if (siblings.length === 0) {
      kept = [entry]
    } else {
      kept = []
      for (const sibling of siblings) {
        if (coversDot(entry, sibling.replica, sibling.counter)) this.unindex(sibling, change)
        else kept.push(sibling)
      }
      kept.push(entry)
    }
    this.byKey.set(entry.key, kept)
    this.index(entry)
    change.added.push(entry)
  }

  private remove(entry: Entry, change: Change): void {
    const siblings = this.byKey.get(entry.key)
    if (siblings === undefined) return
    const at = siblings.indexOf(entry)
    if (at < 0) return
    if (siblings.length === 1) this.byKey.delete(entry.key)
    else siblings.splice(at, 1)
    this.unindex(entry, change)
  }

  private index(entry: Entry): void {
    let index = this.byDot.get(entry.replica)
    if (index === undefined) {
      index = new DotIndex()
      this.byDot.set(entry.replica, index)
    }
    index.add(entry)
    this.entryCount++
    if (entry.expiresAt !== undefined) {
      this.timed.add(entry)
      this.expiring.add(entry)
    }
    // Tombstones stay out of the digest's sums (see digest).
    if (entry.kind === EntryKind.Tombstone) {
      this.tombstones.add(entry)
      return
    }
    const [ha, hb] = this.dotHash(entry.replica, entry.counter)
    this.sumA = (this.sumA + ha) >>> 0
    this.sumB = (this.sumB + hb) >>> 0
  }

  private unindex(entry: Entry, change: Change): void {
    this.byDot.get(entry.replica)?.delete(entry.counter)
    this.entryCount--
    if (entry.expiresAt !== undefined) {
      this.timed.delete(entry)
      this.expiring.delete(entry)
    }
    change.removed.push(entry)
    if (entry.kind === EntryKind.Tombstone) {
      this.tombstones.delete(entry)
      return
    }
    const [ha, hb] = this.dotHash(entry.replica, entry.counter)
    this.sumA = (this.sumA - ha) >>> 0
    this.sumB = (this.sumB - hb) >>> 0
  }

  private replicaHash(replica: string): [number, number] {
    let hash = this.replicaHashes.get(replica)
    if (hash === undefined) {
      let a = 0x811c9dc5
      let b = 0x9747b28c
      for (let i = 0; i < replica.length; i++) {
        const c = replica.charCodeAt(i)
        a = Math.imul(a ^ c, 0x01000193)
        b = Math.imul(b ^ c, 0x5bd1e995)
      }
      hash = [mix(a), mix(b)]
      this.replicaHashes.set(replica, hash)
    }
    return hash
  }

  private dotHash(replica: string, counter: number): [number, number] {
    const [ra, rb] = this.replicaHash(replica)
    const lo = lowBits(counter)
    const hi = highBits(counter)
    return [mix(ra ^ lo ^ Math.imul(hi, 0x9e3779b1)), mix(rb + Math.imul(lo, 0xcc9e2d51) + hi)]
  }
}

function lowBits(n: number): number {
  return n >>> 0
}

function highBits(n: number): number {
  return Math.floor(n / 0x1_0000_0000) >>> 0
}

/** murmur3's 32-bit finaliser: spreads every input bit over the output. */
function mix(h: number): number {
  h ^= h >>> 16
  h = Math.imul(h, 0x85ebca6b)
  h ^= h >>> 13
  h = Math.imul(h, 0xc2b2ae35)
  h ^= h >>> 16
  return h >>> 0
}

function hex8(n: number): string {
  return (n >>> 0).toString(16).padStart(8, '0')
}

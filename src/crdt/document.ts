import { CausalMap, type Change, type Delta, type MergeOptions, type WriteResult } from './causal-map.ts'
import type { CausalContext, VersionVector } from './context.ts'
import { type Covers, compareEntries, type Entry, EntryKind, isExpired } from './entry.ts'
import type { HybridClock } from './hlc.ts'
import { KeyIndex } from './key-index.ts'

/**
 * The data types of one namespace, all on one causal map so they share one context, one join, one
 * anti-entropy query and one digest:
 * - an observed-remove map of keys to multi-value registers (concurrent writes stay as siblings; the
 *   default read picks the highest HLC, ties by replica id),
 * - PN-counters (each replica's running totals are one entry that its next increment supersedes),
 * - add-wins sets (one register-like entry per element; a remove supersedes only the adds it saw).
 *
 * Each kind lives under its own prefix of the internal key space, so a register, a counter and a
 * set may share a user-visible name without meeting.
 */

const REGISTER = 'r'
const COUNTER = 'c'
const SET = 's'
/** Separates a set's name from an element in the internal key; user keys may not contain it. */
export const KEY_SEPARATOR = '\u0000'

export type KeyType = 'register' | 'counter' | 'set'

export interface ParsedKey {
  type: KeyType
  key: string
  element?: string
}

export function internalKey(type: KeyType, key: string, element?: string): string {
  if (type === 'register') return REGISTER + key
  if (type === 'counter') return COUNTER + key
  return SET + key + KEY_SEPARATOR + (element ?? '')
}

export function parseInternalKey(internal: string): ParsedKey {
  const rest = internal.slice(1)
  switch (internal[0]) {
    case REGISTER:
      return { type: 'register', key: rest }
    case COUNTER:
      return { type: 'counter', key: rest }
    default: {
      const at = rest.indexOf(KEY_SEPARATOR)
      return { type: 'set', key: rest.slice(0, at), element: rest.slice(at + 1) }
    }
  }
}

export interface Sibling {
  value: Uint8Array
  contentType: string
  /** HLC wall time of the write (ms since epoch). */
  wall: number
  logical: number
  replica: string
  counter: number
}

export interface RegisterRead {
  /** The sibling the default read resolves to (highest HLC, ties by replica id). */
  winner: Sibling
  /** Every concurrent value, oldest first; length 1 unless writes were concurrent. */
  siblings: Sibling[]
  /** The causal past of what was read: send it back to overwrite exactly these siblings. */
  token: Covers
}

export interface ListedKey {
  key: string
  read: RegisterRead
}

function toSibling(entry: Entry): Sibling {
  return {
    value: entry.value!,
    contentType: entry.contentType!,
    wall: entry.wall,
    logical: entry.logical,
    replica: entry.replica,
    counter: entry.counter,
  }
}

export class CrdtDocument {
  readonly map: CausalMap
  private readonly index = new KeyIndex()

  constructor(init: { replica: string; clock?: HybridClock }) {
    this.map = new CausalMap(init)
  }

  get replica(): string {
    return this.map.replica
  }

  // ---- registers --------------------------------------------------------------------------

  get(key: string): RegisterRead | undefined {
    return this.readRegister(internalKey('register', key))
  }

  /** Writes a register value; with `ttlMs`, the entry expires that long after its HLC wall time. */
  put(key: string, value: Uint8Array, contentType: string, token?: Covers, ttlMs?: number): WriteResult {
    return this.track(
      this.map.write(
        internalKey('register', key),
        { kind: EntryKind.Value, value, contentType, ttlMs },
        token === undefined ? { mode: 'all' } : { mode: 'token', covers: token },
      ),
    )
  }

  /** Removes a key; undefined when there is nothing to remove. */
  delete(key: string, token?: Covers): WriteResult | undefined {
    return this.removeInternal(internalKey('register', key), token)
  }

  /**
   * Removes every register under `prefix` that a read shows now (a live, unexpired value), as one
   * operation: one tombstone per key, all with one HLC timestamp, each superseding exactly the
   * siblings of its key seen here (observed-remove, so a concurrent write on any of the keys
   * survives). Empty when nothing matched.
   */
  deletePrefix(prefix: string): WriteResult[] {
    const keys: string[] = []
    for (const internal of this.index.range(REGISTER + prefix)) {
      if (this.isLive(internal)) keys.push(internal)
    }
    if (keys.length === 0) return []
    const hlc = this.map.clock.tick()
    return keys.map((internal) =>
      this.track(this.map.write(internal, { kind: EntryKind.Tombstone }, { mode: 'all' }, hlc)),
    )
  }

  /**
   * Keys whose entries expired since the last call (each once), for announcing; the state is not
   * changed (reads already hide them).
   */
  takeExpired(): ParsedKey[] {
    const keys = new Set<string>()
    for (const entry of this.map.takeExpired()) keys.add(entry.key)
    return [...keys].map(parseInternalKey)
  }

  /** Registers whose key starts with `prefix`, in key order, strictly after `after`. */
  list(prefix: string, options: { after?: string; limit?: number } = {}): ListedKey[] {
    const limit = options.limit ?? Number.POSITIVE_INFINITY
    const out: ListedKey[] = []
    const after = options.after === undefined ? undefined : REGISTER + options.after
    for (const internal of this.index.range(REGISTER + prefix, after)) {
      if (out.length >= limit) break
      const read = this.readRegister(internal)
      if (read !== undefined) out.push({ key: internal.slice(1), read })
    }
    return out
  }

  // ---- counters ---------------------------------------------------------------------------

  counter(key: string): number {
    let total = 0
    for (const entry of this.map.siblings(internalKey('counter', key))) {
      if (entry.kind === EntryKind.Counter) total += entry.increments! - entry.decrements!
    }
    return total
  }

  /** Adds `by` (negative to subtract) to a counter. */
  increment(key: string, by: number): WriteResult {
    const internal = internalKey('counter', key)
    const own = this.map.ownCounterEntry(this.map.siblings(internal))
    const increments = (own?.increments ?? 0) + Math.max(by, 0)
    const decrements = (own?.decrements ?? 0) + Math.max(-by, 0)
    return this.track(
      this.map.write(internal, { kind: EntryKind.Counter, increments, decrements }, { mode: 'own-counter' }),
    )
  }

  /**
   * Resets a counter (observed-remove). A replica that increments concurrently, not having seen the
   * reset, keeps its whole running total: its new entry supersedes its old one, which the reset
   * removed, so the reset loses to it for that replica's share.
   */
  deleteCounter(key: string): WriteResult | undefined {
    return this.removeInternal(internalKey('counter', key))
  }

  // ---- add-wins sets ----------------------------------------------------------------------

  setAdd(key: string, element: string): WriteResult {
    return this.track(
      this.map.write(
        internalKey('set', key, element),
        { kind: EntryKind.Value, value: new Uint8Array(0), contentType: '' },
        { mode: 'all' },
      ),
    )
  }

  /** Removes the adds this replica has seen; undefined when the element is absent. */
  setRemove(key: string, element: string): WriteResult | undefined {
    return this.removeInternal(internalKey('set', key, element))
  }

  setHas(key: string, element: string): boolean {
    return this.isLive(internalKey('set', key, element))
  }

  /** Elements of a set, sorted. */
  setMembers(key: string): string[] {
    const prefix = internalKey('set', key, '')
    const out: string[] = []
    for (const internal of this.index.range(prefix)) {
      if (this.isLive(internal)) out.push(internal.slice(prefix.length))
    }
    return out
  }

  /**
   * The causal token of a write this document just made (before anything else touches its key):
   * it names the write alone, so two writes in a row never share one.
   */
  writeToken(result: WriteResult): Covers {
    return this.map.writeToken(result.entry)
  }

  // ---- replication ------------------------------------------------------------------------

  merge(delta: Delta, options?: MergeOptions): Change {
    return this.track(this.map.merge(delta, options))
  }

  deltasSince(remote: CausalContext): Delta {
    return this.map.deltasSince(remote)
  }

  snapshot(): Delta {
    return this.map.snapshot()
  }

  collectGarbage(stable: CausalContext): Change {
    return this.track(this.map.collectGarbage(stable))
  }

  load(entries: Iterable<Entry>, context: CausalContext, collected?: CausalContext): void {
    const list = [...entries]
    this.map.load(list, context, collected)
    for (const entry of list) this.index.add(entry.key)
  }

  digest(): string {
    return this.map.digest()
  }

  versionVector(): VersionVector {
    return this.map.versionVector()
  }

  context(): CausalContext {
    return this.map.context()
  }

  // ---- internals --------------------------------------------------------------------------

  private readRegister(internal: string): RegisterRead | undefined {
    const entries = this.map.siblings(internal)
    const now = this.map.clock.now()
    const values = entries.filter((entry) => entry.kind === EntryKind.Value && !isExpired(entry, now))
    if (values.length === 0) return undefined
    if (values.length > 1) values.sort(compareEntries)
    const siblings = values.map(toSibling)
    return { winner: siblings[siblings.length - 1], siblings, token: this.map.coversOf(internal) }
  }

  private isLive(internal: string): boolean {
    const siblings = this.map.siblings(internal)
    if (siblings.length === 0) return false
    const now = this.map.clock.now()
    for (const entry of siblings)
      if (entry.kind !== EntryKind.Tombstone && !isExpired(entry, now)) return true
    return false
  }

  private removeInternal(internal: string, token?: Covers): WriteResult | undefined {
    if (token === undefined && !this.isLive(internal)) return undefined
    return this.track(
      this.map.write(
        internal,
        { kind: EntryKind.Tombstone },
        token === undefined ? { mode: 'all' } : { mode: 'token', covers: token },
      ),
    )
  }

  private track<T extends Change>(change: T): T {
    for (const entry of change.added) this.index.add(entry.key)
    for (const entry of change.removed) {
      if (this.map.siblings(entry.key).length === 0) this.index.delete(entry.key)
    }
    return change
  }
}

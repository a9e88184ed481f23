import { CausalContext } from './context.ts'

/**
 * An entry is the unit of replicated state: one write to one key, identified by its dot.
 *
 * Entries never change once made, so a dot names its entry's whole content. Each entry carries
 * `covers`, the exact set of dots on the same key it supersedes (transitively closed). This is what
 * lets a removal or an overwrite reach a peer that never saw the intermediate steps. An exact set,
 * not a max per replica: a write with a stale If-Match token, or an increment after a reset, can
 * leave an older entry of the same replica live, and a per-replica maximum would then claim dots
 * the writer never saw.
 */

export const EntryKind = {
  /** A removal: keeps nothing but what it supersedes. Collected once causally stable. */
  Tombstone: 0,
  /** A register value: bytes with a content type. */
  Value: 1,
  /** One replica's running totals in a PN-counter. */
  Counter: 2,
} as const
export type EntryKind = (typeof EntryKind)[keyof typeof EntryKind]

/** The dots on the same key an entry supersedes. Treated as immutable once the entry exists. */
export type Covers = CausalContext

/** Shared empty covers: never mutated. */
export const NO_COVERS: Covers = new CausalContext()

export interface Entry {
  readonly key: string
  readonly replica: string
  readonly counter: number
  readonly wall: number
  readonly logical: number
  readonly covers: Covers
  readonly kind: EntryKind
  /** Value entries: the bytes. */
  readonly value?: Uint8Array
  /** Value entries: the content type of the bytes. */
  readonly contentType?: string
  /** Counter entries: everything this replica ever added (P). */
  readonly increments?: number
  /** Counter entries: everything this replica ever subtracted (N). */
  readonly decrements?: number
  /**
   * Value entries with a TTL: the absolute HLC wall time (ms) at which the entry expires, fixed by
   * its author (its own HLC wall time + ttl) and signed with it, so every peer expires it at the
   * same deadline. From then on reads treat it as removed; no tombstone is written.
   */
  readonly expiresAt?: number
  /**
   * The author's proof: an Ed25519 signature (64 bytes) over the entry's dot and body hash, or over
   * the root of its commit turn's Merkle tree with the entry's path to it (codec/proof.ts). Absent only on entries not yet committed, and in the pure CRDT layer.
   */
  signature?: Uint8Array
}

/** True when the entry carries an expiry that the clock reading `now` (HLC wall, ms) has reached. */
export function isExpired(entry: Entry, now: number): boolean {
  return entry.expiresAt !== undefined && entry.expiresAt <= now
}

/** True when `entry` supersedes the entry with dot (replica, counter) on the same key. */
export function coversDot(entry: Entry, replica: string, counter: number): boolean {
  return entry.covers.has(replica, counter)
}

/** Orders siblings for the default read: HLC last-writer-wins, ties broken by replica id then counter. */
export function compareEntries(a: Entry, b: Entry): number {
  if (a.wall !== b.wall) return a.wall - b.wall
  if (a.logical !== b.logical) return a.logical - b.logical
  if (a.replica !== b.replica) return a.replica < b.replica ? -1 : 1
  return a.counter - b.counter
}

/** Adds an entry's dot and everything it covers to `target`. */
export function foldInto(target: CausalContext, entry: Entry): void {
  target.add(entry.replica, entry.counter)
  if (!entry.covers.isEmpty()) target.merge(entry.covers)
}

/**
 * Completes the covers of a new entry: every sibling whose dot it covers passes on what it covered,
 * until nothing changes, so covers stay transitively closed.
 */
export function closeCovers(start: CausalContext, siblings: readonly Entry[]): CausalContext {
  let changed = true
  const folded = new Set<Entry>()
  while (changed) {
    changed = false
    for (const sibling of siblings) {
      if (folded.has(sibling) || !start.has(sibling.replica, sibling.counter)) continue
      folded.add(sibling)
      if (!start.covers(sibling.covers)) {
        start.merge(sibling.covers)
        changed = true
      }
    }
  }
  return start
}

/**
 * Keeps covers small. An exact set of superseded dots fragments into one range per overwrite,
 * because a key's dots interleave with other keys' dots. A gap between two ranges may be filled
 * when the writer has seen every dot in it and none is a live entry on the key: such a dot is
 * either on another key (covers only apply to their own key) or already superseded in the writer's
 * past, so covering it is true. Covers then compact to about one range per replica.
 */
export function compactCovers(
  covers: CausalContext,
  siblings: readonly Entry[],
  seen: CausalContext,
): CausalContext {
  // Mutates `covers` in place: callers pass a context they just built.
  for (const [replica, ranges] of covers.unsortedEntries()) {
    if (ranges[0] === 1 && ranges.length === 2) continue
    const flat: number[] = []
    let previous = 0
    for (let i = 0; i < ranges.length; i += 2) {
      const gapLo = previous + 1
      const gapHi = ranges[i] - 1
      const fill =
        gapLo <= gapHi && seen.hasRange(replica, gapLo, gapHi) && !liveIn(siblings, replica, gapLo, gapHi)
      if (fill && flat.length > 0) flat[flat.length - 1] = ranges[i + 1]
      else if (fill) flat.push(gapLo, ranges[i + 1])
      else flat.push(ranges[i], ranges[i + 1])
      previous = ranges[i + 1]
    }
    covers.setRanges(replica, flat)
  }
  return covers
}

function liveIn(siblings: readonly Entry[], replica: string, lo: number, hi: number): boolean {
  for (const sibling of siblings) {
    if (sibling.replica === replica && sibling.counter >= lo && sibling.counter <= hi) return true
  }
  return false
}

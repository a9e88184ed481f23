import type { Hlc } from './hlc.ts'

/**
 * An entry is the unit of replicated state: one write to one key, identified by its dot.
 *
 * Entries never change once made, so a dot names its entry's whole content. Each entry carries
 * `covers`, the key's causal past when it was written: every entry on the same key with dot
 * (r, c) where c <= covers[r] is superseded by it. This is what lets a removal or an overwrite reach a
 * peer that never saw the intermediate steps (a dotted version vector per key).
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

/** Per-key causal past: replica → highest counter superseded on this key. */
export type Covers = ReadonlyMap<string, number>

export const NO_COVERS: Covers = new Map()

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
}

export function entryHlc(entry: Entry): Hlc {
  return { wall: entry.wall, logical: entry.logical }
}

/** True when `entry` supersedes the entry with dot (replica, counter) on the same key. */
export function coversDot(entry: Entry, replica: string, counter: number): boolean {
  const upTo = entry.covers.get(replica)
  return upTo !== undefined && counter <= upTo
}

/** Orders siblings for the default read: HLC last-writer-wins, ties broken by replica id then counter. */
export function compareEntries(a: Entry, b: Entry): number {
  if (a.wall !== b.wall) return a.wall - b.wall
  if (a.logical !== b.logical) return a.logical - b.logical
  if (a.replica !== b.replica) return a.replica < b.replica ? -1 : 1
  return a.counter - b.counter
}

/** Adds an entry's dot and its own covers into a mutable covers map. */
export function foldInto(target: Map<string, number>, entry: Entry): void {
  const own = target.get(entry.replica)
  if (own === undefined || own < entry.counter) target.set(entry.replica, entry.counter)
  for (const [replica, counter] of entry.covers) {
    const current = target.get(replica)
    if (current === undefined || current < counter) target.set(replica, counter)
  }
}

/**
 * The covers of a new entry that supersedes `seen` among `siblings`. Any other sibling the result
 * happens to cover is folded in too, until nothing changes, so covers stay transitively closed: an
 * entry always carries everything the entries it supersedes carried.
 */
export function closeCovers(start: Map<string, number>, siblings: readonly Entry[]): Map<string, number> {
  let changed = true
  const folded = new Set<Entry>()
  while (changed) {
    changed = false
    for (const sibling of siblings) {
      if (folded.has(sibling)) continue
      const upTo = start.get(sibling.replica)
      if (upTo !== undefined && sibling.counter <= upTo) {
        folded.add(sibling)
        const before = start.size
        let grew = false
        for (const [replica, counter] of sibling.covers) {
          const current = start.get(replica)
          if (current === undefined || current < counter) {
            start.set(replica, counter)
            grew = true
          }
        }
        if (grew || start.size !== before) changed = true
      }
    }
  }
  return start
}

export function coversEqual(a: Covers, b: Covers): boolean {
  if (a.size !== b.size) return false
  for (const [replica, counter] of a) if (b.get(replica) !== counter) return false
  return true
}

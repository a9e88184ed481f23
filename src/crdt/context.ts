/**
 * Causal context: the set of dots (replica, counter) a replica has seen.
 *
 * Per replica it is kept as sorted, disjoint, non-adjacent ranges [lo, hi]. When the first range
 * starts at 1 it is the version-vector entry; later ranges are the "dot cloud" of dots received out
 * of order. Adding the dot that closes a gap merges ranges, so the context compacts to a plain
 * version vector as gaps fill. The same shape also expresses the difference of two contexts, which is
 * what an anti-entropy reply carries.
 */

export interface Dot {
  replica: string
  counter: number
}

/** A plain version vector: replica → highest counter seen with no gaps below it. */
export type VersionVector = Map<string, number>

export class CausalContext {
  /** replica → flat [lo1, hi1, lo2, hi2, ...], sorted, disjoint, never adjacent. */
  private readonly ranges = new Map<string, number[]>()

  static fromVersionVector(vv: VersionVector): CausalContext {
    const context = new CausalContext()
    for (const [replica, counter] of vv) if (counter > 0) context.ranges.set(replica, [1, counter])
    return context
  }

  static fromDots(dots: Iterable<Dot>): CausalContext {
    const context = new CausalContext()
    for (const dot of dots) context.add(dot.replica, dot.counter)
    return context
  }

  /** Builds a context from raw ranges (as decoded from the wire); ranges may overlap or be unsorted. */
  static fromRanges(entries: Iterable<[string, number[]]>): CausalContext {
    const context = new CausalContext()
    for (const [replica, flat] of entries) {
      for (let i = 0; i + 1 < flat.length; i += 2) context.addRange(replica, flat[i], flat[i + 1])
    }
    return context
  }

  has(replica: string, counter: number): boolean {
    const flat = this.ranges.get(replica)
    if (flat === undefined) return false
    // Common case: one range starting at 1.
    if (flat.length === 2) return counter >= flat[0] && counter <= flat[1]
    let lo = 0
    let hi = flat.length / 2 - 1
    while (lo <= hi) {
      const mid = (lo + hi) >> 1
      if (counter < flat[mid * 2]) hi = mid - 1
      else if (counter > flat[mid * 2 + 1]) lo = mid + 1
      else return true
    }
    return false
  }

  add(replica: string, counter: number): void {
    const flat = this.ranges.get(replica)
    if (flat === undefined) {
      this.ranges.set(replica, [counter, counter])
      return
    }
    // Hot path: the next dot in sequence extends the last range.
    const last = flat.length - 1
    if (counter === flat[last] + 1) {
      flat[last] = counter
      return
    }
    if (counter > flat[last] + 1) {
      flat.push(counter, counter)
      return
    }
    this.addRange(replica, counter, counter)
  }

  addRange(replica: string, lo: number, hi: number): void {
    if (hi < lo) return
    const flat = this.ranges.get(replica)
    if (flat === undefined) {
      this.ranges.set(replica, [lo, hi])
      return
    }
    // Fast paths: beyond the last range, or touching only the last range.
    const last = flat.length - 1
    if (lo > flat[last] + 1) {
      flat.push(lo, hi)
      return
    }
    if (lo >= flat[last - 1] && (last === 1 || lo > flat[last - 2] + 1)) {
      if (hi > flat[last]) flat[last] = hi
      return
    }
    const merged: number[] = []
    let placed = false
    for (let i = 0; i < flat.length; i += 2) {
      const a = flat[i]
      const b = flat[i + 1]
      if (b + 1 < lo) {
        merged.push(a, b)
      } else if (hi + 1 < a) {
        if (!placed) {
          merged.push(lo, hi)
          placed = true
        }
        merged.push(a, b)
      } else {
        lo = Math.min(lo, a)
        hi = Math.max(hi, b)
      }
    }
    if (!placed) merged.push(lo, hi)
    this.ranges.set(replica, merged)
  }

  /** Adds every dot of another context. */
  merge(other: CausalContext): void {
    for (const [replica, flat] of other.ranges) {
      const mine = this.ranges.get(replica)
      if (mine === undefined) {
        this.ranges.set(replica, flat.slice())
        continue
      }
      for (let i = 0; i < flat.length; i += 2) this.addRange(replica, flat[i], flat[i + 1])
    }
  }

  /** The dots of this context that `other` lacks. */
  difference(other: CausalContext): CausalContext {
    const result = new CausalContext()
    for (const [replica, flat] of this.ranges) {
      const theirs = other.ranges.get(replica)
      if (theirs === undefined) {
        result.ranges.set(replica, flat.slice())
        continue
      }
      const out: number[] = []
      let j = 0
      for (let i = 0; i < flat.length; i += 2) {
        let lo = flat[i]
        const hi = flat[i + 1]
        while (j < theirs.length && theirs[j + 1] < lo) j += 2
        let k = j
        while (lo <= hi) {
          if (k >= theirs.length || theirs[k] > hi) {
            out.push(lo, hi)
            break
          }
          if (theirs[k] > lo) out.push(lo, theirs[k] - 1)
          lo = Math.max(lo, theirs[k + 1] + 1)
          k += 2
        }
      }
      if (out.length > 0) result.ranges.set(replica, out)
    }
    return result
  }

  /** The dots both contexts hold. */
  intersection(other: CausalContext): CausalContext {
    return this.difference(this.difference(other))
  }

  /** True when every dot of `other` is in this context. */
  covers(other: CausalContext): boolean {
    for (const [replica, flat] of other.ranges) {
      for (let i = 0; i < flat.length; i += 2) {
        if (!this.hasRange(replica, flat[i], flat[i + 1])) return false
      }
    }
    return true
  }

  /** True when every dot in [lo, hi] of the replica is in this context. */
  hasRange(replica: string, lo: number, hi: number): boolean {
    const flat = this.ranges.get(replica)
    if (flat === undefined) return false
    for (let i = 0; i < flat.length; i += 2) if (flat[i] <= lo && hi <= flat[i + 1]) return true
    return false
  }

  /** The highest counter seen from a replica (gaps or not); 0 when none. */
  max(replica: string): number {
    const flat = this.ranges.get(replica)
    return flat === undefined ? 0 : flat[flat.length - 1]
  }

  /** The gap-free prefix per replica: the version vector. */
  versionVector(): VersionVector {
    const vv: VersionVector = new Map()
    for (const [replica, flat] of this.ranges) if (flat[0] === 1) vv.set(replica, flat[1])
    return vv
  }

  replicas(): IterableIterator<string> {
    return this.ranges.keys()
  }

  /** Raw ranges of one replica (read only). */
  rangesOf(replica: string): readonly number[] {
    return this.ranges.get(replica) ?? []
  }

  /** Replaces a replica's ranges; `flat` must be sorted, disjoint and non-adjacent. */
  setRanges(replica: string, flat: number[]): void {
    if (flat.length === 0) this.ranges.delete(replica)
    else this.ranges.set(replica, flat)
  }

  /** Ranges per replica in insertion order (no sorting; for hot paths). */
  unsortedEntries(): IterableIterator<[string, readonly number[]]> {
    return this.ranges.entries()
  }

  /** Sorted by replica id so encodings and digests are deterministic. */
  entries(): Array<[string, readonly number[]]> {
    return [...this.ranges.entries()].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))
  }

  /** Number of dots in the context. */
  size(): number {
    let n = 0
    for (const flat of this.ranges.values())
      for (let i = 0; i < flat.length; i += 2) n += flat[i + 1] - flat[i] + 1
    return n
  }

  get replicaCount(): number {
    return this.ranges.size
  }

  /** Number of stored ranges: 1 per replica once compacted. */
  rangeCount(): number {
    let n = 0
    for (const flat of this.ranges.values()) n += flat.length / 2
    return n
  }

  isEmpty(): boolean {
    return this.ranges.size === 0
  }

  clone(): CausalContext {
    const copy = new CausalContext()
    for (const [replica, flat] of this.ranges) copy.ranges.set(replica, flat.slice())
    return copy
  }

  equals(other: CausalContext): boolean {
    if (this.ranges.size !== other.ranges.size) return false
    for (const [replica, flat] of this.ranges) {
      const theirs = other.ranges.get(replica)
      if (theirs === undefined || theirs.length !== flat.length) return false
      for (let i = 0; i < flat.length; i++) if (flat[i] !== theirs[i]) return false
    }
    return true
  }
}

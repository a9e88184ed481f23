/**
 * Sorted index of keys for prefix listing with cursors.
 *
 * New keys are buffered and merged into the sorted array on the next listing, so a burst of writes
 * costs O(1) each and a listing after it O(n + k log k); removed keys are dropped lazily.
 */
export class KeyIndex {
  private sorted: string[] = []
  private pending: string[] = []
  private readonly known = new Set<string>()

  add(key: string): void {
    if (this.known.has(key)) return
    this.known.add(key)
    this.pending.push(key)
  }

  delete(key: string): void {
    this.known.delete(key)
  }

  get size(): number {
    return this.known.size
  }

  /** Keys starting with `prefix`, strictly after `after` when given, in code-unit order. */
  *range(prefix: string, after?: string): Generator<string> {
    this.settle()
    const start = after !== undefined && after >= prefix ? after : prefix
    let lo = 0
    let hi = this.sorted.length
    while (lo < hi) {
      const mid = (lo + hi) >> 1
      if (this.sorted[mid] < start) lo = mid + 1
      else hi = mid
    }
    for (let i = lo; i < this.sorted.length; i++) {
      const key = this.sorted[i]
      if (!key.startsWith(prefix)) return
      if (key === after) continue
      if (this.known.has(key)) yield key
    }
  }

  private settle(): void {
    const deadCount = this.sorted.length - this.known.size + this.pending.length
    if (this.pending.length === 0 && deadCount <= this.sorted.length / 4) return
    const fresh = this.pending.filter((key) => this.known.has(key)).sort(compareKeys)
    this.pending = []
    const merged: string[] = []
    let i = 0
    let j = 0
    const old = this.sorted
    while (i < old.length || j < fresh.length) {
      let next: string
      if (j >= fresh.length || (i < old.length && old[i] < fresh[j])) next = old[i++]
      else next = fresh[j++]
      if (this.known.has(next) && merged[merged.length - 1] !== next) merged.push(next)
    }
    this.sorted = merged
  }
}

export function compareKeys(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0
}

/**
 * Token buckets per key (a neighbouring peer): `ratePerSecond` sustained, `burst` at once. Pure: the
 * clock is injected. Used to drop, without blame, gossip beyond what any honest relay sends, so a
 * flooding neighbour costs us a counter increment per message instead of a signature check and a
 * merge. Anti-entropy still repairs anything honest that was dropped.
 */
export class RateLimiter {
  private readonly buckets = new Map<string, { tokens: number; at: number }>()
  private readonly rate: number
  private readonly burst: number
  private readonly now: () => number

  constructor(init: { ratePerSecond: number; burst: number; now?: () => number }) {
    this.rate = init.ratePerSecond
    this.burst = init.burst
    this.now = init.now ?? (() => performance.now())
  }

  /** Takes one token for `key`; false when its bucket is empty. */
  take(key: string): boolean {
    const now = this.now()
    let bucket = this.buckets.get(key)
    if (bucket === undefined) {
      if (this.buckets.size > 10_000) this.buckets.clear()
      bucket = { tokens: this.burst, at: now }
      this.buckets.set(key, bucket)
    }
    bucket.tokens = Math.min(this.burst, bucket.tokens + ((now - bucket.at) / 1000) * this.rate)
    bucket.at = now
    if (bucket.tokens < 1) return false
    bucket.tokens -= 1
    return true
  }
}

import { describe, expect, it } from 'vitest'
import { RateLimiter } from '../src/peer/rate-limit.ts'

describe('RateLimiter', () => {
  it('allows a burst, then the sustained rate, per key', () => {
    let now = 0
    const limiter = new RateLimiter({ ratePerSecond: 10, burst: 5, now: () => now })
    const taken = () => Array.from({ length: 20 }, () => limiter.take('a')).filter(Boolean).length
    expect(taken()).toBe(5)
    now += 1000
    // One second refills 10 tokens, capped at the burst of 5.
    expect(taken()).toBe(5)
    now += 300
    expect(taken()).toBe(3)
    // Another key has its own bucket.
    expect(limiter.take('b')).toBe(true)
  })
})

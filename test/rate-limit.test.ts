import { describe, expect, it } from 'vitest'
import { RateLimiter } from '../src/gossip/rate-limit.ts'
import { TurnBudget } from '../src/gossip/turn-budget.ts'

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

describe('TurnBudget', () => {
  it('lets at most perTurn callers through per turn, in order, and drains the rest turn by turn', async () => {
    const turns: Array<() => void> = []
    const budget = new TurnBudget({ perTurn: 2, defer: (next) => turns.push(next) })
    const started: number[] = []
    const all = Array.from({ length: 5 }, (_, i) => budget.take().then(() => started.push(i)))
    await Promise.resolve()
    expect(started).toEqual([0, 1])
    expect(budget.queued).toBe(3)
    turns.shift()!()
    await Promise.resolve()
    expect(started).toEqual([0, 1, 2, 3])
    turns.shift()!()
    await Promise.all(all)
    expect(started).toEqual([0, 1, 2, 3, 4])
    // Bounded: once idle, a last turn resets the count and no more turns are scheduled.
    while (turns.length > 0) turns.shift()!()
    expect(turns).toHaveLength(0)
  })

  it('with real turns, lets I/O callbacks run between bursts', async () => {
    const budget = new TurnBudget({ perTurn: 10 })
    let timerRan = -1
    let done = 0
    setTimeout(() => {
      timerRan = done
    }, 0)
    // Each unit is 1 ms of CPU work (a signature check and a merge, say): the timer is due after the
    // first turn, and must not wait for the whole burst.
    const work = () => {
      const end = performance.now() + 1
      while (performance.now() < end) {}
      done++
    }
    await Promise.all(Array.from({ length: 100 }, () => budget.take().then(work)))
    expect(done).toBe(100)
    // The timer fired while the burst was still being worked through, not after all of it.
    expect(timerRan).toBeGreaterThanOrEqual(0)
    expect(timerRan).toBeLessThan(100)
  })
})

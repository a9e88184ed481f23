import { describe, expect, it } from 'vitest'
import { CausalContext } from '../src/crdt/context.ts'
import { Membership } from '../src/peer/membership.ts'

describe('Membership', () => {
  it('counts the holders of a dot, disconnected ones included, never itself', () => {
    const membership = new Membership({ self: 'me', now: () => 0 })
    const upTo = (n: number) => CausalContext.fromVersionVector(new Map([['writer~1', n]]))
    membership.saw('a', { connected: true })
    membership.saw('b', { connected: true })
    membership.holds('a', 'ns', upTo(3))
    membership.holds('b', 'ns', upTo(1))
    membership.holds('me', 'ns', upTo(9))
    expect(membership.holdersOf('ns', 'writer~1', 3)).toBe(1)
    expect(membership.holdersOf('ns', 'writer~1', 1)).toBe(2)
    expect(membership.holdersOf('other', 'writer~1', 1)).toBe(0)
    membership.disconnected('a')
    expect(membership.holdersOf('ns', 'writer~1', 3)).toBe(1)
    membership.holds('b', 'ns', upTo(5))
    expect(membership.holdersOf('ns', 'writer~1', 3)).toBe(2)
    expect(membership.hasDot('b', 'ns', 'writer~1', 5)).toBe(true)
  })

  it('keeps what gossip showed apart from what sessions proved: acks and collection ignore it', () => {
    const membership = new Membership({ self: 'me', now: () => 0 })
    const range = (lo: number, hi: number) => CausalContext.fromRanges([['writer~1', [lo, hi]]])
    membership.saw('a', { connected: true })
    membership.holds('a', 'ns', range(1, 3))
    membership.sawDots('a', 'ns', range(4, 6))
    const member = membership.get('a')!
    expect(member.holds.get('ns')!.equals(range(1, 3))).toBe(true)
    expect(member.seen.get('ns')!.equals(range(1, 6))).toBe(true)
    expect(membership.hasDot('a', 'ns', 'writer~1', 5)).toBe(false)
    expect(membership.holdersOf('ns', 'writer~1', 5)).toBe(0)
    const stable = membership.stableContext('ns', range(1, 9), () => true)
    expect(stable?.equals(range(1, 3))).toBe(true)
    // A later session adds to both; gossip never shrinks either.
    membership.holds('a', 'ns', range(7, 8))
    expect(member.holds.get('ns')!.equals(CausalContext.fromRanges([['writer~1', [1, 3, 7, 8]]]))).toBe(true)
    expect(member.seen.get('ns')!.equals(range(1, 8))).toBe(true)
  })

  it('learns from gossip before any session without claiming a durable context', () => {
    const membership = new Membership({ self: 'me', now: () => 0 })
    const dots = CausalContext.fromRanges([['writer~1', [2, 2]]])
    membership.sawDots('b', 'ns', dots)
    dots.add('writer~1', 3)
    const member = membership.get('b')!
    expect(member.holds.has('ns')).toBe(false)
    // A copy: the batch's context is not kept.
    expect(member.seen.get('ns')!.equals(CausalContext.fromRanges([['writer~1', [2, 2]]]))).toBe(true)
    expect(membership.stableContext('ns', dots, () => true)).toBeUndefined()
    membership.holds('b', 'ns', CausalContext.fromRanges([['writer~1', [1, 1]]]))
    expect(member.seen.get('ns')!.equals(CausalContext.fromRanges([['writer~1', [1, 2]]]))).toBe(true)
    // Our own gossip teaches nothing of ourselves.
    membership.sawDots('me', 'ns', dots)
    expect(membership.get('me')).toBeUndefined()
  })

  it('adds nothing to seen while sessions already cover what gossip shows', () => {
    const membership = new Membership({ self: 'me', now: () => 0 })
    membership.holds('a', 'ns', CausalContext.fromRanges([['writer~1', [1, 5]]]))
    membership.sawDots('a', 'ns', CausalContext.fromRanges([['writer~1', [4, 4]]]))
    expect(membership.get('a')!.seen.has('ns')).toBe(false)
  })
})

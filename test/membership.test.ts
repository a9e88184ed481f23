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
})

import { describe, expect, it } from 'vitest'
import { CausalContext } from '../src/crdt/context.ts'
import { Membership } from '../src/peer/membership.ts'

/** A context holding dots 1..n of each given replica. */
const upTo = (vv: Record<string, number>): CausalContext =>
  CausalContext.fromVersionVector(new Map(Object.entries(vv)))

describe('Membership.stableContext (when a tombstone may be collected)', () => {
  const DAY = 24 * 60 * 60 * 1000

  function setup(ttl = DAY) {
    let now = 1_000_000
    const membership = new Membership({ self: 'me', now: () => now, memberTtlMs: ttl })
    return { membership, advance: (ms: number) => (now += ms) }
  }

  it('is our own context when no other member is known', () => {
    const { membership } = setup()
    const own = upTo({ r: 5 })
    expect(membership.stableContext('ns', own, () => true)?.equals(own)).toBe(true)
  })

  it('is what every member holds, intersected with our own context', () => {
    const { membership } = setup()
    membership.saw('a', { connected: true })
    membership.saw('b', { connected: true })
    membership.holds('a', 'ns', upTo({ r: 5, s: 2 }))
    membership.holds('b', 'ns', upTo({ r: 3, s: 9 }))
    const stable = membership.stableContext('ns', upTo({ r: 4, s: 9 }), () => true)
    expect(stable?.equals(upTo({ r: 3, s: 2 }))).toBe(true)
  })

  it('is undefined while a member that replicates the namespace has not told what it holds', () => {
    const { membership } = setup()
    membership.saw('a', { connected: true })
    membership.saw('b', { connected: true })
    membership.holds('a', 'ns', upTo({ r: 5 }))
    expect(membership.stableContext('ns', upTo({ r: 5 }), (peer) => peer === 'b')).toBeUndefined()
  })

  it('ignores a member with unknown holdings that has not joined the namespace', () => {
    const { membership } = setup()
    membership.saw('a', { connected: true })
    membership.saw('b', { connected: true })
    membership.holds('a', 'ns', upTo({ r: 5 }))
    const stable = membership.stableContext('ns', upTo({ r: 7 }), (peer) => peer === 'a')
    expect(stable?.equals(upTo({ r: 5 }))).toBe(true)
  })

  it('stops being held back by a member unseen for longer than the TTL, and again when it returns', () => {
    const { membership, advance } = setup(1000)
    membership.saw('a', { connected: true })
    membership.saw('gone', { connected: true })
    membership.holds('a', 'ns', upTo({ r: 8 }))
    membership.holds('gone', 'ns', upTo({ r: 2 }))
    expect(membership.stableContext('ns', upTo({ r: 8 }), () => true)?.equals(upTo({ r: 2 }))).toBe(true)
    advance(600)
    membership.saw('a')
    advance(600) // 'gone' last seen 1200 ms ago, 'a' 600 ms ago
    expect(membership.stableContext('ns', upTo({ r: 8 }), () => true)?.equals(upTo({ r: 8 }))).toBe(true)
    membership.saw('gone')
    expect(membership.stableContext('ns', upTo({ r: 8 }), () => true)?.equals(upTo({ r: 2 }))).toBe(true)
  })

  it('counts a disconnected member that is still within the TTL (it may hold less)', () => {
    const { membership } = setup()
    membership.saw('a', { connected: true })
    membership.holds('a', 'ns', upTo({ r: 1 }))
    membership.disconnected('a')
    expect(membership.stableContext('ns', upTo({ r: 4 }), () => true)?.equals(upTo({ r: 1 }))).toBe(true)
  })

  it('keeps holdings per namespace apart and only lets them grow', () => {
    const { membership } = setup()
    membership.saw('a', { connected: true })
    membership.holds('a', 'ns', upTo({ r: 6 }))
    membership.holds('a', 'ns', upTo({ r: 2 }))
    membership.holds('a', 'other', upTo({ r: 1 }))
    expect(membership.stableContext('ns', upTo({ r: 9 }), () => true)?.equals(upTo({ r: 6 }))).toBe(true)
    expect(membership.stableContext('other', upTo({ r: 9 }), () => true)?.equals(upTo({ r: 1 }))).toBe(true)
  })

  it('never includes ourselves as a member', () => {
    const { membership } = setup()
    membership.saw('me', { connected: true })
    membership.holds('me', 'ns', upTo({ r: 1 }))
    expect(membership.list()).toEqual([])
    expect(membership.stableContext('ns', upTo({ r: 3 }), () => true)?.equals(upTo({ r: 3 }))).toBe(true)
  })
})

import { describe, expect, it } from 'vitest'
import { GossipAdmission, peerIdsOfAddresses } from '../src/gossip/admission.ts'

describe('GossipAdmission', () => {
  it('holds each neighbour to its rate with a two-second burst', () => {
    let now = 0
    const admission = new GossipAdmission({ ratePerSecond: 5, now: () => now })
    const admitted = (peer: string, n: number) =>
      Array.from({ length: n }, () => admission.admit(peer)).filter(Boolean).length
    expect(admitted('a', 50)).toBe(10)
    now += 1000
    expect(admitted('a', 50)).toBe(5)
    expect(admitted('b', 50)).toBe(10)
  })

  it('never throttles an exempt neighbour (a configured hub)', () => {
    const admission = new GossipAdmission({ ratePerSecond: 1, exempt: ['hub'], now: () => 0 })
    expect(Array.from({ length: 10_000 }, () => admission.admit('hub')).every(Boolean)).toBe(true)
    expect(admission.admit('other')).toBe(true)
    expect(admission.admit('other')).toBe(true)
    expect(admission.admit('other')).toBe(false)
  })
})

describe('peerIdsOfAddresses', () => {
  it('reads the /p2p/ component and skips addresses without one or that do not parse', () => {
    const id = '12D3KooWQYhTNQdmr3ArTeUHRYzFg94BKyTkoWBDWez9kSCVe2Xo'
    expect(
      peerIdsOfAddresses([`/ip4/127.0.0.1/tcp/1/p2p/${id}`, '/ip4/127.0.0.1/tcp/2', 'not an address']),
    ).toEqual([id])
  })
})

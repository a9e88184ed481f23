import { describe, expect, it } from 'vitest'
import { checkLinkLoss, lossyMemory, seededRandom } from '../src/transport/lossy-memory.ts'
import { createMemoryTransport } from '../src/transport/port.ts'
import { transportAcceptance } from './transport-acceptance.ts'

transportAcceptance('libp2p in memory', createMemoryTransport)
transportAcceptance('libp2p in memory, 5 ms latency', (init) =>
  createMemoryTransport({ ...init, latencyMs: 5 }),
)

describe('lossy memory links (pure parts)', () => {
  it('draws the same losses from the same seed, and others from another', () => {
    const draws = (seed: number) => Array.from({ length: 8 }, seededRandom(seed))
    expect(draws(7)).toEqual(draws(7))
    expect(draws(7)).not.toEqual(draws(8))
    for (const x of draws(3)) expect(x >= 0 && x < 1).toBe(true)
  })

  it('refuses a loss rate outside [0, 1] or a fractional seed with a RangeError', () => {
    expect(() => checkLinkLoss({ rate: 1.5 })).toThrow(RangeError)
    expect(() => checkLinkLoss({ rate: -0.1 })).toThrow(RangeError)
    expect(() => checkLinkLoss({ rate: Number.NaN })).toThrow(RangeError)
    expect(() => checkLinkLoss({ rate: 0.1, seed: 1.5 })).toThrow(RangeError)
    expect(() => lossyMemory({ loss: { rate: 2 } })).toThrow(RangeError)
    expect(() => checkLinkLoss({ rate: 0.1, seed: 3 })).not.toThrow()
  })
})

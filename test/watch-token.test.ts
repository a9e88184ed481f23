import { describe, expect, it } from 'vitest'
import { encodeContext } from '../src/codec/delta.ts'
import { CausalContext } from '../src/crdt/context.ts'
import { ApiError } from '../src/daemon/errors.ts'
import { decodeSince, encodeSince } from '../src/daemon/watch.ts'

const A = '12D3KooWAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA~inc1'
const B = '12D3KooWBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB~inc2'

function contextOf(entries: Array<[string, number, number]>): CausalContext {
  const context = new CausalContext()
  for (const [replica, lo, hi] of entries) context.addRange(replica, lo, hi)
  return context
}

describe('watch resume tokens', () => {
  it('round-trip a context through a c2 token, a few characters per writer', () => {
    const context = contextOf([
      [A, 1, 1200],
      [A, 1300, 1301],
      [B, 1, 7],
    ])
    const token = encodeSince(context)
    expect(token).toMatch(/^c2\.[A-Za-z0-9_-]+$/)
    expect(token.length).toBeLessThan(40)
    expect(decodeSince(token, () => [B, A]).equals(context)).toBe(true)
    // An empty context needs no replicas to decode.
    expect(decodeSince(encodeSince(new CausalContext()), () => []).isEmpty()).toBe(true)
  })

  it('leaves out a writer it cannot name exactly: it replays more, never less', () => {
    const token = encodeSince(
      contextOf([
        [A, 1, 5],
        [B, 1, 9],
      ]),
    )
    // B is unknown here.
    expect(decodeSince(token, () => [A]).equals(contextOf([[A, 1, 5]]))).toBe(true)
    expect(decodeSince(token, () => []).isEmpty()).toBe(true)
  })

  it('still reads c1 tokens, and refuses what does not decode with INVALID_SINCE', () => {
    const context = contextOf([[A, 1, 3]])
    const c1 = `c1.${Buffer.from(encodeContext(context)).toString('base64url')}`
    expect(decodeSince(c1).equals(context)).toBe(true)
    for (const bad of ['c2.', 'c2.%%%', 'c2.AQ', 'c3.AAAA', 'bogus', `c2.${'A'.repeat(70_000)}`]) {
      let caught: unknown
      try {
        decodeSince(bad, () => [A])
      } catch (error) {
        caught = error
      }
      expect(caught, bad.slice(0, 12)).toBeInstanceOf(ApiError)
      expect((caught as ApiError).code).toBe('INVALID_SINCE')
    }
  })
})

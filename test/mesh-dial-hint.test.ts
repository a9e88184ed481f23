import { describe, expect, it } from 'vitest'
import { DIAL_RESET_HINT, describeDialFailure } from '../src/mesh/errors.ts'

describe('describeDialFailure', () => {
  it('adds the mesh-key hint to a reset during the handshake', () => {
    const reset = Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' })
    expect(describeDialFailure(reset)).toBe(`read ECONNRESET (${DIAL_RESET_HINT})`)
    expect(describeDialFailure(new Error('write EPIPE'))).toContain(DIAL_RESET_HINT)
  })

  it('leaves other failures as they are', () => {
    expect(describeDialFailure(new Error('connect ECONNREFUSED 127.0.0.1:1'))).toBe(
      'connect ECONNREFUSED 127.0.0.1:1',
    )
    expect(describeDialFailure(undefined)).toBe('failed without an error (undefined)')
  })
})

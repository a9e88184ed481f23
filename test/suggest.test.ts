import { describe, expect, it } from 'vitest'
import { closest, levenshtein } from '../src/cli/suggest.ts'

describe('did you mean', () => {
  it('measures edits, counting a swap of neighbours as one', () => {
    expect(levenshtein('status', 'status')).toBe(0)
    expect(levenshtein('stauts', 'status')).toBe(1)
    expect(levenshtein('tpye', 'type')).toBe(1)
    expect(levenshtein('', 'abc')).toBe(3)
    expect(levenshtein('kitten', 'sitting')).toBe(3)
  })

  it('suggests the closest known name only when it is a plausible typo', () => {
    const commands = ['put', 'get', 'del', 'ls', 'status', 'peers', 'watch', 'doctor']
    expect(closest('stauts', commands)).toBe('status')
    expect(closest('pees', commands)).toBe('peers')
    expect(closest('wat', commands)).toBe('watch')
    expect(closest('DOCTOR', commands)).toBe('doctor')
    expect(closest('frobnicate', commands)).toBeUndefined()
    expect(closest('x', commands)).toBeUndefined()
  })
})

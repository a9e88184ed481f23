/** The non-recursive JSON check: same verdict as JSON.parse on valid depths, and a hard depth bound. */
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { jsonTextProblem, MAX_JSON_DEPTH } from '../src/daemon/json-text.ts'

function parses(text: string): boolean {
  try {
    JSON.parse(text)
    return true
  } catch {
    return false
  }
}

describe('jsonTextProblem', () => {
  it('accepts what JSON.parse accepts, for generated JSON values', () => {
    fc.assert(
      fc.property(fc.jsonValue({ maxDepth: 6 }), fc.constantFrom('', ' ', '\n', '\t'), (value, space) => {
        const text = JSON.stringify(value, null, space === '' ? undefined : space)
        expect(jsonTextProblem(text)).toBeUndefined()
      }),
      { numRuns: 500 },
    )
  })

  it('agrees with JSON.parse on mutated and arbitrary text', () => {
    const mutated = fc
      .tuple(fc.json({ maxDepth: 4 }), fc.nat(), fc.string({ minLength: 0, maxLength: 3 }), fc.nat(3))
      .map(([text, at, insert, drop]) => {
        const position = text.length === 0 ? 0 : at % text.length
        return text.slice(0, position) + insert + text.slice(position + drop)
      })
    fc.assert(
      fc.property(fc.oneof(mutated, fc.string(), fc.json()), (text) => {
        expect(jsonTextProblem(text) === undefined).toBe(parses(text))
      }),
      { numRuns: 3000 },
    )
  })

  it('agrees with JSON.parse on the corner cases of the grammar', () => {
    const cases = [
      '0',
      '-0',
      '01',
      '1.',
      '.5',
      '1e',
      '1e+',
      '1E-7',
      '-',
      '--1',
      '+1',
      'tru',
      'nul',
      'truex',
      'NaN',
      '"\\u12"',
      '"\\u00e9"',
      '"\\x"',
      '"a\tb"',
      '"\u2028"',
      '[1,]',
      '[,1]',
      '{"a":1,}',
      '{"a" 1}',
      '{1:2}',
      '{"a":1 "b":2}',
      '[]',
      '{}',
      '[[]]',
      '[{}]',
      '  [ 1 , { "a" : [ ] } ]  ',
      '',
      ' ',
      '[',
      ']',
      '{',
      '"',
      '\ufeff1',
      '1 2',
      '[1]]',
      '{"a":{}}}',
      '"\\"',
      '"\\\\"',
      '[true,false,null]',
    ]
    for (const text of cases)
      expect(jsonTextProblem(text) === undefined, JSON.stringify(text)).toBe(parses(text))
  })

  it('refuses nesting beyond the limit without recursing, at any size', () => {
    const deep = (n: number) => '['.repeat(n) + ']'.repeat(n)
    expect(jsonTextProblem(deep(MAX_JSON_DEPTH))).toBeUndefined()
    expect(jsonTextProblem(deep(MAX_JSON_DEPTH + 1))).toEqual({
      kind: 'too-deep',
      limit: MAX_JSON_DEPTH,
      offset: MAX_JSON_DEPTH,
    })
    expect(jsonTextProblem(deep(1_000_000))?.kind).toBe('too-deep')
    // Unbounded depth still terminates and agrees with JSON.parse.
    expect(jsonTextProblem(deep(200_000), Number.POSITIVE_INFINITY)).toBeUndefined()
    expect(jsonTextProblem(`${'{"a":'.repeat(3)}1${'}'.repeat(3)}`, 3)).toBeUndefined()
    expect(jsonTextProblem(`${'{"a":'.repeat(4)}1${'}'.repeat(4)}`, 3)?.kind).toBe('too-deep')
  })
})

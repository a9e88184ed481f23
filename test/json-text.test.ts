/**
 * The non-recursive JSON check (same verdict as JSON.parse, and a hard depth bound), how values are
 * embedded in the API's JSON, and the byte bound of a watch stream.
 */
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { jsonTextProblem, MAX_JSON_DEPTH } from '../src/daemon/json-text.ts'
import { encodeValue, RawJson, stringifyJson } from '../src/daemon/values.ts'
import { WatchStream } from '../src/daemon/watch.ts'

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

describe('values inside JSON', () => {
  const bytes = (text: string) => new TextEncoder().encode(text)

  it('embeds valid, shallow JSON as its own text, on one line', () => {
    const encoded = encodeValue(bytes('{\r\n  "a": [1, 2.50, "x\\ny"]\n}'), 'application/json')
    expect(encoded.encoding).toBe('json')
    const text = stringifyJson({ key: 'k', ...encoded })
    expect(text).not.toMatch(/[\r\n]/)
    // The number keeps its stored spelling: the value is embedded, not re-serialized.
    expect(text).toContain('2.50')
    expect(JSON.parse(text)).toEqual({
      key: 'k',
      contentType: 'application/json',
      encoding: 'json',
      value: { a: [1, 2.5, 'x\ny'] },
    })
  })

  it('sends JSON-typed values that fail the check as text, and non-UTF-8 as base64', () => {
    const deep = `${'['.repeat(30_000)}${']'.repeat(30_000)}`
    expect(encodeValue(bytes(deep), 'application/json')).toMatchObject({ encoding: 'utf8', value: deep })
    expect(encodeValue(bytes('{nope'), 'application/vnd.x+json')).toMatchObject({
      encoding: 'utf8',
      value: '{nope',
    })
    expect(encodeValue(bytes('\ufeff{}'), 'application/json')).toMatchObject({
      encoding: 'utf8',
      value: '\ufeff{}',
    })
    expect(encodeValue(new Uint8Array([0xc3, 0x28]), 'application/json')).toMatchObject({
      encoding: 'base64',
      value: 'wyg=',
    })
    expect(encodeValue(bytes('plain'), 'text/plain')).toMatchObject({ encoding: 'utf8', value: 'plain' })
    expect(encodeValue(bytes('{}'), 'application/octet-stream')).toMatchObject({
      encoding: 'base64',
      value: 'e30=',
    })
    // Whatever the value, the envelope is valid JSON of bounded depth.
    const envelope = stringifyJson({ items: [encodeValue(bytes(deep), 'application/json')] })
    expect(JSON.parse(envelope).items[0].value).toBe(deep)
  })

  it('stringifyJson matches JSON.stringify on plain envelopes', () => {
    fc.assert(
      fc.property(fc.jsonValue({ maxDepth: 4 }), (value) => {
        expect(stringifyJson(value)).toBe(JSON.stringify(value))
      }),
      { numRuns: 300 },
    )
    expect(stringifyJson({ a: undefined, b: [undefined, 1], c: new RawJson('[1]') })).toBe(
      '{"b":[null,1],"c":[1]}',
    )
  })
})

describe('a watch stream', () => {
  it('ends with overflow once more than its byte bound is queued, and closes once', async () => {
    let closed = 0
    const stream = new WatchStream(() => closed++, 100)
    stream.push('a'.repeat(60))
    expect(closed).toBe(0)
    stream.push('b'.repeat(60))
    expect(closed).toBe(1)
    const first = await stream.next()
    expect(first.value).toMatch(/^event: overflow\n/)
    expect((await stream.next()).done).toBe(true)
    stream.push('late')
    expect(closed).toBe(1)
  })

  it('hands the socket at most 256 KiB per read, or one larger event, in order', async () => {
    const stream = new WatchStream(() => {}, 8 * 1024 * 1024)
    const small = 'x'.repeat(100 * 1024)
    const large = 'y'.repeat(600 * 1024)
    for (const chunk of [small, small, small, large, small]) stream.push(chunk)
    const reads: string[] = []
    for (let i = 0; i < 4; i++) reads.push((await stream.next()).value as string)
    expect(reads.map((read) => read.length / 1024)).toEqual([200, 100, 600, 100])
    expect(reads.join('')).toBe(small + small + small + large + small)
  })

  it('sends a replay before what is queued, producing it as it is read', async () => {
    const stream = new WatchStream(() => {}, 1024)
    let produced = 0
    stream.replay(
      (function* () {
        for (let i = 0; i < 3; i++) {
          produced++
          yield `r${i};`
        }
      })(),
    )
    stream.push('live;')
    expect(produced).toBe(0)
    expect((await stream.next()).value).toBe('r0;r1;r2;')
    expect((await stream.next()).value).toBe('live;')
  })
})

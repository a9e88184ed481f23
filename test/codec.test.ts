import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import {
  DecodeError,
  decodeContext,
  decodeDelta,
  decodeEntryBody,
  decodeToken,
  encodeContext,
  encodeDelta,
  encodeEntryBody,
  encodeToken,
  tokenKeyTag,
  withLimits,
} from '../src/codec/index.ts'
import { entryBodyHash } from '../src/codec/signature.ts'
import { CausalContext, CrdtDocument, type Delta, type Entry, HybridClock } from '../src/crdt/index.ts'
import { generateEntrySigner, signEntry, verifyEntry } from '../src/replica/signing.ts'

const te = new TextEncoder()

/** Random deltas made by real operations, so every shape the codec meets in practice appears. */
const arbitraryDelta: fc.Arbitrary<Delta> = fc
  .array(
    fc.record({
      replica: fc.constantFrom('peerA', 'peerB', '12D3KooWLongPeerIdLikeString', 'ünïcødé'),
      op: fc.constantFrom('put', 'delete', 'incr', 'sadd', 'srem'),
      key: fc
        .string({ minLength: 1, maxLength: 12 })
        .filter((k) => !k.includes('\u0000') && k.isWellFormed()),
      value: fc.uint8Array({ maxLength: 40 }),
      by: fc.integer({ min: -1000, max: 1000 }),
      wall: fc.integer({ min: 0, max: 2 ** 45 }),
      signature: fc.uint8Array({ minLength: 64, maxLength: 64 }),
    }),
    { maxLength: 25 },
  )
  .map((ops) => {
    const docs = new Map<string, CrdtDocument>()
    const shared = new CrdtDocument({ replica: 'collector' })
    for (const op of ops) {
      let doc = docs.get(op.replica)
      if (doc === undefined) {
        doc = new CrdtDocument({ replica: op.replica, clock: new HybridClock(() => op.wall) })
        docs.set(op.replica, doc)
      }
      doc.merge(shared.snapshot())
      const result =
        op.op === 'put'
          ? doc.put(op.key, op.value, 'application/json')
          : op.op === 'delete'
            ? doc.delete(op.key)
            : op.op === 'incr'
              ? doc.increment(op.key, op.by)
              : op.op === 'sadd'
                ? doc.setAdd(op.key, 'el')
                : doc.setRemove(op.key, 'el')
      if (result !== undefined) {
        // The codec carries signatures without checking them: any 64 bytes round-trip.
        result.entry.signature = op.signature
        shared.merge(result.delta)
      }
    }
    return shared.snapshot()
  })

function expectSameDelta(actual: Delta, expected: Delta): void {
  expect(actual.entries.length).toBe(expected.entries.length)
  const byDot = (e: Entry) => `${e.replica}:${e.counter}`
  const sorted = (list: readonly Entry[]) => [...list].sort((a, b) => (byDot(a) < byDot(b) ? -1 : 1))
  const a = sorted(actual.entries)
  const b = sorted(expected.entries)
  for (let i = 0; i < a.length; i++) {
    expect({ ...a[i], covers: a[i].covers.entries() }).toEqual({ ...b[i], covers: b[i].covers.entries() })
  }
  expect(actual.context.equals(expected.context)).toBe(true)
}

/** Runs a decoder and reports whether it failed only the allowed way. */
function decodesOrDecodeError(run: () => unknown): 'ok' | 'decode-error' {
  try {
    run()
    return 'ok'
  } catch (error) {
    if (error instanceof DecodeError) return 'decode-error'
    throw error
  }
}

describe('delta codec', () => {
  it('round-trips every delta', () => {
    fc.assert(
      fc.property(arbitraryDelta, (delta) => {
        expectSameDelta(decodeDelta(encodeDelta(delta)), delta)
      }),
      { numRuns: 200 },
    )
  })

  it('encodes deterministically', () => {
    fc.assert(
      fc.property(arbitraryDelta, (delta) => {
        expect(encodeDelta(decodeDelta(encodeDelta(delta)))).toEqual(encodeDelta(delta))
      }),
      { numRuns: 100 },
    )
  })

  it('refuses every truncation with a DecodeError', () => {
    fc.assert(
      fc.property(arbitraryDelta, (delta) => {
        const bytes = encodeDelta(delta)
        for (let cut = 0; cut < bytes.length; cut++) {
          expect(decodesOrDecodeError(() => decodeDelta(bytes.subarray(0, cut)))).toBe('decode-error')
        }
      }),
      { numRuns: 60 },
    )
  })

  it('survives every single bit flip with a result or a DecodeError, never another exception', () => {
    fc.assert(
      fc.property(arbitraryDelta, (delta) => {
        const bytes = encodeDelta(delta)
        for (let i = 0; i < bytes.length; i++) {
          for (let bit = 0; bit < 8; bit++) {
            const flipped = bytes.slice()
            flipped[i] ^= 1 << bit
            decodesOrDecodeError(() => decodeDelta(flipped))
          }
        }
      }),
      { numRuns: 30 },
    )
  })

  it('survives random garbage', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => {
        decodesOrDecodeError(() => decodeDelta(bytes))
        decodesOrDecodeError(() => decodeContext(bytes))
        decodesOrDecodeError(() => decodeEntryBody('rk', 'r', 1, bytes))
      }),
      { numRuns: 2000 },
    )
  })

  it('names the reason for an unknown version and an oversized frame', () => {
    const doc = new CrdtDocument({ replica: 'a' })
    const bytes = encodeDelta(doc.put('k', te.encode('v'), 'text/plain').delta)
    const future = bytes.slice()
    future[0] = 9
    expect(() => decodeDelta(future)).toThrow(
      expect.objectContaining({ name: 'DecodeError', reason: 'unknown-version' }),
    )
    expect(() => decodeDelta(bytes, withLimits({ maxFrameBytes: 8 }))).toThrow(
      expect.objectContaining({ reason: 'frame-too-large' }),
    )
  })

  it('enforces key, value and entry-count limits', () => {
    const doc = new CrdtDocument({ replica: 'a' })
    const long = doc.put('k'.repeat(100), te.encode('v'), 'text/plain').delta
    expect(() => decodeDelta(encodeDelta(long), withLimits({ maxKeyBytes: 50 }))).toThrow(
      expect.objectContaining({ reason: 'key-too-long' }),
    )
    const big = doc.put('k', new Uint8Array(5000), 'text/plain').delta
    expect(() => decodeDelta(encodeDelta(big), withLimits({ maxValueBytes: 4096 }))).toThrow(
      expect.objectContaining({ reason: 'value-too-large' }),
    )
    for (let i = 0; i < 10; i++) doc.put(`key${i}`, te.encode('v'), 'text/plain')
    expect(() => decodeDelta(encodeDelta(doc.snapshot()), withLimits({ maxEntries: 5 }))).toThrow(
      expect.objectContaining({ reason: 'too-many-items' }),
    )
  })

  it('refuses an entry whose dot is missing from the context', () => {
    const doc = new CrdtDocument({ replica: 'a' })
    const delta = doc.put('k', te.encode('v'), 'text/plain').delta
    const forged = encodeDelta({ entries: delta.entries, context: new CausalContext() })
    expect(() => decodeDelta(forged)).toThrow(expect.objectContaining({ reason: 'invalid-field' }))
  })

  it('stays compact: a small put costs its key, value and a few bytes more', () => {
    const doc = new CrdtDocument({ replica: '12D3KooWExamplePeerIdOfFiftyTwoCharactersAbcdefghij' })
    const bytes = encodeDelta(doc.put('user:42', te.encode('{"n":1}'), 'application/json').delta)
    // Length-prefixed strings (peer id, content type, internal key 'r' + key, value), the 64-byte
    // signature, then at most 24 bytes for header, dot, clock, covers and context together.
    const strings = 1 + 52 + 1 + 16 + 1 + 8 + 1 + 7
    expect(bytes.length).toBeLessThanOrEqual(strings + 64 + 24)
  })
})

describe('signed entries on the wire', () => {
  it('a bit flip anywhere either fails to decode, breaks a signature, or leaves every entry as signed', () => {
    const author = generateEntrySigner()
    const doc = new CrdtDocument({ replica: `${author.peerId}~x` })
    const entries = [
      doc.put('k', te.encode('{"a":1}'), 'application/json').entry,
      doc.increment('n', 5).entry,
      doc.delete('k')!.entry,
    ]
    for (const entry of entries) entry.signature = signEntry(author, 'ns', entry).signature
    const bytes = encodeDelta(doc.snapshot())
    const original = new Set(entries.map((e) => Buffer.from(entryBodyHash(e)).toString('hex')))
    let broken = 0
    for (let i = 0; i < bytes.length; i++) {
      for (let bit = 0; bit < 8; bit++) {
        const flipped = bytes.slice()
        flipped[i] ^= 1 << bit
        let delta: Delta
        try {
          delta = decodeDelta(flipped)
        } catch (error) {
          expect(error).toBeInstanceOf(DecodeError)
          continue
        }
        const valid = delta.entries.every((e) => verifyEntry('ns', e))
        if (!valid) {
          broken++
          continue
        }
        // Still valid: then nothing signed changed (the flip hit the context or framing).
        for (const e of delta.entries)
          expect(original.has(Buffer.from(entryBodyHash(e)).toString('hex'))).toBe(true)
      }
    }
    expect(broken).toBeGreaterThan(0)
  })

  it('carries the 64-byte signature as it is; an unsigned entry takes the same space, all zeros', () => {
    const doc = new CrdtDocument({ replica: '12D3KooWExamplePeerIdOfFiftyTwoCharactersAbcdefghij' })
    const delta = doc.put('user:42', te.encode('{"n":1}'), 'application/json').delta
    const unsigned = encodeDelta(delta).length
    delta.entries[0].signature = new Uint8Array(64).fill(1)
    expect(encodeDelta(delta).length).toBe(unsigned)
    expect(decodeDelta(encodeDelta(delta)).entries[0].signature).toEqual(new Uint8Array(64).fill(1))
  })
})

describe('context, entry and token codecs', () => {
  it('round-trips contexts with gaps', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.constantFrom('a', 'b', 'c'), fc.integer({ min: 1, max: 5000 })), {
          maxLength: 60,
        }),
        (dots) => {
          const context = CausalContext.fromDots(dots.map(([replica, counter]) => ({ replica, counter })))
          expect(decodeContext(encodeContext(context)).equals(context)).toBe(true)
        },
      ),
    )
  })

  it('round-trips stored entry bodies and tokens', () => {
    fc.assert(
      fc.property(arbitraryDelta, (delta) => {
        for (const entry of delta.entries) {
          const back = decodeEntryBody(entry.key, entry.replica, entry.counter, encodeEntryBody(entry))
          expect({ ...back, covers: back.covers.entries() }).toEqual({
            ...entry,
            covers: entry.covers.entries(),
          })
          const token = decodeToken(encodeToken(entry.key, entry.covers))
          expect(token.covers.equals(entry.covers) && token.keyTag === tokenKeyTag(entry.key)).toBe(true)
        }
      }),
      { numRuns: 100 },
    )
  })

  it('refuses malformed tokens with a DecodeError', () => {
    for (const token of ['***', 'AAAA', 'x'.repeat(20_000), '']) {
      expect(decodesOrDecodeError(() => decodeToken(token))).toBe('decode-error')
    }
  })
})

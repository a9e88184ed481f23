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
import { MAX_PROOF_BYTES } from '../src/codec/proof.ts'
import { entryBodyHash, readHeads, writeHeads } from '../src/codec/signature.ts'
import { Reader, Writer } from '../src/codec/wire.ts'
import type { SignedHead } from '../src/crdt/attest.ts'
import { CausalContext, CrdtDocument, type Delta, type Entry, HybridClock } from '../src/crdt/index.ts'
import {
  decodeHeadList,
  encodeHeadList,
  generateEntrySigner,
  headOf,
  signEntries,
  signEntry,
  verifyEntry,
  verifyHead,
} from '../src/replica/signing.ts'
import { decodeSyncFrame, encodeSyncFrame } from '../src/sync/frames.ts'

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

const hex = (bytes: Uint8Array) => Buffer.from(bytes).toString('hex')
const headText = (head: SignedHead) => ({
  ...head,
  bodyHash: hex(head.bodyHash),
  signature: hex(head.signature),
})

/** A delta of `count` writes of one replica, signed together as one commit turn. */
function signedTurn(count: number, each = false): Delta {
  const author = generateEntrySigner()
  const doc = new CrdtDocument({ replica: `${author.peerId}~x` })
  for (let i = 0; i < count; i++) doc.put(`k${i}`, te.encode(`{"i":${i}}`), 'application/json')
  const delta = doc.snapshot()
  const heads = each
    ? delta.entries.map((entry) => signEntry(author, 'ns', entry))
    : signEntries(author, 'ns', delta.entries)
  delta.entries.forEach((entry, i) => {
    entry.signature = heads[i].signature
  })
  return delta
}

describe('entry proofs on the wire and on disk', () => {
  it('round-trips the entries of a tree, writing its signature and each of its nodes once', () => {
    const alone = signedTurn(1)
    const tree = signedTurn(16)
    const back = decodeDelta(encodeDelta(tree))
    expectSameDelta(back, tree)
    expect(back.entries.every((entry) => verifyEntry('ns', entry))).toBe(true)
    // The tree's signature and each of its nodes travel once: about what a signature each cost.
    const perEntry = (delta: Delta) => encodeDelta(delta).length / delta.entries.length
    expect(perEntry(tree)).toBeLessThan(perEntry(signedTurn(16, true)) + 8)
    // Without its first entry, the frame names the tree with the second and still carries every path.
    const partial = { entries: tree.entries.slice(1), context: tree.context }
    const partialBack = decodeDelta(encodeDelta(partial))
    expect(partialBack.entries.map((e) => hex(e.signature!))).toEqual(
      partial.entries.map((e) => hex(e.signature!)),
    )
    // Out of order, an entry of the same tree after one of another still decodes to its own proof.
    const mixed = { entries: [tree.entries[3], alone.entries[0], tree.entries[5]], context: tree.context }
    mixed.context = tree.context.clone()
    mixed.context.merge(alone.context)
    const decoded = decodeDelta(encodeDelta(mixed))
    expect(decoded.entries.map((e) => hex(e.signature!))).toEqual(mixed.entries.map((e) => hex(e.signature!)))
  })

  it('a bit flip in a frame of tree proofs fails to decode, breaks a proof, or changes nothing signed', () => {
    const delta = signedTurn(3)
    const bytes = encodeDelta(delta)
    const original = new Set(delta.entries.map((e) => Buffer.from(entryBodyHash(e)).toString('hex')))
    let broken = 0
    for (let i = 0; i < bytes.length; i++) {
      for (let bit = 0; bit < 8; bit++) {
        const flipped = bytes.slice()
        flipped[i] ^= 1 << bit
        let decoded: Delta
        try {
          decoded = decodeDelta(flipped)
        } catch (error) {
          expect(error).toBeInstanceOf(DecodeError)
          continue
        }
        if (!decoded.entries.every((e) => verifyEntry('ns', e))) {
          broken++
          continue
        }
        for (const e of decoded.entries)
          expect(original.has(Buffer.from(entryBodyHash(e)).toString('hex'))).toBe(true)
      }
    }
    expect(broken).toBeGreaterThan(0)
  })

  it('refuses a proof beyond the maximum, one naming a tree the frame has not named, an unknown tag', () => {
    const entry = signedTurn(2).entries[0]
    const stored = encodeEntryBody(entry)
    // The proof's length prefix.
    const at = Buffer.from(stored).indexOf(Buffer.from(entry.signature!.subarray(0, 16))) - 1
    expect(stored[at]).toBeGreaterThan(64)
    const long = stored.slice()
    long[at] = MAX_PROOF_BYTES + 1
    expect(() => decodeEntryBody('rk0', 'r', 1, long)).toThrow(DecodeError)
    const writer = new Writer()
    writer.uint(1)
    writer.string('r~1')
    writer.uint(1)
    writer.raw(new Uint8Array(32))
    writer.uint(MAX_PROOF_BYTES + 32)
    writer.raw(new Uint8Array(MAX_PROOF_BYTES + 32))
    expect(() => readHeads(new Reader(writer.finish()), 10, 256)).toThrow(DecodeError)
    // An entry that names a tree by number when the frame has named none (its predecessor was signed alone).
    const alone = signedTurn(1)
    const tree = signedTurn(2)
    const context = alone.context.clone()
    context.merge(tree.context)
    const bytes = encodeDelta({ entries: [alone.entries[0], tree.entries[0]], context })
    const tag = Buffer.from(bytes).indexOf(Buffer.from(tree.entries[0].signature!.subarray(0, 16))) - 1
    expect(bytes[tag]).toBe(1)
    expect(hex(decodeDelta(bytes).entries[1].signature!)).toEqual(hex(tree.entries[0].signature!))
    const claimed = bytes.slice()
    claimed[tag] = 2
    expect(() => decodeDelta(claimed)).toThrow(DecodeError)
    const unknown = bytes.slice()
    unknown[tag] = 3
    expect(() => decodeDelta(unknown)).toThrow(DecodeError)
  })

  it('carries tree proofs in signed heads, and reads head lists stored before proofs', () => {
    const entries = signedTurn(3).entries
    const heads = entries.map((entry) => headOf(entry))
    const back = decodeHeadList(encodeHeadList(heads))
    expect(back.map(headText)).toEqual(heads.map(headText))
    expect(back.every((head) => verifyHead('ns', head))).toBe(true)
    const frame = decodeSyncFrame(
      encodeSyncFrame({
        type: 'deltas',
        final: true,
        delta: { entries: [], context: new CausalContext() },
        heads,
      }),
    )
    expect(frame.type === 'deltas' && frame.heads?.map(headText)).toEqual(heads.map(headText))
    // The layout before proofs: the heads alone, 64-byte signatures.
    const single = headOf(signedTurn(1).entries[0])
    const legacy = new Writer()
    legacy.uint(1)
    legacy.string(single.replica)
    legacy.uint(single.counter)
    legacy.raw(single.bodyHash)
    legacy.raw(single.signature)
    const old = decodeHeadList(legacy.finish())
    expect(old.map(headText)).toEqual([headText(single)])
    expect(verifyHead('ns', old[0])).toBe(true)
    expect(decodeHeadList(new Uint8Array([0]))).toEqual([])
    // writeHeads is what sync frames carry: length-prefixed proofs.
    const wire = new Writer()
    writeHeads(wire, [single])
    expect(readHeads(new Reader(wire.finish()), 1, 256).map(headText)).toEqual([headText(single)])
  })

  it('reads stored bodies of the layout before proofs (versions 2 and 3, a fixed 64-byte signature)', () => {
    const author = generateEntrySigner()
    const doc = new CrdtDocument({ replica: `${author.peerId}~x` })
    const plain = doc.put('k', te.encode('{"a":1}'), 'application/json').entry
    const expiring = doc.put('t', te.encode('{"b":2}'), 'application/json', undefined, 60_000).entry
    for (const entry of [plain, expiring]) {
      entry.signature = signEntry(author, 'ns', entry).signature
      const writer = new Writer()
      writer.byte(entry.expiresAt === undefined ? 2 : 3)
      writer.byte(entry.kind)
      writer.uint(entry.wall)
      writer.uint(entry.logical)
      if (entry.expiresAt !== undefined) writer.uint(entry.expiresAt)
      writer.raw(entry.signature)
      writer.uint(0) // no covers
      writer.string(entry.contentType!)
      writer.bytes(entry.value!)
      const back = decodeEntryBody(entry.key, entry.replica, entry.counter, writer.finish())
      expect({ ...back, covers: back.covers.entries(), signature: hex(back.signature!) }).toEqual({
        ...entry,
        covers: entry.covers.entries(),
        signature: hex(entry.signature),
      })
      expect(verifyEntry('ns', back)).toBe(true)
      // Written again, it takes the new layout and reads back the same.
      const again = decodeEntryBody(entry.key, entry.replica, entry.counter, encodeEntryBody(back))
      expect(hex(again.signature!)).toEqual(hex(entry.signature))
    }
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

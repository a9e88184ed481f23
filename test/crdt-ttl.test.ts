import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { decodeDelta, encodeDelta } from '../src/codec/delta.ts'
import { entryBodyHash } from '../src/codec/signature.ts'
import { decodeEntryBody, encodeEntryBody } from '../src/codec/stored.ts'
import { CrdtDocument } from '../src/crdt/document.ts'
import { EntryKind } from '../src/crdt/entry.ts'
import { HybridClock } from '../src/crdt/hlc.ts'
import { intersect } from './helpers/crdt-sim.ts'

const text = (s: string) => new TextEncoder().encode(s)
const decode = (bytes: Uint8Array) => new TextDecoder().decode(bytes)

/** A document on a physical clock the test sets by hand. */
function docAt(replica: string, clock: { now: number }): CrdtDocument {
  return new CrdtDocument({ replica, clock: new HybridClock(() => clock.now) })
}

function value(doc: CrdtDocument, key: string): string | undefined {
  const read = doc.get(key)
  return read === undefined ? undefined : decode(read.winner.value)
}

function sync(from: CrdtDocument, to: CrdtDocument): void {
  to.merge(from.deltasSince(to.context()))
}

describe('delete by prefix', () => {
  it('removes the visible keys under the prefix, one tombstone each, all with one HLC', () => {
    const clock = { now: 1_000 }
    const a = docAt('a', clock)
    for (const key of ['user/1', 'user/2', 'user/3', 'users', 'other']) a.put(key, text(key), 'text/plain')
    clock.now = 2_000
    const results = a.deletePrefix('user/')
    expect(results.map((r) => r.entry.key)).toEqual(['ruser/1', 'ruser/2', 'ruser/3'])
    expect(new Set(results.map((r) => `${r.entry.wall}.${r.entry.logical}`)).size).toBe(1)
    expect(results.every((r) => r.entry.kind === EntryKind.Tombstone)).toBe(true)
    expect(a.list('').map((k) => k.key)).toEqual(['other', 'users'])
    expect(a.deletePrefix('user/')).toEqual([])
  })

  it('is observed-remove: an offline peer loses exactly the dots the deleter saw', () => {
    const clock = { now: 1_000 }
    const [a, b, c] = ['a', 'b', 'c'].map((id) => docAt(id, clock))
    a.put('p/1', text('a1'), 'text/plain')
    a.put('p/2', text('a2'), 'text/plain')
    sync(a, b)
    sync(a, c)
    // c goes offline and writes p/1 and p/3 concurrently with a's prefix delete.
    c.put('p/1', text('c1'), 'text/plain')
    c.put('p/3', text('c3'), 'text/plain')
    const deleted = a.deletePrefix('p/')
    expect(deleted).toHaveLength(2)
    sync(a, b)
    expect(b.list('p/')).toEqual([])
    // c comes back: anti-entropy both ways.
    sync(a, c)
    sync(c, a)
    sync(c, b)
    for (const doc of [a, b, c]) {
      expect(doc.list('p/').map((k) => [k.key, decode(k.read.winner.value)])).toEqual([
        ['p/1', 'c1'],
        ['p/3', 'c3'],
      ])
      expect(doc.digest()).toBe(a.digest())
    }
  })

  it('converges whatever the delivery order (property)', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.constantFrom('a', 'b'), fc.constantFrom('k/1', 'k/2', 'j/1')), { maxLength: 8 }),
        fc.array(fc.tuple(fc.constantFrom('a', 'b'), fc.constantFrom('k/1', 'k/2', 'j/1')), { maxLength: 8 }),
        fc.boolean(),
        (before, after, order) => {
          const clock = { now: 1_000 }
          const docs: Record<string, CrdtDocument> = { a: docAt('a', clock), b: docAt('b', clock) }
          for (const [who, key] of before) docs[who].put(key, text(`${who}${clock.now++}`), 'text/plain')
          sync(docs.a, docs.b)
          sync(docs.b, docs.a)
          // a deletes the prefix while b, not having seen it, keeps writing.
          const seenByA = new Set(docs.a.list('k/').map((k) => k.key))
          const deleted = docs.a.deletePrefix('k/')
          expect(deleted.length).toBe(seenByA.size)
          const concurrent = new Set<string>()
          for (const [, key] of after) {
            docs.b.put(key, text(`b${clock.now++}`), 'text/plain')
            concurrent.add(key)
          }
          if (order) {
            sync(docs.a, docs.b)
            sync(docs.b, docs.a)
          } else {
            sync(docs.b, docs.a)
            sync(docs.a, docs.b)
          }
          expect(docs.a.digest()).toBe(docs.b.digest())
          const left = docs.a.list('k/').map((k) => k.key)
          // Exactly the keys b wrote concurrently survive under the prefix.
          expect(left).toEqual([...concurrent].filter((k) => k.startsWith('k/')).sort())
        },
      ),
      { numRuns: 200 },
    )
  })
})

describe('expiring keys', () => {
  it('expires at the write HLC wall + ttl, judged by the reading clock', () => {
    const clock = { now: 10_000 }
    const a = docAt('a', clock)
    const write = a.put('k', text('v'), 'text/plain', undefined, 5_000)
    expect(write.entry.expiresAt).toBe(15_000)
    clock.now = 14_999
    expect(value(a, 'k')).toBe('v')
    clock.now = 15_000
    expect(value(a, 'k')).toBeUndefined()
    expect(a.list('')).toEqual([])
    expect(a.takeExpired()).toEqual([{ type: 'register', key: 'k' }])
    expect(a.takeExpired()).toEqual([])
    // Deleting an expired key finds nothing to delete.
    expect(a.delete('k')).toBeUndefined()
  })

  it('expires on every peer at the same deadline, however late the write arrives', () => {
    const clock = { now: 10_000 }
    const a = docAt('a', clock)
    const bClock = { now: 10_000 }
    const b = docAt('b', bClock)
    a.put('k', text('v'), 'text/plain', undefined, 1_000)
    bClock.now = 10_500
    sync(a, b)
    expect(value(b, 'k')).toBe('v')
    bClock.now = 11_000
    expect(value(b, 'k')).toBeUndefined()
    // A peer that receives the write after its deadline never shows it.
    const c = docAt('c', { now: 20_000 })
    sync(a, c)
    expect(value(c, 'k')).toBeUndefined()
  })

  it('is deterministic given the clock (property): a read shows a key iff now < wall + ttl', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1_000, max: 1e9 }),
        fc.integer({ min: 1_000, max: 30 * 86_400_000 }),
        fc.integer({ min: -2_000, max: 30 * 86_400_000 + 2_000 }),
        (start, ttl, later) => {
          const writerClock = { now: start }
          const writer = docAt('w', writerClock)
          const reader = docAt('r', { now: start + later })
          const write = writer.put('k', text('v'), 'text/plain', undefined, ttl)
          sync(writer, reader)
          expect(value(reader, 'k') !== undefined).toBe(
            Math.max(start, start + later) < write.entry.wall + ttl,
          )
        },
      ),
    )
  })

  it('expires siblings individually', () => {
    const clock = { now: 10_000 }
    const a = docAt('a', clock)
    const b = docAt('b', clock)
    a.put('k', text('short'), 'text/plain', undefined, 1_000)
    b.put('k', text('long'), 'text/plain', undefined, 60_000)
    sync(a, b)
    sync(b, a)
    expect(a.get('k')?.siblings).toHaveLength(2)
    clock.now = 11_000
    for (const doc of [a, b]) {
      expect(doc.get('k')?.siblings.map((s) => decode(s.value))).toEqual(['long'])
    }
  })

  it('a new write renews (touch), a write without ttl makes it permanent', () => {
    const clock = { now: 10_000 }
    const a = docAt('a', clock)
    a.put('k', text('v'), 'text/plain', undefined, 1_000)
    clock.now = 10_900
    a.put('k', text('v'), 'text/plain', undefined, 1_000)
    clock.now = 11_500
    expect(value(a, 'k')).toBe('v')
    a.put('k', text('w'), 'text/plain')
    clock.now = 1e12
    expect(value(a, 'k')).toBe('w')
  })

  it('collects an expired entry as a tombstone once every member has seen it', () => {
    const clock = { now: 10_000 }
    const [a, b] = ['a', 'b'].map((id) => docAt(id, clock))
    a.put('k', text('v'), 'text/plain', undefined, 1_000)
    sync(a, b)
    const stable = intersect([a.context(), b.context()])
    expect(a.collectGarbage(stable).removed).toEqual([])
    clock.now = 11_000
    expect(a.collectGarbage(stable).removed.map((e) => e.key)).toEqual(['rk'])
    expect(a.map.size).toBe(0)
    expect(b.collectGarbage(stable).removed).toHaveLength(1)
    expect(a.digest()).toBe(b.digest())
  })

  it('carries the expiry through the wire and store codecs, and signs it', () => {
    const clock = { now: 10_000 }
    const a = docAt('a', clock)
    const plain = a.put('p', text('v'), 'text/plain').entry
    const timed = a.put('t', text('v'), 'text/plain', undefined, 30_000).entry
    const wire = decodeDelta(encodeDelta({ entries: [plain, timed], context: a.context() }))
    expect(wire.entries.map((e) => e.expiresAt)).toEqual([undefined, 40_000])
    const stored = decodeEntryBody(timed.key, timed.replica, timed.counter, encodeEntryBody(timed))
    expect(stored.expiresAt).toBe(40_000)
    // Body layouts 4 and 5 (a length-prefixed proof); 2 and 3 are still read.
    expect(encodeEntryBody(plain)[0]).toBe(4)
    expect(encodeEntryBody(timed)[0]).toBe(5)
    // The expiry is part of what the author signs: changing it changes the body hash.
    expect(Buffer.from(entryBodyHash({ ...timed, expiresAt: 10e9 }))).not.toEqual(
      Buffer.from(entryBodyHash(timed)),
    )
    // Only a value entry may carry an expiry: a tombstone with the flag is refused.
    const tombstone = a.delete('p')!.entry
    const frame = encodeDelta({ entries: [tombstone], context: a.context() })
    const kindAt = frame.indexOf(
      EntryKind.Tombstone,
      frame.indexOf(tombstone.key.charCodeAt(0)) + tombstone.key.length,
    )
    const forged = frame.slice()
    forged[kindAt] = EntryKind.Tombstone | 0x80
    expect(() => decodeDelta(forged)).toThrow(/only a value entry may expire/)
    expect(Buffer.from(entryBodyHash({ ...timed, expiresAt: undefined }))).not.toEqual(
      Buffer.from(entryBodyHash(timed)),
    )
  })
})

import { describe, expect, it } from 'vitest'
import type { CrdtDocument } from '../src/crdt/index.ts'
import { newDoc } from './helpers/crdt-sim.ts'

/**
 * Regressions: minimal reproductions of defects found by the property tests, kept so they stay
 * fixed. 1-3 came from `covers` being a maximum counter per replica: an entry that left an older
 * entry of its own replica live (a write with a stale If-Match token, an increment after a reset)
 * let a third replica's later write claim dots it never saw, losing writes and diverging for good.
 * Covers are now the exact set of superseded dots.
 */

const text = (s: string) => new TextEncoder().encode(s)
const values = (doc: CrdtDocument, key: string) =>
  (doc.get(key)?.siblings.map((s) => new TextDecoder().decode(s.value)) ?? []).sort()

function replicas(...ids: string[]): CrdtDocument[] {
  let now = 1_000
  return ids.map((id) => newDoc(id, () => now++))
}

function antiEntropy(docs: CrdtDocument[]): void {
  for (let round = 0; round < 3; round++) {
    for (const from of docs) for (const to of docs) if (from !== to) to.merge(from.deltasSince(to.context()))
  }
}

describe('covers name exactly the dots an entry supersedes', () => {
  it('1. a put with a stale If-Match token makes a later write elsewhere erase a write it never saw', () => {
    const [a, b] = replicas('a', 'b')
    const a1 = a.put('k', text('a1'), 'text/plain')
    const token = a.get('k')!.token // {a: 1}
    b.merge(a1.delta)
    const b1 = b.put('k', text('b1'), 'text/plain') // b:1, covers {a: 1}
    // A client that read at a writes through b with its (now stale) token: b:2 covers {a: 1} only,
    // so b1 is correctly kept as a concurrent sibling.
    const b2 = b.put('k', text('b2'), 'text/plain', token)
    expect(values(b, 'k')).toEqual(['b1', 'b2'])
    // a receives b2 but not b1 (lost message), then overwrites what it sees: {a2 supersedes b2}.
    a.merge(b2.delta)
    expect(values(a, 'k')).toEqual(['b2'])
    a.put('k', text('a2'), 'text/plain') // covers {a: 1, b: 2}: claims b:1 too, never seen by a
    a.merge(b1.delta)
    antiEntropy([a, b])
    // b1 and a2 are concurrent: both must survive. Actual: ['a2'] on both (b1 lost).
    expect(values(a, 'k')).toEqual(['a2', 'b1'])
    expect(values(b, 'k')).toEqual(['a2', 'b1'])
  })

  it('2. the same through a third replica makes replicas diverge for good', () => {
    const [a, b, c] = replicas('a', 'b', 'c')
    a.put('k', text('a0'), 'text/plain') // a:1
    const token = a.get('k')!.token // {a: 1}
    const b1 = b.put('k', text('b'), 'text/plain') // b:1, concurrent with a:1
    a.merge(b1.delta)
    const a2 = a.put('k', text('a1'), 'text/plain') // a:2, covers {a: 1, b: 1}
    const a3 = a.put('k', text('a2'), 'text/plain', token) // a:3, covers {a: 1}; a:2 stays
    c.merge(a3.delta) // c never gets a:2 or b:1 directly
    const c1 = c.put('k', text('c'), 'text/plain') // covers {a: 3}: claims a:2 too
    b.merge(c1.delta) // b keeps b:1 (c1 does not cover it) ...
    b.merge(a2.delta) // ... and drops a:2 as covered by c1, so b:1 is never removed at b
    a.merge(c1.delta) // a had already removed b:1 with a:2
    antiEntropy([a, b, c])
    // Actual: a and c read ['c'], b reads ['b', 'c'], with different digests, forever.
    expect(b.digest()).toBe(a.digest())
    expect(c.digest()).toBe(a.digest())
    // Intended: a2 ('a1') was never seen by c, so it survives next to 'c'; b was superseded by a:2.
    for (const doc of [a, b, c]) expect(values(doc, 'k')).toEqual(['a1', 'c'])
  })

  it('3. an increment right after a reset on the same replica makes a third reset diverge the counter', () => {
    const [s, r, x] = replicas('s', 'r', 'x')
    const s1 = s.increment('n', 1) // s:1 = +1
    r.merge(s1.delta)
    const r1 = r.deleteCounter('n')! // r:1, tombstone covering {s: 1}
    const r2 = r.increment('n', 1) // r:2 = +1, covers {}: r:1 stays live beside it
    x.merge(r2.delta)
    const x1 = x.deleteCounter('n')! // covers {r: 2}: claims r:1 too, never seen by x
    s.merge(x1.delta) // s keeps s:1 (x1 does not cover it) ...
    s.merge(r1.delta) // ... and drops r:1 as covered by x1, so s:1 is never reset at s
    s.merge(r2.delta)
    antiEntropy([s, r, x])
    // Actual: s and x read 1 (s:1 resurrected at x through anti-entropy), r reads 0; digests differ.
    expect(s.digest()).toBe(r.digest())
    expect(x.digest()).toBe(r.digest())
    // Intended: s's +1 was reset by r:1 and r's +1 by x:1.
    for (const doc of [s, r, x]) expect(doc.counter('n')).toBe(0)
  })
})

describe('deltasSince sends only what the peer lacks', () => {
  it('4. when the peer context for a replica is a single range that does not start at 1', () => {
    const [a, b] = replicas('a', 'b')
    a.put('x', text('1'), 'text/plain') // a:1
    const a2 = a.put('y', text('2'), 'text/plain') // a:2
    b.merge(a2.delta) // b's context for a is [2, 2]
    const reply = a.deltasSince(b.context())
    // Documented: "the entries whose dots it has not seen". Actual: [a:1, a:2].
    expect(reply.entries.map((e) => `${e.replica}:${e.counter}`)).toEqual(['a:1'])
    // Even a replica asked for its own context resends entries.
    expect(b.deltasSince(b.context()).entries).toEqual([])
  })
})

describe('collected tombstones leave one horizon range per replica', () => {
  it('5. the collected-dots context grows with every collected delete', () => {
    const [a] = replicas('a')
    for (let i = 0; i < 200; i++) {
      a.put(`k${i}`, text('v'), 'text/plain')
      a.delete(`k${i}`)
      a.collectGarbage(a.context())
    }
    expect(a.map.tombstoneCount).toBe(0)
    expect(a.context().rangeCount()).toBe(1)
    // Actual: 200 ranges ([2,2], [4,4], ...), persisted again on every GC by Replica.collectGarbage.
    expect(a.map.collectedDots().rangeCount()).toBeLessThanOrEqual(2)
  })
})

import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { CausalContext, type CrdtDocument } from '../src/crdt/index.ts'
import { describeState, type Focus, historyArb, newDoc, readDoc, Sim } from './helpers/crdt-sim.ts'

/**
 * The simulation: 3-5 replicas run a random history; each op's delta is queued for the others
 * 0, 1 or 2 times (drops and duplicates) and delivered in an order fast-check picks (a delivery can
 * also leave its message queued to be delivered again), interleaved with single anti-entropy
 * messages and clock moves (forwards, stuck or backwards). Whatever is still queued at the end is
 * dropped. Then every pair exchanges b.merge(a.deltasSince(b.context())) until a round changes
 * nothing. All replicas must hold the same digest, context and reads, and the reads must be what
 * the reference model in helpers/crdt-sim.ts derives from each op's causal past.
 */

interface Coverage {
  runs: number
  ops: number
  siblings: number
  counters: number
  resetsEffective: number
  setMembers: number
}

function converge(focus: Focus, numRuns: number, maxSteps: number): Coverage {
  const coverage: Coverage = {
    runs: 0,
    ops: 0,
    siblings: 0,
    counters: 0,
    resetsEffective: 0,
    setMembers: 0,
  }
  fc.assert(
    fc.property(historyArb({ minReplicas: 3, maxReplicas: 5, maxSteps, focus }), ({ replicas, steps }) => {
      const sim = new Sim({ replicas }).run(steps)
      const rounds = sim.antiEntropy()
      expect(rounds).toBeLessThanOrEqual(3)
      const expected = sim.expected()
      const first = sim.docs[0]
      for (const doc of sim.docs) {
        expect(doc.digest(), `${describeState(doc)}\nvs ${describeState(first)}`).toBe(first.digest())
        expect(doc.context().equals(first.context())).toBe(true)
        expect(readDoc(doc)).toEqual(expected)
        // Every read agrees with itself: the winner is the last sibling, setHas matches the members.
        for (const listed of doc.list('')) {
          const read = doc.get(listed.key)!
          expect(read.winner).toEqual(read.siblings[read.siblings.length - 1])
        }
        for (const element of ['p', 'q']) {
          expect(doc.setHas('s', element)).toBe(expected.sets.s.includes(element))
        }
      }
      coverage.runs++
      coverage.ops += sim.ops.length
      for (const read of Object.values(expected.registers))
        if (read !== null && read.values.length > 1) coverage.siblings++
      for (const value of Object.values(expected.counters)) if (value !== 0) coverage.counters++
      coverage.resetsEffective += sim.ops.filter(
        (op) => op.kind === 'reset' && [...op.past].some((id) => sim.ops[id].kind === 'incr'),
      ).length
      coverage.setMembers += expected.sets.s.length
    }),
    { numRuns },
  )
  return coverage
}

describe('convergence of CrdtDocument replicas under lossy, reordered, duplicated delivery', () => {
  it('all data types together: equal digests and reads, matching the reference model', () => {
    const coverage = converge('all', 500, 120)
    // The histories are not vacuous: concurrency, counters, resets and sets all occur.
    expect(coverage.siblings).toBeGreaterThan(20)
    expect(coverage.counters).toBeGreaterThan(20)
    expect(coverage.resetsEffective).toBeGreaterThan(20)
    expect(coverage.setMembers).toBeGreaterThan(20)
  })

  it('registers only (puts, deletes, stale and foreign If-Match tokens)', () => {
    const coverage = converge('registers', 300, 80)
    expect(coverage.siblings).toBeGreaterThan(20)
  })

  it('PN-counters only (increments, decrements, concurrent resets)', () => {
    const coverage = converge('counters', 300, 80)
    expect(coverage.counters).toBeGreaterThan(20)
    expect(coverage.resetsEffective).toBeGreaterThan(20)
  })

  it('add-wins sets only (concurrent add and remove keep the element)', () => {
    const coverage = converge('sets', 300, 80)
    expect(coverage.setMembers).toBeGreaterThan(20)
  })
})

// ---- named concurrency scenarios, with the expected outcome written out by hand ------------------

const text = (s: string) => new TextEncoder().encode(s)
const values = (doc: CrdtDocument, key: string) =>
  doc.get(key)?.siblings.map((s) => new TextDecoder().decode(s.value)) ?? []

function replicas(n: number): CrdtDocument[] {
  let now = 5_000
  return Array.from({ length: n }, (_, i) => newDoc(`n${i}`, () => now++))
}

function syncAll(docs: CrdtDocument[]): void {
  for (let round = 0; round < 2; round++) {
    for (const a of docs) for (const b of docs) if (a !== b) b.merge(a.deltasSince(b.context()))
  }
  for (const doc of docs) expect(doc.digest()).toBe(docs[0].digest())
}

describe('named concurrency scenarios', () => {
  it('concurrent puts are kept as siblings, oldest first, on every replica', () => {
    const [a, b] = replicas(2)
    a.put('k', text('from a'), 'text/plain')
    b.put('k', text('from b'), 'text/plain')
    syncAll([a, b])
    for (const doc of [a, b]) expect(values(doc, 'k')).toEqual(['from a', 'from b'])
  })

  it('a delete removes only what it saw: a concurrent put survives it', () => {
    const [a, b, c] = replicas(3)
    b.merge(a.put('k', text('v1'), 'text/plain').delta)
    const del = b.delete('k')!
    const put = c.put('k', text('v2'), 'text/plain')
    a.merge(put.delta)
    a.merge(del.delta)
    expect(values(a, 'k')).toEqual(['v2'])
    syncAll([a, b, c])
    for (const doc of [a, b, c]) expect(values(doc, 'k')).toEqual(['v2'])
  })

  it('put concurrent with a delete of the value it overwrites: the put wins', () => {
    const [a, b] = replicas(2)
    b.merge(a.put('k', text('v1'), 'text/plain').delta)
    b.delete('k')
    a.put('k', text('v2'), 'text/plain')
    syncAll([a, b])
    expect(values(b, 'k')).toEqual(['v2'])
  })

  it('a write with an If-Match token resolves exactly the siblings its reader saw', () => {
    const [a, b, c] = replicas(3)
    a.merge(b.put('k', text('b1'), 'text/plain').delta)
    a.put('k', text('a0'), 'text/plain', new CausalContext())
    expect(values(a, 'k')).toEqual(['b1', 'a0'])
    const token = a.get('k')!.token
    const concurrent = c.put('k', text('c1'), 'text/plain')
    a.merge(concurrent.delta)
    expect(values(a, 'k')).toHaveLength(3)
    a.put('k', text('resolved'), 'text/plain', token)
    syncAll([a, b, c])
    for (const doc of [a, b, c]) expect(values(doc, 'k').sort()).toEqual(['c1', 'resolved'])
  })

  it('PN-counter: increments add up; a concurrent reset keeps the incrementing replica total', () => {
    const [a, b, c] = replicas(3)
    b.merge(a.increment('n', 5).delta)
    c.merge(b.increment('n', -2).delta)
    syncAll([a, b, c])
    expect(a.counter('n')).toBe(3)
    const reset = c.deleteCounter('n')!
    const more = a.increment('n', 2)
    // a's entry now carries its whole running total (5 + 2); the reset did not see it.
    expect(more.entry.increments).toBe(7)
    b.merge(reset.delta)
    expect(b.counter('n')).toBe(0)
    syncAll([a, b, c])
    for (const doc of [a, b, c]) expect(doc.counter('n')).toBe(7)
    c.deleteCounter('n')
    syncAll([a, b, c])
    for (const doc of [a, b, c]) expect(doc.counter('n')).toBe(0)
  })

  it('add-wins set: an add concurrent with a remove keeps the element', () => {
    const [a, b] = replicas(2)
    b.merge(a.setAdd('s', 'e').delta)
    b.setRemove('s', 'e')
    a.setAdd('s', 'e')
    syncAll([a, b])
    expect(b.setMembers('s')).toEqual(['e'])
    b.setRemove('s', 'e')
    syncAll([a, b])
    expect(a.setMembers('s')).toEqual([])
    expect(a.setHas('s', 'e')).toBe(false)
    expect(a.setRemove('s', 'e')).toBeUndefined()
  })
})

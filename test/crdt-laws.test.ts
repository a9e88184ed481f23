import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import type { CrdtDocument, Delta } from '../src/crdt/index.ts'
import { type History, historyArb, isEmptyChange, join, readDoc, Sim } from './helpers/crdt-sim.ts'

/**
 * Join laws on reachable states: three replicas run a random history (puts, deletes, token writes,
 * increments, resets, set adds and removes, with lossy partial delivery and anti-entropy in
 * between), and their snapshots and deltas are joined in every order on fresh documents.
 */

const NUM_RUNS = 150

function dots(doc: CrdtDocument): string[] {
  return [...doc.map.allEntries()].map((e) => `${e.key}@${e.replica}:${e.counter}`).sort()
}

function expectSameState(actual: CrdtDocument, expected: CrdtDocument, label: string): void {
  expect(dots(actual), label).toEqual(dots(expected))
  expect(actual.context().entries(), label).toEqual(expected.context().entries())
  expect(readDoc(actual), label).toEqual(readDoc(expected))
  expect(actual.digest(), label).toBe(expected.digest())
}

const snap = (doc: CrdtDocument): Delta => doc.map.snapshot()

interface LawsInput {
  history: History
  write: number
  from: number
  to: number
  old: number
}

const lawsArb: fc.Arbitrary<LawsInput> = fc.record({
  history: historyArb({ minReplicas: 3, maxReplicas: 3, maxSteps: 100 }),
  write: fc.nat(),
  from: fc.nat({ max: 2 }),
  to: fc.nat({ max: 2 }),
  old: fc.nat(),
})

/** The states of a run, and deltas of every kind drawn from it. */
function scenario(input: LawsInput) {
  const sim = new Sim({ replicas: 3 }).run(input.history.steps)
  const [A, B, C] = sim.docs.map(snap)
  const deltas: Array<[string, Delta]> = []
  if (sim.writeDeltas.length > 0) {
    deltas.push(['write delta', sim.writeDeltas[input.write % sim.writeDeltas.length]])
  }
  const from = sim.docs[input.from]
  const to = sim.docs[(input.from + 1 + (input.to % 2)) % 3]
  deltas.push(['deltasSince(peer)', from.deltasSince(to.context())])
  if (sim.oldContexts.length > 0) {
    deltas.push(['deltasSince(stale)', from.deltasSince(sim.oldContexts[input.old % sim.oldContexts.length])])
  }
  return { sim, A, B, C, deltas }
}

describe('join laws on random reachable states', () => {
  it('commutative: join(A, B) == join(B, A)', () => {
    fc.assert(
      fc.property(lawsArb, (input) => {
        const { A, B, C } = scenario(input)
        expectSameState(join(A, B), join(B, A), 'A,B')
        expectSameState(join(B, C), join(C, B), 'B,C')
        expectSameState(join(A, C), join(C, A), 'A,C')
      }),
      { numRuns: NUM_RUNS },
    )
  })

  it('associative: join(join(A, B), C) == join(A, join(B, C))', () => {
    fc.assert(
      fc.property(lawsArb, (input) => {
        const { A, B, C } = scenario(input)
        const left = join(snap(join(A, B)), C)
        const right = join(A, snap(join(B, C)))
        expectSameState(left, right, '(AB)C vs A(BC)')
        // Merging all three in one document in any order is the same join.
        expectSameState(join(C, A, B), left, 'CAB')
      }),
      { numRuns: NUM_RUNS },
    )
  })

  it('idempotent: join(A, A) == A, and a second merge of the same state changes nothing', () => {
    fc.assert(
      fc.property(lawsArb, (input) => {
        const { sim, A } = scenario(input)
        const doc = join(A)
        expectSameState(doc, sim.docs[0], 'join(A) vs A')
        expect(isEmptyChange(doc.merge(A))).toBe(true)
        expectSameState(doc, sim.docs[0], 'join(A, A) vs A')
        // A replica merging its own snapshot is unchanged too.
        const digest = sim.docs[1].digest()
        expect(isEmptyChange(sim.docs[1].merge(snap(sim.docs[1])))).toBe(true)
        expect(sim.docs[1].digest()).toBe(digest)
      }),
      { numRuns: NUM_RUNS },
    )
  })

  it('the laws hold when one side is a delta (a write delta or a deltasSince reply)', () => {
    fc.assert(
      fc.property(lawsArb, (input) => {
        const { A, B, deltas } = scenario(input)
        for (const [label, d] of deltas) {
          expectSameState(join(A, d), join(d, A), `${label}: commutative`)
          expectSameState(join(snap(join(A, d)), B), join(A, snap(join(d, B))), `${label}: associative`)
          expectSameState(join(d, d), join(d), `${label}: idempotent`)
          // Delivered twice: the second merge is an empty change and leaves the state as it was.
          const doc = join(A)
          doc.merge(d)
          const digest = doc.digest()
          const context = doc.context()
          const again = doc.merge(d)
          expect(again, `${label}: second merge`).toEqual({ added: [], removed: [] })
          expect(doc.digest()).toBe(digest)
          expect(doc.context().equals(context)).toBe(true)
        }
      }),
      { numRuns: NUM_RUNS },
    )
  })

  it('a join only grows the context and keeps each side as a lower bound', () => {
    fc.assert(
      fc.property(lawsArb, (input) => {
        const { A, B, deltas } = scenario(input)
        const ab = join(A, B)
        expect(ab.context().covers(A.context)).toBe(true)
        expect(ab.context().covers(B.context)).toBe(true)
        // Joining anything already included (A, or a delta of A) changes nothing.
        expect(isEmptyChange(ab.merge(A))).toBe(true)
        for (const [label, d] of deltas) {
          const ad = join(A, d)
          expect(ad.context().covers(d.context), label).toBe(true)
          expect(ad.context().covers(A.context), label).toBe(true)
        }
      }),
      { numRuns: NUM_RUNS },
    )
  })

  it('deltasSince(context of Y) joined into Y equals the full join of X and Y', () => {
    fc.assert(
      fc.property(lawsArb, (input) => {
        const { sim } = scenario(input)
        for (const x of sim.docs) {
          for (const y of sim.docs) {
            if (x === y) continue
            const label = `${x.replica} -> ${y.replica}`
            const delta = x.deltasSince(y.context())
            expectSameState(join(snap(y), delta), join(snap(y), snap(x)), label)
            // The delta itself is a valid delta of X: X absorbs it without change.
            expect(isEmptyChange(join(snap(x)).merge(delta)), label).toBe(true)
          }
          // A peer that has everything learns nothing (that its entries list is not empty either is
          // a reported bug, see crdt-bugs.test.ts).
          const none = x.deltasSince(x.context())
          expect(none.context.isEmpty()).toBe(true)
          expect(isEmptyChange(x.merge(none))).toBe(true)
        }
      }),
      { numRuns: NUM_RUNS },
    )
  })
})

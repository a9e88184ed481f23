import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { CausalContext, type Dot } from '../src/crdt/index.ts'

/**
 * CausalContext against a reference model: a plain Set of 'replica:counter' strings.
 */

const REPLICAS = ['a', 'b', 'c']
const MAX = 40

type Model = Set<string>
const key = (replica: string, counter: number) => `${replica}:${counter}`

const dotArb: fc.Arbitrary<Dot> = fc.record({
  replica: fc.constantFrom(...REPLICAS),
  counter: fc.integer({ min: 1, max: MAX }),
})

type Op =
  | { t: 'add'; dot: Dot }
  | { t: 'addRange'; replica: string; lo: number; hi: number }
  | { t: 'merge'; dots: Dot[] }

const opArb: fc.Arbitrary<Op> = fc.oneof(
  { arbitrary: dotArb.map((dot) => ({ t: 'add' as const, dot })), weight: 6 },
  {
    arbitrary: fc
      .record({
        replica: fc.constantFrom(...REPLICAS),
        lo: fc.integer({ min: 1, max: MAX }),
        len: fc.integer({ min: -1, max: 8 }),
      })
      .map(({ replica, lo, len }) => ({ t: 'addRange' as const, replica, lo, hi: lo + len })),
    weight: 2,
  },
  {
    arbitrary: fc.array(dotArb, { maxLength: 10 }).map((dots) => ({ t: 'merge' as const, dots })),
    weight: 1,
  },
)

function apply(context: CausalContext, model: Model, op: Op): void {
  switch (op.t) {
    case 'add':
      context.add(op.dot.replica, op.dot.counter)
      model.add(key(op.dot.replica, op.dot.counter))
      break
    case 'addRange':
      context.addRange(op.replica, op.lo, op.hi)
      for (let c = op.lo; c <= op.hi; c++) model.add(key(op.replica, c))
      break
    case 'merge':
      context.merge(CausalContext.fromDots(op.dots))
      for (const dot of op.dots) model.add(key(dot.replica, dot.counter))
      break
  }
}

function build(ops: readonly Op[]): [CausalContext, Model] {
  const context = new CausalContext()
  const model: Model = new Set()
  for (const op of ops) apply(context, model, op)
  return [context, model]
}

function counters(model: Model, replica: string): number[] {
  return [...model]
    .filter((k) => k.startsWith(`${replica}:`))
    .map((k) => Number(k.slice(replica.length + 1)))
    .sort((x, y) => x - y)
}

/** Maximal runs of consecutive counters, flattened as [lo, hi, lo, hi, ...]. */
function runs(sorted: readonly number[]): number[] {
  const out: number[] = []
  for (const c of sorted) {
    if (out.length > 0 && out[out.length - 1] === c - 1) out[out.length - 1] = c
    else out.push(c, c)
  }
  return out
}

/** Checks every observable of a context against its model. */
function expectMatches(context: CausalContext, model: Model): void {
  for (const replica of REPLICAS) {
    const has: number[] = []
    const expected: number[] = []
    for (let c = 0; c <= MAX + 10; c++) {
      if (context.has(replica, c)) has.push(c)
      if (model.has(key(replica, c))) expected.push(c)
    }
    expect(has).toEqual(expected)
    const sorted = counters(model, replica)
    // Stored normalised: sorted, disjoint, never adjacent, so one range per run of dots.
    expect([...context.rangesOf(replica)]).toEqual(runs(sorted))
    expect(context.max(replica)).toBe(sorted.length === 0 ? 0 : sorted[sorted.length - 1])
  }
  expect(context.size()).toBe(model.size)
  expect(context.rangeCount()).toBe(REPLICAS.reduce((n, r) => n + runs(counters(model, r)).length / 2, 0))
  expect(context.isEmpty()).toBe(model.size === 0)
  const vv = new Map<string, number>()
  for (const replica of REPLICAS) {
    let n = 0
    while (model.has(key(replica, n + 1))) n++
    if (n > 0) vv.set(replica, n)
  }
  expect(context.versionVector()).toEqual(vv)
  const present = REPLICAS.filter((r) => counters(model, r).length > 0)
  expect(context.entries().map(([r]) => r)).toEqual(present)
  expect([...context.replicas()].sort()).toEqual(present)
}

const opsArb = fc.array(opArb, { maxLength: 50 })

describe('CausalContext against a Set<string> model', () => {
  it('add / addRange / merge keep has, ranges, max, size and versionVector exact', () => {
    fc.assert(
      fc.property(opsArb, (ops) => {
        const context = new CausalContext()
        const model: Model = new Set()
        for (const op of ops) {
          apply(context, model, op)
          expectMatches(context, model)
        }
      }),
      { numRuns: 300 },
    )
  })

  it('merge is the set union, in either order, and leaves its argument alone', () => {
    fc.assert(
      fc.property(opsArb, opsArb, (opsA, opsB) => {
        const [a, modelA] = build(opsA)
        const [b, modelB] = build(opsB)
        const bBefore = b.clone()
        const ab = a.clone()
        ab.merge(b)
        const ba = b.clone()
        ba.merge(a)
        const union = new Set([...modelA, ...modelB])
        expectMatches(ab, union)
        expect(ab.equals(ba)).toBe(true)
        expect(b.equals(bBefore)).toBe(true)
        expectMatches(a, modelA)
        // Idempotent.
        const again = ab.clone()
        again.merge(b)
        expect(again.equals(ab)).toBe(true)
      }),
      { numRuns: 300 },
    )
  })

  it('difference is the set difference; covers is the subset test', () => {
    fc.assert(
      fc.property(opsArb, opsArb, (opsA, opsB) => {
        const [a, modelA] = build(opsA)
        const [b, modelB] = build(opsB)
        const diff = a.difference(b)
        expectMatches(diff, new Set([...modelA].filter((d) => !modelB.has(d))))
        expect(a.covers(b)).toBe([...modelB].every((d) => modelA.has(d)))
        expect(b.covers(a)).toBe([...modelA].every((d) => modelB.has(d)))
        expect(a.covers(a)).toBe(true)
        expect(a.covers(new CausalContext())).toBe(true)
        // a \ b together with b covers a; a \ a is empty.
        const back = diff.clone()
        back.merge(b)
        expect(back.covers(a)).toBe(true)
        expect(a.difference(a).isEmpty()).toBe(true)
        expect(diff.covers(a.difference(b))).toBe(true)
        // The inputs are untouched.
        expectMatches(a, modelA)
        expectMatches(b, modelB)
      }),
      { numRuns: 300 },
    )
  })

  it('the same dots make equal contexts whatever the order or the form they arrive in', () => {
    fc.assert(
      fc.property(fc.array(dotArb, { maxLength: 60 }), fc.infiniteStream(fc.nat()), (dots, shuffle) => {
        const forward = CausalContext.fromDots(dots)
        const order = [...dots]
        const it = shuffle[Symbol.iterator]()
        for (let i = order.length - 1; i > 0; i--) {
          const j = it.next().value % (i + 1)
          ;[order[i], order[j]] = [order[j], order[i]]
        }
        const shuffled = CausalContext.fromDots(order)
        expect(shuffled.equals(forward)).toBe(true)
        // fromRanges accepts overlapping, unsorted and degenerate ranges.
        const raw: Array<[string, number[]]> = REPLICAS.map((r) => [
          r,
          order
            .filter((d) => d.replica === r)
            .flatMap((d) => [d.counter, d.counter, d.counter + 1, d.counter]),
        ])
        expect(CausalContext.fromRanges(raw).equals(forward)).toBe(true)
        // Round trip through entries().
        expect(CausalContext.fromRanges(forward.entries().map(([r, f]) => [r, [...f]])).equals(forward)).toBe(
          true,
        )
        const copy = forward.clone()
        copy.add('a', MAX + 5)
        expect(forward.has('a', MAX + 5)).toBe(false)
        expect(copy.equals(forward)).toBe(false)
      }),
      { numRuns: 300 },
    )
  })

  it('compacts to one range per replica, a plain version vector, once every gap is filled', () => {
    fc.assert(
      fc.property(
        fc.record({ a: fc.integer({ min: 1, max: 60 }), b: fc.integer({ min: 1, max: 60 }) }),
        fc.infiniteStream(fc.nat()),
        fc.infiniteStream(fc.boolean()),
        (sizes, shuffle, useRange) => {
          const dots: Dot[] = []
          for (const [replica, n] of Object.entries(sizes)) {
            for (let c = 1; c <= n; c++) dots.push({ replica, counter: c })
          }
          const it = shuffle[Symbol.iterator]()
          for (let i = dots.length - 1; i > 0; i--) {
            const j = it.next().value % (i + 1)
            ;[dots[i], dots[j]] = [dots[j], dots[i]]
          }
          const context = new CausalContext()
          const ranges = useRange[Symbol.iterator]()
          let maxRanges = 0
          for (const dot of dots) {
            if (ranges.next().value) context.addRange(dot.replica, dot.counter, dot.counter)
            else context.add(dot.replica, dot.counter)
            maxRanges = Math.max(maxRanges, context.rangeCount())
          }
          expect(context.rangeCount()).toBe(2)
          expect(context.versionVector()).toEqual(new Map(Object.entries(sizes)))
          expect(context.equals(CausalContext.fromVersionVector(new Map(Object.entries(sizes))))).toBe(true)
          expect(context.rangesOf('a')).toEqual([1, sizes.a])
          expect(context.size()).toBe(sizes.a + sizes.b)
          expect(maxRanges).toBeGreaterThanOrEqual(2)
        },
      ),
      { numRuns: 200 },
    )
  })

  it('keeps out-of-order dots as a dot cloud above the version vector', () => {
    const context = new CausalContext()
    context.add('a', 1)
    context.add('a', 2)
    context.add('a', 5)
    context.add('a', 7)
    context.add('b', 3)
    expect(context.versionVector()).toEqual(new Map([['a', 2]]))
    expect(context.rangesOf('a')).toEqual([1, 2, 5, 5, 7, 7])
    expect(context.rangesOf('b')).toEqual([3, 3])
    expect(context.rangeCount()).toBe(4)
    context.add('a', 6)
    expect(context.rangesOf('a')).toEqual([1, 2, 5, 7])
    context.addRange('a', 3, 4)
    expect(context.rangesOf('a')).toEqual([1, 7])
    context.addRange('b', 1, 2)
    expect(context.versionVector()).toEqual(
      new Map([
        ['a', 7],
        ['b', 3],
      ]),
    )
    expect(context.rangeCount()).toBe(2)
  })

  it('fromVersionVector ignores zero entries and matches the model of a prefix', () => {
    const context = CausalContext.fromVersionVector(
      new Map([
        ['a', 3],
        ['b', 0],
      ]),
    )
    expectMatches(context, new Set(['a:1', 'a:2', 'a:3']))
  })
})

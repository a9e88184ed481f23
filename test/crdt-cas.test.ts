/**
 * If-Match writes on the CRDT core: a write made with a token never supersedes a dot the token did
 * not name, whether the token came from a read or from a write, fresh or stale, and whatever
 * reached the writer in between. Seeded: set HEARSAY_PROPERTY_SEED to replay a run.
 */
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import {
  type CausalContext,
  type Covers,
  CrdtDocument,
  type Entry,
  HybridClock,
  internalKey,
} from '../src/crdt/index.ts'

const SEED = Number(process.env.HEARSAY_PROPERTY_SEED ?? 20_261_130)
const NUM_RUNS = 300
const REPLICAS = 3
const KEY = 'x'
const INTERNAL = internalKey('register', KEY)

type Step =
  | { s: 'put'; replica: number }
  | { s: 'del'; replica: number }
  /** Two plain puts in a row on one replica (the two HTTP writes of one commit turn). */
  | { s: 'twoPuts'; replica: number }
  | { s: 'read'; replica: number }
  | { s: 'putTok'; replica: number; token: number }
  | { s: 'delTok'; replica: number; token: number }
  | { s: 'sync'; from: number; to: number }

const replicaArb = fc.nat({ max: REPLICAS - 1 })
const stepArb: fc.Arbitrary<Step> = fc.oneof(
  fc.record({ s: fc.constant('put' as const), replica: replicaArb }),
  fc.record({ s: fc.constant('del' as const), replica: replicaArb }),
  fc.record({ s: fc.constant('twoPuts' as const), replica: replicaArb }),
  fc.record({ s: fc.constant('read' as const), replica: replicaArb }),
  fc.record({ s: fc.constant('putTok' as const), replica: replicaArb, token: fc.nat() }),
  fc.record({ s: fc.constant('delTok' as const), replica: replicaArb, token: fc.nat() }),
  fc.record({ s: fc.constant('sync' as const), from: replicaArb, to: replicaArb }),
)

function dotsOf(context: CausalContext): string[] {
  const out: string[] = []
  for (const [replica, ranges] of context.entries())
    for (let i = 0; i < ranges.length; i += 2)
      for (let c = ranges[i]; c <= ranges[i + 1]; c++) out.push(`${replica}:${c}`)
  return out
}

const dotOf = (entry: Entry) => `${entry.replica}:${entry.counter}`

/** Runs the steps; checks every If-Match write as it is made. */
function run(steps: readonly Step[]): void {
  let wall = 1_000
  const docs = Array.from(
    { length: REPLICAS },
    (_, i) => new CrdtDocument({ replica: `r${i}`, clock: new HybridClock(() => wall) }),
  )
  const tokens: Covers[] = []
  const encoder = new TextEncoder()
  let n = 0
  const put = (doc: CrdtDocument, token?: Covers) =>
    doc.put(KEY, encoder.encode(`v${n++}`), 'text/plain', token)

  for (const step of steps) {
    wall += 1
    switch (step.s) {
      case 'put':
        tokens.push(docs[step.replica].writeToken(put(docs[step.replica])))
        break
      case 'twoPuts': {
        const doc = docs[step.replica]
        const first = put(doc)
        tokens.push(doc.writeToken(first))
        tokens.push(doc.writeToken(put(doc)))
        break
      }
      case 'del': {
        const result = docs[step.replica].delete(KEY)
        if (result !== undefined) tokens.push(docs[step.replica].writeToken(result))
        break
      }
      case 'read': {
        const read = docs[step.replica].get(KEY)
        if (read !== undefined) tokens.push(read.token)
        break
      }
      case 'putTok':
      case 'delTok': {
        if (tokens.length === 0) break
        const doc = docs[step.replica]
        const token = tokens[step.token % tokens.length]
        const before = [...doc.map.siblings(INTERNAL)]
        const seen = doc.context()
        const result = step.s === 'putTok' ? put(doc, token) : doc.delete(KEY, token)
        if (result === undefined) break
        tokens.push(doc.writeToken(result))
        const named = new Set(dotsOf(token))
        // At the writer: every sibling the token did not name is still there.
        const after = new Set(doc.map.siblings(INTERNAL).map(dotOf))
        for (const sibling of before) {
          if (!named.has(dotOf(sibling)))
            expect(after.has(dotOf(sibling)), `kept ${dotOf(sibling)}`).toBe(true)
        }
        // Anywhere: what the new entry supersedes beyond the token is only what the writer had seen
        // and no longer held live (superseded in its own past), so no other replica loses a write to it.
        const live = new Set(before.map(dotOf))
        for (const dot of dotsOf(result.entry.covers)) {
          if (named.has(dot)) continue
          const at = dot.lastIndexOf(':')
          expect(seen.has(dot.slice(0, at), Number(dot.slice(at + 1))), `seen ${dot}`).toBe(true)
          expect(live.has(dot), `not live ${dot}`).toBe(false)
        }
        break
      }
      case 'sync': {
        const to = docs[step.to]
        to.merge(docs[step.from].deltasSince(to.context()))
        break
      }
    }
  }
}

describe('If-Match writes', () => {
  it(`never supersede a dot the token did not name (seed ${SEED})`, () => {
    console.log(`crdt-cas property seed: ${SEED} (replay with HEARSAY_PROPERTY_SEED=${SEED})`)
    fc.assert(
      fc.property(fc.array(stepArb, { minLength: 1, maxLength: 80 }), (steps) => run(steps)),
      { numRuns: NUM_RUNS, seed: SEED },
    )
  })

  it('a write token names the write alone: the other write of the same turn survives its If-Match', () => {
    const doc = new CrdtDocument({ replica: 'r0', clock: new HybridClock(() => 1) })
    const encoder = new TextEncoder()
    const one = doc.writeToken(doc.put(KEY, encoder.encode('one'), 'text/plain'))
    doc.put(KEY, encoder.encode('two'), 'text/plain')
    doc.put(KEY, encoder.encode('three'), 'text/plain', one)
    const values = doc.get(KEY)!.siblings.map((sibling) => new TextDecoder().decode(sibling.value))
    expect(values.sort()).toEqual(['three', 'two'])
  })
})

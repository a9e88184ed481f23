import { describe, expect, it } from 'vitest'
import { checkAgreement, checkAll, checkCounters, checkRegisters, checkSets } from './chaos/checker.ts'
import type { OpRecord, PeerSnapshot } from './chaos/history.ts'
import { seededRandom } from './chaos/random.ts'
import { faultSchedule } from './chaos/schedule.ts'

/** The chaos checker, fed histories that break each rule (and ones that do not). */

let nextId = 1
function op(fields: Partial<OpRecord> & Pick<OpRecord, 'kind' | 'key'>): OpRecord {
  const id = nextId++
  return { id, peer: 0, start: id * 10, end: id * 10 + 5, outcome: 'ok', ...fields }
}

function put(
  key: string,
  replica: string,
  counter: number,
  wall: number,
  fields: Partial<OpRecord> = {},
): OpRecord {
  return op({
    kind: 'put',
    key,
    value: `v-${replica}-${counter}`,
    dot: { replica, counter },
    wall,
    ...fields,
  })
}

function state(fields: Partial<PeerSnapshot> = {}, peer = 0): PeerSnapshot {
  return { peer, kv: {}, counters: {}, sets: {}, digest: 'd', versionVector: { a: 1 }, ...fields }
}

const sibling = (replica: string, counter: number, wall: number) => ({
  replica,
  counter,
  wall,
  value: `v-${replica}-${counter}`,
})

const rules = (violations: { rule: string }[]) => violations.map((v) => v.rule)

describe('chaos checker: registers', () => {
  it('accepts a history whose acknowledged writes are live or superseded by later ones', () => {
    const first = put('k', 'a', 1, 100)
    const second = put('k', 'b', 1, 200, { observedBefore: [{ replica: 'a', counter: 1 }] })
    const concurrent = put('k', 'c', 1, 150)
    const final = state({ kv: { k: [sibling('b', 1, 200), sibling('c', 1, 150)] } })
    expect(checkRegisters([first, second, concurrent], final)).toEqual([])
  })

  it('catches an acknowledged put that vanished with no later write to its key', () => {
    const lost = put('k', 'a', 2, 300)
    const earlier = put('k', 'b', 1, 100)
    const final = state({ kv: { k: [sibling('b', 1, 100)] } })
    expect(rules(checkRegisters([earlier, lost], final))).toEqual(['lost-write'])
  })

  it('lets an unanswered write that may have come later excuse a missing put, but not a failed one', () => {
    const gone = put('k', 'a', 1, 100)
    const unknown = op({ kind: 'put', key: 'k', value: 'x', outcome: 'unknown', end: undefined })
    expect(checkRegisters([gone, unknown], state())).toEqual([])
    const failed = op({ kind: 'delete', key: 'k', outcome: 'failed' })
    expect(rules(checkRegisters([gone, failed], state()))).toEqual(['lost-write'])
  })

  it('does not let an unanswered write that ended before the put began excuse it', () => {
    const unknown = op({ kind: 'delete', key: 'k', outcome: 'unknown', end: undefined, settledBy: 1 })
    const gone = put('k', 'a', 1, 100, { start: 50 })
    expect(rules(checkRegisters([unknown, gone], state()))).toEqual(['lost-write'])
  })

  it('catches a deleted value that came back', () => {
    const write = put('k', 'a', 1, 100)
    const remove = op({
      kind: 'delete',
      key: 'k',
      dot: { replica: 'b', counter: 1 },
      wall: 200,
      observedBefore: [{ replica: 'a', counter: 1 }],
    })
    const final = state({ kv: { k: [sibling('a', 1, 100)] } })
    expect(rules(checkRegisters([write, remove], final))).toEqual(['resurrected-delete'])
  })

  it('catches an overwritten value that came back', () => {
    const write = put('k', 'a', 1, 100)
    const overwrite = put('k', 'b', 1, 200, { observedBefore: [{ replica: 'a', counter: 1 }] })
    const final = state({ kv: { k: [sibling('a', 1, 100), sibling('b', 1, 200)] } })
    expect(rules(checkRegisters([write, overwrite], final))).toEqual(['resurrected-overwrite'])
  })

  it('catches a live value no write produced, and a value under another dot', () => {
    const write = put('k', 'a', 1, 100)
    expect(
      rules(checkRegisters([write], state({ kv: { k: [sibling('a', 1, 100), sibling('z', 9, 1)] } }))),
    ).toEqual(['phantom-value'])
    expect(
      rules(
        checkRegisters(
          [write],
          state({ kv: { k: [{ replica: 'a', counter: 2, wall: 100, value: 'v-a-1' }] } }),
        ),
      ),
    ).toContain('phantom-value')
  })

  it('catches a value of a write that certainly failed', () => {
    const failed = put('k', 'a', 1, 100, { outcome: 'failed' })
    expect(rules(checkRegisters([failed], state({ kv: { k: [sibling('a', 1, 100)] } })))).toEqual([
      'phantom-value',
    ])
  })
})

describe('chaos checker: counters', () => {
  const incr = (by: number, outcome: OpRecord['outcome'] = 'ok') =>
    op({ kind: 'incr', key: 'c', by, outcome })

  it('accepts a value between the acknowledged sum and the sum with unanswered increments', () => {
    const history = [incr(5), incr(3), incr(2, 'unknown'), incr(-1, 'unknown'), incr(100, 'failed')]
    for (const value of [7, 8, 9, 10])
      expect(checkCounters(history, state({ counters: { c: value } }))).toEqual([])
  })

  it('catches a lost acknowledged increment and an increment counted twice', () => {
    const history = [incr(5), incr(3), incr(2, 'unknown')]
    expect(rules(checkCounters(history, state({ counters: { c: 7 } })))).toEqual(['counter-bounds'])
    expect(rules(checkCounters(history, state({ counters: { c: 11 } })))).toEqual(['counter-bounds'])
  })

  it('catches a counter no increment touched', () => {
    expect(rules(checkCounters([], state({ counters: { c: 1 } })))).toEqual(['counter-bounds'])
  })
})

describe('chaos checker: sets', () => {
  const setOp = (kind: 'set-add' | 'set-remove', fields: Partial<OpRecord> = {}) =>
    op({ kind, key: 's', value: 'e', ...fields })

  it('catches an acknowledged add that no remove could have observed going missing', () => {
    const add = setOp('set-add', { peer: 0 })
    const otherPeerAdd = setOp('set-add', { peer: 1 })
    expect(rules(checkSets([add, otherPeerAdd], state({ sets: { s: [] } })))).toEqual([
      'set-lost-add',
      'set-lost-add',
    ])
  })

  it('accepts add-wins: a concurrent remove at another peer leaves the element', () => {
    const add = setOp('set-add', { peer: 0, start: 100, end: 110 })
    const remove = setOp('set-remove', { peer: 1, start: 105, end: 115 })
    expect(checkSets([add, remove], state({ sets: { s: ['e'] } }))).toEqual([])
    expect(checkSets([add, remove], state({ sets: { s: [] } }))).toEqual([])
  })

  it('holds operations at one peer, one at a time, to their order', () => {
    const add = setOp('set-add', { start: 100, end: 110 })
    const remove = setOp('set-remove', { start: 120, end: 130 })
    expect(checkSets([add, remove], state({ sets: { s: [] } }))).toEqual([])
    expect(rules(checkSets([add, remove], state({ sets: { s: ['e'] } })))).toEqual(['set-resurrected'])
    const again = setOp('set-add', { start: 140, end: undefined, outcome: 'unknown', settledBy: 150 })
    expect(checkSets([add, remove, again], state({ sets: { s: ['e'] } }))).toEqual([])
    expect(checkSets([add, remove, again], state({ sets: { s: [] } }))).toEqual([])
  })

  it('catches an element present that was never added', () => {
    const failedAdd = setOp('set-add', { outcome: 'failed' })
    expect(rules(checkSets([failedAdd], state({ sets: { s: ['e'] } })))).toEqual(['set-resurrected'])
  })
})

describe('chaos checker: agreement', () => {
  it('accepts equal peers', () => {
    expect(checkAgreement([state({}, 0), state({}, 1)])).toEqual([])
  })

  it('catches different reads, digests and version vectors', () => {
    const base = state({ counters: { c: 1 } }, 0)
    expect(rules(checkAgreement([base, state({ counters: { c: 2 } }, 1)]))).toEqual(['divergent-reads'])
    expect(rules(checkAgreement([base, state({ counters: { c: 1 }, digest: 'x' }, 1)]))).toEqual([
      'divergent-digests',
    ])
    expect(rules(checkAgreement([base, state({ counters: { c: 1 }, versionVector: { a: 2 } }, 1)]))).toEqual([
      'divergent-version-vectors',
    ])
  })

  it('checkAll runs every rule', () => {
    const lost = put('k', 'a', 1, 100)
    const incr = op({ kind: 'incr', key: 'c', by: 1 })
    const violations = checkAll([lost, incr], [state({}, 0), state({ digest: 'x' }, 1)])
    expect(rules(violations).sort()).toEqual(['counter-bounds', 'divergent-digests', 'lost-write'])
  })
})

describe('chaos fault schedule', () => {
  it('is a function of the seed, and every fault ends before the run does', () => {
    const options = { peers: 5, durationMs: 60_000 }
    const a = faultSchedule(seededRandom(42), options)
    expect(faultSchedule(seededRandom(42), options)).toEqual(a)
    expect(faultSchedule(seededRandom(43), options)).not.toEqual(a)
    expect(a.length).toBeGreaterThan(5)
    for (const event of a) {
      const end = event.at + (event.kind === 'kill' ? event.downMs : event.durationMs)
      expect(end).toBeLessThanOrEqual(options.durationMs)
    }
  })

  it('keeps a majority of daemons up', () => {
    for (let seed = 0; seed < 50; seed++) {
      const events = faultSchedule(seededRandom(seed), { peers: 5, durationMs: 120_000 })
      for (const event of events) {
        if (event.kind !== 'kill') continue
        const downAtOnce = events.filter(
          (other) =>
            other.kind === 'kill' && other.at <= event.at && other.at + other.downMs + 4_000 > event.at,
        ).length
        expect(downAtOnce).toBeLessThanOrEqual(2)
      }
    }
  })
})

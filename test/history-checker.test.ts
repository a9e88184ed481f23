/**
 * The history checker on hand-made histories: a clean one passes, and for each guarantee a history
 * with one planted violation is caught under that guarantee, and only that one.
 */
import { describe, expect, it } from 'vitest'
import { checkHistory } from './history/checker.ts'
import type { Dot, DotSet, FinalState, Guarantee, History, Op } from './history/model.ts'

const A = 'replicaA'
const B = 'replicaB'
const dot = (replica: string, counter: number): Dot => ({ replica, counter })

/** Builds operations one after another in time: each starts 10 ms after the previous one began. */
class Builder {
  ops: Op[] = []
  private clock = 0
  private next(session: number, daemon: number) {
    const start = this.clock
    this.clock += 10
    return { id: this.ops.length + 1, session, daemon, start, end: start + 5, outcome: 'ok' as const }
  }
  put(session: number, daemon: number, key: string, written: Dot, covers: DotSet = {}, ifMatch?: number) {
    const op: Op = {
      ...this.next(session, daemon),
      kind: 'put',
      key,
      value: `v${this.ops.length}`,
      dot: written,
      covers,
      ifMatch,
    }
    this.ops.push(op)
    return op
  }
  del(session: number, daemon: number, key: string, written: Dot, covers: DotSet) {
    const op: Op = { ...this.next(session, daemon), kind: 'delete', key, dot: written, covers }
    this.ops.push(op)
    return op
  }
  read(session: number, daemon: number, key: string, shown: Dot[]) {
    const op: Op = {
      ...this.next(session, daemon),
      kind: 'read',
      key,
      siblings: shown.map((d) => ({ dot: d, value: `x${d.counter}` })),
    }
    this.ops.push(op)
    return op
  }
  incr(session: number, daemon: number, key: string, by: number, outcome: 'ok' | 'unknown' = 'ok') {
    const base = this.next(session, daemon)
    this.ops.push({ ...base, kind: 'incr', key, by, outcome, end: outcome === 'ok' ? base.end : undefined })
  }
  set(session: number, daemon: number, kind: 'set-add' | 'set-remove', key: string, element: string) {
    this.ops.push({ ...this.next(session, daemon), kind, key, element })
  }
}

function final(daemon: number, state: Partial<FinalState> = {}): FinalState {
  return { daemon, digest: 'd0', registers: {}, counters: {}, sets: {}, ...state }
}

function guaranteesBroken(history: History): Guarantee[] {
  return [...new Set(checkHistory(history).map((violation) => violation.guarantee))]
}

describe('history checker', () => {
  it('passes a history that keeps every guarantee', () => {
    const h = new Builder()
    h.put(1, 0, 'k', dot(A, 1))
    h.read(1, 0, 'k', [dot(A, 1)])
    h.put(2, 1, 'k', dot(B, 1)) // concurrent on another daemon: a sibling
    const read = h.read(1, 0, 'k', [dot(A, 1), dot(B, 1)])
    h.put(1, 0, 'k', dot(A, 2), { [A]: [[1, 1]], [B]: [[1, 1]] }, read.id)
    h.read(1, 0, 'k', [dot(A, 2)])
    h.put(1, 0, 'gone', dot(A, 3))
    h.del(1, 0, 'gone', dot(A, 4), { [A]: [[3, 3]] })
    h.read(1, 0, 'gone', [])
    h.incr(1, 0, 'c', 2)
    h.incr(2, 1, 'c', -1)
    h.incr(2, 1, 'c', 5, 'unknown')
    h.set(1, 0, 'set-remove', 's', 'x')
    h.set(2, 1, 'set-add', 's', 'x')
    h.set(1, 0, 'set-add', 's', 'y')
    h.set(1, 0, 'set-remove', 's', 'y')
    const state = {
      registers: { k: [{ dot: dot(A, 2), value: 'v' }] },
      counters: { c: 6 },
      sets: { s: ['x'] },
    }
    expect(checkHistory({ ops: h.ops, finals: [final(0, state), final(1, state)] })).toEqual([])
  })

  it('catches a read that misses the session’s own write (read-your-writes)', () => {
    const h = new Builder()
    h.put(1, 0, 'k', dot(A, 1))
    h.read(1, 0, 'k', [])
    expect(guaranteesBroken({ ops: h.ops, finals: [] })).toEqual(['read-your-writes'])
  })

  it('catches a read that shows what the session’s write replaced (read-your-writes)', () => {
    const h = new Builder()
    h.put(1, 0, 'k', dot(A, 1))
    h.put(2, 0, 'k', dot(A, 2), { [A]: [[1, 1]] })
    h.put(1, 0, 'k', dot(A, 3), { [A]: [[1, 2]] })
    h.read(1, 0, 'k', [dot(A, 2)])
    expect(guaranteesBroken({ ops: h.ops, finals: [] })).toEqual(['read-your-writes'])
  })

  it('catches a read that goes back in time (monotonic reads)', () => {
    const h = new Builder()
    h.put(2, 0, 'k', dot(A, 1))
    h.put(2, 0, 'k', dot(A, 2), { [A]: [[1, 1]] })
    h.read(1, 0, 'k', [dot(A, 2)])
    h.read(1, 0, 'k', [dot(A, 1)])
    expect(guaranteesBroken({ ops: h.ops, finals: [] })).toEqual(['monotonic-reads'])
  })

  it('catches a later write that does not supersede the session’s earlier one (monotonic writes)', () => {
    const h = new Builder()
    h.put(1, 0, 'k', dot(A, 1))
    h.put(1, 0, 'k', dot(A, 2))
    expect(guaranteesBroken({ ops: h.ops, finals: [] })).toEqual(['monotonic-writes'])
  })

  it('catches write counters going backwards on one replica (monotonic writes)', () => {
    const h = new Builder()
    h.put(1, 0, 'k1', dot(A, 5))
    h.put(1, 0, 'k2', dot(A, 3))
    expect(guaranteesBroken({ ops: h.ops, finals: [] })).toEqual(['monotonic-writes'])
  })

  it('catches a write not ordered after what the session read (writes follow reads)', () => {
    const h = new Builder()
    h.put(2, 1, 'k', dot(B, 1))
    h.read(1, 0, 'k', [dot(B, 1)])
    h.put(1, 0, 'k', dot(A, 1))
    expect(guaranteesBroken({ ops: h.ops, finals: [] })).toEqual(['writes-follow-reads'])
  })

  it('catches an If-Match write that replaced a value its read did not see', () => {
    const h = new Builder()
    h.put(1, 0, 'k', dot(A, 1))
    const read = h.read(1, 0, 'k', [dot(A, 1)])
    h.put(2, 1, 'k', dot(B, 1))
    h.put(1, 0, 'k', dot(A, 2), { [A]: [[1, 1]], [B]: [[1, 1]] }, read.id)
    expect(guaranteesBroken({ ops: h.ops, finals: [] })).toEqual(['if-match-no-lost-write'])
  })

  it('accepts an If-Match write whose covers name a value a delete had already removed', () => {
    const h = new Builder()
    h.put(1, 0, 'k', dot(A, 1))
    const read = h.read(1, 0, 'k', [dot(A, 1)])
    h.put(2, 1, 'k', dot(B, 1))
    h.del(2, 1, 'k', dot(B, 2), { [B]: [[1, 1]] })
    // The daemon compacted the covers over B's dead dots.
    h.put(1, 0, 'k', dot(A, 2), { [A]: [[1, 1]], [B]: [[1, 2]] }, read.id)
    const registers = { k: [{ dot: dot(A, 2), value: 'v' }] }
    expect(checkHistory({ ops: h.ops, finals: [final(0, { registers })] })).toEqual([])
  })

  it('catches a write that vanished after the heal (no lost write)', () => {
    const h = new Builder()
    h.put(1, 0, 'k', dot(A, 1))
    h.put(2, 1, 'k', dot(B, 1))
    const registers = { k: [{ dot: dot(B, 1), value: 'v' }] }
    expect(
      guaranteesBroken({ ops: h.ops, finals: [final(0, { registers }), final(1, { registers })] }),
    ).toEqual(['no-lost-write'])
  })

  it('catches a write superseding one that began after it was answered (no lost write)', () => {
    const h = new Builder()
    h.put(1, 0, 'k', dot(A, 1), { [B]: [[1, 1]] })
    h.put(2, 1, 'k', dot(B, 1))
    expect(guaranteesBroken({ ops: h.ops, finals: [] })).toEqual(['no-lost-write'])
  })

  it('catches daemons that disagree after the heal (convergence)', () => {
    expect(guaranteesBroken({ ops: [], finals: [final(0), final(1, { digest: 'd1' })] })).toEqual([
      'convergence',
    ])
    expect(guaranteesBroken({ ops: [], finals: [final(0), final(1, { sets: { s: ['x'] } })] })).toEqual([
      'convergence',
    ])
  })

  it('catches a counter that is not the sum of its increments', () => {
    const h = new Builder()
    h.incr(1, 0, 'c', 1)
    h.incr(2, 1, 'c', 2)
    h.incr(2, 1, 'c', 4, 'unknown')
    expect(guaranteesBroken({ ops: h.ops, finals: [final(0, { counters: { c: 7 } })] })).toEqual([])
    expect(guaranteesBroken({ ops: h.ops, finals: [final(0, { counters: { c: 3 } })] })).toEqual([])
    expect(guaranteesBroken({ ops: h.ops, finals: [final(0, { counters: { c: 4 } })] })).toEqual(['counter'])
  })

  it('catches a set that drops an add no remove saw (add wins)', () => {
    const h = new Builder()
    h.set(1, 0, 'set-remove', 's', 'x')
    h.set(2, 1, 'set-add', 's', 'x')
    expect(guaranteesBroken({ ops: h.ops, finals: [final(0, { sets: { s: [] } })] })).toEqual([
      'add-wins-set',
    ])
  })

  it('catches a set that keeps an element its own daemon removed after every add', () => {
    const h = new Builder()
    h.set(1, 0, 'set-add', 's', 'x')
    h.set(1, 0, 'set-remove', 's', 'x')
    expect(guaranteesBroken({ ops: h.ops, finals: [final(0, { sets: { s: ['x'] } })] })).toEqual([
      'add-wins-set',
    ])
  })
})

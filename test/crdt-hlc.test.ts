import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { compareHlc, DEFAULT_MAX_DRIFT_MS, type Hlc, HybridClock } from '../src/crdt/index.ts'
import { newDoc } from './helpers/crdt-sim.ts'

const text = (s: string) => new TextEncoder().encode(s)
const decode = (b: Uint8Array) => new TextDecoder().decode(b)

/** A physical clock that returns the given readings in turn, then repeats the last one. */
function readings(values: readonly number[]): () => number {
  let i = 0
  return () => values[Math.min(i++, values.length - 1)]
}

describe('HybridClock', () => {
  it('never goes backwards with a stuck physical clock', () => {
    const clock = new HybridClock(() => 1_000)
    let last = clock.tick()
    expect(last).toEqual({ wall: 1_000, logical: 0 })
    for (let i = 1; i <= 100; i++) {
      const next = clock.tick()
      expect(compareHlc(next, last)).toBeGreaterThan(0)
      expect(next).toEqual({ wall: 1_000, logical: i })
      last = next
    }
  })

  it('never goes backwards when the physical clock jumps back, and catches up when it moves on', () => {
    const clock = new HybridClock(readings([5_000, 4_000, 3_000, 5_000, 6_000]))
    expect(clock.tick()).toEqual({ wall: 5_000, logical: 0 })
    expect(clock.tick()).toEqual({ wall: 5_000, logical: 1 })
    expect(clock.tick()).toEqual({ wall: 5_000, logical: 2 })
    expect(clock.tick()).toEqual({ wall: 5_000, logical: 3 })
    expect(clock.tick()).toEqual({ wall: 6_000, logical: 0 })
    expect(clock.peek()).toEqual({ wall: 6_000, logical: 0 })
  })

  it('is strictly monotonic for any physical clock and any accepted remote timestamps', () => {
    const event = fc.oneof(
      fc.record({ tick: fc.integer({ min: 0, max: 10_000 }) }),
      fc.record({
        observe: fc.record({ wall: fc.integer({ min: 0, max: 80_000 }), logical: fc.nat({ max: 5 }) }),
      }),
    )
    fc.assert(
      fc.property(fc.array(event, { maxLength: 60 }), (events) => {
        let physical = 0
        const clock = new HybridClock(() => physical, 30_000)
        let last: Hlc = clock.peek()
        let highestPhysical = 0
        for (const e of events) {
          if ('tick' in e) {
            physical = e.tick
            highestPhysical = Math.max(highestPhysical, physical)
            const next = clock.tick()
            expect(compareHlc(next, last)).toBeGreaterThan(0)
            // Wall time is the highest physical reading or accepted remote wall time, never less.
            expect(next.wall).toBeGreaterThanOrEqual(highestPhysical)
            expect(clock.peek()).toEqual(next)
            last = next
          } else {
            const before = clock.peek()
            const accepted = clock.observe(e.observe)
            expect(accepted).toBe(e.observe.wall <= physical + 30_000)
            const after = clock.peek()
            expect(compareHlc(after, before)).toBeGreaterThanOrEqual(0)
            if (accepted) {
              expect(compareHlc(after, e.observe)).toBeGreaterThanOrEqual(0)
              // The next local event is after the remote one.
              const next = clock.tick()
              expect(compareHlc(next, e.observe)).toBeGreaterThan(0)
              expect(compareHlc(next, after)).toBeGreaterThan(0)
              last = next
            } else {
              expect(after).toEqual(before)
            }
          }
        }
      }),
      { numRuns: 300 },
    )
  })

  it('observe() moves past a remote timestamp ahead of the local clock', () => {
    const clock = new HybridClock(() => 1_000)
    clock.tick()
    expect(clock.observe({ wall: 1_500, logical: 7 })).toBe(true)
    expect(clock.peek()).toEqual({ wall: 1_500, logical: 7 })
    expect(clock.tick()).toEqual({ wall: 1_500, logical: 8 })
    // Same wall time, higher logical counter.
    expect(clock.observe({ wall: 1_500, logical: 20 })).toBe(true)
    expect(clock.tick()).toEqual({ wall: 1_500, logical: 21 })
    // An older remote timestamp changes nothing.
    expect(clock.observe({ wall: 900, logical: 99 })).toBe(true)
    expect(clock.tick()).toEqual({ wall: 1_500, logical: 22 })
  })

  it('ignores a remote timestamp further ahead than the allowed drift', () => {
    const clock = new HybridClock(() => 10_000, 500)
    clock.tick()
    expect(clock.observe({ wall: 10_501, logical: 0 })).toBe(false)
    expect(clock.peek()).toEqual({ wall: 10_000, logical: 0 })
    // Exactly at the bound is accepted.
    expect(clock.observe({ wall: 10_500, logical: 3 })).toBe(true)
    expect(clock.peek()).toEqual({ wall: 10_500, logical: 3 })
    // The default bound is one minute.
    const defaults = new HybridClock(() => 0)
    expect(defaults.observe({ wall: DEFAULT_MAX_DRIFT_MS + 1, logical: 0 })).toBe(false)
    expect(defaults.observe({ wall: DEFAULT_MAX_DRIFT_MS, logical: 0 })).toBe(true)
  })

  it('a merge does not drag the receiving clock to a far-future entry, and a causal overwrite still wins', () => {
    const liar = newDoc('liar', () => 10_000_000)
    const honest = newDoc('honest', () => 1_000)
    const far = liar.put('k', text('far future'), 'text/plain')
    honest.merge(far.delta)
    expect(honest.map.clock.peek().wall).toBe(0)
    const over = honest.put('k', text('overwrite'), 'text/plain')
    expect(over.entry.wall).toBe(1_000)
    // The overwrite saw the far-future value, so it supersedes it whatever the HLC order.
    expect(honest.get('k')!.siblings.map((s) => decode(s.value))).toEqual(['overwrite'])
    liar.merge(over.delta)
    expect(liar.get('k')!.siblings.map((s) => decode(s.value))).toEqual(['overwrite'])
  })

  it('a write made after a merge carries an HLC above the merged entry, even with a slower clock', () => {
    const ahead = newDoc('a', () => 50_000)
    const behind = newDoc('b', () => 20_000)
    const first = ahead.put('k', text('1'), 'text/plain')
    behind.merge(first.delta)
    const second = behind.put('other', text('2'), 'text/plain')
    expect(compareHlc(second.entry, first.entry)).toBeGreaterThan(0)
    expect(second.entry).toMatchObject({ wall: 50_000, logical: 1 })
  })
})

describe('default register read: highest HLC, then replica id', () => {
  it('picks the sibling with the highest wall time', () => {
    const a = newDoc('a', () => 2_000)
    const b = newDoc('b', () => 1_000)
    const fromA = a.put('k', text('a'), 'text/plain')
    const fromB = b.put('k', text('b'), 'text/plain')
    a.merge(fromB.delta)
    b.merge(fromA.delta)
    for (const doc of [a, b]) {
      const read = doc.get('k')!
      expect(decode(read.winner.value)).toBe('a')
      expect(read.siblings.map((s) => decode(s.value))).toEqual(['b', 'a'])
    }
  })

  it('breaks a wall-time tie by the logical counter, then by replica id', () => {
    const a = newDoc('a', () => 1_000)
    const b = newDoc('b', () => 1_000)
    a.put('warm-up', text('0'), 'text/plain') // a's next write has logical 1
    const fromA = a.put('k', text('a'), 'text/plain')
    const fromB = b.put('k', text('b'), 'text/plain')
    expect(fromA.entry).toMatchObject({ wall: 1_000, logical: 1 })
    expect(fromB.entry).toMatchObject({ wall: 1_000, logical: 0 })
    b.merge(fromA.delta)
    expect(decode(b.get('k')!.winner.value)).toBe('a')

    const c = newDoc('c', () => 1_000)
    const d = newDoc('d', () => 1_000)
    const fromD = d.put('k', text('d'), 'text/plain')
    const fromC = c.put('k', text('c'), 'text/plain')
    expect(fromC.entry).toMatchObject({ wall: 1_000, logical: 0 })
    expect(fromD.entry).toMatchObject({ wall: 1_000, logical: 0 })
    c.merge(fromD.delta)
    d.merge(fromC.delta)
    for (const doc of [c, d]) {
      expect(decode(doc.get('k')!.winner.value)).toBe('d')
      expect(doc.get('k')!.siblings.map((s) => decode(s.value))).toEqual(['c', 'd'])
    }
  })

  it('every replica resolves random concurrent writes to the same maximum', () => {
    const ids = ['r0', 'r1', 'r2', 'r3']
    fc.assert(
      fc.property(
        fc.array(fc.record({ wall: fc.integer({ min: 1, max: 4 }), extra: fc.nat({ max: 2 }) }), {
          minLength: 4,
          maxLength: 4,
        }),
        (clocks) => {
          const docs = ids.map((id, i) => newDoc(id, () => clocks[i].wall))
          const writes = docs.map((doc, i) => {
            for (let k = 0; k < clocks[i].extra; k++) doc.put(`warm-up`, text('.'), 'text/plain')
            return doc.put('k', text(doc.replica), 'text/plain').entry
          })
          for (const doc of docs)
            for (const other of docs) if (doc !== other) other.merge(doc.deltasSince(other.context()))
          const best = [...writes].sort(
            (x, y) => x.wall - y.wall || x.logical - y.logical || (x.replica < y.replica ? -1 : 1),
          )[writes.length - 1]
          for (const doc of docs) {
            const read = doc.get('k')!
            expect(read.siblings).toHaveLength(4)
            expect(read.winner.replica).toBe(best.replica)
          }
        },
      ),
      { numRuns: 200 },
    )
  })
})

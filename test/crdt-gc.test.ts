import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { type CrdtDocument, EntryKind } from '../src/crdt/index.ts'
import { historyArb, intersect, newDoc, readDoc, Sim } from './helpers/crdt-sim.ts'

const text = (s: string) => new TextEncoder().encode(s)
const value = (doc: CrdtDocument, key: string) => {
  const read = doc.get(key)
  return read === undefined ? undefined : new TextDecoder().decode(read.winner.value)
}

function replicas(...ids: string[]): CrdtDocument[] {
  let now = 10_000
  return ids.map((id) => newDoc(id, () => now++))
}

function sync(from: CrdtDocument, to: CrdtDocument): void {
  to.merge(from.deltasSince(to.context()))
}

function syncAll(docs: CrdtDocument[]): void {
  for (let round = 0; round < 2; round++) for (const a of docs) for (const b of docs) if (a !== b) sync(a, b)
}

const stableOf = (members: CrdtDocument[]) => intersect(members.map((doc) => doc.context()))

describe('garbage collection of tombstones', () => {
  it('keeps a tombstone while a member has not seen it and collects it once all have', () => {
    const [a, b, c] = replicas('a', 'b', 'c')
    a.put('k', text('v'), 'text/plain')
    syncAll([a, b, c])
    const del = a.delete('k')!
    b.merge(del.delta)
    // c is a member that was offline: the tombstone is not stable yet.
    for (const doc of [a, b]) {
      expect(doc.collectGarbage(stableOf([a, b, c]))).toEqual({ added: [], removed: [] })
      expect(doc.map.tombstoneCount).toBe(1)
    }
    expect(value(c, 'k')).toBe('v')

    sync(a, c)
    expect(value(c, 'k')).toBeUndefined()
    expect(c.map.tombstoneCount).toBe(1)

    const stable = stableOf([a, b, c])
    expect(stable.has('a', del.entry.counter)).toBe(true)
    for (const doc of [a, b, c]) {
      const change = doc.collectGarbage(stable)
      expect(change.removed.map((e) => [e.replica, e.counter, e.kind])).toEqual([
        ['a', del.entry.counter, EntryKind.Tombstone],
      ])
      expect(doc.map.tombstoneCount).toBe(0)
      expect(doc.map.size).toBe(0)
      expect(doc.map.collectedDots().has('a', del.entry.counter)).toBe(true)
      expect(doc.get('k')).toBeUndefined()
      expect(doc.list('')).toEqual([])
    }
    expect(b.digest()).toBe(a.digest())
    expect(c.digest()).toBe(a.digest())
    // Collecting again is a no-op.
    expect(a.collectGarbage(stableOf([a, b, c]))).toEqual({ added: [], removed: [] })
  })

  it('waits until every dot a tombstone covers is stable, not only the tombstone itself', () => {
    const [a, b, c] = replicas('a', 'b', 'c')
    const put = a.put('k', text('v'), 'text/plain')
    b.merge(put.delta)
    const del = b.delete('k')!
    // c has the delete but not the put it covers (the put's delta was lost on the way to c).
    c.merge(del.delta)
    a.merge(del.delta)
    const stable = stableOf([a, b, c])
    expect(stable.has('b', del.entry.counter)).toBe(true)
    expect(stable.has('a', put.entry.counter)).toBe(false)
    for (const doc of [a, b, c]) {
      doc.collectGarbage(stable)
      expect(doc.map.tombstoneCount).toBe(1)
    }
    // The late put must not come back where it arrives now.
    c.merge(put.delta)
    expect(c.get('k')).toBeUndefined()
    for (const doc of [a, b, c]) doc.collectGarbage(stableOf([a, b, c]))
    for (const doc of [a, b, c]) expect(doc.map.tombstoneCount).toBe(0)
  })

  it('a member offline during a delete gets the removal later, from any peer, after GC on the others', () => {
    const [a, b, c] = replicas('a', 'b', 'c')
    a.put('k', text('old'), 'text/plain')
    a.put('keep', text('stays'), 'text/plain')
    syncAll([a, b, c])
    const offlineContext = c.context()

    // c goes offline. a deletes; a and b keep writing and collecting with the members' contexts
    // they know, c's being the one it had when it left.
    const del = a.delete('k')!
    sync(a, b)
    for (let i = 0; i < 5; i++) {
      a.put(`x${i}`, text(`${i}`), 'text/plain')
      b.merge(a.delete(`x${i}`)!.delta)
      const stable = intersect([a.context(), b.context(), offlineContext])
      a.collectGarbage(stable)
      b.collectGarbage(stable)
    }
    expect(a.map.siblings('rk').map((e) => e.counter)).toEqual([del.entry.counter])
    expect(b.map.tombstoneCount).toBe(6)

    // c returns and first pushes what it has: nothing deleted comes back.
    sync(c, a)
    sync(c, b)
    expect(a.get('k')).toBeUndefined()
    expect(b.get('k')).toBeUndefined()
    // Then it pulls from b: the removal reaches it.
    const reply = b.deltasSince(c.context())
    expect(reply.entries.length).toBeLessThan(b.map.size + 1)
    c.merge(reply)
    expect(c.get('k')).toBeUndefined()
    expect(value(c, 'keep')).toBe('stays')
    syncAll([a, b, c])
    for (const doc of [a, b, c]) doc.collectGarbage(stableOf([a, b, c]))
    for (const doc of [a, b, c]) {
      expect(doc.map.tombstoneCount).toBe(0)
      expect(doc.get('k')).toBeUndefined()
      expect(doc.list('').map((l) => l.key)).toEqual(['keep'])
      expect(doc.digest()).toBe(a.digest())
    }
  })

  it('a peer behind the collection horizon gets a full snapshot and the deleted key stays deleted', () => {
    const [a, b, p] = replicas('a', 'b', 'p')
    a.put('k', text('old'), 'text/plain')
    syncAll([a, b, p])
    // p leaves the membership (or is forgotten); a and b delete k and collect the tombstone.
    const del = b.delete('k')!
    sync(b, a)
    for (const doc of [a, b]) doc.collectGarbage(stableOf([a, b]))
    expect(a.map.tombstoneCount).toBe(0)
    expect(a.map.collectedDots().has('b', del.entry.counter)).toBe(true)
    // Meanwhile p wrote something of its own.
    p.put('fresh', text('from p'), 'text/plain')
    expect(value(p, 'k')).toBe('old')

    // p pushes first: a has seen p's old entry, so it is not resurrected.
    sync(p, a)
    expect(a.get('k')).toBeUndefined()
    expect(value(a, 'fresh')).toBe('from p')

    // p pulls: it lacks a collected tombstone, so the reply is the whole state.
    const reply = a.deltasSince(p.context())
    expect(reply.entries.length).toBe(a.map.size)
    expect(reply.context.equals(a.context())).toBe(true)
    p.merge(reply)
    expect(p.get('k')).toBeUndefined()
    expect(value(p, 'fresh')).toBe('from p')

    syncAll([a, b, p])
    for (const doc of [a, b, p]) {
      expect(doc.get('k')).toBeUndefined()
      expect(doc.digest()).toBe(a.digest())
    }
    // Once p has caught up, it is past the horizon: no more snapshots.
    expect(a.deltasSince(p.context()).entries).toEqual([])
  })

  it('a write made behind the horizon, concurrent with the collected delete, survives', () => {
    const [a, b, p] = replicas('a', 'b', 'p')
    a.put('k', text('old'), 'text/plain')
    syncAll([a, b, p])
    b.delete('k')
    sync(b, a)
    for (const doc of [a, b]) doc.collectGarbage(stableOf([a, b]))
    // p overwrote k without having seen the delete.
    p.put('k', text('new'), 'text/plain')
    p.merge(a.deltasSince(p.context()))
    expect(value(p, 'k')).toBe('new')
    syncAll([a, b, p])
    for (const doc of [a, b, p]) {
      expect(doc.get('k')!.siblings.map((s) => new TextDecoder().decode(s.value))).toEqual(['new'])
      expect(doc.digest()).toBe(a.digest())
    }
  })

  it('collects counter resets and set removes too', () => {
    const [a, b] = replicas('a', 'b')
    a.increment('n', 4)
    a.setAdd('s', 'e')
    syncAll([a, b])
    b.deleteCounter('n')
    b.setRemove('s', 'e')
    syncAll([a, b])
    expect(a.map.tombstoneCount).toBe(2)
    for (const doc of [a, b]) doc.collectGarbage(stableOf([a, b]))
    for (const doc of [a, b]) {
      expect(doc.map.tombstoneCount).toBe(0)
      expect(doc.counter('n')).toBe(0)
      expect(doc.setMembers('s')).toEqual([])
    }
    // The counter starts again from zero.
    b.merge(a.increment('n', 1).delta)
    expect(b.counter('n')).toBe(1)
  })

  it('tombstones stay bounded under put/delete churn with periodic GC', () => {
    const run = (gcEvery: number | undefined) => {
      const docs = replicas('a', 'b', 'c')
      let peak = 0
      for (let i = 0; i < 300; i++) {
        const writer = docs[i % 3]
        const deleter = docs[(i + 1) % 3]
        const put = writer.put(`k${i}`, text(`${i}`), 'text/plain')
        deleter.merge(put.delta)
        const del = deleter.delete(`k${i}`)!
        for (const doc of docs) if (doc !== deleter) doc.merge(del.delta)
        // The third replica gets the put after the delete that covers it.
        for (const doc of docs) if (doc !== deleter && doc !== writer) doc.merge(put.delta)
        if (gcEvery !== undefined && i % gcEvery === gcEvery - 1) {
          const stable = stableOf(docs)
          for (const doc of docs) doc.collectGarbage(stable)
        }
        for (const doc of docs) peak = Math.max(peak, doc.map.tombstoneCount, doc.map.size)
      }
      return { docs, peak }
    }
    const withoutGc = run(undefined)
    expect(withoutGc.docs[0].map.tombstoneCount).toBe(300)
    const withGc = run(10)
    expect(withGc.peak).toBeLessThanOrEqual(10)
    for (const doc of withGc.docs) {
      expect(doc.map.tombstoneCount).toBe(0)
      expect(doc.list('')).toEqual([])
      expect(doc.digest()).toBe(withGc.docs[0].digest())
    }
  })

  it('random histories with GC at random points converge to the same reads as without GC', () => {
    let collected = 0
    let compared = 0
    fc.assert(
      fc.property(
        historyArb({ minReplicas: 3, maxReplicas: 4, maxSteps: 100, gc: true, syncWeight: 8 }),
        ({ replicas, steps }) => {
          const sim = new Sim({ replicas }).run(steps)
          sim.antiEntropy()
          const withoutGc = new Sim({ replicas }).run(steps.filter((step) => step.s !== 'gc'))
          withoutGc.antiEntropy()
          const expected = sim.expected()
          compared++
          expect(withoutGc.ops.map((op) => op.kind)).toEqual(sim.ops.map((op) => op.kind))
          expect(withoutGc.expected()).toEqual(expected)
          for (const doc of withoutGc.docs) expect(readDoc(doc)).toEqual(expected)
          for (const doc of sim.docs) expect(readDoc(doc)).toEqual(expected)
          if (sim.docs.some((doc) => !doc.map.collectedDots().isEmpty())) collected++
          // Everything is stable now: collecting everywhere leaves equal states without tombstones.
          const stable = sim.stable()
          for (const doc of sim.docs) doc.collectGarbage(stable)
          sim.antiEntropy()
          for (const doc of sim.docs) {
            expect(doc.map.tombstoneCount).toBe(0)
            expect(doc.digest()).toBe(sim.docs[0].digest())
            expect(readDoc(doc)).toEqual(expected)
          }
        },
      ),
      { numRuns: 400 },
    )
    // GC did collect something mid-history in a fair share of the runs (about one in seven).
    expect(collected).toBeGreaterThan(20)
    expect(compared).toBeGreaterThan(300)
  })
})

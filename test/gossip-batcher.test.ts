import { afterEach, describe, expect, it, vi } from 'vitest'
import type { Delta } from '../src/crdt/causal-map.ts'
import { CausalContext } from '../src/crdt/context.ts'
import { type Entry, EntryKind, NO_COVERS } from '../src/crdt/entry.ts'
import { coalesce, DeltaBatcher } from '../src/gossip/batcher.ts'

function value(
  replica: string,
  counter: number,
  key: string,
  covers: CausalContext = NO_COVERS,
  size = 1,
): Entry {
  return {
    key,
    replica,
    counter,
    wall: counter,
    logical: 0,
    covers,
    kind: EntryKind.Value,
    value: new Uint8Array(size),
    contentType: 'application/octet-stream',
  }
}

function delta(...entries: Entry[]): Delta {
  return {
    entries,
    context: CausalContext.fromDots(entries.map((e) => ({ replica: e.replica, counter: e.counter }))),
  }
}

const dots = (d: Delta): string[] => d.entries.map((e) => `${e.replica}:${e.counter}`).sort()

describe('DeltaBatcher', () => {
  afterEach(() => {
    vi.useRealTimers()
  })

  it('sends the deltas of one namespace added within the delay as one batch', () => {
    vi.useFakeTimers()
    const sent: Array<[string, Delta]> = []
    const batcher = new DeltaBatcher({ delayMs: 5, send: (ns, d) => sent.push([ns, d]) })
    batcher.add('ns', delta(value('r', 1, 'a')))
    batcher.add('ns', delta(value('r', 2, 'b')))
    vi.advanceTimersByTime(4)
    expect(sent).toEqual([])
    vi.advanceTimersByTime(1)
    expect(sent).toHaveLength(1)
    expect(sent[0][0]).toBe('ns')
    expect(dots(sent[0][1])).toEqual(['r:1', 'r:2'])
  })

  it('keeps namespaces in separate batches', () => {
    vi.useFakeTimers()
    const sent: string[] = []
    const batcher = new DeltaBatcher({ delayMs: 2, send: (ns) => sent.push(ns) })
    batcher.add('one', delta(value('r', 1, 'a')))
    batcher.add('two', delta(value('r', 2, 'a')))
    vi.advanceTimersByTime(2)
    expect(sent.sort()).toEqual(['one', 'two'])
  })

  it('sends at once when a batch reaches its byte bound, without waiting for the timer', () => {
    vi.useFakeTimers()
    const sent: Delta[] = []
    const batcher = new DeltaBatcher({ delayMs: 1000, maxBytes: 1000, send: (_ns, d) => sent.push(d) })
    batcher.add('ns', delta(value('r', 1, 'a', NO_COVERS, 500)))
    expect(sent).toHaveLength(0)
    batcher.add('ns', delta(value('r', 2, 'b', NO_COVERS, 500)))
    expect(sent).toHaveLength(1)
    vi.advanceTimersByTime(1000)
    expect(sent).toHaveLength(1) // the flushed batch's timer was cleared
  })

  it('flushAll sends every pending batch, and flushing an empty namespace sends nothing', () => {
    const sent: string[] = []
    const batcher = new DeltaBatcher({ delayMs: 60_000, send: (ns) => sent.push(ns) })
    batcher.flush('ns')
    batcher.add('x', delta(value('r', 1, 'a')))
    batcher.add('y', delta(value('r', 2, 'a')))
    batcher.flushAll()
    expect(sent.sort()).toEqual(['x', 'y'])
    batcher.flushAll()
    expect(sent).toHaveLength(2)
  })
})

describe('coalesce', () => {
  it('returns a single delta unchanged', () => {
    const only = delta(value('r', 1, 'a'))
    expect(coalesce([only])).toBe(only)
  })

  it('leaves out entries a later entry of the batch supersedes, keeping their dots in the context', () => {
    const first = value('r', 1, 'k')
    const second = value('r', 2, 'k', CausalContext.fromDots([{ replica: 'r', counter: 1 }]))
    const other = value('s', 1, 'other')
    const merged = coalesce([delta(first), delta(other), delta(second)])
    expect(dots(merged)).toEqual(['r:2', 's:1'])
    expect(merged.context.has('r', 1)).toBe(true)
    expect(merged.context.has('r', 2)).toBe(true)
    expect(merged.context.has('s', 1)).toBe(true)
  })

  it('keeps concurrent entries on one key (neither covers the other)', () => {
    const merged = coalesce([delta(value('r', 1, 'k')), delta(value('s', 1, 'k'))])
    expect(dots(merged)).toEqual(['r:1', 's:1'])
  })
})

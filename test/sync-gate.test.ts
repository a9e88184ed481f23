import { describe, expect, it } from 'vitest'
import { NamespaceGate } from '../src/sync/gate.ts'

describe('NamespaceGate', () => {
  it('lets one session per namespace in, others namespaces independent', () => {
    const gate = new NamespaceGate()
    const release = gate.tryEnter('a')
    expect(release).toBeDefined()
    expect(gate.busy('a')).toBe(true)
    expect(gate.tryEnter('a')).toBeUndefined()
    expect(gate.tryEnter('b')).toBeDefined()
    release!()
    expect(gate.busy('a')).toBe(false)
    expect(gate.tryEnter('a')).toBeDefined()
  })

  it('hands the namespace to waiters first come, first served', async () => {
    const gate = new NamespaceGate()
    const first = gate.tryEnter('ns')!
    const order: number[] = []
    const second = gate.enter('ns').then((release) => {
      order.push(2)
      return release
    })
    const third = gate.enter('ns').then((release) => {
      order.push(3)
      return release
    })
    expect(gate.waiters('ns')).toBe(2)
    // A responder arriving now is refused, even though the holder is about to hand over.
    first()
    expect(gate.tryEnter('ns')).toBeUndefined()
    const releaseSecond = await second
    expect(order).toEqual([2])
    releaseSecond()
    releaseSecond() // a second release does nothing
    const releaseThird = await third
    expect(order).toEqual([2, 3])
    expect(gate.busy('ns')).toBe(true)
    releaseThird()
    expect(gate.busy('ns')).toBe(false)
    expect(gate.waiters('ns')).toBe(0)
  })

  it('drops a waiter whose signal aborts, and rejects with the reason', async () => {
    const gate = new NamespaceGate()
    const holder = gate.tryEnter('ns')!
    const controller = new AbortController()
    const waiting = gate.enter('ns', controller.signal)
    controller.abort(new Error('gave up'))
    await expect(waiting).rejects.toThrow('gave up')
    expect(gate.waiters('ns')).toBe(0)
    holder()
    expect(gate.busy('ns')).toBe(false)
    await expect(gate.enter('ns', AbortSignal.abort(new Error('already')))).resolves.toBeTypeOf('function')
  })

  it('a holder that makes no progress for the stall time no longer counts as busy', () => {
    let now = 0
    const gate = new NamespaceGate(() => now)
    expect(gate.busyWithin('ns', 1000)).toBe(false)
    const release = gate.tryEnter('ns')!
    now = 900
    expect(gate.busyWithin('ns', 1000)).toBe(true)
    gate.touch('ns')
    now = 1800
    expect(gate.busyWithin('ns', 1000)).toBe(true)
    now = 2900
    expect(gate.busyWithin('ns', 1000)).toBe(false)
    release()
    // Touching a namespace nobody holds changes nothing.
    gate.touch('ns')
    expect(gate.busyWithin('ns', 1000)).toBe(false)
  })
})

describe('NamespaceGate with writer claims', () => {
  it('lets sessions that bring disjoint writers in at once, and refuses overlapping ones', () => {
    const gate = new NamespaceGate()
    const a = gate.tryEnter('ns', new Set(['r1', 'r2']))!
    expect(a).toBeDefined()
    const b = gate.tryEnter('ns', new Set(['r3']))
    expect(b).toBeDefined()
    expect(gate.holding('ns')).toBe(2)
    // One writer in common with a holder: refused; so is a whole-namespace turn.
    expect(gate.tryEnter('ns', new Set(['r4', 'r2']))).toBeUndefined()
    expect(gate.tryEnter('ns')).toBeUndefined()
    a()
    expect(gate.busy('ns')).toBe(true)
    expect(gate.tryEnter('ns', new Set(['r2']))).toBeDefined()
    expect(gate.holding('ns')).toBe(2)
  })

  it('a whole-namespace holder keeps every claim out', () => {
    const gate = new NamespaceGate()
    const whole = gate.tryEnter('ns')!
    expect(gate.tryEnter('ns', new Set(['r1']))).toBeUndefined()
    whole()
    expect(gate.tryEnter('ns', new Set(['r1']))).toBeDefined()
  })

  it('a waiter for the whole namespace stops new claims and gets the turn when the last holder leaves', async () => {
    const gate = new NamespaceGate()
    const a = gate.tryEnter('ns', new Set(['r1']))!
    const b = gate.tryEnter('ns', new Set(['r2']))!
    let entered = false
    const waiting = gate.enter('ns').then((release) => {
      entered = true
      return release
    })
    // Disjoint, but someone waits for the whole turn: it would otherwise wait behind a stream of these.
    expect(gate.tryEnter('ns', new Set(['r3']))).toBeUndefined()
    a()
    await Promise.resolve()
    expect(entered).toBe(false)
    b()
    const release = await waiting
    expect(entered).toBe(true)
    expect(gate.holding('ns')).toBe(1)
    expect(gate.tryEnter('ns', new Set(['r3']))).toBeUndefined()
    release()
    expect(gate.busy('ns')).toBe(false)
  })

  it('equal claims passed by two sessions are still two holders', () => {
    const gate = new NamespaceGate()
    const writers = new Set(['r1'])
    const a = gate.tryEnter('ns', writers)!
    expect(gate.tryEnter('ns', writers)).toBeUndefined()
    a()
    a()
    expect(gate.busy('ns')).toBe(false)
  })
})

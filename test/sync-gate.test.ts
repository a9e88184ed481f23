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

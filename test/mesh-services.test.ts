import { afterEach, describe, expect, it, vi } from 'vitest'
import { CausalContext } from '../src/crdt/context.ts'
import { GarbageCollector } from '../src/peer/gc-service.ts'
import { PeriodicTask } from '../src/peer/periodic.ts'
import { RttPinger } from '../src/peer/ping-service.ts'

afterEach(() => {
  vi.useRealTimers()
})

describe('PeriodicTask', () => {
  it('runs every period within ±25 % jitter, never overlapping itself, until stopped', async () => {
    vi.useFakeTimers()
    let runs = 0
    let release: (() => void) | undefined
    const task = new PeriodicTask({
      periodMs: 1000,
      random: () => 0, // the shortest period: 750 ms
      task: () => {
        runs++
        return new Promise<void>((resolve) => {
          release = resolve
        })
      },
    })
    task.start()
    task.start() // idempotent
    await vi.advanceTimersByTimeAsync(749)
    expect(runs).toBe(0)
    await vi.advanceTimersByTimeAsync(1)
    expect(runs).toBe(1)
    await vi.advanceTimersByTimeAsync(5000) // still running: no second run
    expect(runs).toBe(1)
    release?.()
    await vi.advanceTimersByTimeAsync(750)
    expect(runs).toBe(2)
    task.stop()
    release?.()
    await vi.advanceTimersByTimeAsync(10_000)
    expect(runs).toBe(2)
  })

  it('keeps going after a failing run', async () => {
    vi.useFakeTimers()
    let runs = 0
    const task = new PeriodicTask({
      periodMs: 100,
      random: () => 0.5,
      task: () => Promise.reject(new Error(`run ${++runs}`)),
    })
    task.start()
    await vi.advanceTimersByTimeAsync(350)
    expect(runs).toBe(3)
    task.stop()
  })
})

describe('GarbageCollector', () => {
  it('collects each namespace whose stable context is known, and skips the others', async () => {
    const asked: string[] = []
    const collectedWith: Array<[string, CausalContext]> = []
    const replica = (namespace: string, count: number) => ({
      namespace,
      context: () => CausalContext.fromVersionVector(new Map([['r', 3]])),
      collectGarbage: async (stable: CausalContext) => {
        collectedWith.push([namespace, stable])
        return count
      },
    })
    let total = 0
    const collector = new GarbageCollector({
      periodMs: 60_000,
      replicas: () => [replica('known', 2), replica('unknown', 5)],
      stableContext: (namespace, own) => {
        asked.push(namespace)
        return namespace === 'known' ? own : undefined
      },
      collected: (count) => {
        total += count
      },
    })
    expect(await collector.collectOnce()).toBe(2)
    expect(asked).toEqual(['known', 'unknown'])
    expect(collectedWith.map(([ns]) => ns)).toEqual(['known'])
    expect(collectedWith[0][1].max('r')).toBe(3)
    expect(total).toBe(2)
  })
})

describe('RttPinger', () => {
  it('pings every connected peer and reports each measured round trip; a failed ping reports nothing', async () => {
    const measured: Array<[string, number]> = []
    const pinger = new RttPinger({
      periodMs: 60_000,
      peers: () => ['a', 'b', 'down'],
      ping: async (peer) => {
        if (peer === 'down') throw new Error('unreachable')
        return peer === 'a' ? 3 : 7
      },
      measured: (peer, rtt) => measured.push([peer, rtt]),
    })
    await pinger.pingAll()
    expect(measured.sort()).toEqual([
      ['a', 3],
      ['b', 7],
    ])
  })

  it("reports the connection monitor's round trip when libp2p measured one, and pings only the others", async () => {
    const measured: Array<[string, number]> = []
    const pinged: string[] = []
    const pinger = new RttPinger({
      periodMs: 60_000,
      peers: () => ['monitored', 'new'],
      knownRtt: (peer) => (peer === 'monitored' ? 2 : undefined),
      ping: async (peer) => {
        pinged.push(peer)
        return 9
      },
      measured: (peer, rtt) => measured.push([peer, rtt]),
    })
    await pinger.pingAll()
    expect(pinged).toEqual(['new'])
    expect(pinger.pingsSent).toBe(1)
    expect(measured.sort()).toEqual([
      ['monitored', 2],
      ['new', 9],
    ])
  })
})

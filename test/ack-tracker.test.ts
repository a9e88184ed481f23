import { describe, expect, it } from 'vitest'
import { AckTracker } from '../src/peer/ack-tracker.ts'
import { eventually } from './helpers/eventually.ts'

/** A fake mesh: peers, what each holds, and pushes the test settles by hand. */
function fakeMesh() {
  const connected = new Set<string>()
  const holding = new Set<string>()
  const pushes: Array<{ peer: string; settle(ok: boolean | 'refused'): void }> = []
  const tracker = new AckTracker({
    connectedPeers: () => [...connected],
    holds: (peer) => holding.has(peer),
    holders: () => holding.size,
    push: (peer) =>
      new Promise<boolean>((resolve, reject) => {
        pushes.push({
          peer,
          settle: (ok) =>
            ok === 'refused' ? resolve(false) : ok ? resolve(true) : reject(new Error('failed')),
        })
      }),
    retryDelayMs: 30,
  })
  tracker.start()
  return { connected, holding, pushes, tracker }
}

const tick = () => new Promise((resolve) => setTimeout(resolve, 0))

describe('AckTracker', () => {
  it('counts each holder as soon as its own push ends, without waiting for a silent peer', async () => {
    const { connected, holding, pushes, tracker } = fakeMesh()
    connected.add('reachable').add('silent')
    const deadline = new AbortController()
    let answer: number | undefined
    void tracker.waitFor('ns', 'r', 1, 1, deadline.signal).then((n) => {
      answer = n
    })
    expect(pushes.map((p) => p.peer).sort()).toEqual(['reachable', 'silent'])
    holding.add('reachable')
    pushes.find((p) => p.peer === 'reachable')!.settle(true)
    await tick()
    // Answered while the silent peer's push is still pending.
    expect(answer).toBe(1)
    expect(tracker.waiting).toBe(0)
  })

  it('answers at the deadline with the holders known so far', async () => {
    const { connected, holding, pushes, tracker } = fakeMesh()
    connected.add('a').add('b').add('silent')
    const deadline = new AbortController()
    const answer = tracker.waitFor('ns', 'r', 1, 3, deadline.signal)
    holding.add('a')
    pushes.find((p) => p.peer === 'a')!.settle(true)
    await tick()
    expect(tracker.waiting).toBe(1)
    deadline.abort()
    expect(await answer).toBe(1)
    expect(tracker.waiting).toBe(0)
  })

  it('with no peer connected, waits for one to connect within the deadline', async () => {
    const { connected, holding, pushes, tracker } = fakeMesh()
    const deadline = new AbortController()
    let answer: number | undefined
    void tracker.waitFor('ns', 'r', 1, 1, deadline.signal).then((n) => {
      answer = n
    })
    await tick()
    expect(answer).toBeUndefined()
    expect(pushes).toHaveLength(0)
    connected.add('laptop')
    tracker.changed()
    expect(pushes.map((p) => p.peer)).toEqual(['laptop'])
    holding.add('laptop')
    pushes[0]!.settle(true)
    await tick()
    expect(answer).toBe(1)
  })

  it('pushes again when a session ends without the dot (it started before the write), and after a failure', async () => {
    const { connected, holding, pushes, tracker } = fakeMesh()
    connected.add('a')
    const deadline = new AbortController()
    const answer = tracker.waitFor('ns', 'r', 1, 1, deadline.signal)
    pushes[0]!.settle(true) // an older session: the peer still lacks the dot
    await eventually(() => pushes.length === 2, { timeout: 5000, interval: 5, message: 'a second push' })
    pushes[1]!.settle(false) // the link failed: retried after retryDelayMs
    await eventually(() => pushes.length === 3, { timeout: 5000, interval: 5, message: 'a third push' })
    holding.add('a')
    pushes[2]!.settle(true)
    expect(await answer).toBe(1)
  })

  it('stops pushing to a peer that does not replicate the namespace', async () => {
    const { connected, pushes, tracker } = fakeMesh()
    connected.add('other')
    const deadline = new AbortController()
    const answer = tracker.waitFor('ns', 'r', 1, 1, deadline.signal)
    pushes[0]!.settle('refused')
    await new Promise((resolve) => setTimeout(resolve, 100))
    tracker.changed()
    expect(pushes).toHaveLength(1)
    deadline.abort()
    expect(await answer).toBe(0)
  })

  it('a holder learned from elsewhere (a session the peer started) answers the waiter', async () => {
    const { connected, holding, tracker } = fakeMesh()
    connected.add('a')
    const answer = tracker.waitFor('ns', 'r', 1, 1, new AbortController().signal)
    holding.add('a')
    tracker.changed()
    expect(await answer).toBe(1)
  })

  it('answers at once when already held, aborted or stopped', async () => {
    const { connected, holding, tracker } = fakeMesh()
    holding.add('a')
    expect(await tracker.waitFor('ns', 'r', 1, 1, new AbortController().signal)).toBe(1)
    expect(await tracker.waitFor('ns', 'r', 1, 2, AbortSignal.abort())).toBe(1)
    connected.add('b')
    const pending = tracker.waitFor('ns', 'r', 1, 2, new AbortController().signal)
    tracker.stop()
    expect(await pending).toBe(1)
    expect(await tracker.waitFor('ns', 'r', 1, 2, new AbortController().signal)).toBe(1)
  })
})

import { describe, expect, it } from 'vitest'
import { CommitQueue, type Scheduler } from '../src/replica/commit-queue.ts'

/** A scheduler the test drives by hand: nothing runs until `runDeferred` or `advance`. */
class ManualScheduler implements Scheduler {
  deferred: Array<() => void> = []
  timers: Array<{ at: number; fn: () => void }> = []
  now = 0

  defer(fn: () => void): void {
    this.deferred.push(fn)
  }

  after(ms: number, fn: () => void): void {
    this.timers.push({ at: this.now + ms, fn })
  }

  runDeferred(): void {
    const due = this.deferred
    this.deferred = []
    for (const fn of due) fn()
  }

  advance(ms: number): void {
    this.now += ms
    const due = this.timers.filter((timer) => timer.at <= this.now)
    this.timers = this.timers.filter((timer) => timer.at > this.now)
    for (const timer of due) timer.fn()
  }
}

interface Batch {
  items: string[]
}

function setup(options: { delayMs?: number; failWith?: Error } = {}) {
  const scheduler = new ManualScheduler()
  const written: Array<{ items: string[]; urgent: boolean }> = []
  const committed: Batch[] = []
  const failures: Error[] = []
  const queue = new CommitQueue<Batch>(
    {
      create: () => ({ items: [] }),
      write: (batch, urgent) => {
        if (options.failWith !== undefined) throw options.failWith
        written.push({ items: [...batch.items], urgent })
      },
      committed: (batch) => committed.push(batch),
      failed: (error) => failures.push(error),
    },
    { delayMs: options.delayMs, scheduler },
  )
  return { scheduler, queue, written, committed, failures }
}

/** Whether a promise has settled, after the microtasks queued so far ran. */
async function settled(promise: Promise<unknown>): Promise<boolean> {
  let done = false
  promise.then(
    () => {
      done = true
    },
    () => {
      done = true
    },
  )
  await Promise.resolve()
  await Promise.resolve()
  return done
}

describe('CommitQueue', () => {
  it('gathers every join of a turn into one write, on the next turn', async () => {
    const { scheduler, queue, written, committed } = setup()
    queue.join(true).items.push('a')
    const first = queue.wait()
    queue.join(true).items.push('b')
    const second = queue.wait()
    expect(written).toEqual([])
    expect(queue.current?.items).toEqual(['a', 'b'])
    expect(await settled(first)).toBe(false)
    scheduler.runDeferred()
    expect(written).toEqual([{ items: ['a', 'b'], urgent: true }])
    expect(committed).toHaveLength(1)
    expect(queue.current).toBeUndefined()
    await Promise.all([first, second])
  })

  it('a lazy batch waits delayMs, and commits without durability', async () => {
    const { scheduler, queue, written } = setup({ delayMs: 50 })
    queue.join(false).items.push('remote')
    const done = queue.wait()
    scheduler.runDeferred()
    scheduler.advance(49)
    expect(written).toEqual([])
    scheduler.advance(1)
    expect(written).toEqual([{ items: ['remote'], urgent: false }])
    await done
  })

  it('an urgent join brings a lazy batch forward, and it is written once', async () => {
    const { scheduler, queue, written } = setup({ delayMs: 50 })
    queue.join(false).items.push('remote')
    queue.join(true).items.push('local')
    const done = queue.wait()
    scheduler.runDeferred()
    expect(written).toEqual([{ items: ['remote', 'local'], urgent: true }])
    scheduler.advance(50) // the lazy schedule finds nothing left to commit
    expect(written).toHaveLength(1)
    await done
  })

  it('a lazy batch with no delay commits on the next turn', () => {
    const { scheduler, queue, written } = setup({ delayMs: 0 })
    queue.join(false).items.push('remote')
    scheduler.runDeferred()
    expect(written).toEqual([{ items: ['remote'], urgent: false }])
  })

  it('a failed write rejects the waiters and reports the error once per batch', async () => {
    const failure = new Error('disk full')
    const { scheduler, queue, committed, failures } = setup({ failWith: failure })
    queue.join(true).items.push('a')
    const done = queue.wait()
    scheduler.runDeferred()
    await expect(done).rejects.toBe(failure)
    expect(failures).toEqual([failure])
    expect(committed).toEqual([])
  })

  it('wait with nothing gathered resolves at once', async () => {
    const { queue } = setup()
    expect(await settled(queue.wait())).toBe(true)
  })

  it('the next join after a commit starts a new batch', () => {
    const { scheduler, queue, written } = setup()
    queue.join(true).items.push('a')
    scheduler.runDeferred()
    queue.join(true).items.push('b')
    scheduler.runDeferred()
    expect(written.map((write) => write.items)).toEqual([['a'], ['b']])
  })
})

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

/** Lets promise callbacks run until `condition` holds (bounded). */
async function until(condition: () => boolean): Promise<void> {
  for (let i = 0; i < 100 && !condition(); i++) await Promise.resolve()
  expect(condition()).toBe(true)
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

  it('settles a write that finishes later only then, and gathers the next batch until it has', async () => {
    const scheduler = new ManualScheduler()
    const durable: Array<{ resolve: () => void; reject: (error: Error) => void }> = []
    const written: string[][] = []
    const committed: string[][] = []
    const failures: Error[] = []
    const queue = new CommitQueue<Batch>(
      {
        create: () => ({ items: [] }),
        write: (batch, urgent) => {
          written.push([...batch.items])
          return urgent
            ? new Promise<void>((resolve, reject) => durable.push({ resolve, reject }))
            : undefined
        },
        committed: (batch) => committed.push(batch.items),
        failed: (error) => failures.push(error),
      },
      { scheduler },
    )
    queue.join(true).items.push('a')
    const first = queue.wait()
    scheduler.runDeferred()
    expect(written).toEqual([['a']])
    expect(await settled(first)).toBe(false)
    // Written but not durable: what comes meanwhile, over several turns, gathers into one batch.
    queue.join(true).items.push('b')
    const second = queue.wait()
    scheduler.runDeferred()
    queue.join(false).items.push('lazy')
    scheduler.runDeferred()
    expect(written).toEqual([['a']])
    expect(await settled(second)).toBe(false)
    // With nothing gathering, wait() waits for the batch being made durable.
    durable[0].resolve()
    await first
    await until(() => written.length === 2)
    expect(written[1]).toEqual(['b', 'lazy'])
    expect(await settled(second)).toBe(false)
    const all = queue.wait()
    durable[1].resolve()
    await Promise.all([second, all])
    expect(committed).toEqual([['a'], ['b', 'lazy']])
    expect(failures).toEqual([])
  })

  it('rejects the waiters of a batch whose later durability fails, and writes the next one after it', async () => {
    const scheduler = new ManualScheduler()
    const durable: Array<{ resolve: () => void; reject: (error: Error) => void }> = []
    const committed: string[][] = []
    const failures: Error[] = []
    const queue = new CommitQueue<Batch>(
      {
        create: () => ({ items: [] }),
        write: () => new Promise<void>((resolve, reject) => durable.push({ resolve, reject })),
        committed: (batch) => committed.push(batch.items),
        failed: (error) => failures.push(error),
      },
      { scheduler },
    )
    queue.join(true).items.push('a')
    const first = queue.wait()
    scheduler.runDeferred()
    queue.join(true).items.push('b')
    const second = queue.wait()
    scheduler.runDeferred()
    durable[0].reject(new Error('fsync failed'))
    await expect(first).rejects.toThrow('fsync failed')
    // The next batch is still written once the failed one is settled (the store decides its fate).
    await until(() => durable.length === 2)
    durable[1].resolve()
    await second
    expect(committed).toEqual([['b']])
    expect(failures.map((error) => error.message)).toEqual(['fsync failed'])
  })
})

import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { CausalContext } from '../src/crdt/context.ts'
import { type ChangeEvent, Replica } from '../src/replica/replica.ts'
import { generateEntrySigner, verifyEntry } from '../src/replica/signing.ts'
import { createMemoryStore } from '../src/store/memory.ts'
import { openSqliteStore } from '../src/store/sqlite.ts'
import type { Store } from '../src/store/types.ts'

const te = new TextEncoder()
const dir = mkdtempSync(join(tmpdir(), 'hearsay-replica-ttl-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

const signer = generateEntrySigner()

function open(store: Store, clock: { now: number }): Replica {
  return Replica.open({ namespace: 'ns', store, signer, now: () => clock.now, expirySweepMs: 60_000 })
}

/** A memory store that counts its commits. */
function countingStore(): { store: Store; commits: { count: number } } {
  const base = createMemoryStore()
  const commits = { count: 0 }
  const store: Store = {
    ...base,
    kind: base.kind,
    commit: (ns, batch) => {
      commits.count++
      base.commit(ns, batch)
    },
  }
  return { store, commits }
}

describe('expiring keys in a replica', () => {
  it('keeps the signed expiry across a restart from SQLite', async () => {
    const path = join(dir, 'ttl.db')
    const clock = { now: 1_000_000 }
    const store = openSqliteStore({ path })
    const replica = open(store, clock)
    const ack = await replica.put('lease', te.encode('held'), 'text/plain', { ttlMs: 5_000 })
    expect(ack.expiresAt).toBe(ack.wall + 5_000)
    const entry = replica.deltasSince(new CausalContext()).entries[0]
    expect(entry.expiresAt).toBe(ack.expiresAt)
    expect(verifyEntry('ns', entry)).toBe(true)
    // The signature covers the expiry: another expiry does not verify.
    expect(verifyEntry('ns', { ...entry, expiresAt: entry.expiresAt! + 1 })).toBe(false)
    await replica.close()
    store.close()

    const again = openSqliteStore({ path })
    const reopened = open(again, clock)
    expect(reopened.get('lease')).toBeDefined()
    clock.now = ack.expiresAt!
    expect(reopened.get('lease')).toBeUndefined()
    await reopened.close()
    again.close()
  })

  it('announces an expiry once, as a change with origin expire, writing nothing', async () => {
    const clock = { now: 1_000_000 }
    const { store: counting, commits } = countingStore()
    const replica = open(counting, clock)
    await replica.put('lease', te.encode('held'), 'text/plain', { ttlMs: 1_000 })
    const events: ChangeEvent[] = []
    replica.on('change', (event) => events.push(event))
    const before = commits.count
    replica.announceExpired()
    expect(events).toEqual([])
    clock.now += 1_000
    replica.announceExpired()
    replica.announceExpired()
    expect(events).toEqual([{ namespace: 'ns', type: 'register', key: 'lease', origin: 'expire' }])
    expect(commits.count).toBe(before)
    await replica.close()
  })

  it('refuses a ttl out of bounds', async () => {
    const replica = open(createMemoryStore(), { now: 1_000 })
    for (const ttlMs of [0, -1, 999, 30 * 86_400_000 + 1, 1.5, Number.NaN]) {
      await expect(replica.put('k', te.encode('v'), 'text/plain', { ttlMs })).rejects.toMatchObject({
        code: 'INVALID_TTL',
      })
    }
    expect(replica.get('k')).toBeUndefined()
    await replica.close()
  })
})

describe('delete by prefix in a replica', () => {
  it('is one commit and one HLC timestamp, and answers the writes', async () => {
    const { store: counting, commits } = countingStore()
    const replica = open(counting, { now: 5_000 })
    await Promise.all(
      ['a/1', 'a/2', 'a/3', 'b/1'].map((key) => replica.put(key, te.encode(key), 'text/plain')),
    )
    const before = commits.count
    const deltas: number[] = []
    replica.on('delta', (delta) => deltas.push(delta.entries.length))
    const writes = await replica.deletePrefix('a/')
    expect(commits.count - before).toBe(1)
    expect(writes.map((w) => w.key)).toEqual(['a/1', 'a/2', 'a/3'])
    expect(new Set(writes.map((w) => w.wall)).size).toBe(1)
    expect(deltas.reduce((x, y) => x + y, 0)).toBe(3)
    expect(replica.list().items.map((i) => i.key)).toEqual(['b/1'])
    expect(await replica.deletePrefix('a/')).toEqual([])
    await replica.close()
  })
})

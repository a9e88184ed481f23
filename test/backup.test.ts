import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { DatabaseSync } from 'node:sqlite'
import { generateKeyPair } from '@libp2p/crypto/keys'
import type { PrivateKey } from '@libp2p/interface'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { afterEach, beforeAll, describe, expect, it } from 'vitest'
import { CausalContext } from '../src/crdt/context.ts'
import { Membership } from '../src/peer/membership.ts'
import { HearsayPeer } from '../src/peer/peer.ts'
import { restoreStoreFile, verifyStoreFile } from '../src/store/backup.ts'
import { openSqliteStore, type SqliteStore } from '../src/store/sqlite.ts'
import { StoreError } from '../src/store/types.ts'

const dirs: string[] = []
function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'hearsay-backup-'))
  dirs.push(dir)
  return dir
}
const peers: HearsayPeer[] = []
const keys = new Map<string, PrivateKey>()
beforeAll(async () => {
  for (const name of ['peer-a', 'peer-b']) keys.set(name, await generateKeyPair('Ed25519'))
})
/** A peer with a real identity key, so its entries verify wherever they travel. */
function openPeer(path: string, name = 'peer-a'): { peer: HearsayPeer; store: SqliteStore } {
  const store = openSqliteStore({ path })
  const privateKey = keys.get(name)!
  const peer = new HearsayPeer({ store, peerId: peerIdFromPrivateKey(privateKey).toString(), privateKey })
  peers.push(peer)
  return { peer, store }
}

afterEach(async () => {
  for (const peer of peers.splice(0)) await peer.stop()
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true })
})

const text = (value: string) => Buffer.from(value)
const readText = (peer: HearsayPeer, key: string) => {
  const read = peer.namespace('ns').get(key)
  return read === undefined ? undefined : Buffer.from(read.winner.value).toString()
}

describe('SqliteStore.backup', () => {
  it('is consistent under write load and holds every write acknowledged before it started', async () => {
    const dir = tempDir()
    const { peer, store } = openPeer(join(dir, 'live.db'))
    const replica = peer.namespace('ns')
    for (let i = 0; i < 2_000; i++) void replica.put(`seed/${i}`, text(`v${i}`), 'text/plain')
    await replica.flush()

    // A writer that keeps going for the whole backup, on the same event loop as the backup's steps.
    const acked: string[] = []
    let stop = false
    const writer = (async () => {
      for (let i = 0; i < 100_000 && !stop; i++) {
        await replica.put(`load/${i}`, text(`w${i}`), 'text/plain')
        acked.push(`load/${i}`)
      }
    })()
    while (acked.length < 50) await new Promise((resolve) => setImmediate(resolve))
    const ackedBefore = [...acked]
    const result = await store.backup(join(dir, 'copy.db'))
    const duringBackup = acked.length - ackedBefore.length
    stop = true
    await writer

    expect(result.pages).toBeGreaterThan(0)
    expect(duringBackup).toBeGreaterThan(0)
    const report = verifyStoreFile(join(dir, 'copy.db'))
    expect(report.namespaces).toEqual(['ns'])
    // One self-contained file: no WAL or shared-memory file beside it, no partial left over.
    expect(readdirSync(dir).sort()).toEqual(['copy.db', 'live.db', 'live.db-shm', 'live.db-wal'])

    restoreStoreFile({ file: join(dir, 'copy.db'), database: join(dir, 'restored', 'hearsay.db') })
    const { peer: restored } = openPeer(join(dir, 'restored', 'hearsay.db'))
    for (let i = 0; i < 2_000; i += 97) expect(readText(restored, `seed/${i}`)).toBe(`v${i}`)
    for (const key of ackedBefore) expect(readText(restored, key)).toBe(`w${key.slice(5)}`)
  })

  it('refuses an existing file unless told to overwrite, and an unwritable path, leaving nothing behind', async () => {
    const dir = tempDir()
    const { peer, store } = openPeer(join(dir, 'live.db'))
    await peer.namespace('ns').put('k', text('1'), 'text/plain')
    writeFileSync(join(dir, 'taken.db'), 'not yours')

    const exists = await store.backup(join(dir, 'taken.db')).catch((error: unknown) => error)
    expect(exists).toBeInstanceOf(StoreError)
    expect((exists as StoreError).message).toMatch(/EEXIST/)
    await store.backup(join(dir, 'taken.db'), { overwrite: true })
    expect(verifyStoreFile(join(dir, 'taken.db')).entries).toBeGreaterThan(0)

    const missingDir = await store
      .backup(join(dir, 'no', 'such', 'dir', 'b.db'))
      .catch((error: unknown) => error)
    expect(missingDir).toBeInstanceOf(StoreError)
    expect((missingDir as StoreError).message).toContain(join(dir, 'no', 'such', 'dir', 'b.db'))
    expect(readdirSync(dir).filter((name) => name.includes('partial'))).toEqual([])
    // A failed backup says nothing about the store, which keeps working.
    await peer.namespace('ns').put('k', text('2'), 'text/plain')
    expect(readText(peer, 'k')).toBe('2')
  })
})

describe('restoreStoreFile', () => {
  async function backupOf(dir: string): Promise<string> {
    const { peer, store } = openPeer(join(dir, 'source.db'))
    await peer.namespace('ns').put('k', text('v'), 'text/plain')
    await store.backup(join(dir, 'backup.db'))
    return join(dir, 'backup.db')
  }

  it('refuses files that are not hearsay stores and changes nothing', async () => {
    const dir = tempDir()
    const database = join(dir, 'data', 'hearsay.db')
    writeFileSync(join(dir, 'text.db'), 'hello, not a database at all'.repeat(100))
    const foreign = new DatabaseSync(join(dir, 'foreign.db'))
    foreign.exec('CREATE TABLE t (x); INSERT INTO t VALUES (1)')
    foreign.close()
    const newer = new DatabaseSync(join(dir, 'newer.db'))
    newer.exec('PRAGMA application_id = 1752331129; PRAGMA user_version = 99; CREATE TABLE t (x)')
    newer.close()

    for (const [file, code, words] of [
      ['text.db', 'STORE_CORRUPT', /cannot be read as a hearsay store/],
      ['foreign.db', 'STORE_CORRUPT', /not a hearsay store/],
      ['newer.db', 'STORE_NEWER_VERSION', /schema version 99/],
      ['missing.db', 'STORE_PERMISSION', /cannot read backup/],
    ] as const) {
      const error = (() => {
        try {
          restoreStoreFile({ file: join(dir, file), database })
        } catch (thrown) {
          return thrown
        }
      })()
      expect(error, file).toBeInstanceOf(StoreError)
      expect((error as StoreError).code, file).toBe(code)
      expect((error as StoreError).message, file).toMatch(words)
    }
    expect(existsSync(database)).toBe(false)
    expect(readdirSync(join(dir, 'data'))).toEqual([])
  })

  it('refuses to replace a store unless asked, then keeps the old one beside', async () => {
    const dir = tempDir()
    const file = await backupOf(dir)
    mkdirSync(join(dir, 'data'))
    const database = join(dir, 'data', 'hearsay.db')
    const { peer: old } = openPeer(database, 'peer-b')
    await old.namespace('other').put('x', text('old'), 'text/plain')
    await old.stop()

    expect(() => restoreStoreFile({ file, database })).toThrow(/already holds a store; pass --force/)
    const result = restoreStoreFile({ file, database, replace: true })
    expect(result.namespaces).toEqual(['ns'])
    expect(result.replacedTo).toMatch(/hearsay\.db\.replaced-/)
    expect(existsSync(result.replacedTo!)).toBe(true)
    const { peer } = openPeer(database, 'peer-a')
    expect(peer.namespaces()).toEqual(['ns'])
  })

  it('gives the restored replica a new incarnation, so its dots never collide with the old one’s', async () => {
    const dir = tempDir()
    const { peer: original, store } = openPeer(join(dir, 'source.db'))
    const ns = original.namespace('ns')
    await ns.put('a', text('before backup'), 'text/plain')
    await store.backup(join(dir, 'backup.db'))
    // Written after the backup: dots of the old incarnation that the backup does not have.
    await ns.put('b', text('after backup, old incarnation'), 'text/plain')
    await ns.put('a', text('overwritten after backup'), 'text/plain')
    const oldId = ns.replicaId
    const oldCounter = ns.versionVector().get(oldId)!

    restoreStoreFile({ file: join(dir, 'backup.db'), database: join(dir, 'restored.db') })
    const { peer: restored } = openPeer(join(dir, 'restored.db'))
    const back = restored.namespace('ns')
    expect(back.replicaId).not.toBe(oldId)
    expect(back.replicaId.split('~')[0]).toBe(oldId.split('~')[0])
    const ack = await back.put('c', text('after restore'), 'text/plain')
    expect(ack.replica).toBe(back.replicaId)
    expect(back.versionVector().get(oldId)).toBeLessThan(oldCounter)

    // The old incarnation's later writes arrive (anti-entropy): they merge, none is shadowed.
    await back.merge(ns.deltasSince(back.context()))
    await ns.merge(back.deltasSince(ns.context()))
    expect(back.digest()).toBe(ns.digest())
    expect(readText(restored, 'a')).toBe('overwritten after backup')
    expect(readText(restored, 'b')).toBe('after backup, old incarnation')
    expect(readText(original, 'c')).toBe('after restore')
  })
})

describe('leaving a namespace', () => {
  it('drops its rows and closes it; the store no longer lists it after a reopen', async () => {
    const dir = tempDir()
    const path = join(dir, 'hearsay.db')
    const { peer } = openPeer(path)
    await peer.namespace('keep').put('k', text('1'), 'text/plain')
    for (let i = 0; i < 100; i++) await peer.namespace('gone').put(`k${i}`, text('x'), 'text/plain')
    expect(await peer.leave('gone')).toBe(true)
    expect(await peer.leave('gone')).toBe(false)
    expect(peer.namespaces()).toEqual(['keep'])
    await peer.stop()
    const { peer: again } = openPeer(path)
    expect(again.namespaces()).toEqual(['keep'])
    expect(again.namespace('gone').entryCount).toBe(0)
  })
})

describe('Membership.forget', () => {
  it('stops a departed member from holding back collection; it is a member again when it returns', () => {
    let now = 1_000
    const membership = new Membership({ self: 'me', now: () => now })
    const own = new CausalContext()
    own.add('me~1', 1)
    own.add('me~1', 2)
    const old = new CausalContext()
    old.add('me~1', 1)
    membership.holds('gone', 'ns', old)
    membership.holds('here', 'ns', own)
    expect(membership.stableContext('ns', own, () => true)?.has('me~1', 2)).toBe(false)

    expect(membership.forget('gone')).toBe(true)
    expect(membership.forget('gone')).toBe(false)
    expect(membership.stableContext('ns', own, () => true)?.has('me~1', 2)).toBe(true)

    now += 10
    membership.saw('gone', { connected: true })
    expect(membership.get('gone')?.holds.size).toBe(0)
    // Back, holdings unknown, and it replicates the namespace: no collection until it syncs.
    expect(membership.stableContext('ns', own, (peerId) => peerId === 'gone')).toBeUndefined()
  })
})

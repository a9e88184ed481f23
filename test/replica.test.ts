import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { decodeDelta, encodeDelta } from '../src/codec/index.ts'
import { parseProof } from '../src/codec/proof.ts'
import { decodeEntryBody } from '../src/codec/stored.ts'
import { Writer } from '../src/codec/wire.ts'
import { CausalContext, type Delta } from '../src/crdt/index.ts'
import { type ChangeEvent, Replica } from '../src/replica/replica.ts'
import {
  type EntrySigner,
  generateEntrySigner,
  type SignatureVerifier,
  signEntry,
  verifyEd25519,
  verifyEntry,
  verifyHead,
} from '../src/replica/signing.ts'
import { createMemoryStore } from '../src/store/memory.ts'
import { openSqliteStore } from '../src/store/sqlite.ts'
import type { Store } from '../src/store/types.ts'

const te = new TextEncoder()
const td = new TextDecoder()
const json = 'application/json'

/** One signing key per test name: a replica's id is `<PeerId of its key>~<incarnation>`. */
const signers = new Map<string, EntrySigner>()
function signerOf(name: string): EntrySigner {
  let signer = signers.get(name)
  if (signer === undefined) {
    signer = generateEntrySigner()
    signers.set(name, signer)
  }
  return signer
}

function open(name: string, store: Store = createMemoryStore()): Replica {
  return Replica.open({ namespace: 'ns', store, signer: signerOf(name) })
}

function text(replica: Replica, key: string): string | undefined {
  const read = replica.get(key)
  return read === undefined ? undefined : td.decode(read.winner.value)
}

/** Brings `to` up to date with `from` the way anti-entropy does, through the wire encoding. */
async function sync(from: Replica, to: Replica): Promise<void> {
  await to.merge(decodeDelta(encodeDelta(from.deltasSince(to.context()))))
}

describe('Replica', () => {
  const dir = mkdtempSync(join(tmpdir(), 'hearsay-replica-'))
  afterAll(() => rmSync(dir, { recursive: true, force: true }))

  it('puts, gets, deletes and lists with pagination', async () => {
    const replica = open('a')
    for (let i = 0; i < 25; i++)
      await replica.put(`item/${String(i).padStart(2, '0')}`, te.encode(`${i}`), json)
    await replica.put('other', te.encode('x'), 'text/plain')
    expect(text(replica, 'item/07')).toBe('7')
    expect(replica.get('item/07')?.winner.contentType).toBe(json)
    expect(await replica.delete('item/07')).toBeDefined()
    expect(replica.get('item/07')).toBeUndefined()
    expect(await replica.delete('never-there')).toBeUndefined()

    const keys: string[] = []
    let cursor: string | undefined
    let pages = 0
    do {
      const page = replica.list('item/', { limit: 10, cursor })
      keys.push(...page.items.map((item) => item.key))
      cursor = page.cursor
      pages++
    } while (cursor !== undefined && pages < 10)
    expect(pages).toBe(3)
    expect(keys).toHaveLength(24)
    expect(keys).toEqual([...keys].sort())
    expect(keys).not.toContain('item/07')
  })

  it('keeps concurrent writes as siblings and resolves exactly what an If-Match token saw', async () => {
    const a = open('a')
    const b = open('b')
    await a.put('k', te.encode('"from a"'), json)
    await b.put('k', te.encode('"from b"'), json)
    await sync(a, b)
    await sync(b, a)
    expect(
      a
        .get('k')
        ?.siblings.map((s) => td.decode(s.value))
        .sort(),
    ).toEqual(['"from a"', '"from b"'])
    expect(a.digest()).toBe(b.digest())
    // Default read: the highest HLC wins on both sides alike.
    expect(text(a, 'k')).toBe(text(b, 'k'))

    const seen = a.get('k')!
    // A third concurrent write arrives after the read: the resolving write must not hide it.
    const c = open('c')
    await c.put('k', te.encode('"from c"'), json)
    await sync(c, a)
    await a.put('k', te.encode('"resolved"'), json, { ifMatch: seen.etag })
    expect(
      a
        .get('k')
        ?.siblings.map((s) => td.decode(s.value))
        .sort(),
    ).toEqual(['"from c"', '"resolved"'])
  })

  it('refuses bad input with a typed error and writes nothing', async () => {
    const replica = open('a')
    const digest = replica.digest()
    await expect(replica.put('', te.encode('x'), json)).rejects.toMatchObject({ code: 'INVALID_KEY' })
    await expect(replica.put('a\u0000b', te.encode('x'), json)).rejects.toMatchObject({ code: 'INVALID_KEY' })
    await expect(replica.put('\ud800', te.encode('x'), json)).rejects.toMatchObject({ code: 'INVALID_KEY' })
    await expect(replica.put('k'.repeat(2000), te.encode('x'), json)).rejects.toMatchObject({
      code: 'INVALID_KEY',
    })
    await expect(replica.put('k', new Uint8Array(2 * 1024 * 1024), json)).rejects.toMatchObject({
      code: 'VALUE_TOO_LARGE',
    })
    await expect(replica.put('k', te.encode('x'), 'bad\ntype')).rejects.toMatchObject({
      code: 'INVALID_CONTENT_TYPE',
    })
    await expect(replica.put('k', te.encode('x'), json, { ifMatch: '!!' })).rejects.toMatchObject({
      code: 'INVALID_TOKEN',
    })
    await expect(replica.increment('n', 0.5)).rejects.toMatchObject({ code: 'INVALID_NUMBER' })
    await expect(replica.setAdd('s', 'x\u0000')).rejects.toMatchObject({ code: 'INVALID_KEY' })
    expect(replica.digest()).toBe(digest)
  })

  it('counts with PN-counters and keeps add-wins sets', async () => {
    const a = open('a')
    const b = open('b')
    await a.increment('visits', 5)
    await b.increment('visits', -2)
    await b.increment('visits', 10)
    await a.setAdd('tags', 'red')
    await a.setAdd('tags', 'blue')
    await sync(a, b)
    await sync(b, a)
    expect(a.counter('visits')).toBe(13)
    expect(b.counter('visits')).toBe(13)
    // Concurrent add and remove of the same element: the add wins.
    await a.setRemove('tags', 'red')
    await b.setAdd('tags', 'red')
    await b.setRemove('tags', 'blue')
    await sync(a, b)
    await sync(b, a)
    expect(a.setMembers('tags')).toEqual(['red'])
    expect(b.setMembers('tags')).toEqual(['red'])
    expect(a.digest()).toBe(b.digest())
  })

  it('emits change and delta events only after the write is durable', async () => {
    const replica = open('a')
    const order: string[] = []
    replica.on('change', (event: ChangeEvent) => order.push(`change ${event.type} ${event.key}`))
    replica.on('delta', (delta: Delta) => order.push(`delta ${delta.entries.length}`))
    const write = replica.put('k', te.encode('1'), json).then(() => order.push('ack'))
    expect(order).toEqual([])
    await write
    expect(order).toEqual(['delta 1', 'change register k', 'ack'].filter((e) => e !== 'ack').concat('ack'))
  })

  it('never serves anti-entropy a local write that is not durable yet', async () => {
    const replica = open('a')
    await replica.put('durable', te.encode('1'), json)
    const pending = replica.put('pending', te.encode('2'), json)
    // Applied in memory (readable here) but not yet committed: not for other peers.
    expect(replica.get('pending')).toBeDefined()
    const early = replica.deltasSince(new CausalContext())
    expect(early.entries.map((e) => e.key)).toEqual(['rdurable'])
    expect(early.context.size()).toBe(1)
    // Nor does the context a sync session shows a peer claim it.
    expect(replica.context().size()).toBe(1)
    await pending
    const later = replica.deltasSince(new CausalContext())
    expect(later.entries.map((e) => e.key).sort()).toEqual(['rdurable', 'rpending'])
    expect(replica.context().size()).toBe(2)
  })

  it('groups writes of one turn into one store commit', async () => {
    const base = createMemoryStore()
    let commits = 0
    const counting: Store = {
      ...base,
      kind: base.kind,
      namespaces: () => base.namespaces(),
      load: (ns) => base.load(ns),
      sizeBytes: () => base.sizeBytes(),
      close: () => base.close(),
      commit: (ns, batch) => {
        commits++
        base.commit(ns, batch)
      },
    }
    const replica = open('a', counting)
    const before = commits
    await Promise.all(Array.from({ length: 100 }, (_, i) => replica.put(`k${i}`, te.encode('v'), json)))
    expect(commits - before).toBe(1)
  })

  it('rejects writes and stays failed once the store fails, without acknowledging anything', async () => {
    const base = createMemoryStore()
    let fail = false
    const flaky: Store = {
      kind: 'flaky',
      namespaces: () => base.namespaces(),
      load: (ns) => base.load(ns),
      sizeBytes: () => base.sizeBytes(),
      close: () => base.close(),
      commit: (ns, batch) => {
        if (fail) throw new Error('disk on fire')
        base.commit(ns, batch)
      },
    }
    const replica = open('a', flaky)
    await replica.put('kept', te.encode('1'), json)
    fail = true
    await expect(replica.put('lost', te.encode('2'), json)).rejects.toThrow('disk on fire')
    fail = false
    await expect(replica.put('later', te.encode('3'), json)).rejects.toMatchObject({ code: 'REPLICA_CLOSED' })
    const reopened = Replica.open({ namespace: 'ns', store: base })
    expect(reopened.get('kept')).toBeDefined()
    expect(reopened.get('lost')).toBeUndefined()
  })

  it('reopens from SQLite with the same id, state and digest', async () => {
    const path = join(dir, 'reopen.db')
    const store = openSqliteStore({ path })
    const replica = open('peer-1', store)
    await replica.put('a', te.encode('1'), json)
    await replica.put('b', te.encode('2'), json)
    await replica.delete('a')
    await replica.increment('n', 3)
    await replica.setAdd('s', 'x')
    const digest = replica.digest()
    store.close()

    const again = openSqliteStore({ path })
    const reopened = Replica.open({ namespace: 'ns', store: again, replicaBase: 'ignored' })
    expect(reopened.replicaId).toBe(replica.replicaId)
    expect(reopened.replicaId.startsWith(`${signerOf('peer-1').peerId}~`)).toBe(true)
    expect(reopened.digest()).toBe(digest)
    expect(reopened.get('a')).toBeUndefined()
    expect(text(reopened, 'b')).toBe('2')
    expect(reopened.counter('n')).toBe(3)
    expect(reopened.setMembers('s')).toEqual(['x'])
    again.close()
  })

  it('reports a stored entry it cannot decode as a corrupt store, naming the namespace', () => {
    const store = createMemoryStore()
    store.commit('ns', {
      put: [{ replica: 'a', counter: 1, key: 'rk', data: new Uint8Array([1, 9, 9]) }],
      remove: [],
      meta: [],
    })
    expect(() => Replica.open({ namespace: 'ns', store })).toThrow(
      expect.objectContaining({ name: 'StoreError', code: 'STORE_CORRUPT' }),
    )
  })

  it('starts a new incarnation for a fresh store, even under a known peer id', async () => {
    const first = open('peer-1')
    const second = open('peer-1')
    expect(first.replicaId).not.toBe(second.replicaId)
    const a = await first.put('k', te.encode('1'), json)
    const b = await second.put('k', te.encode('2'), json)
    expect([a.counter, b.counter]).toEqual([1, 1])
    await sync(first, second)
    expect(second.get('k')?.siblings).toHaveLength(2)
  })

  it('starts a new incarnation when the store was copied or restored', () => {
    const base = createMemoryStore()
    let home = 'dev1:inode1'
    const movable: Store = {
      kind: 'movable',
      identity: () => home,
      namespaces: () => base.namespaces(),
      load: (ns) => base.load(ns),
      sizeBytes: () => base.sizeBytes(),
      close: () => base.close(),
      commit: (ns, batch) => base.commit(ns, batch),
    }
    const id = open('peer-1', movable).replicaId
    expect(open('peer-1', movable).replicaId).toBe(id)
    home = 'dev1:inode2'
    const moved = open('peer-1', movable).replicaId
    expect(moved).not.toBe(id)
    expect(moved.startsWith(`${signerOf('peer-1').peerId}~`)).toBe(true)
    expect(open('peer-1', movable).replicaId).toBe(moved)
  })

  it('takes a new incarnation when peers hold writes of its id that it lost', async () => {
    const base = createMemoryStore()
    const original = open('peer-1', base)
    const peer = open('peer-2')
    for (let i = 0; i < 5; i++) await original.put(`k${i}`, te.encode(`${i}`), json)
    await sync(original, peer)
    // Same store identity, but the writes are gone (say, a file system snapshot rolled back).
    const rolledBack = createMemoryStore()
    rolledBack.commit('ns', { put: [], remove: [], meta: [['replica', te.encode(original.replicaId)]] })
    const restored = open('peer-1', rolledBack)
    expect(restored.replicaId).toBe(original.replicaId)
    const events: string[] = []
    restored.on('incarnation', ({ next }) => events.push(next))
    await sync(peer, restored)
    expect(events).toHaveLength(1)
    expect(restored.replicaId).not.toBe(original.replicaId)
    const ack = await restored.put('after', te.encode('y'), json)
    expect(ack.replica).toBe(restored.replicaId)
    await sync(restored, peer)
    expect(peer.digest()).toBe(restored.digest())
    expect(text(peer, 'after')).toBe('y')
    expect(text(restored, 'k3')).toBe('3')
  })

  it('collects tombstones only once every member has seen them', async () => {
    const a = open('a')
    const b = open('b')
    await a.put('k', te.encode('1'), json)
    await sync(a, b)
    await a.delete('k')
    expect(a.tombstoneCount).toBe(1)
    // b has not seen the delete: the intersection of contexts does not cover it.
    expect(await a.collectGarbage(intersect(a.context(), b.context()))).toBe(0)
    await sync(a, b)
    expect(b.get('k')).toBeUndefined()
    expect(await a.collectGarbage(intersect(a.context(), b.context()))).toBe(1)
    expect(a.tombstoneCount).toBe(0)
    // The key stays deleted on both, and a late copy of the old write changes nothing.
    await sync(b, a)
    expect(a.get('k')).toBeUndefined()
    expect(a.context().covers(b.context())).toBe(true)
  })

  it('signs the writes of one turn together: one signature per tree of up to 32, one check per tree', async () => {
    const signer = signerOf('turn')
    let signatures = 0
    const counting: EntrySigner = {
      peerId: signer.peerId,
      sign: (message) => {
        signatures++
        return signer.sign(message)
      },
    }
    const writer = Replica.open({ namespace: 'ns', store: createMemoryStore(), signer: counting })
    await Promise.all(Array.from({ length: 33 }, (_, i) => writer.put(`k${i}`, te.encode(`${i}`), json)))
    expect(signatures).toBe(2)
    await writer.put('alone', te.encode('1'), json)
    expect(signatures).toBe(3)
    const delta = writer.deltasSince(new CausalContext())
    const leaves = delta.entries.map((entry) => parseProof(entry.signature!))
    expect(leaves.filter((p) => typeof p !== 'string' && p.leaves === 32)).toHaveLength(32)
    expect(delta.entries.filter((entry) => entry.signature!.length === 64)).toHaveLength(2)
    // The head of the turn's highest entry vouches on its own.
    expect(verifyHead('ns', writer.head(writer.replicaId)!)).toBe(true)

    let checks = 0
    const verifier: SignatureVerifier = (author, message, signature) => {
      checks++
      return verifyEd25519(author, message, signature)
    }
    const reader = Replica.open({ namespace: 'ns', store: createMemoryStore(), verifier })
    await reader.merge(decodeDelta(encodeDelta(delta)))
    expect(reader.digest()).toBe(writer.digest())
    expect(checks).toBe(3)
    // A tampered entry of a verified tree is refused, and nothing of its delta is merged.
    const late = Replica.open({ namespace: 'ns', store: createMemoryStore(), verifier })
    const decoded = decodeDelta(encodeDelta(delta))
    const entries = [...decoded.entries]
    entries[5] = { ...entries[5], value: te.encode('forged') }
    const tampered: Delta = { entries, context: decoded.context }
    await expect(late.merge(tampered)).rejects.toMatchObject({ name: 'SignatureError' })
    expect(late.get('k0')).toBeUndefined()
  })

  it('opens a database stored before proofs (64-byte signatures, old head lists) and its entries verify', async () => {
    const path = join(dir, 'before-proofs.db')
    const signer = signerOf('old-format')
    const store = openSqliteStore({ path })
    const replica = Replica.open({ namespace: 'ns', store, signer })
    await Promise.all([replica.put('a', te.encode('1'), json), replica.put('b', te.encode('2'), json)])
    await replica.increment('n', 3)
    const digest = replica.digest()
    // Rewrite every row and head the way stores wrote them before proofs: body version 2, each entry
    // signed alone, head lists without a version.
    const snapshot = store.load('ns')
    const rows = snapshot.entries.map((row) => {
      const entry = decodeEntryBody(row.key, row.replica, row.counter, row.data)
      const signature = signEntry(signer, 'ns', entry).signature
      const body = new Writer()
      body.byte(2)
      body.byte(entry.kind)
      body.uint(entry.wall)
      body.uint(entry.logical)
      body.raw(signature)
      body.uint(0) // no covers: these writes superseded nothing
      if (entry.contentType !== undefined) {
        body.string(entry.contentType)
        body.bytes(entry.value!)
      } else {
        body.uint(entry.increments!)
        body.uint(entry.decrements!)
      }
      return { ...row, data: body.finish(), signature, entry }
    })
    const top = rows.reduce((a, b) => (a.counter > b.counter ? a : b))
    const heads = new Writer()
    heads.uint(1)
    heads.string(top.replica)
    heads.uint(top.counter)
    heads.raw(signEntry(signer, 'ns', top.entry).bodyHash)
    heads.raw(top.signature)
    store.commit('ns', {
      put: rows.map(({ replica: r, counter, key, data }) => ({ replica: r, counter, key, data })),
      remove: [],
      meta: [[`head/${top.replica}`, heads.finish()]],
    })
    store.close()

    const again = openSqliteStore({ path })
    const reopened = Replica.open({ namespace: 'ns', store: again, signer })
    expect(reopened.digest()).toBe(digest)
    expect(text(reopened, 'b')).toBe('2')
    const stored = reopened.deltasSince(new CausalContext())
    expect(stored.entries.every((entry) => entry.signature!.length === 64)).toBe(true)
    expect(stored.entries.every((entry) => verifyEntry('ns', entry))).toBe(true)
    expect(verifyHead('ns', reopened.head(reopened.replicaId)!)).toBe(true)
    // A peer accepts them, and the store keeps working: new writes take the new layout.
    const peer = open('old-format-peer')
    await peer.merge(decodeDelta(encodeDelta(stored)))
    expect(peer.digest()).toBe(digest)
    await reopened.put('c', te.encode('3'), json)
    again.close()
  })
})

/** Dots both contexts hold: what two members have both seen. */
function intersect(a: CausalContext, b: CausalContext): CausalContext {
  return a.difference(a.difference(b))
}

import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { entryBodyHash } from '../src/codec/signature.ts'
import {
  attestedBy,
  CausalContext,
  CrdtDocument,
  clipDelta,
  clipRanges,
  type Delta,
} from '../src/crdt/index.ts'
import { Replica } from '../src/replica/replica.ts'
import {
  generateEntrySigner,
  headOf,
  SignatureError,
  type SignatureVerifier,
  signEntry,
  verifyEd25519,
  verifyEntry,
  verifyHead,
} from '../src/replica/signing.ts'
import { createMemoryStore } from '../src/store/memory.ts'
import { openSqliteStore } from '../src/store/sqlite.ts'
import { exchangeReplicas } from './helpers/sync-exchange.ts'

const te = new TextEncoder()

function context(entries: Array<[string, number, number]>): CausalContext {
  const out = new CausalContext()
  for (const [replica, lo, hi] of entries) out.addRange(replica, lo, hi)
  return out
}

describe('clipping context claims to what authors attested', () => {
  it('cuts ranges at the limit and leaves what is below alone', () => {
    expect(clipRanges([1, 5, 8, 10, 20, 30], 9)).toEqual([1, 5, 8, 9])
    expect(clipRanges([1, 5], 5)).toEqual([1, 5])
    expect(clipRanges([3, 5], 2)).toEqual([])
  })

  it('keeps a delta whose claims are all attested as it is, and clips the rest', () => {
    const delta: Delta = {
      entries: [],
      context: context([
        ['a', 1, 3],
        ['b', 1, 1_000_000],
      ]),
    }
    const limits = new Map([
      ['a', 3],
      ['b', 7],
    ])
    const clipped = clipDelta(delta, (replica) => limits.get(replica) ?? 0)
    expect(clipped.context.rangesOf('a')).toEqual([1, 3])
    expect(clipped.context.rangesOf('b')).toEqual([1, 7])
    expect(delta.context.max('b')).toBe(1_000_000) // the input is not changed
    const unchanged = clipDelta(delta, () => Number.MAX_SAFE_INTEGER)
    expect(unchanged).toBe(delta)
    expect(clipDelta(delta, () => 0).context.isEmpty()).toBe(true)
  })

  it('counts a delta’s own entries and heads as attestation', () => {
    const doc = new CrdtDocument({ replica: 'a' })
    doc.put('k', te.encode('1'), 'text/plain')
    const delta = doc.put('k', te.encode('2'), 'text/plain').delta
    const heads = [{ replica: 'b', counter: 9, bodyHash: new Uint8Array(32), signature: new Uint8Array(64) }]
    expect(attestedBy(delta, heads)).toEqual(
      new Map([
        ['a', 2],
        ['b', 9],
      ]),
    )
  })
})

describe('entry signatures', () => {
  it('verify with the author’s key only, for the namespace signed, over every field of the body', () => {
    const author = generateEntrySigner()
    const stranger = generateEntrySigner()
    const doc = new CrdtDocument({ replica: `${author.peerId}~x` })
    const entry = doc.put('k', te.encode('value'), 'text/plain').entry
    const head = signEntry(author, 'ns', entry)
    entry.signature = head.signature
    expect(verifyEntry('ns', entry)).toBe(true)
    expect(headOf(entry)).toEqual(head)
    expect(verifyHead('ns', head)).toBe(true)
    expect(verifyHead('other', head)).toBe(false)
    expect(verifyEntry('other', { ...entry })).toBe(false)
    expect(verifyEntry('ns', { ...entry, value: te.encode('valuf') })).toBe(false)
    expect(verifyEntry('ns', { ...entry, wall: entry.wall + 1 })).toBe(false)
    expect(verifyEntry('ns', { ...entry, counter: entry.counter + 1 })).toBe(false)
    expect(verifyEntry('ns', { ...entry, signature: signEntry(stranger, 'ns', entry).signature })).toBe(false)
    expect(verifyEntry('ns', { ...entry, signature: undefined })).toBe(false)
    // An injected verifier decides (unit tests of the pure parts use one).
    expect(verifyEntry('ns', { ...entry, signature: new Uint8Array(64) }, () => true)).toBe(true)
    expect(entryBodyHash({ ...entry })).toEqual(head.bodyHash)
  })

  it('a replica refuses a delta with one bad entry and merges none of it', async () => {
    const a = Replica.open({ namespace: 'ns', store: createMemoryStore() })
    const b = Replica.open({ namespace: 'ns', store: createMemoryStore() })
    await a.put('good', te.encode('1'), 'text/plain')
    await a.put('bad', te.encode('2'), 'text/plain')
    const delta = a.deltasSince(new CausalContext())
    const tampered: Delta = {
      entries: delta.entries.map((e) => (e.key.endsWith('bad') ? { ...e, value: te.encode('3') } : e)),
      context: delta.context,
    }
    const before = b.digest()
    await expect(b.merge(tampered)).rejects.toBeInstanceOf(SignatureError)
    expect(b.digest()).toBe(before)
    await b.merge(delta)
    expect(b.get('bad')).toBeDefined()
  })
})

/** One honest in-memory session, frames through the codec. */
async function exchange(a: Replica, b: Replica): Promise<void> {
  await exchangeReplicas(a, b)
}

describe('signed heads', () => {
  it('carry an author’s overwritten writes to a peer that never saw them, and survive a restart (SQLite)', async () => {
    const a = Replica.open({ namespace: 'ns', store: createMemoryStore() })
    const dir = mkdtempSync(join(tmpdir(), 'hearsay-heads-'))
    const path = join(dir, 'b.db')
    let bStore = openSqliteStore({ path })
    const bSigner = generateEntrySigner()
    let b = Replica.open({ namespace: 'ns', store: bStore, signer: bSigner })
    const c = Replica.open({ namespace: 'ns', store: createMemoryStore() })
    for (let i = 0; i < 3; i++) await a.put('k', te.encode(`a${i}`), 'text/plain')
    await exchange(b, a)
    await b.put('k', te.encode('b'), 'text/plain') // supersedes all of a's entries
    await b.flush()
    bStore.close()
    bStore = openSqliteStore({ path })
    b = Replica.open({ namespace: 'ns', store: bStore, signer: bSigner }) // heads persist
    expect(b.head(a.replicaId)?.counter).toBe(3)
    // c learns a's dots 1..3 from b, which no longer holds any entry of a: only a's head vouches.
    await exchange(c, b)
    expect(c.context().max(a.replicaId)).toBe(3)
    expect(c.digest()).toBe(b.digest())
    await exchange(c, a)
    expect(c.digest()).toBe(a.digest())
    bStore.close()
    rmSync(dir, { recursive: true, force: true })
  })
})

describe('heads and catch-up of writes signed together', () => {
  it('a turn of writes syncs in small chunks at one signature check, and its head vouches on its own', async () => {
    let checks = 0
    const counting: SignatureVerifier = (author, message, signature) => {
      checks++
      return verifyEd25519(author, message, signature)
    }
    const a = Replica.open({ namespace: 'ns', store: createMemoryStore() })
    const b = Replica.open({ namespace: 'ns', store: createMemoryStore(), verifier: counting })
    // One turn: 20 writes of one tree, the last three to one key (so two are superseded at once).
    await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        a.put(i < 17 ? `k${i}` : 'same', te.encode(`v${i}`), 'text/plain'),
      ),
    )
    // Chunks of ~1 KiB: the tree's entries arrive over several DELTAS frames, in the sender's order.
    let chunks = 0
    await exchangeReplicas(b, a, {
      chunkBytes: 1024,
      seen: (frame) => {
        if (frame.type === 'deltas') chunks++
      },
    })
    expect(chunks).toBeGreaterThan(1)
    expect(b.digest()).toBe(a.digest())
    expect(checks).toBe(1)
    // b keeps the head of a's highest entry: a tree proof, which vouches on its own.
    const head = b.head(a.replicaId)!
    expect(head.signature.length).toBeGreaterThan(64)
    expect(verifyHead('ns', head)).toBe(true)
    expect(verifyHead('ns', { ...head, bodyHash: new Uint8Array(32) })).toBe(false)
  })
})

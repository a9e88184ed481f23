import { generateKeyPairFromSeed } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { multiaddr } from '@multiformats/multiaddr'
import { encodeContext, encodeDelta } from '../../src/codec/delta.ts'
import { encodeEntryBody, encodeToken } from '../../src/codec/stored.ts'
import type { Delta } from '../../src/crdt/causal-map.ts'
import type { CausalContext } from '../../src/crdt/context.ts'
import { CrdtDocument, internalKey } from '../../src/crdt/document.ts'
import { HybridClock } from '../../src/crdt/hlc.ts'
import { encodeBatch } from '../../src/gossip/batch.ts'
import { encodePexFrame } from '../../src/mesh/peer-exchange.ts'
import { createEntrySigner, headOf, signEntries, signEntry } from '../../src/replica/signing.ts'
import { encodeSyncFrame } from '../../src/sync/frames.ts'
import { SyncSession } from '../../src/sync/session.ts'
import { Rng } from './rng.ts'

/**
 * Valid inputs of every format, made by the project's own encoders from a seeded random history of
 * three replicas (registers, counters, sets, removals, If-Match writes, anti-entropy and GC). Seeds
 * come from the encoders rather than from fixed bytes, so they follow the formats as they change.
 */

export const TOPIC = 'hearsay/fuzz/ns/v1'
export const NAMESPACE = 'ns'

export interface StoredSeed {
  key: string
  replica: string
  counter: number
}

export interface Corpus {
  delta: Uint8Array[]
  context: Uint8Array[]
  gossip: Uint8Array[]
  syncFrame: Uint8Array[]
  pex: Uint8Array[]
  /** Tokens as the bytes behind their base64url text. */
  token: Uint8Array[]
  storedEntry: Uint8Array[]
  /** The key, dot and replica each stored-entry seed belongs to (decodeEntryBody's other arguments). */
  storedMeta: StoredSeed[]
  /** HTTP-side strings: watch `since` tokens, query strings, content types, keys. */
  http: Uint8Array[]
  /** The state merges land on (a fresh copy per input) and the peer id gossip counts as ourselves. */
  base: Delta
  self: string
  /** Internal keys a decoded token may be applied to. */
  keys: string[]
}

const KEYS = ['a', 'b', 'sensors/attic', 'ünï 🙂', 'k'.repeat(300)]
const CONTENT_TYPES = ['application/json', 'text/plain', 'application/octet-stream', 'application/ld+json']
const te = new TextEncoder()

export async function buildCorpus(seed: number): Promise<Corpus> {
  const rng = new Rng(seed)
  const keys = await Promise.all(
    [0, 1, 2].map((i) => generateKeyPairFromSeed('Ed25519', new Rng(seed + i).bytes(32))),
  )
  const peerIds = keys.map((key) => peerIdFromPrivateKey(key))
  let wall = 1_700_000_000_000
  const docs = peerIds.map(
    (peerId, i) =>
      new CrdtDocument({ replica: `${peerId.toString()}~inc${i}`, clock: new HybridClock(() => wall) }),
  )
  const corpus: Corpus = {
    delta: [],
    context: [],
    gossip: [],
    syncFrame: [],
    pex: [],
    token: [],
    storedEntry: [],
    storedMeta: [],
    http: [],
    base: { entries: [], context: docs[0].context() },
    self: peerIds[0].toString(),
    keys: [],
  }
  const signers = keys.map((key) => createEntrySigner(key))
  const addDelta = async (writer: number, unsigned: Delta) => {
    // Entries travel signed by their author, as a replica signs them when it commits.
    const delta = {
      entries: unsigned.entries.map((entry) => ({
        ...entry,
        signature: signEntry(signers[writer], NAMESPACE, entry).signature,
      })),
      context: unsigned.context,
    }
    corpus.delta.push(encodeDelta(delta))
    corpus.gossip.push(encodeBatch(delta))
  }
  const addToken = (key: string, covers: CausalContext) => {
    corpus.token.push(new Uint8Array(Buffer.from(encodeToken(key, covers), 'base64url')))
  }

  for (let step = 0; step < 160; step++) {
    wall += rng.int(50)
    const i = rng.int(3)
    const doc = docs[i]
    const key = rng.pick(KEYS)
    const action = rng.int(10)
    if (action <= 2) {
      const value = rng.chance(0.1) ? rng.bytes(2_000) : te.encode(JSON.stringify({ step, v: rng.next() }))
      const read = rng.chance(0.3) ? doc.get(key) : undefined
      const result = doc.put(key, value, rng.pick(CONTENT_TYPES), read?.token)
      addToken(result.entry.key, doc.writeToken(result))
      await addDelta(i, result.delta)
    } else if (action === 3) {
      const result = doc.delete(key)
      if (result !== undefined) await addDelta(i, result.delta)
    } else if (action === 4) {
      await addDelta(i, doc.increment(key, rng.int(1_000) - 500).delta)
    } else if (action === 5) {
      const result = rng.chance(0.2) ? doc.deleteCounter(key) : doc.setAdd(key, `e${rng.int(4)}`)
      if (result !== undefined) await addDelta(i, result.delta)
    } else if (action === 6) {
      const result = doc.setRemove(key, `e${rng.int(4)}`)
      if (result !== undefined) await addDelta(i, result.delta)
    } else if (action === 7) {
      const read = doc.get(key)
      if (read !== undefined) addToken(internalKey('register', key), read.token)
    } else if (action === 8) {
      const to = docs[(i + 1 + rng.int(2)) % 3]
      to.merge(doc.deltasSince(to.context()))
    } else {
      const stable = docs[0].context().difference(docs[0].context().difference(docs[1].context()))
      doc.collectGarbage(stable.difference(stable.difference(docs[2].context())))
    }
  }

  for (const doc of docs) {
    corpus.delta.push(encodeDelta(doc.snapshot()))
    corpus.context.push(encodeContext(doc.context()))
    for (const entry of doc.map.allEntries()) {
      corpus.storedEntry.push(encodeEntryBody(entry))
      corpus.storedMeta.push({ key: entry.key, replica: entry.replica, counter: entry.counter })
      if (!entry.covers.isEmpty()) corpus.context.push(encodeContext(entry.covers))
      corpus.keys.push(entry.key)
    }
    for (const other of docs)
      if (other !== doc) corpus.delta.push(encodeDelta(doc.deltasSince(other.context())))
    corpus.http.push(te.encode(`c1.${Buffer.from(encodeContext(doc.context())).toString('base64url')}`))
  }

  // One commit turn of a writer, signed together: tree proofs, most sharing the previous entry's
  // signature in the delta codec, in deltas, gossip, stored bodies and signed heads.
  const turn = [0, 1, 2, 3, 4].map((n) =>
    docs[1].put(`turn/${n}`, te.encode(`{"n":${n}}`), 'application/json'),
  )
  const heads = signEntries(
    signers[1],
    NAMESPACE,
    turn.map((result) => result.entry),
  )
  const turnEntries = turn.map((result, n) => ({ ...result.entry, signature: heads[n].signature }))
  const turnContext = turn[0].delta.context.clone()
  for (const result of turn) turnContext.merge(result.delta.context)
  const turnDelta = { entries: turnEntries, context: turnContext }
  corpus.delta.push(encodeDelta(turnDelta))
  corpus.gossip.push(encodeBatch(turnDelta))
  for (const entry of turnEntries) {
    corpus.storedEntry.push(encodeEntryBody(entry))
    corpus.storedMeta.push({ key: entry.key, replica: entry.replica, counter: entry.counter })
  }
  corpus.syncFrame.push(
    encodeSyncFrame({
      type: 'deltas',
      final: true,
      delta: { entries: turnEntries.slice(0, 2), context: turnContext },
      heads: turnEntries.slice(2).map((entry) => headOf(entry)),
    }),
  )

  // Real anti-entropy sessions, small chunks so middle chunks appear too; then an EQUAL one.
  for (const [a, b] of [
    [0, 1],
    [2, 0],
    [1, 2],
    [0, 1],
  ]) {
    corpus.syncFrame.push(...session(docs[a], docs[b], 256 + rng.int(2_048)))
  }
  corpus.syncFrame.push(encodeSyncFrame({ type: 'error', code: 'busy', message: 'try again later' }))

  corpus.pex.push(
    encodePexFrame(
      peerIds.map((id, i) => ({
        id,
        addrs: [multiaddr(`/ip4/127.0.0.${i + 1}/tcp/${7601 + i}`), multiaddr('/ip6/::1/tcp/7601')],
      })),
    ),
    encodePexFrame([]),
    encodePexFrame([{ id: peerIds[1], addrs: [multiaddr('/dns4/peer.example/tcp/7601')] }]),
  )

  corpus.http.push(
    ...[
      'limit=10&siblings=1',
      'prefix=sensors%2F&limit=1000&cursor=a&values=0',
      'ack=3&timeout=5000',
      'application/json; charset=utf-8',
      'text/plain',
      'Application/LD+JSON',
      'sensors/attic',
      'set\u0000element',
      'now',
    ].map((text) => te.encode(text)),
  )

  corpus.base = docs[0].snapshot()
  corpus.keys = [...new Set(corpus.keys)].slice(0, 32)
  return corpus
}

/** The encoded frames of one anti-entropy session between two documents (which it leaves synced). */
function session(a: CrdtDocument, b: CrdtDocument, chunkBytes: number): Uint8Array[] {
  const initiator = new SyncSession({ role: 'initiator', namespace: NAMESPACE, state: a, chunkBytes })
  const responder = new SyncSession({ role: 'responder', namespace: NAMESPACE, state: b, chunkBytes })
  const frames: Uint8Array[] = []
  let toB = initiator.open()
  for (let round = 0; round < 10 && toB.length > 0; round++) {
    const toA = []
    for (const frame of toB) {
      frames.push(encodeSyncFrame(frame))
      const step = responder.receive(frame)
      if (step.merge) b.merge(step.merge.delta, step.merge.options)
      toA.push(...step.send)
    }
    toB = []
    for (const frame of toA) {
      frames.push(encodeSyncFrame(frame))
      const step = initiator.receive(frame)
      if (step.merge) a.merge(step.merge.delta, step.merge.options)
      toB.push(...step.send)
    }
  }
  return frames
}

import { decodeContext, decodeDelta, encodeContext, encodeDelta } from '../../src/codec/delta.ts'
import { DecodeError } from '../../src/codec/errors.ts'
import { decodeEntryBody, decodeToken, encodeEntryBody } from '../../src/codec/stored.ts'
import { CrdtDocument } from '../../src/crdt/document.ts'
import { HybridClock } from '../../src/crdt/hlc.ts'
import { ApiError } from '../../src/daemon/errors.ts'
import { flagParam, intParam } from '../../src/daemon/route.ts'
import { encodeValue, isJsonType, mediaType } from '../../src/daemon/values.ts'
import { decodeSince } from '../../src/daemon/watch.ts'
import { batchSigner, checkBatch } from '../../src/gossip/batch.ts'
import { decodeGossipBatch } from '../../src/gossip/envelope.ts'
import { PeerExchangeFrameError } from '../../src/mesh/errors.ts'
import { decodePexFrame } from '../../src/mesh/peer-exchange.ts'
import { keyProblem, setElementProblem } from '../../src/replica/keys.ts'
import { decodeSyncFrame } from '../../src/sync/frames.ts'
import { SyncProtocolError, SyncSession } from '../../src/sync/session.ts'
import { type Corpus, NAMESPACE, TOPIC } from './corpus.ts'
import { mutate } from './mutate.ts'
import type { Rng } from './rng.ts'

/**
 * What the fuzzer feeds and how it judges the outcome. Each target makes its input from the seeded
 * generator (a mutated valid input, now and then a random one), runs a decoder through its
 * exported function and, when the input decodes, the pure code that consumes the result the way the
 * peer does (merge, anti-entropy session, If-Match write, re-encoding). An error is acceptable only
 * when it is one of the target's typed refusals; anything else is a crash.
 */

export interface Target {
  readonly name: string
  /** The input for one run: a function of the generator alone. */
  generate(rng: Rng, corpus: Corpus): Uint8Array
  /** Feeds the input; returns true when it was accepted (decoded), false when refused. */
  run(input: Uint8Array, corpus: Corpus): boolean | Promise<boolean>
  /** The errors that are a proper refusal of bad input. */
  typed(error: unknown): boolean
}

const PEX_LIMITS = { maxPeers: 32, maxAddrsPerPeer: 8 }
const latin1 = new TextDecoder('latin1')
const utf8 = new TextDecoder('utf-8')

/** Most inputs are mutations of a valid one; some are valid as they are or plain random bytes. */
function fromSeeds(rng: Rng, seeds: readonly Uint8Array[]): Uint8Array {
  const roll = rng.int(100)
  if (roll < 3) return rng.bytes(rng.int(64))
  const seed = rng.pick(seeds)
  if (roll < 8) return seed
  return mutate(rng, seed, seeds)
}

function isDecodeError(error: unknown): boolean {
  return error instanceof DecodeError
}

/** A fresh document holding the base state, for inputs that get merged. */
function freshDoc(corpus: Corpus): CrdtDocument {
  const doc = new CrdtDocument({ replica: 'fuzz~local', clock: new HybridClock(() => 1_700_000_000_000) })
  doc.merge(corpus.base)
  return doc
}

/** What the peer does with a delta it accepted: check its author, merge it, and re-encode it. */
function consumeDelta(delta: ReturnType<typeof decodeDelta>, corpus: Corpus): void {
  batchSigner(delta)
  const doc = freshDoc(corpus)
  doc.merge(delta)
  doc.digest()
  doc.deltasSince(corpus.base.context)
  decodeDelta(encodeDelta(delta))
}

const deltaTarget: Target = {
  name: 'delta',
  generate: (rng, corpus) => fromSeeds(rng, corpus.delta),
  run(input, corpus) {
    consumeDelta(decodeDelta(input), corpus)
    return true
  },
  typed: isDecodeError,
}

const contextTarget: Target = {
  name: 'context',
  generate: (rng, corpus) => fromSeeds(rng, corpus.context),
  run(input, corpus) {
    const context = decodeContext(input)
    // A remote context is what anti-entropy answers: what does that peer lack?
    const doc = freshDoc(corpus)
    doc.deltasSince(context)
    context.difference(corpus.base.context)
    decodeContext(encodeContext(context))
    return true
  },
  typed: isDecodeError,
}

const gossipTarget: Target = {
  name: 'gossip',
  generate: (rng, corpus) => fromSeeds(rng, corpus.gossip),
  async run(input, corpus) {
    // The validator first (decode, author, signature), then the batch as the handler merges it.
    const checked = await checkBatch(TOPIC, input, corpus.self)
    consumeDelta(decodeDelta(decodeGossipBatch(input)), corpus)
    return checked.verdict === 'accept'
  },
  typed: isDecodeError,
}

/** A session over a fresh copy of the base state, as the sync service runs one. */
function newSession(role: 'initiator' | 'responder', doc: CrdtDocument): SyncSession {
  const session = new SyncSession({ role, namespace: NAMESPACE, state: doc, chunkBytes: 1_024 })
  if (role === 'initiator') session.open()
  return session
}

function isSyncRefusal(error: unknown): boolean {
  return error instanceof DecodeError || error instanceof SyncProtocolError
}

const syncFrameTarget: Target = {
  name: 'sync-frame',
  generate: (rng, corpus) => fromSeeds(rng, corpus.syncFrame),
  run(input, corpus) {
    const frame = decodeSyncFrame(input)
    // A frame is in turn for one role at most: accepted when either takes it.
    let accepted = false
    for (const role of ['responder', 'initiator'] as const) {
      const doc = freshDoc(corpus)
      try {
        const step = newSession(role, doc).receive(frame)
        if (step.merge) doc.merge(step.merge.delta, step.merge.options)
        accepted = true
      } catch (error) {
        if (!(error instanceof SyncProtocolError)) throw error
      }
    }
    return accepted
  },
  typed: isSyncRefusal,
}

/**
 * A whole session: a role byte, then up to five length-prefixed frames (valid or mutated) fed in
 * order. The container is the harness's own and parsed leniently; only the frames are under test.
 */
const syncSessionTarget: Target = {
  name: 'sync-session',
  generate(rng, corpus) {
    const parts: number[] = [rng.int(2)]
    const count = 1 + rng.int(5)
    for (let i = 0; i < count; i++) {
      const frame = rng.chance(0.6) ? rng.pick(corpus.syncFrame) : fromSeeds(rng, corpus.syncFrame)
      parts.push(frame.length & 0xff, (frame.length >>> 8) & 0xff, (frame.length >>> 16) & 0xff, ...frame)
    }
    return Uint8Array.from(parts)
  },
  run(input, corpus) {
    const doc = freshDoc(corpus)
    const session = newSession(input[0] === 1 ? 'initiator' : 'responder', doc)
    let offset = 1
    for (let i = 0; i < 5 && offset + 3 <= input.length && !session.done; i++) {
      const length = input[offset] | (input[offset + 1] << 8) | (input[offset + 2] << 16)
      const frame = input.subarray(offset + 3, offset + 3 + length)
      offset += 3 + length
      const step = session.receive(decodeSyncFrame(frame))
      if (step.merge) doc.merge(step.merge.delta, step.merge.options)
    }
    doc.digest()
    return true
  },
  typed: isSyncRefusal,
}

const PEX_FIELDS: unknown[] = [
  null,
  0,
  1,
  -1,
  2 ** 53,
  'x',
  '',
  '/ip4/1.2.3.4/tcp/1',
  '/ip4/999.1.1.1/tcp/1',
  '/p2p-circuit',
  '/ip4/127.0.0.1/tcp/1/p2p/12D3KooWfake',
  [],
  {},
  [1, 2],
  { id: 1 },
  'a'.repeat(200),
]

/** Peer-exchange frames are JSON: mutate the structure as well as the bytes. */
function pexStructure(rng: Rng, corpus: Corpus): Uint8Array {
  const text = new TextDecoder().decode(rng.pick(corpus.pex))
  const doc = JSON.parse(text) as { v: unknown; peers: unknown[] }
  const firstPeer = (JSON.parse(text) as { peers: unknown[] }).peers[0] ?? null
  const value = (): unknown => structuredClone(rng.chance(0.5) ? rng.pick(PEX_FIELDS) : firstPeer)
  if (rng.chance(0.1)) doc.v = value()
  if (rng.chance(0.1)) doc.peers = value() as unknown[]
  if (Array.isArray(doc.peers)) {
    const peers = doc.peers as Array<Record<string, unknown>>
    for (let i = 0; i < rng.int(40); i++) peers.push({ ...(peers[0] ?? {}) })
    for (const peer of peers) {
      if (typeof peer !== 'object' || peer === null) continue
      if (rng.chance(0.2)) peer.id = value()
      if (rng.chance(0.3)) {
        const addrs = Array.from({ length: rng.int(12) }, () =>
          rng.chance(0.5)
            ? structuredClone(rng.pick(PEX_FIELDS))
            : `/ip4/10.0.0.${rng.int(300)}/tcp/${rng.int(70_000)}`,
        )
        peer.addrs = rng.chance(0.1) ? value() : addrs
      }
    }
  }
  return new TextEncoder().encode(JSON.stringify(doc))
}

const pexTarget: Target = {
  name: 'peer-exchange',
  generate: (rng, corpus) => (rng.chance(0.5) ? pexStructure(rng, corpus) : fromSeeds(rng, corpus.pex)),
  run(input) {
    decodePexFrame(input, PEX_LIMITS)
    return true
  },
  typed: (error) => error instanceof PeerExchangeFrameError,
}

const tokenTarget: Target = {
  name: 'etag-token',
  generate(rng, corpus) {
    // The first byte says how the rest becomes the header text: base64url (as issued) or raw.
    const bytes = fromSeeds(rng, corpus.token)
    const out = new Uint8Array(bytes.length + 1)
    out[0] = rng.chance(0.85) ? 0 : 1
    out.set(bytes, 1)
    return out
  },
  run(input, corpus) {
    const body = input.subarray(1)
    const text = input[0] === 0 ? Buffer.from(body).toString('base64url') : latin1.decode(body)
    const token = decodeToken(text)
    // An If-Match write with it, as the replica makes one (on a register of the base state).
    const doc = freshDoc(corpus)
    doc.put('a', new Uint8Array(1), 'text/plain', token.covers)
    doc.delete('b', token.covers)
    return true
  },
  typed: isDecodeError,
}

const storedEntryTarget: Target = {
  name: 'stored-entry',
  generate(rng, corpus) {
    const at = rng.int(corpus.storedEntry.length)
    const out = fromSeeds(rng, [corpus.storedEntry[at]])
    // The row's index rides in front so the run can give decodeEntryBody the row's key and dot.
    return Uint8Array.from([at & 0xff, (at >>> 8) & 0xff, ...out])
  },
  run(input, corpus) {
    const meta = corpus.storedMeta[(input[0] | (input[1] << 8)) % corpus.storedMeta.length]
    const entry = decodeEntryBody(meta.key, meta.replica, meta.counter, input.subarray(2))
    decodeEntryBody(meta.key, meta.replica, meta.counter, encodeEntryBody(entry))
    return true
  },
  typed: isDecodeError,
}

const httpTarget: Target = {
  name: 'http-parsers',
  generate: (rng, corpus) => fromSeeds(rng, corpus.http),
  run(input) {
    const text = utf8.decode(input)
    const raw = latin1.decode(input)
    // Lone surrogates too: a URL-decoded path can hold them.
    const odd = `${raw.slice(0, 3)}\ud800${raw.slice(3)}`
    for (const s of [text, raw, odd]) {
      keyProblem(s)
      setElementProblem(s, raw)
      mediaType(s)
      isJsonType(s)
      encodeValue(input, s)
    }
    let accepted = true
    for (const parse of [
      () => decodeSince(text),
      () => decodeSince(raw),
      () => intParam(new URLSearchParams(text), 'limit', 1, 1_000, 100),
      () => flagParam(new URLSearchParams(raw), 'siblings'),
    ]) {
      try {
        parse()
      } catch (error) {
        if (!(error instanceof ApiError && error.status === 400)) throw error
        accepted = false
      }
    }
    return accepted
  },
  typed: () => false,
}

export const TARGETS: readonly Target[] = [
  deltaTarget,
  contextTarget,
  gossipTarget,
  syncFrameTarget,
  syncSessionTarget,
  pexTarget,
  tokenTarget,
  storedEntryTarget,
  httpTarget,
]

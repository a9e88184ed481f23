/**
 * Wire compatibility (issue 3 item 6): a peer built from the stock `@chainsafe/libp2p-gossipsub@14` on
 * libp2p 2 (devDependencies under npm aliases: `libp2p-v2`, `libp2p-v2-tcp`, `libp2p-v2-noise`,
 * `libp2p-v2-yamux`, `libp2p-v2-identify`) joins a hearsay topic and both receives and publishes gossip.
 * The stock node gets configuration only: `StrictNoSign` and our message-id function. It signs its own
 * batches with our codec, as any third-party implementation of the hearsay wire format would.
 *
 * Real TCP on 127.0.0.1; every wait is a poll with a deadline; every node is stopped in afterEach.
 */
import { type GossipSub, gossipsub as stockGossipsub } from '@chainsafe/libp2p-gossipsub'
import { generateKeyPair } from '@libp2p/crypto/keys'
import type { PrivateKey } from '@libp2p/interface'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { createLibp2p as createLibp2pV2, type Libp2p as Libp2pV2 } from 'libp2p-v2'
import { identify as identifyV2 } from 'libp2p-v2-identify'
import { noise as noiseV2 } from 'libp2p-v2-noise'
import { tcp as tcpV2 } from 'libp2p-v2-tcp'
import { yamux as yamuxV2 } from 'libp2p-v2-yamux'
import { multiaddr as multiaddrV2 } from 'multiaddr-v12'
import { afterEach, describe, expect, it } from 'vitest'
import { decodeDelta } from '../src/codec/delta.ts'
import { CrdtDocument, internalKey } from '../src/crdt/index.ts'
import { batchSigner, encodeBatch } from '../src/gossip/batch.ts'
import { decodeGossipBatch } from '../src/gossip/envelope.ts'
import { messageId, msgIdFn } from '../src/mesh/message-id.ts'
import { meshTopic } from '../src/mesh/topics.ts'
import { signEntries } from './helpers/forge.ts'
import { eventually, startTestPeer, type TestPeer } from './helpers/mesh-peers.ts'

const te = new TextEncoder()
const td = new TextDecoder()
const topic = meshTopic('default', 'ns')

interface StockMessage {
  data: Uint8Array
  msgId: string
  from: string
  /** performance.now() at delivery. */
  at: number
}

interface StockPeer {
  libp2p: Libp2pV2
  pubsub: GossipSub
  key: PrivateKey
  peerId: string
  received: StockMessage[]
  stop(): Promise<void>
}

let ours: TestPeer[] = []
let stock: StockPeer[] = []
afterEach(async () => {
  await Promise.allSettled(stock.map((s) => s.stop()))
  await Promise.allSettled(ours.map((p) => p.stop()))
  stock = []
  ours = []
})

type StockInit = NonNullable<Parameters<typeof createLibp2pV2>[0]>

/**
 * A stock libp2p 2 node with gossipsub 14. Configuration only: StrictNoSign and our msgIdFn (the
 * message id must agree on both sides: IHAVE/IWANT and duplicate detection carry it).
 */
async function startStockPeer(): Promise<StockPeer> {
  const key = await generateKeyPair('Ed25519')
  const libp2p = await createLibp2pV2({
    // The same @libp2p/crypto 5 key object; only the declared types differ (interface 2 vs 3 name two
    // versions of uint8arraylist in `verify`'s signature), so the cast is for tsc alone.
    privateKey: key as unknown as StockInit['privateKey'],
    addresses: { listen: ['/ip4/127.0.0.1/tcp/0'] },
    transports: [tcpV2()],
    connectionEncrypters: [noiseV2()],
    streamMuxers: [yamuxV2()],
    services: {
      identify: identifyV2(),
      pubsub: stockGossipsub({
        globalSignaturePolicy: 'StrictNoSign',
        msgIdFn,
        allowPublishToZeroTopicPeers: true,
      }),
    },
  })
  const pubsub = libp2p.services.pubsub as GossipSub
  const received: StockMessage[] = []
  pubsub.addEventListener('gossipsub:message', (evt) => {
    const { msg, msgId, propagationSource } = evt.detail
    if (msg.topic === topic)
      received.push({ data: msg.data, msgId, from: propagationSource.toString(), at: performance.now() })
  })
  pubsub.subscribe(topic)
  const peer: StockPeer = {
    libp2p,
    pubsub,
    key,
    peerId: peerIdFromPrivateKey(key).toString(),
    received,
    stop: async () => {
      await libp2p.stop()
    },
  }
  stock.push(peer)
  return peer
}

/** The stock node dials a hearsay peer; resolves once each has grafted the other into the topic mesh. */
async function link(old: StockPeer, hearsay: TestPeer): Promise<number> {
  const started = performance.now()
  await old.libp2p.dial(multiaddrV2(hearsay.address))
  // Polled every 20 ms: joinMs is that coarse.
  const formed = await eventually(
    () =>
      old.pubsub.getMeshPeers(topic).includes(hearsay.mesh.peerId) &&
      hearsay.mesh.node.status().topics.some((t) => t.topic === topic && t.meshPeers > 0),
    10_000,
  )
  expect(formed, 'both sides graft each other into the topic mesh').toBe(true)
  return performance.now() - started
}

async function pair(): Promise<{ hearsay: TestPeer; old: StockPeer; joinMs: number }> {
  const hearsay = await startTestPeer()
  ours.push(hearsay)
  const old = await startStockPeer()
  expect(old.libp2p.peerId.toString()).toBe(old.peerId)
  return { hearsay, old, joinMs: await link(old, hearsay) }
}

/**
 * performance.now() when `key` changes on the peer's replica of 'ns' (after commit), or undefined if it
 * has not within `timeoutMs`.
 */
function changedAt(p: TestPeer, key: string, timeoutMs = 10_000): Promise<number | undefined> {
  const replica = p.peer.namespace('ns')
  return new Promise((resolve) => {
    const done = (at: number | undefined) => {
      clearTimeout(timer)
      replica.off('change', listener)
      resolve(at)
    }
    const listener = (change: { key: string }) => {
      if (change.key === key) done(performance.now())
    }
    const timer = setTimeout(() => done(undefined), timeoutMs)
    replica.on('change', listener)
  })
}

interface ConnectionView {
  encryption?: string
  multiplexer?: string
  streams: Array<{ protocol?: string }>
}

/** What each side's connection to the other negotiated: encryption, muxer, open stream protocols. */
function negotiated(hearsay: TestPeer, old: StockPeer) {
  const view = (connections: ConnectionView[]) => ({
    encryption: [...new Set(connections.map((c) => c.encryption))],
    multiplexer: [...new Set(connections.map((c) => c.multiplexer))],
    streams: [...new Set(connections.flatMap((c) => c.streams.map((s) => s.protocol ?? '?')))].sort(),
  })
  return {
    ours: view(hearsay.mesh.node.libp2p.getConnections()),
    stock: view(old.libp2p.getConnections() as unknown as ConnectionView[]),
  }
}

/** What identify told each side about the other. */
async function identified(hearsay: TestPeer, old: StockPeer) {
  const stockId = hearsay.mesh.node.peers().find((p) => p.toString() === old.peerId)!
  const seenByUs = await hearsay.mesh.node.libp2p.peerStore.get(stockId)
  const oursId = old.libp2p.getPeers().find((p) => p.toString() === hearsay.mesh.peerId)!
  const seenByStock = await old.libp2p.peerStore.get(oursId)
  const agent = (m: Map<string, Uint8Array>) => td.decode(m.get('AgentVersion'))
  return {
    stockAgent: agent(seenByUs.metadata),
    stockProtocols: seenByUs.protocols,
    ourAgent: agent(seenByStock.metadata),
    ourProtocols: seenByStock.protocols,
  }
}

describe('wire compatibility with stock @chainsafe/libp2p-gossipsub@14 on libp2p 2', () => {
  it('a write on a hearsay peer reaches the stock node, which decodes it with our codec', async () => {
    const { hearsay, old, joinMs } = await pair()
    const wire = negotiated(hearsay, old)
    const id = await identified(hearsay, old)
    console.info(`[compat] joined in ${joinMs.toFixed(0)} ms; ${JSON.stringify(wire)}; ${JSON.stringify(id)}`)
    expect(wire.ours.encryption).toEqual(['/noise'])
    expect(wire.stock.encryption).toEqual(['/noise'])
    expect(wire.ours.multiplexer).toEqual(['/yamux/1.0.0'])
    expect(wire.stock.multiplexer).toEqual(['/yamux/1.0.0'])
    expect(wire.ours.streams).toContain('/meshsub/1.2.0')
    expect(wire.stock.streams).toContain('/meshsub/1.2.0')
    expect(id.stockProtocols).toContain('/meshsub/1.2.0')
    expect(id.ourProtocols).toContain('/meshsub/1.2.0')

    const started = performance.now()
    await hearsay.peer.namespace('ns').put('greeting', te.encode('hello from libp2p 3'), 'text/plain')
    expect(await eventually(() => old.received.length > 0, 10_000)).toBe(true)
    const [message] = old.received
    console.info(`[compat] hearsay → stock: delivered ${(message.at - started).toFixed(1)} ms after put`)
    expect(message.from).toBe(hearsay.mesh.peerId)
    // Both sides computed the same content-derived message id (the stock node's default msgIdToStrFn
    // writes base64 without padding: a local map key only, never on the wire).
    expect(message.msgId).toBe(
      Buffer.from(messageId(topic, message.data)).toString('base64').replace(/=+$/, ''),
    )
    const delta = decodeDelta(decodeGossipBatch(message.data))
    expect(batchSigner(delta)).toBe(hearsay.mesh.peerId)
    const entry = delta.entries.find((e) => e.key === internalKey('register', 'greeting'))
    expect(entry?.replica.startsWith(hearsay.mesh.peerId)).toBe(true)
    expect(td.decode(entry?.value)).toBe('hello from libp2p 3')
    // And it merges like any delta.
    const doc = new CrdtDocument({ replica: `${old.peerId}~r` })
    doc.merge(delta)
    expect(td.decode(doc.get('greeting')?.winner.value)).toBe('hello from libp2p 3')
  })

  it('a batch the stock node signs and publishes is merged by the hearsay peer', async () => {
    const { hearsay, old } = await pair()
    const doc = new CrdtDocument({ replica: `${old.peerId}~x` })
    const data = encodeBatch(
      signEntries(old.key, 'ns', doc.put('from-v2', te.encode('hello from libp2p 2'), 'text/plain').delta),
    )
    const merged = changedAt(hearsay, 'from-v2')
    const started = performance.now()
    const { recipients } = await old.pubsub.publish(topic, data)
    expect(recipients.map(String)).toContain(hearsay.mesh.peerId)
    const at = await merged
    expect(at, 'the hearsay peer merged the batch').toBeDefined()
    console.info(`[compat] stock → hearsay: merged ${(at! - started).toFixed(1)} ms after publish`)
    const read = hearsay.peer.namespace('ns').get('from-v2')!
    expect(td.decode(read.winner.value)).toBe('hello from libp2p 2')
    expect(read.winner.replica).toBe(`${old.peerId}~x`)
    expect(hearsay.mesh.counters.gossipRejected).toBe(0)
    expect(hearsay.mesh.counters.gossipReceived).toBe(1)
  })

  it('a frame over our size limit costs only that link: we hang up and gossip works after a redial', async () => {
    const { hearsay, old } = await pair()
    // gossipsub 14 accepts 4 MiB frames by default; ours stop at about 1 MiB.
    await old.pubsub.publish(topic, new Uint8Array(1_200_000).fill(1))
    const connected = () => hearsay.mesh.node.peers().some((p) => p.toString() === old.peerId)
    expect(await eventually(() => !connected(), 20_000), 'the silently dead gossip link is closed').toBe(true)
    // The stock node comes back, and gossip flows again both ways.
    await link(old, hearsay)
    const before = old.received.length
    await hearsay.peer.namespace('ns').put('after-oversized', te.encode('still here'), 'text/plain')
    expect(await eventually(() => old.received.length > before, 10_000)).toBe(true)
  })

  it('garbage the stock node publishes is rejected and scores it down', async () => {
    const { hearsay, old } = await pair()
    const before = hearsay.peer.namespace('ns').digest()
    await old.pubsub.publish(topic, te.encode('not a hearsay batch'))
    // Signed by the stock node, but entries under someone else's replica id.
    const forger = new CrdtDocument({ replica: `${hearsay.mesh.peerId}~x` })
    await old.pubsub.publish(
      topic,
      encodeBatch(signEntries(old.key, 'ns', forger.put('owned', te.encode('x'), 'text/plain').delta)),
    )
    expect(await eventually(() => hearsay.mesh.counters.gossipRejected >= 2, 10_000)).toBe(true)
    const stockId = hearsay.mesh.node.peers().find((p) => p.toString() === old.peerId)!
    expect(await eventually(() => hearsay.mesh.node.score(stockId) < 0, 10_000)).toBe(true)
    expect(hearsay.peer.namespace('ns').get('owned')).toBeUndefined()
    expect(hearsay.peer.namespace('ns').digest()).toBe(before)
  })

  it('the stock node relays gossip between two hearsay peers that are not connected to each other', async () => {
    const { hearsay: left, old } = await pair()
    const right = await startTestPeer()
    ours.push(right)
    await link(old, right)
    // The stock node speaks neither peer exchange nor anti-entropy: the only path is its gossipsub.
    expect(left.mesh.node.peers().map(String)).toEqual([old.peerId])
    expect(right.mesh.node.peers().map(String)).toEqual([old.peerId])
    const merged = changedAt(right, 'relayed')
    const started = performance.now()
    await left.peer.namespace('ns').put('relayed', te.encode('via libp2p 2'), 'text/plain')
    const at = await merged
    expect(at, 'the far hearsay peer merged the relayed batch').toBeDefined()
    console.info(`[compat] hearsay → stock → hearsay: merged ${(at! - started).toFixed(1)} ms after put`)
    expect(td.decode(right.peer.namespace('ns').get('relayed')!.winner.value)).toBe('via libp2p 2')
    expect(right.mesh.counters.gossipReceived).toBe(1)
    expect(right.mesh.counters.syncEntriesReceived).toBe(0)
    expect(left.mesh.node.peers().map(String)).toEqual([old.peerId])
  })
})

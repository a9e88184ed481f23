import { generateKeyPair } from '@libp2p/crypto/keys'
import type { PrivateKey } from '@libp2p/interface'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { lpStream } from '@libp2p/utils'
import { afterEach, describe, expect, it } from 'vitest'
import { encodeDelta } from '../src/codec/delta.ts'
import { CrdtDocument } from '../src/crdt/index.ts'
import { encodeBatch } from '../src/gossip/batch.ts'
import { encodeGossipBatch } from '../src/gossip/envelope.ts'
import { createMeshNode, type MeshNode } from '../src/mesh/node.ts'
import { meshTopic } from '../src/mesh/topics.ts'
import { SYNC_PROTOCOL } from '../src/sync/constants.ts'
import { encodeSyncFrame } from '../src/sync/frames.ts'
import { signEntries } from './helpers/forge.ts'
import { allEqual, digests, eventually, startTestPeer, type TestPeer } from './helpers/mesh-peers.ts'

const te = new TextEncoder()
const topic = meshTopic('default', 'ns')

let peers: TestPeer[] = []
let hostile: MeshNode | undefined
afterEach(async () => {
  await hostile?.stop()
  hostile = undefined
  await Promise.allSettled(peers.map((p) => p.stop()))
  peers = []
})

/** A bare libp2p node on our topic that does what it likes, and an honest pair to watch. */
async function setup(
  victimOptions: Parameters<typeof startTestPeer>[0] = {},
): Promise<{ victim: TestPeer; honest: TestPeer; attacker: MeshNode; key: PrivateKey }> {
  const victim = await startTestPeer(victimOptions)
  const honest = await startTestPeer()
  peers.push(victim, honest)
  await honest.peer.dial(victim.address)
  const key = await generateKeyPair('Ed25519')
  const attacker = await createMeshNode({
    privateKey: key,
    mdns: false,
    loopbackTesting: true,
    meshName: 'default',
    peerExchange: false,
  })
  hostile = attacker
  attacker.subscribe(topic, () => {})
  await attacker.dial(victim.address)
  // Wait until the attacker is in the victim's view of the topic, so publishes reach it.
  expect(await eventually(() => attacker.topicPeers(topic).length > 0)).toBe(true)
  return { victim, honest, attacker, key }
}

/** The victim still works: a write on the honest peer reaches it and states converge. */
async function expectHealthy(victim: TestPeer, honest: TestPeer, key: string): Promise<void> {
  await honest.peer.namespace('ns').put(key, te.encode('ok'), 'text/plain')
  expect(await eventually(() => victim.peer.namespace('ns').get(key) !== undefined)).toBe(true)
  expect(await eventually(() => allEqual(digests([victim, honest])))).toBe(true)
}

describe('a hostile peer cannot hurt the mesh', () => {
  it('garbage gossip is rejected and scores the sender down', async () => {
    const { victim, honest, attacker } = await setup()
    const before = victim.peer.namespace('ns').digest()
    for (let i = 0; i < 50; i++) await attacker.publish(topic, te.encode(`garbage ${i}`))
    expect(await eventually(() => victim.mesh.counters.gossipRejected >= 1)).toBe(true)
    expect(await eventually(() => victim.mesh.node.score(attacker.peerId) < 0)).toBe(true)
    expect(victim.peer.namespace('ns').digest()).toBe(before)
    await expectHealthy(victim, honest, 'after-garbage')
  })

  it('deltas attributed to another author, bad signatures and unsigned context claims are rejected', async () => {
    const { victim, honest, attacker, key } = await setup()
    const attackerId = peerIdFromPrivateKey(key).toString()
    // Entries under the honest peer's replica id, signed with the attacker's key.
    const forger = new CrdtDocument({ replica: `${honest.mesh.peerId}~x` })
    const forged = encodeBatch(
      signEntries(key, 'ns', forger.put('owned', te.encode('pwned'), 'text/plain').delta),
    )
    await attacker.publish(topic, forged)
    // The attacker's own entries smuggled in beside another author's in one batch.
    const own = new CrdtDocument({ replica: `${attackerId}~y` })
    const mixed = signEntries(key, 'ns', own.put('spoof', te.encode('x'), 'text/plain').delta)
    const other = signEntries(key, 'ns', forger.put('spoof2', te.encode('y'), 'text/plain').delta)
    const both = { entries: [...mixed.entries, ...other.entries], context: mixed.context.clone() }
    both.context.merge(other.context)
    await attacker.publish(topic, encodeGossipBatch(encodeDelta(both)))
    // A valid entry of the attacker whose signature was swapped for garbage.
    const valid = signEntries(key, 'ns', own.put('tampered', te.encode('z'), 'text/plain').delta)
    const swapped = valid.entries.map((entry) => ({ ...entry, signature: new Uint8Array(64).fill(7) }))
    await attacker.publish(
      topic,
      encodeGossipBatch(encodeDelta({ entries: swapped, context: valid.context })),
    )
    // A signed entry carrying a context claim (dots 1..1000 of the honest peer's replica) no entry signs for.
    const claim = signEntries(key, 'ns', own.put('claim', te.encode('c'), 'text/plain').delta)
    const claimed = claim.context.clone()
    claimed.addRange(`${attackerId}~y`, 1, 1000)
    await attacker.publish(
      topic,
      encodeGossipBatch(encodeDelta({ entries: claim.entries, context: claimed })),
    )
    expect(await eventually(() => victim.mesh.counters.gossipRejected >= 4)).toBe(true)
    expect(victim.peer.namespace('ns').get('owned')).toBeUndefined()
    expect(victim.peer.namespace('ns').get('spoof')).toBeUndefined()
    expect(victim.peer.namespace('ns').get('tampered')).toBeUndefined()
    expect(victim.peer.namespace('ns').get('claim')).toBeUndefined()
    await expectHealthy(victim, honest, 'after-forgery')
  })

  it('a batch is rejected when an entry lacks a valid signature of its own', async () => {
    const { victim, honest, attacker, key } = await setup()
    const attackerId = peerIdFromPrivateKey(key).toString()
    const doc = new CrdtDocument({ replica: `${attackerId}~e` })
    // Unsigned entries (an all-zero signature on the wire), and entries signed for another namespace.
    const unsigned = doc.put('unsigned', te.encode('1'), 'text/plain').delta
    await attacker.publish(topic, encodeBatch(unsigned))
    const elsewhere = signEntries(key, 'other', doc.put('replayed', te.encode('2'), 'text/plain').delta)
    await attacker.publish(topic, encodeBatch(elsewhere))
    expect(await eventually(() => victim.mesh.counters.gossipRejected >= 2)).toBe(true)
    expect(victim.peer.namespace('ns').get('unsigned')).toBeUndefined()
    expect(victim.peer.namespace('ns').get('replayed')).toBeUndefined()
    await expectHealthy(victim, honest, 'after-unsigned')
  })

  it("a batch of the attacker's own signed entries is accepted (authorship, not trust)", async () => {
    const { victim, attacker, key } = await setup()
    const attackerId = peerIdFromPrivateKey(key).toString()
    const doc = new CrdtDocument({ replica: `${attackerId}~a` })
    await attacker.publish(
      topic,
      encodeBatch(signEntries(key, 'ns', doc.put('mine', te.encode('1'), 'text/plain').delta)),
    )
    expect(await eventually(() => victim.peer.namespace('ns').get('mine') !== undefined)).toBe(true)
  })

  it('garbage, unknown versions and oversized frames on the sync protocol abort only that stream', async () => {
    const { victim, honest, attacker } = await setup()
    const attempts: Array<Uint8Array | 'oversized'> = [
      te.encode('not a frame'),
      new Uint8Array([9, 10, 0]),
      encodeSyncFrame({ type: 'equal' }),
      'oversized',
    ]
    for (const attempt of attempts) {
      const stream = await attacker.openStream(victim.mesh.node.peerId, SYNC_PROTOCOL)
      if (attempt === 'oversized') {
        // A length prefix announcing 64 MiB: refused before anything is buffered.
        const prefix = new Uint8Array([0x80, 0x80, 0x80, 0x20])
        stream.send(prefix)
      } else {
        await lpStream(stream).write(attempt)
      }
      // The victim ends the stream: reading finishes (error frame or close) within the deadline.
      const ended = await Promise.race([
        (async () => {
          try {
            for await (const _ of stream) {
              // drain
            }
          } catch {
            // aborted by the victim
          }
          return true
        })(),
        new Promise<boolean>((resolve) => setTimeout(() => resolve(false), 10_000)),
      ])
      expect(ended, `stream after ${attempt === 'oversized' ? 'oversized' : 'bad'} frame`).toBe(true)
    }
    await expectHealthy(victim, honest, 'after-sync-garbage')
  })

  it('a flood of valid-looking junk leaves state and process intact', async () => {
    const { victim, honest, attacker } = await setup()
    const before = victim.peer.namespace('ns').digest()
    const sends: Promise<unknown>[] = []
    for (let i = 0; i < 2000; i++)
      sends.push(attacker.publish(topic, new Uint8Array([1, 2, i & 255, i >> 8])).catch(() => {}))
    await Promise.all(sends)
    expect(await eventually(() => victim.mesh.counters.gossipRejected > 10)).toBe(true)
    expect(victim.peer.namespace('ns').digest()).toBe(before)
    await expectHealthy(victim, honest, 'after-flood')
  })

  it('a flood of validly signed batches beyond the rate limit is dropped unchecked', async () => {
    const { victim, honest, attacker, key } = await setup({ gossipRateLimit: 50 })
    const attackerId = peerIdFromPrivateKey(key).toString()
    const doc = new CrdtDocument({ replica: `${attackerId}~f` })
    const sends: Promise<unknown>[] = []
    for (let i = 0; i < 1000; i++) {
      const delta = signEntries(key, 'ns', doc.put(`flood/${i}`, te.encode('x'), 'text/plain').delta)
      const batch = encodeBatch(delta)
      sends.push(attacker.publish(topic, batch).catch(() => {}))
    }
    await Promise.all(sends)
    expect(await eventually(() => victim.mesh.counters.gossipThrottled > 0)).toBe(true)
    // At most the burst (5 x 50) plus what the rate refilled got through the validator.
    expect(victim.mesh.counters.gossipReceived).toBeLessThan(1000)
    await expectHealthy(victim, honest, 'after-valid-flood')
  })
})

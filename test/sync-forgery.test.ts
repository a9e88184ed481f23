import { generateKeyPair } from '@libp2p/crypto/keys'
import type { PrivateKey } from '@libp2p/interface'
import { lpStream } from '@libp2p/utils'
import { afterEach, describe, expect, it } from 'vitest'
import { CausalContext, CrdtDocument, type Delta } from '../src/crdt/index.ts'
import { createMeshNode, type MeshNode } from '../src/mesh/node.ts'
import { SYNC_PROTOCOL } from '../src/sync/constants.ts'
import { decodeSyncFrame, encodeSyncFrame, type SyncFrame } from '../src/sync/frames.ts'
import { signEntries } from './helpers/forge.ts'
import { allEqual, digests, eventually, startTestPeer, type TestPeer } from './helpers/mesh-peers.ts'

/**
 * A peer that can open an anti-entropy stream (any peer admitted to the mesh) but forges what it
 * sends: entries under another peer's replica id, or a context claiming another peer's dots. Real
 * nodes over TCP; the outsider speaks our own sync framing from a bare mesh node.
 */

const te = new TextEncoder()
const td = new TextDecoder()

let peers: TestPeer[] = []
let hostile: MeshNode | undefined
afterEach(async () => {
  await hostile?.stop()
  hostile = undefined
  await Promise.allSettled(peers.map((p) => p.stop()))
  peers = []
})

/** author ─ receiver ─ third, and an outsider connected to the receiver only. */
async function setup(): Promise<{
  author: TestPeer
  receiver: TestPeer
  third: TestPeer
  attacker: MeshNode
  key: PrivateKey
}> {
  const author = await startTestPeer()
  const receiver = await startTestPeer()
  const third = await startTestPeer()
  peers.push(author, receiver, third)
  await receiver.peer.dial(author.address)
  await third.peer.dial(receiver.address)
  const key = await generateKeyPair('Ed25519')
  const attacker = await createMeshNode({
    privateKey: key,
    mdns: false,
    loopbackTesting: true,
    meshName: 'default',
    peerExchange: false,
  })
  hostile = attacker
  await attacker.dial(receiver.address)
  return { author, receiver, third, attacker, key }
}

function read(peer: TestPeer, key: string): string | undefined {
  const value = peer.peer.namespace('ns').get(key)?.winner.value
  return value === undefined ? undefined : td.decode(value)
}

/**
 * Runs one anti-entropy session against `victim` as its initiator: an honest OPEN, then, once the
 * victim has sent everything, `forged` as our final DELTAS frame. Returns the frames the victim
 * sent after it (an ERROR frame when it refused).
 */
async function forgeSession(attacker: MeshNode, victim: TestPeer, forged: Delta): Promise<SyncFrame[]> {
  const stream = await attacker.openStream(victim.mesh.node.peerId, SYNC_PROTOCOL)
  const lp = lpStream(stream)
  const signal = AbortSignal.timeout(10_000)
  await lp.write(
    encodeSyncFrame({ type: 'open', namespace: 'ns', digest: 'forged', context: new CausalContext() }),
    { signal },
  )
  for (let frames = 0; frames < 1000; frames++) {
    const frame = decodeSyncFrame((await lp.read({ signal })).subarray())
    if (frame.type === 'deltas' && frame.final) break
  }
  await lp.write(encodeSyncFrame({ type: 'deltas', final: true, delta: forged }), { signal })
  const after: SyncFrame[] = []
  try {
    for (let frames = 0; frames < 10; frames++)
      after.push(decodeSyncFrame((await lp.read({ signal })).subarray()))
  } catch {
    // The victim closed or aborted the stream: the session is over.
  }
  stream.abort(new Error('done'))
  return after
}

describe('anti-entropy from a hostile partner', () => {
  it('refuses entries forged under another peer’s replica id; they reach neither third peers nor the author', async () => {
    const { author, receiver, third, attacker, key } = await setup()
    await author.peer.namespace('ns').put('owned', te.encode('original'), 'text/plain')
    expect(await eventually(() => read(third, 'owned') === 'original')).toBe(true)
    const authorId = author.peer.namespace('ns').replicaId

    // The author's entry, then an overwrite of it under the author's replica id, signed by the outsider.
    const forger = new CrdtDocument({ replica: authorId })
    forger.merge(author.peer.namespace('ns').deltasSince(new CausalContext()))
    const forged = signEntries(key, 'ns', forger.put('owned', te.encode('pwned'), 'text/plain').delta)
    const reply = await forgeSession(attacker, receiver, forged)
    expect(read(receiver, 'owned')).toBe('original')

    // The mesh goes on: a later write converges everywhere, and nobody ever holds the forgery.
    await author.peer.namespace('ns').put('after', te.encode('1'), 'text/plain')
    expect(await eventually(() => read(third, 'after') === '1' && read(receiver, 'after') === '1')).toBe(true)
    expect(await eventually(() => allEqual(digests([author, receiver, third])))).toBe(true)
    for (const peer of [author, receiver, third]) expect(read(peer, 'owned')).toBe('original')
    // The author never saw a dot of its own it did not write, so it kept its replica id.
    expect(author.peer.namespace('ns').replicaId).toBe(authorId)
    // The receiver said why it ended the session.
    expect(reply).toContainEqual(expect.objectContaining({ type: 'error', code: 'bad-signature' }))
  })

  it('drops a context claim of another peer’s dots beyond what that peer signed: its later writes still arrive', async () => {
    const { author, receiver, third, attacker } = await setup()
    await author.peer.namespace('ns').put('owned', te.encode('original'), 'text/plain')
    expect(await eventually(() => read(third, 'owned') === 'original')).toBe(true)
    const authorId = author.peer.namespace('ns').replicaId

    const claim = new CausalContext()
    claim.addRange(authorId, 1, 1_000_000)
    await forgeSession(attacker, receiver, { entries: [], context: claim })
    // The receiver believes only what the author signed.
    expect(receiver.peer.namespace('ns').context().max(authorId)).toBe(1)

    // The author's next writes (including one to the same key) reach the receiver and past it.
    await author.peer.namespace('ns').put('later', te.encode('2'), 'text/plain')
    await author.peer.namespace('ns').put('owned', te.encode('rewritten'), 'text/plain')
    expect(await eventually(() => read(third, 'later') === '2' && read(third, 'owned') === 'rewritten')).toBe(
      true,
    )
    expect(read(receiver, 'later')).toBe('2')
    expect(await eventually(() => allEqual(digests([author, receiver, third])))).toBe(true)
    expect(receiver.peer.namespace('ns').context().max(authorId)).toBe(3)
  })
})

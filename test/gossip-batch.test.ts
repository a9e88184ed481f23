import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { describe, expect, it } from 'vitest'
import { decodeDelta, encodeDelta } from '../src/codec/delta.ts'
import { CrdtDocument } from '../src/crdt/index.ts'
import { checkBatch, contextIsSigned, encodeBatch } from '../src/gossip/batch.ts'
import { coalesce } from '../src/gossip/batcher.ts'
import { decodeGossipBatch, encodeGossipBatch, GOSSIP_VERSION } from '../src/gossip/envelope.ts'
import { meshTopic } from '../src/mesh/topics.ts'
import { verifiedRootsOf, verifyEd25519 } from '../src/replica/signing.ts'
import { signAsTurn, signEntries } from './helpers/forge.ts'

const te = new TextEncoder()
const topic = meshTopic('default', 'ns')

async function author() {
  const key = await generateKeyPair('Ed25519')
  const id = peerIdFromPrivateKey(key).toString()
  return { key, id, doc: new CrdtDocument({ replica: `${id}~a` }) }
}

describe('gossip batches (version 3: entry proofs only)', () => {
  it('a one-write batch of a signed entry is accepted, and the merge need not verify it again', async () => {
    const { key, id, doc } = await author()
    const delta = signEntries(key, 'ns', doc.put('k', te.encode('v'), 'text/plain').delta)
    const checked = await checkBatch(topic, encodeBatch(delta), 'someone-else')
    expect(checked.verdict).toBe('accept')
    expect(checked.signer).toBe(id)
    expect(checked.delta?.entries.map((e) => e.key)).toEqual(delta.entries.map((e) => e.key))
  })

  it('a coalesced batch keeps the dots of superseded writes, signed for by the covers of the latest', async () => {
    const { key, doc } = await author()
    const writes = [1, 2, 3].map((i) =>
      signEntries(key, 'ns', doc.put('same', te.encode(String(i)), 'text/plain').delta),
    )
    const batch = coalesce(writes)
    expect(batch.entries).toHaveLength(1)
    expect(batch.context.size()).toBe(3)
    expect(contextIsSigned(batch)).toBe(true)
    expect((await checkBatch(topic, encodeBatch(batch), 'x')).verdict).toBe('accept')
  })

  it('a context claim no entry signs for is refused, and never published', async () => {
    const { key, id, doc } = await author()
    const delta = signEntries(key, 'ns', doc.put('k', te.encode('v'), 'text/plain').delta)
    const claimed = delta.context.clone()
    claimed.addRange(`${id}~a`, 2, 1_000_000)
    const forged = { entries: delta.entries, context: claimed }
    expect(contextIsSigned(forged)).toBe(false)
    const refused = await checkBatch(topic, encodeGossipBatch(encodeDelta(forged)), 'x')
    expect(refused.verdict).toBe('reject')
    expect(refused.reason).toMatch(/claim only dots/)
    // encodeBatch leaves the unsigned claim out: what goes on the wire is accepted.
    const sent = decodeDelta(decodeGossipBatch(encodeBatch(forged)))
    expect(sent.context.equals(delta.context)).toBe(true)
    expect((await checkBatch(topic, encodeBatch(forged), 'x')).verdict).toBe('accept')
  })

  it('a context-only batch, a bad entry signature and our own forged name are refused', async () => {
    const { key, id, doc } = await author()
    const delta = signEntries(key, 'ns', doc.put('k', te.encode('v'), 'text/plain').delta)
    const contextOnly = await checkBatch(
      topic,
      encodeGossipBatch(encodeDelta({ entries: [], context: delta.context })),
      'x',
    )
    expect(contextOnly.verdict).toBe('reject')
    const swapped = delta.entries.map((e) => ({ ...e, signature: new Uint8Array(64).fill(7) }))
    const bad = encodeGossipBatch(encodeDelta({ entries: swapped, context: delta.context }))
    expect((await checkBatch(topic, bad, 'x')).verdict).toBe('reject')
    // A batch in our own name with a bad signature is a forgery, not an echo to ignore.
    expect((await checkBatch(topic, bad, id)).verdict).toBe('reject')
    // Our own valid batch coming back is ignored.
    expect((await checkBatch(topic, encodeBatch(delta), id)).verdict).toBe('ignore')
  })

  it('an entry signed for another namespace, and other versions of the format, are refused', async () => {
    const { key, doc } = await author()
    const elsewhere = signEntries(key, 'other', doc.put('k', te.encode('v'), 'text/plain').delta)
    expect((await checkBatch(topic, encodeBatch(elsewhere), 'x')).verdict).toBe('reject')
    const old = encodeBatch(signEntries(key, 'ns', doc.put('k2', te.encode('v'), 'text/plain').delta))
    old[0] = GOSSIP_VERSION - 1
    const refused = await checkBatch(topic, old, 'x')
    expect(refused.verdict).toBe('reject')
    expect(refused.reason).toMatch(/gossip version/)
  })

  it('a batch of one turn costs one signature check; a tampered entry of it is refused', async () => {
    const { key, doc } = await author()
    for (let i = 0; i < 16; i++) doc.put(`k${i}`, te.encode(`v${i}`), 'text/plain')
    const turn = signAsTurn(key, 'ns', doc.snapshot())
    const roots = verifiedRootsOf(verifyEd25519)
    const before = roots.size
    const checked = await checkBatch(topic, encodeBatch(turn), 'x')
    expect(checked.verdict).toBe('accept')
    expect(checked.delta?.entries).toHaveLength(16)
    expect(roots.size).toBe(before + 1)
    // Same proofs, one value changed: its leaf no longer leads to the signed root.
    const entries = [...turn.entries]
    entries[7] = { ...entries[7], value: te.encode('forged') }
    const refused = await checkBatch(topic, encodeBatch({ entries, context: turn.context }), 'x')
    expect(refused.verdict).toBe('reject')
    expect(refused.reason).toMatch(/bad entry signature/)
    expect(roots.size).toBe(before + 1)
  })
})

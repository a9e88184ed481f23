/**
 * Each workaround in src/mesh/gossipsub-workarounds.ts against a stock gossipsub (no hearsay
 * options): these fail when an upgrade changes the internals they rely on.
 */
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { type GossipSub, gossipsub } from '@libp2p/gossipsub'
import { identify } from '@libp2p/identify'
import { memory } from '@libp2p/memory'
import { peerIdFromString } from '@libp2p/peer-id'
import { createLibp2p, type Libp2p } from 'libp2p'
import { afterEach, describe, expect, it } from 'vitest'
import { GossipsubInternalsChangedError } from '../src/mesh/errors.ts'
import { checkInternals, installAdmission, installAllowlist } from '../src/mesh/gossipsub-workarounds.ts'
import { topicAllowlist } from '../src/mesh/topics.ts'

let nodes: Libp2p<{ pubsub: GossipSub }>[] = []
afterEach(async () => {
  await Promise.allSettled(nodes.map((n) => n.stop()))
  nodes = []
})

async function stock(): Promise<GossipSub> {
  const node = await createLibp2p({
    transports: [memory()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    services: { identify: identify(), pubsub: gossipsub({ allowedTopics: ['only'] }) },
  })
  nodes.push(node)
  return node.services.pubsub
}

describe('gossipsub internals hearsay relies on (stock gossipsub)', () => {
  it('has every member checkInternals needs (mesh peers, scores, outbound streams, async verdicts)', async () => {
    const gs = await stock()
    const internals = checkInternals(gs)
    expect(internals.streamsOutbound).toBeInstanceOf(Map)
    expect(internals.score.params.topics).toBeTypeOf('object')
    expect(internals.reportMessageValidationResult).toBeTypeOf('function')
  })

  it('keeps allowedTopics as a private Set it consults with has(), which the allowlist replaces', async () => {
    const gs = await stock()
    const upstream: unknown = Reflect.get(gs, 'allowedTopics')
    expect(upstream).toBeInstanceOf(Set)
    expect((upstream as Set<string>).has('only')).toBe(true)
    const allowlist = topicAllowlist(['exact'])
    installAllowlist(gs, allowlist)
    expect(Reflect.get(gs, 'allowedTopics')).toBe(allowlist)
  })

  it('passes every received RPC through handleReceivedRpc, which admission wraps', async () => {
    const gs = await stock()
    const original = Reflect.get(gs, 'handleReceivedRpc')
    expect(original).toBeTypeOf('function')
    const asked: string[] = []
    installAdmission(gs, (_from, topic) => {
      asked.push(topic)
      return false
    })
    expect(Reflect.get(gs, 'handleReceivedRpc')).not.toBe(original)
    const from = peerIdFromString('12D3KooWQYhTNQdmr3ArTeUHRYzFg94BKyTkoWBDWez9kSCVe2Xo')
    await (gs as unknown as { handleReceivedRpc(f: unknown, rpc: unknown): Promise<void> }).handleReceivedRpc(
      from,
      {
        subscriptions: [],
        messages: [{ topic: 'refused', data: new Uint8Array(1) }],
      },
    )
    expect(asked).toEqual(['refused'])
  })

  it('refuses, loudly, a gossipsub without the members it needs', () => {
    expect(() => checkInternals({} as GossipSub)).toThrow(GossipsubInternalsChangedError)
    expect(() => installAllowlist({} as GossipSub, topicAllowlist([]))).toThrow(
      GossipsubInternalsChangedError,
    )
    expect(() => installAdmission({} as GossipSub, () => true)).toThrow(GossipsubInternalsChangedError)
  })
})

/**
 * A hub relays every client's batches, so its clients must not hold it to one neighbour's gossip
 * rate: with a client limit of 1 message/s (burst 2), a burst of 30 batches relayed by the hub is
 * still taken in full, while the same limit still applies to any other neighbour (mesh-hostile).
 */
import { afterEach, describe, expect, it } from 'vitest'
import { eventually } from './helpers/eventually.ts'
import { startTestPeer, type TestPeer } from './helpers/mesh-peers.ts'

let peers: TestPeer[] = []
afterEach(async () => {
  await Promise.allSettled(peers.map((p) => p.stop()))
  peers = []
})

const enc = new TextEncoder()

describe('hub clients and the per-neighbour gossip limit', () => {
  it("takes every batch its hub relays, beyond the client's own per-neighbour limit", async () => {
    const hub = await startTestPeer({ isHub: true })
    peers.push(hub)
    const hubAddress = hub.address.includes('/p2p/') ? hub.address : `${hub.address}/p2p/${hub.mesh.peerId}`
    // Anti-entropy only at connect: everything after that has to come by gossip.
    const client = () => startTestPeer({ hub: [hubAddress], gossipRateLimit: 1, syncIntervalMs: 3_600_000 })
    const writer = await client()
    const reader = await client()
    peers.push(writer, reader)
    await eventually(
      () => hub.mesh.node.topicPeers(hub.mesh.node.status().topics[0]?.topic ?? '').length >= 2,
      { message: 'both clients in the hub gossip mesh', timeout: 10_000 },
    )
    await eventually(() => reader.mesh.node.status().topics.some((t) => t.meshPeers > 0), {
      message: "the reader's gossip mesh holds the hub",
      timeout: 10_000,
    })

    const writes = 30
    const replica = writer.peer.namespace('ns')
    for (let i = 0; i < writes; i++) {
      await replica.put(`k${i}`, enc.encode(String(i)), 'text/plain')
      // Each write its own batch: wait until the writer has published it.
      await eventually(() => writer.mesh.counters.gossipPublished > i, { message: `batch ${i} published` })
    }
    await eventually(() => reader.mesh.counters.gossipReceived >= writes, {
      message: () =>
        `the reader took all ${writes} relayed batches (took ${reader.mesh.counters.gossipReceived})`,
      timeout: 10_000,
    })
    expect(reader.mesh.counters.gossipThrottled).toBe(0)
  }, 60_000)
})

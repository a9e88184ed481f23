/**
 * Per-peer anti-entropy quotas over real TCP: a peer that sends more than its quota per minute has
 * its session cut after what it delivered, and the refusal names the quota; another peer keeps its
 * own quota.
 */
import { afterEach, describe, expect, it } from 'vitest'
import { eventually } from './helpers/eventually.ts'
import { startTestPeer, type TestPeer } from './helpers/mesh-peers.ts'

const te = new TextEncoder()
let peers: TestPeer[] = []

afterEach(async () => {
  await Promise.allSettled(peers.map((p) => p.stop()))
  peers = []
})

async function peer(options: Parameters<typeof startTestPeer>[0] = {}): Promise<TestPeer> {
  const p = await startTestPeer(options)
  peers.push(p)
  return p
}

async function fill(p: TestPeer, prefix: string, count: number): Promise<void> {
  const replica = p.peer.namespace('ns')
  const writes: Array<Promise<unknown>> = []
  for (let i = 0; i < count; i++)
    writes.push(replica.put(`${prefix}/${i}`, te.encode('x'.repeat(200)), 'text/plain'))
  await Promise.all(writes)
}

describe('anti-entropy quotas per peer', () => {
  it('cut a peer that sends more than its quota per minute, and leave other peers theirs', async () => {
    const warnings: string[] = []
    const log = { info() {}, warn: (_fields: object, message: string) => void warnings.push(message) }
    // Chunks of 256 KiB hold ~900 of these entries: the first chunk passes, the next finds the quota spent.
    const receiver = await peer({ syncQuota: { entriesPerMinute: 500 }, syncIntervalMs: 60_000, log })
    const big = await peer({ syncIntervalMs: 60_000 })
    const small = await peer({ syncIntervalMs: 60_000 })
    await fill(big, 'big', 3_000)
    await fill(small, 'small', 100)
    receiver.peer.namespace('ns')

    await receiver.peer.dial(big.address)
    await eventually(() => warnings.some((w) => w.includes('quota')), {
      timeout: 30_000,
      message: () => `a quota refusal in the log (warnings: ${warnings.join(' | ')})`,
    })
    const fromBig = receiver.peer.namespace('ns').list('big/', { limit: 1_000 }).items.length
    expect(fromBig).toBeGreaterThan(0) // what was delivered before the quota ran out stays
    expect(receiver.mesh.counters.syncEntriesReceived).toBeLessThan(3_000)
    expect(receiver.mesh.counters?.syncFailures).toBeGreaterThan(0)

    // Another peer's quota is its own.
    await receiver.peer.dial(small.address)
    await eventually(
      () => receiver.peer.namespace('ns').list('small/', { limit: 1_000 }).items.length === 100,
      { timeout: 30_000, message: 'the small peer’s 100 keys arrived' },
    )
  })
})

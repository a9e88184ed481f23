/**
 * The token of an expiry announcement: expiry sweeps run outside commits, while a remote merge may
 * sit in memory waiting for its commit. A client that resumes from that announcement's id must
 * still get what the merge changed.
 */
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { describe, expect, it } from 'vitest'
import { CausalContext } from '../src/crdt/context.ts'
import { DaemonMetrics } from '../src/daemon/metrics.ts'
import { decodeSince, WatchHub } from '../src/daemon/watch.ts'
import { HearsayPeer } from '../src/peer/peer.ts'
import { createMemoryStore } from '../src/store/memory.ts'

const te = new TextEncoder()

async function peerAt(clock: { now: number }): Promise<HearsayPeer> {
  const privateKey = await generateKeyPair('Ed25519')
  return new HearsayPeer({
    store: createMemoryStore(),
    peerId: peerIdFromPrivateKey(privateKey).toString(),
    privateKey,
    namespaces: ['ns'],
    now: () => clock.now,
  })
}

/** Reads the stream until `until` appears in it; bounded in reads. */
async function readUntil(stream: AsyncIterator<string>, until: string): Promise<string> {
  let text = ''
  for (let reads = 0; reads < 100; reads++) {
    const { value, done } = await stream.next()
    if (done === true) break
    text += value
    if (text.includes(until)) return text
  }
  throw new Error(`no ${until} in ${JSON.stringify(text)}`)
}

describe('an expiry announced while a remote merge waits for its commit', () => {
  it('carries a token that a resuming client does not skip the merge with', async () => {
    const clock = { now: 1_000_000 }
    const here = await peerAt(clock)
    const there = await peerAt(clock)
    const hub = new WatchHub(here, new DaemonMetrics(here), 60_000)
    try {
      const replica = here.namespace('ns')
      await replica.put('lease', te.encode('"held"'), 'application/json', { ttlMs: 1_000 })
      const remote = there.namespace('ns')
      const ack = await remote.put('arrived', te.encode('"remote"'), 'application/json')
      const delta = remote.deltasSince(new CausalContext())
      const heads = [remote.head(ack.replica)].filter((head) => head !== undefined)

      const first = (await hub.open(replica, '', undefined))[Symbol.asyncIterator]()
      const ready = await readUntil(first, 'event: ready')
      expect(ready).not.toContain('"key":"arrived"')

      // In one turn: the merge is applied in memory (its commit comes a turn later) and the sweep
      // announces the lease's expiry.
      clock.now += 2_000
      const merged = replica.merge(delta, { heads })
      replica.announceExpired()
      const expired = await readUntil(first, '"key":"lease"')
      const id = /^id: (.*)$/m.exec(expired)?.[1]
      expect(id).toBeDefined()
      // The client goes away before the merge's commit reaches it.
      await first.return?.()
      await merged
      expect(replica.get('arrived')).toBeDefined()

      const since = decodeSince(id!, () => replica.context().replicas())
      const resumed = (await hub.open(replica, '', since))[Symbol.asyncIterator]()
      const replay = await readUntil(resumed, 'event: ready')
      expect(replay).toContain('"key":"arrived"')
      await resumed.return?.()
    } finally {
      hub.close()
      await here.stop()
      await there.stop()
    }
  })
})

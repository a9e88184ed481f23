/**
 * A commit that both collects a key's tombstone and writes the key again: the write must reach
 * watchers (collection alone is not shown, so the key's change must not be announced as `gc`).
 */
import { describe, expect, it } from 'vitest'
import { DaemonMetrics } from '../src/daemon/metrics.ts'
import { WatchHub } from '../src/daemon/watch.ts'
import { HearsayPeer } from '../src/peer/peer.ts'
import type { ChangeEvent } from '../src/replica/replica.ts'
import { createMemoryStore } from '../src/store/memory.ts'

const te = new TextEncoder()

/** Reads SSE text from the stream until an event of `type` arrives; bounded in reads. */
async function readUntil(stream: AsyncIterator<string>, type: string): Promise<string> {
  let text = ''
  for (let reads = 0; reads < 100; reads++) {
    const { value, done } = await stream.next()
    if (done === true) break
    text += value
    if (text.includes(`event: ${type}\n`)) return text
  }
  throw new Error(`no ${type} event in ${JSON.stringify(text)}`)
}

describe('a key collected and rewritten in one commit', () => {
  for (const order of ['collect then write', 'write then collect'] as const) {
    it(`is announced to watchers with the write's origin (${order})`, async () => {
      const peer = new HearsayPeer({ store: createMemoryStore(), peerId: 'gc-peer', namespaces: ['ns'] })
      const hub = new WatchHub(peer, new DaemonMetrics(peer), 60_000)
      try {
        const replica = peer.namespace('ns')
        await replica.put('doomed', te.encode('"first"'), 'application/json')
        await replica.delete('doomed')
        // A second tombstone, on another key, so collection has something to do in either order.
        await replica.put('other', te.encode('1'), 'application/json')
        await replica.delete('other')
        expect(replica.tombstoneCount).toBe(2)
        const stream = (await hub.open(replica, '', undefined))[Symbol.asyncIterator]()
        await readUntil(stream, 'ready')

        const events: ChangeEvent[] = []
        peer.on('change', (event: ChangeEvent) => events.push(event))
        // One event-loop turn: both join one batch, one commit.
        const stable = replica.context()
        const work =
          order === 'collect then write'
            ? [
                replica.collectGarbage(stable),
                replica.put('doomed', te.encode('"again"'), 'application/json'),
              ]
            : [
                replica.put('doomed', te.encode('"again"'), 'application/json'),
                replica.collectGarbage(stable),
              ]
        await Promise.all(work)
        expect(replica.tombstoneCount).toBe(0)

        expect(events.find((event) => event.key === 'doomed')?.origin).toBe('local')
        const text = await readUntil(stream, 'change')
        expect(text).toContain('"key":"doomed"')
        expect(text).toContain('"value":"again"')
        await stream.return?.()
      } finally {
        hub.close()
        await peer.stop()
      }
    })
  }
})

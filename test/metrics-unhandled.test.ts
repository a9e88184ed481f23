import { describe, expect, it } from 'vitest'
import { countUnhandledRejection, DaemonMetrics } from '../src/daemon/metrics.ts'
import { HearsayPeer } from '../src/peer/peer.ts'
import { createMemoryStore } from '../src/store/memory.ts'

describe('hearsay_unhandled_rejections_total', () => {
  it('reports what the process handler counted', async () => {
    const peer = new HearsayPeer({ store: createMemoryStore(), peerId: 'test-peer', namespaces: ['ns'] })
    const metrics = new DaemonMetrics(peer)
    const read = async () =>
      Number(/^hearsay_unhandled_rejections_total (\d+)$/m.exec(await metrics.text())?.[1] ?? Number.NaN)
    const before = await read()
    expect(Number.isInteger(before)).toBe(true)
    countUnhandledRejection()
    countUnhandledRejection()
    expect(await read()).toBe(before + 2)
    await peer.stop()
  })
})

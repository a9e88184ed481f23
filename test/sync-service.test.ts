import { afterEach, describe, expect, it } from 'vitest'
import { createMeshNode, type MeshNode } from '../src/mesh/node.ts'
import { Replica } from '../src/replica/replica.ts'
import { createMemoryStore } from '../src/store/memory.ts'
import type { SessionEvent } from '../src/sync/service.ts'
import { eventually } from './helpers/eventually.ts'

const enc = new TextEncoder()
let cleanup: Array<() => Promise<void>> = []

afterEach(async () => {
  await Promise.allSettled(cleanup.map((stop) => stop()))
  cleanup = []
})

async function endpoint(replica: Replica, onSession: (event: SessionEvent) => void) {
  const node: MeshNode = await createMeshNode({
    mdns: false,
    loopbackTesting: true,
    meshName: 'sync-test',
    sync: { replica: (ns) => (ns === replica.namespace ? replica : undefined), onSession },
  })
  const sync = node.libp2p.services.sync
  if (sync === undefined) throw new Error('the node lists no sync service')
  cleanup.push(() => node.stop())
  return { node, sync }
}

describe('SyncService session events', () => {
  it("reports, on an EQUAL session, the context compared in the session, not the responder's later one", async () => {
    const first = Replica.open({ namespace: 'ns', store: createMemoryStore() })
    await first.put('k', enc.encode('v'), 'text/plain')
    const second = Replica.open({ namespace: 'ns', store: createMemoryStore() })
    await second.merge(first.deltasSince(second.context()))
    expect(second.digest()).toBe(first.digest())

    // The responder's replica gains a local write right after the session compared digests (a write
    // that commits while the session is still closing its stream).
    let compared = false
    const late = { replica: second.replicaId, counter: second.context().max(second.replicaId) + 1 }
    const racing = new Proxy(second, {
      get(target, property) {
        if (property === 'digest')
          return () => {
            compared = true
            return target.digest()
          }
        if (property === 'context')
          return () => {
            const context = target.context().clone()
            if (compared) context.add(late.replica, late.counter)
            return context
          }
        const value = Reflect.get(target, property, target)
        return typeof value === 'function' ? value.bind(target) : value
      },
    })

    const responderEvents: SessionEvent[] = []
    const initiator = await endpoint(first, () => {})
    const responder = await endpoint(racing, (event) => responderEvents.push(event))
    await initiator.node.dial(responder.node.addresses()[0].toString())

    const event = await initiator.sync.syncWith(responder.node.peerId, 'ns')
    expect(event.stats.equal).toBe(true)
    await eventually(() => responderEvents.length === 1, {
      timeout: 10_000,
      message: "the responder's session event",
    })

    const reported = responderEvents[0]
    expect(reported.stats.equal).toBe(true)
    expect(compared).toBe(true)
    expect(reported.localContext.has(late.replica, late.counter)).toBe(false)
    expect(reported.localContext.equals(second.context())).toBe(true)
  }, 30_000)
})

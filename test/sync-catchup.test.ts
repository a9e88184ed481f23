import { afterEach, describe, expect, it } from 'vitest'
import { createMeshNode, type MeshNode } from '../src/mesh/node.ts'
import { Replica } from '../src/replica/replica.ts'
import { createMemoryStore } from '../src/store/memory.ts'
import type { SessionEvent, SyncService } from '../src/sync/service.ts'
import { eventually } from './helpers/eventually.ts'

/**
 * Catch-up comes once: a peer that lacks what several neighbours hold takes it from one of them, and
 * the sessions with the others (run after it, or refused BUSY and tried again) send nothing twice.
 */

const enc = new TextEncoder()
const KEYS = 600
let cleanup: Array<() => Promise<void>> = []

afterEach(async () => {
  await Promise.allSettled(cleanup.map((stop) => stop()))
  cleanup = []
})

interface Endpoint {
  node: MeshNode
  sync: SyncService
  events: SessionEvent[]
}

async function endpoint(
  replica: Replica,
  options: { chunkBytes?: number; mergeBacklogBytes?: number; turnStallMs?: number } = {},
): Promise<Endpoint> {
  const events: SessionEvent[] = []
  const node = await createMeshNode({
    mdns: false,
    loopbackTesting: true,
    meshName: 'catchup-test',
    sync: {
      replica: (ns) => (ns === replica.namespace ? replica : undefined),
      onSession: (event) => events.push(event),
      // A held merge is no stall here: the tests decide when sessions go on.
      turnStallMs: 120_000,
      ...options,
    },
  })
  const sync = node.libp2p.services.sync
  if (sync === undefined) throw new Error('the node lists no sync service')
  cleanup.push(() => node.stop())
  return { node, sync, events }
}

/** Two replicas holding the same KEYS keys, and an empty one. */
async function holdersAndJoiner(): Promise<{ a: Replica; b: Replica; joiner: Replica }> {
  const a = Replica.open({ namespace: 'ns', store: createMemoryStore() })
  for (let i = 0; i < KEYS; i++) await a.put(`k${i}`, enc.encode(`value ${i}`), 'text/plain')
  const b = Replica.open({ namespace: 'ns', store: createMemoryStore() })
  await b.merge(a.deltasSince(b.context()))
  expect(b.digest()).toBe(a.digest())
  return { a, b, joiner: Replica.open({ namespace: 'ns', store: createMemoryStore() }) }
}

/** The replica with its merges held until `letGo` (the first one, or every one). */
function heldMerges(replica: Replica, which: 'first' | 'all') {
  let letGo: () => void = () => {}
  const held = new Promise<void>((resolve) => {
    letGo = resolve
  })
  const state = { merges: 0 }
  // A failed assertion must not leave merges (and so the nodes' stop) waiting forever.
  cleanup.push(async () => letGo())
  const proxy = new Proxy(replica, {
    get(target, property) {
      if (property === 'merge')
        return async (...args: Parameters<Replica['merge']>) => {
          if (which === 'all' || state.merges === 0) {
            state.merges++
            await held
          }
          return target.merge(...args)
        }
      const value = Reflect.get(target, property, target)
      return typeof value === 'function' ? value.bind(target) : value
    },
  })
  return { proxy, state, letGo: () => letGo() }
}

const received = (events: SessionEvent[]) => events.reduce((sum, e) => sum + e.stats.entriesReceived, 0)

describe('catch-up from several neighbours', () => {
  it('a joiner that syncs with two holders at once receives every entry once', async () => {
    const { a, b, joiner } = await holdersAndJoiner()
    const [ea, eb, ej] = await Promise.all([endpoint(a), endpoint(b), endpoint(joiner)])
    await ej.node.dial(ea.node.addresses()[0].toString())
    await ej.node.dial(eb.node.addresses()[0].toString())

    const sessions = await Promise.all([
      ej.sync.syncWith(ea.node.peerId, 'ns'),
      ej.sync.syncWith(eb.node.peerId, 'ns'),
    ])
    expect(joiner.digest()).toBe(a.digest())
    expect(sessions.map((s) => s.stats.entriesReceived).sort((x, y) => x - y)).toEqual([0, KEYS])
    expect(ej.sync.progress()).toEqual([])
  }, 60_000)

  it('a joiner busy catching up answers BUSY, and the refused neighbour tries again later', async () => {
    const { a, b, joiner } = await holdersAndJoiner()
    // The joiner's first merge waits until the test lets it go: the session stays under way.
    const slow = heldMerges(joiner, 'first')
    const [ea, eb, ej] = await Promise.all([endpoint(a), endpoint(b), endpoint(slow.proxy)])
    await ea.node.dial(ej.node.addresses()[0].toString())
    await eb.node.dial(ej.node.addresses()[0].toString())

    const fromA = ea.sync.syncWith(ej.node.peerId, 'ns')
    await eventually(() => ej.sync.progress().length === 1 && slow.state.merges === 1, {
      timeout: 20_000,
      message: "the joiner's first session is under way",
    })
    expect(ej.sync.progress()[0]).toMatchObject({ namespace: 'ns', role: 'responder' })
    const fromB = eb.sync.syncWith(ej.node.peerId, 'ns')
    await eventually(() => ej.sync.busy.refused >= 1, { timeout: 20_000, message: 'B refused BUSY' })
    slow.letGo()
    await Promise.all([fromA, fromB])
    expect(eb.sync.busy.retried).toBeGreaterThanOrEqual(1)
    expect(joiner.digest()).toBe(a.digest())
    // What the joiner took, across every session it answered: each entry once.
    expect(received(ej.events)).toBe(KEYS)
    expect(ej.sync.progress()).toEqual([])
  }, 60_000)

  it('a busy peer still answers one that has nothing it lacks (a hub answering its clients)', async () => {
    const { a, b: hub } = await holdersAndJoiner()
    // c holds one write the hub lacks; d holds nothing at all.
    const c = Replica.open({ namespace: 'ns', store: createMemoryStore() })
    await c.merge(a.deltasSince(c.context()))
    await c.put('extra', enc.encode('only on c'), 'text/plain')
    const d = Replica.open({ namespace: 'ns', store: createMemoryStore() })
    const slow = heldMerges(hub, 'first')
    const [eh, ec, ed] = await Promise.all([endpoint(slow.proxy), endpoint(c), endpoint(d)])
    await ec.node.dial(eh.node.addresses()[0].toString())
    await ed.node.dial(eh.node.addresses()[0].toString())

    const fromC = ec.sync.syncWith(eh.node.peerId, 'ns')
    await eventually(() => slow.state.merges === 1, { timeout: 20_000, message: "the hub merges c's write" })
    // The hub is busy receiving from c, and d's session still runs now: d brings nothing to merge.
    const fromD = await ed.sync.syncWith(eh.node.peerId, 'ns')
    expect(fromD.stats.entriesReceived).toBe(KEYS)
    expect(eh.sync.busy.refused).toBe(0)
    expect(eh.sync.progress()).toHaveLength(1)
    slow.letGo()
    await fromC
    expect(hub.digest()).toBe(c.digest())
  }, 60_000)

  it("a hub merging one client's writes takes another client's own writes at once, and refuses a session that brings the same", async () => {
    const { a, b: hub } = await holdersAndJoiner()
    // After the hub restarts, each client holds writes of its own that the hub lacks.
    const client = async (name: string) => {
      const replica = Replica.open({ namespace: 'ns', store: createMemoryStore() })
      await replica.merge(a.deltasSince(replica.context()))
      await replica.put(`own-${name}`, enc.encode(`written by ${name}`), 'text/plain')
      return replica
    }
    const [c, d] = await Promise.all([client('c'), client('d')])
    // e holds c's write too: it would bring something c's session brings.
    const e = Replica.open({ namespace: 'ns', store: createMemoryStore() })
    await e.merge(c.deltasSince(e.context()))
    const slow = heldMerges(hub, 'first')
    const [eh, ec, ed, ee] = await Promise.all([endpoint(slow.proxy), endpoint(c), endpoint(d), endpoint(e)])
    for (const other of [ec, ed, ee]) await other.node.dial(eh.node.addresses()[0].toString())

    const fromC = ec.sync.syncWith(eh.node.peerId, 'ns')
    await eventually(() => slow.state.merges === 1, { timeout: 20_000, message: "the hub merges c's write" })
    // c's session holds its turn (its merge is held); d's brings only d's writer: it runs beside it.
    await ed.sync.syncWith(eh.node.peerId, 'ns')
    expect(hub.context().max(d.replicaId)).toBeGreaterThan(0)
    expect(eh.sync.busy.refused).toBe(0)
    // e brings c's write as well: refused BUSY while c's session holds it, then tried again.
    const fromE = ee.sync.syncWith(eh.node.peerId, 'ns')
    await eventually(() => eh.sync.busy.refused >= 1, { timeout: 20_000, message: 'the hub refused e' })
    slow.letGo()
    await Promise.all([fromC, fromE])
    expect(hub.context().covers(c.context())).toBe(true)
    expect(hub.context().covers(d.context())).toBe(true)
    // c's write came once: from c, not again from e.
    expect(received(eh.events)).toBe(2)
  }, 60_000)

  it('stops reading while merges lag behind (backpressure), and finishes once they catch up', async () => {
    // More than yamux's first window (256 KiB), so pausing the stream holds part of it at the sender.
    const source = Replica.open({ namespace: 'ns', store: createMemoryStore() })
    const big = 'x'.repeat(2000)
    const count = 400
    for (let i = 0; i < count; i++) await source.put(`big${i}`, enc.encode(big), 'text/plain')
    const joiner = Replica.open({ namespace: 'ns', store: createMemoryStore() })
    const slow = heldMerges(joiner, 'all')
    try {
      const [ea, ej] = await Promise.all([
        endpoint(source, { chunkBytes: 16 * 1024 }),
        endpoint(slow.proxy, { mergeBacklogBytes: 64 * 1024 }),
      ])
      await ej.node.dial(ea.node.addresses()[0].toString())
      const session = ej.sync.syncWith(ea.node.peerId, 'ns')
      await eventually(() => ej.sync.pauses >= 1, {
        timeout: 20_000,
        message: 'the joiner paused its stream',
      })
      const [progress] = ej.sync.progress()
      // Paused: part of it read, none of it merged.
      expect(progress.entriesReceived).toBeLessThan(count)
      expect(progress.entriesMerged).toBe(0)
      slow.letGo()
      const event = await session
      expect(event.stats.entriesReceived).toBe(count)
      expect(joiner.digest()).toBe(source.digest())
    } finally {
      slow.letGo()
    }
  }, 60_000)
})

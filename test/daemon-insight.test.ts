import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { loadConfig } from '../src/daemon/config.ts'
import { type RunningDaemon, startDaemon } from '../src/daemon/daemon.ts'
import { EventHub } from '../src/daemon/events.ts'
import { createLogger } from '../src/daemon/logger.ts'
import { DaemonMetrics } from '../src/daemon/metrics.ts'
import type { HearsayMesh } from '../src/peer/attach-mesh.ts'
import { HearsayPeer } from '../src/peer/peer.ts'
import { PeerActivity } from '../src/peer/replication-state.ts'
import { createMemoryStore } from '../src/store/memory.ts'
import { api, collectEvents, giveSharedKey, removeHomes, type SseEvent, tempHome } from './helpers/daemon.ts'
import { eventually } from './helpers/eventually.ts'

/**
 * Replication state, mesh events, explain and conflicts against real daemons (the daemon's own start
 * code, real HTTP, libp2p over loopback TCP, SQLite), run in this process so a test can block the
 * link between two of them at the mesh.
 */

const NS = 'ns'
/** Periodic anti-entropy runs every 10 s: what a peer learns from the other side's sessions can take that long. */
const SLOW = { timeout: 90_000, interval: 100 }

async function inProcessDaemon(): Promise<RunningDaemon> {
  const home = tempHome('hearsay-insight-')
  giveSharedKey(home)
  const { config } = loadConfig({
    dataDir: home,
    flags: {
      apiPort: '0',
      listen: ['/ip4/127.0.0.1/tcp/0'],
      mdns: false,
      loopbackTesting: true,
      namespaces: [NS],
    },
    env: {},
  })
  return startDaemon(config, { logger: createLogger({ level: 'silent', format: 'json' }) })
}

const meshOf = (daemon: RunningDaemon) => daemon.peer.attachedMesh as HearsayMesh

async function link(from: RunningDaemon, to: RunningDaemon): Promise<void> {
  await eventually(
    async () => {
      await from.peer.dial(to.addresses()[0])
      return meshOf(from).insight.connectedPeers().includes(to.peerId)
    },
    { ...SLOW, message: `${from.peerId} connected to ${to.peerId}` },
  )
}

async function cut(a: RunningDaemon, b: RunningDaemon): Promise<void> {
  await meshOf(a).block(b.peerId)
  await meshOf(b).block(a.peerId)
  await eventually(
    () =>
      !meshOf(a).insight.connectedPeers().includes(b.peerId) &&
      !meshOf(b).insight.connectedPeers().includes(a.peerId),
    { ...SLOW, message: 'the link is closed' },
  )
}

async function heal(a: RunningDaemon, b: RunningDaemon): Promise<void> {
  meshOf(a).unblock(b.peerId)
  meshOf(b).unblock(a.peerId)
  await link(a, b)
}

async function put(daemon: RunningDaemon, key: string, value: string, headers: Record<string, string> = {}) {
  const response = await api(daemon.url, `/v1/ns/${NS}/kv/${key}`, {
    method: 'PUT',
    headers: { 'content-type': 'text/plain', ...headers },
    body: value,
  })
  expect(response.status).toBe(200)
  return response
}

async function peerRow(daemon: RunningDaemon, peerId: string) {
  const response = await api(daemon.url, `/v1/ns/${NS}/replication`)
  expect(response.status).toBe(200)
  // biome-ignore lint/suspicious/noExplicitAny: rows are inspected field by field
  return response.json.peers.find((row: any) => row.peerId === peerId)
}

let a: RunningDaemon
let b: RunningDaemon
let c: RunningDaemon

beforeAll(async () => {
  ;[a, b, c] = await Promise.all([inProcessDaemon(), inProcessDaemon(), inProcessDaemon()])
  await link(b, a)
  await link(c, a)
}, 90_000)

afterAll(async () => {
  await Promise.all([a, b, c].map((daemon) => daemon?.stop()))
  removeHomes()
})

describe('GET /v1/ns/{ns}/replication', () => {
  it('shows a blocked peer lagging by the writes it missed, and catching up once the link heals', async () => {
    await put(a, 'before', '1')
    await eventually(async () => (await peerRow(a, c.peerId))?.theyLack === 0, {
      ...SLOW,
      message: 'a knows c holds its writes',
    })
    const self = (await api(a.url, `/v1/ns/${NS}/replication`)).json.self
    expect(self.peerId).toBe(a.peerId)
    expect(typeof self.digest).toBe('string')
    expect(Object.keys(self.versionVector).length).toBeGreaterThan(0)

    await cut(a, c)
    const blocked = await peerRow(a, c.peerId)
    expect(blocked.connected).toBe(false)
    expect(blocked.connection.state).toBe('disconnected')
    expect(blocked.contextKnown).toBe(true)

    for (const key of ['lag-1', 'lag-2', 'lag-3']) await put(a, key, 'x')
    const lagging = await peerRow(a, c.peerId)
    expect(lagging.theyLack).toBe(3)
    expect(lagging.weLack).toBe(0)
    const metrics = await api(a.url, '/metrics')
    expect(metrics.text).toContain(`hearsay_peer_they_lack{peer="${c.peerId}",namespace="${NS}"} 3`)
    expect(metrics.text).toContain(`hearsay_peer_connected{peer="${c.peerId}"} 0`)
    expect(metrics.text).toContain(`hearsay_peer_connected{peer="${b.peerId}"} 1`)

    // Events of the heal, as they happen.
    const seen = collectEvents(`${a.url}/v1/events`, {
      timeoutMs: 60_000,
      onOpen: () => heal(a, c),
      stop: (events) =>
        events.some((e) => e.event === 'peer-connected' && e.data.peerId === c.peerId) &&
        events.some((e) => e.event === 'sync-completed' && e.data.peerId === c.peerId),
    })
    const events: SseEvent[] = await seen
    expect(events[0].event).toBe('ready')
    const completed = events.find((e) => e.event === 'sync-completed' && e.data.peerId === c.peerId)!
    expect(completed.data).toMatchObject({ type: 'sync-completed', namespace: NS })
    expect(['initiator', 'responder']).toContain(completed.data.role)
    expect(typeof completed.data.durationMs).toBe('number')
    expect(Date.parse(completed.data.at)).toBeGreaterThan(0)

    await eventually(async () => (await peerRow(a, c.peerId))?.theyLack === 0, {
      ...SLOW,
      message: 'c caught up',
    })
    const healed = await peerRow(a, c.peerId)
    expect(healed.connection.state).toBe('connected')
    expect(healed.lastSync).not.toBeNull()
    expect(healed.lastSync.bytesSent + healed.lastSync.bytesReceived).toBeGreaterThan(0)
    expect(healed.lastContactAt).not.toBeNull()
  }, 240_000)

  it('answers 404 for a namespace this peer has not joined', async () => {
    const response = await api(a.url, '/v1/ns/nowhere/replication')
    expect(response.status).toBe(404)
    expect(response.json.error.code).toBe('NAMESPACE_NOT_FOUND')
  })
})

describe('GET /v1/ns/{ns}/kv/{key}/explain', () => {
  it('shows concurrent writes as siblings with their peers, and who holds each', async () => {
    await eventually(async () => (await peerRow(a, b.peerId))?.contextKnown === true, {
      ...SLOW,
      message: 'a learned what b holds',
    })
    // Peer exchange may have linked b and c: b is cut off from both, or a's write reaches it through c.
    await cut(a, b)
    await cut(c, b)
    await put(a, 'shared', 'from-a')
    await put(b, 'shared', 'from-b')

    const before = (await api(a.url, `/v1/ns/${NS}/kv/shared/explain`)).json
    expect(before.state).toBe('live')
    expect(before.siblings).toHaveLength(1)
    expect(before.siblings[0]).toMatchObject({ value: 'from-a', peerId: a.peerId, winner: true })
    expect(before.siblings[0].heldBy).toEqual([a.peerId])
    expect(before.siblings[0].notYetAt).toContain(b.peerId)
    expect(before.siblings[0].dot.replica).toBe(before.siblings[0].replica)
    expect(before.siblings[0].hlc.wall).toBeGreaterThan(0)

    meshOf(c).unblock(b.peerId)
    meshOf(b).unblock(c.peerId)
    await heal(a, b)
    await eventually(
      async () => (await api(a.url, `/v1/ns/${NS}/kv/shared/explain`)).json.siblings.length === 2,
      { ...SLOW, message: 'both writes reached a' },
    )
    const after = (await api(a.url, `/v1/ns/${NS}/kv/shared/explain`)).json
    // biome-ignore lint/suspicious/noExplicitAny: siblings are inspected field by field
    expect(after.siblings.map((s: any) => s.peerId).sort()).toEqual([a.peerId, b.peerId].sort())
    // biome-ignore lint/suspicious/noExplicitAny: siblings are inspected field by field
    expect(after.siblings.filter((s: any) => s.winner)).toHaveLength(1)
    expect(after.why).toMatch(/^2 values were written concurrently/)
    expect(after.resolved.value).toBe(after.siblings.at(-1).value)
    await eventually(
      async () => {
        const now = (await api(a.url, `/v1/ns/${NS}/kv/shared/explain`)).json
        // biome-ignore lint/suspicious/noExplicitAny: siblings are inspected field by field
        return now.siblings.every((s: any) => s.heldBy.includes(b.peerId) && !s.notYetAt.includes(b.peerId))
      },
      { ...SLOW, message: 'a learns b holds both siblings' },
    )

    const conflicts = await api(a.url, `/v1/ns/${NS}/conflicts`)
    expect(conflicts.status).toBe(200)
    expect(conflicts.json.conflicts).toContainEqual(expect.objectContaining({ key: 'shared', siblings: 2 }))
    expect(conflicts.json.cursor).toBeNull()
  }, 240_000)

  it('explains a deleted key, and answers 404 for unknown keys and namespaces', async () => {
    await put(a, 'gone', 'soon')
    expect((await api(a.url, `/v1/ns/${NS}/kv/gone`, { method: 'DELETE' })).status).toBe(200)
    const deleted = await api(a.url, `/v1/ns/${NS}/kv/gone/explain`)
    expect(deleted.status).toBe(200)
    expect(deleted.json).toMatchObject({ state: 'deleted', resolved: null, siblings: [] })
    expect(deleted.json.tombstone.peerId).toBe(a.peerId)
    expect(deleted.json.why).toMatch(/^Deleted by peer/)

    const unknownKey = await api(a.url, `/v1/ns/${NS}/kv/never-written/explain`)
    expect(unknownKey.status).toBe(404)
    expect(unknownKey.json.error.code).toBe('KEY_NOT_FOUND')
    const unknownNs = await api(a.url, '/v1/ns/nowhere/kv/k/explain')
    expect(unknownNs.status).toBe(404)
    expect(unknownNs.json.error.code).toBe('NAMESPACE_NOT_FOUND')
  })

  it('explains a value that expired', async () => {
    expect((await put(a, 'brief?ttl=1s', 'short-lived')).status).toBe(200)
    await eventually(async () => (await api(a.url, `/v1/ns/${NS}/kv/brief`)).status === 404, {
      ...SLOW,
      message: 'the value expired',
    })
    const expired = (await api(a.url, `/v1/ns/${NS}/kv/brief/explain`)).json
    expect(expired).toMatchObject({ state: 'deleted', resolved: null, tombstone: null })
    expect(expired.siblings).toHaveLength(1)
    expect(expired.siblings[0]).toMatchObject({ value: 'short-lived', expired: true, winner: false })
    expect(expired.why).toMatch(/^Expired at /)
  })

  it('a key ending in /explain is still written and read as a key', async () => {
    await put(a, 'odd/explain', 'v')
    const read = await api(a.url, `/v1/ns/${NS}/kv/odd%2Fexplain`)
    expect(read.text).toBe('v')
    const explained = await api(a.url, `/v1/ns/${NS}/kv/odd/explain/explain`)
    expect(explained.json).toMatchObject({ key: 'odd/explain', state: 'live' })
  })
})

describe('the events stream', () => {
  it('is refused to a web page of another origin, like the watch stream', async () => {
    const response = await api(a.url, '/v1/events', { headers: { origin: 'http://elsewhere.example' } })
    expect(response.status).toBe(403)
    expect(response.json.error.code).toBe('FORBIDDEN_ORIGIN')
  })

  it('is bounded per client: a client that does not read gets overflow and the stream ends', async () => {
    const peer = new HearsayPeer({ store: createMemoryStore(), peerId: 'self' })
    const hub = new EventHub({
      metrics: new DaemonMetrics(peer),
      logger: createLogger({ level: 'silent', format: 'json' }),
      heartbeatMs: 60_000,
      queueBytes: 4096,
    })
    const activity = new PeerActivity()
    hub.attach(activity)
    const stream = hub.open('self')[Symbol.asyncIterator]()
    const first = await stream.next()
    expect(first.value).toContain('event: ready')
    expect(hub.clientCount).toBe(1)
    // Nobody reads while 200 events (~100 bytes each) arrive: far past the 4 KiB bound.
    for (let i = 0; i < 200; i++) activity.connected(`peer-${i}`)
    let text = ''
    for (let i = 0; i < 1000; i++) {
      const next = await stream.next()
      if (next.done === true) break
      text += next.value
    }
    expect(text).toContain('event: overflow')
    expect(text.split('event: peer-connected').length - 1).toBeLessThan(200)
    expect(text.trimEnd().endsWith('}')).toBe(true)
    expect(hub.clientCount).toBe(0)
    hub.close()
    await peer.stop()
  })
})

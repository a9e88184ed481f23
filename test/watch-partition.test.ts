/**
 * Watch completeness across a partition and its heal: peers on real libp2p (in-memory transport),
 * each behind its real HTTP API, watched over SSE by the lab's own client (which resumes a stream
 * that ends with `?since=` its last id, as `hearsay lab run` does). Both sides write apart, keys
 * change more than once (some twice in one commit), the heal brings thousands of keys over in a few
 * sync chunks, two peers cut off any watcher 1 KiB behind, and a watcher that stalls through it all
 * is cut off with `overflow` and resumes. Every watcher must end up showing every key's final
 * acknowledged write.
 */
import { pino } from 'pino'
import { afterEach, describe, expect, it } from 'vitest'
import { createApp } from '../src/daemon/app.ts'
import { DaemonMetrics } from '../src/daemon/metrics.ts'
import { ReadCache } from '../src/daemon/read-cache.ts'
import { type HttpServer, listenHttp } from '../src/daemon/server.ts'
import { decodeSince, WatchHub } from '../src/daemon/watch.ts'
import { LabHttpClient, type WatchStream } from '../src/lab/http.ts'
import { eventually } from './helpers/eventually.ts'
import { allEqual, digests, startTestPeer, type TestPeer } from './helpers/mesh-peers.ts'

const NS = 'ns'
const te = new TextEncoder()

interface WatchedPeer {
  test: TestPeer
  hub: WatchHub
  server: HttpServer
  client: LabHttpClient
  /** Per key, the highest sequence number this peer's watch showed. */
  shown: Map<string, number>
  ready: boolean
  reopened: number
  lastId: string | undefined
  watch: WatchStream | undefined
  closed: boolean
}

const running: WatchedPeer[] = []

afterEach(async () => {
  for (const p of running.splice(0)) {
    p.closed = true
    p.watch?.close()
    p.client.close()
    p.hub.close()
    await p.server.close(100)
    await p.test.stop()
  }
})

async function watchedPeer(queueBytes?: number): Promise<WatchedPeer> {
  const test = await startTestPeer({ transport: { kind: 'memory' }, syncIntervalMs: 200, namespaces: [NS] })
  const metrics = new DaemonMetrics(test.peer)
  const hub = new WatchHub(test.peer, metrics, 60_000, queueBytes)
  const logger = pino({ level: 'silent' })
  const app = createApp({
    peer: test.peer,
    metrics,
    hub,
    reads: new ReadCache(test.peer),
    logger,
    info: () => ({
      version: 'test',
      url: 'http://test',
      dataDir: '/nowhere',
      meshName: 'm',
      mdns: false,
      bootstrap: [],
      topology: 'mesh',
      hubs: [],
      privateMesh: { swarmKey: false, allowPeers: 0 },
      startedAt: '',
    }),
  })
  const server = await listenHttp(app, { host: '127.0.0.1', port: 0, logger })
  const watched: WatchedPeer = {
    test,
    hub,
    server,
    client: new LabHttpClient(server.url),
    shown: new Map(),
    ready: false,
    reopened: 0,
    lastId: undefined,
    watch: undefined,
    closed: false,
  }
  running.push(watched)
  openWatch(watched)
  return watched
}

/** As the lab's runner does: follow the stream, and reopen one that ends from its last id. */
function openWatch(p: WatchedPeer): void {
  const since = p.lastId === undefined ? '' : `?since=${encodeURIComponent(p.lastId)}`
  p.watch = p.client.watch(`/v1/ns/${NS}/watch${since}`, {
    onEvent(event, data, id) {
      if (id !== undefined) p.lastId = id
      if (event === 'ready') p.ready = true
      if (event !== 'change') return
      const change = JSON.parse(data) as { key: string; value?: { s?: number } }
      const seq = change.value?.s
      if (typeof seq === 'number' && seq > (p.shown.get(change.key) ?? 0)) p.shown.set(change.key, seq)
    },
    onClose() {
      p.watch = undefined
      if (p.closed) return
      p.reopened++
      setTimeout(() => openWatch(p), 50).unref()
    },
  })
}

const linked = (x: TestPeer, y: TestPeer) =>
  x.mesh.node.peers().some((peer) => peer.toString() === y.mesh.peerId)

/** Writes `count` values of writer `w` over `keys` keys, `perTurn` at once (one commit); returns each key's last seq. */
async function writeSide(p: WatchedPeer, w: number, count: number, keys: number, perTurn: number) {
  const last = new Map<string, number>()
  const replica = p.test.peer.namespace(NS)
  for (let seq = 1; seq <= count; seq += perTurn) {
    const turn: Promise<unknown>[] = []
    for (let s = seq; s < seq + perTurn && s <= count; s++) {
      // Each key twice in a row: mostly twice in one commit, across two commits where a pair straddles turns.
      const key = `w${w}/k${Math.floor((s - 1) / 2) % keys}`
      last.set(key, s)
      turn.push(replica.put(key, te.encode(JSON.stringify({ w, s })), 'application/json'))
    }
    // Acknowledged: durable before the next turn's writes.
    await Promise.all(turn)
  }
  return last
}

/** A watcher of the hub itself that reads only when told: what a stalled client leaves queued. */
class SlowReader {
  readonly shown = new Map<string, number>()
  readonly events: string[] = []
  lastId: string | undefined
  private iterator: AsyncIterator<string> | undefined
  private buffer = ''

  async open(p: WatchedPeer): Promise<void> {
    const replica = p.test.peer.namespace(NS)
    const since =
      this.lastId === undefined ? undefined : decodeSince(this.lastId, () => replica.context().replicas())
    this.iterator = (await p.hub.open(replica, '', since))[Symbol.asyncIterator]()
  }

  /** Reads until `until` is seen (or the stream ends, if undefined); bounded in reads. */
  async read(until?: string): Promise<'ended' | 'found'> {
    for (let reads = 0; reads < 100_000; reads++) {
      const { value, done } = await this.iterator!.next()
      if (done === true) return 'ended'
      this.buffer += value
      let end = this.buffer.indexOf('\n\n')
      let found = false
      while (end >= 0) {
        const block = this.buffer.slice(0, end)
        this.buffer = this.buffer.slice(end + 2)
        end = this.buffer.indexOf('\n\n')
        const event = /^event: (.*)$/m.exec(block)?.[1]
        const id = /^id: (.*)$/m.exec(block)?.[1]
        const data = /^data: (.*)$/m.exec(block)?.[1]
        if (id !== undefined) this.lastId = id
        if (event === undefined) continue
        this.events.push(event)
        if (event === until) found = true
        if (event !== 'change' || data === undefined) continue
        const change = JSON.parse(data) as { key: string; value?: { s?: number } }
        const seq = change.value?.s
        if (typeof seq === 'number' && seq > (this.shown.get(change.key) ?? 0))
          this.shown.set(change.key, seq)
      }
      if (found) return 'found'
    }
    throw new Error('the stream never ended')
  }
}

function missing(p: { shown: Map<string, number> }, expected: Map<string, number>): string[] {
  const out: string[] = []
  for (const [key, seq] of expected) if ((p.shown.get(key) ?? 0) < seq) out.push(key)
  return out
}

describe('watch streams across a partition and its heal', () => {
  it('every watcher shows the final state of every acknowledged write once the sides heal', async () => {
    // Peers 1 and 3 cut off a watcher that falls 1 KiB behind (it resumes from its last id).
    const peers = [await watchedPeer(), await watchedPeer(1024), await watchedPeer(), await watchedPeer(1024)]
    for (let i = 0; i < peers.length; i++)
      for (let j = i + 1; j < peers.length; j++) await peers[i].test.peer.dial(peers[j].test.address)
    await eventually(() => peers.every((x) => peers.every((y) => x === y || linked(x.test, y.test))), {
      timeout: 30_000,
      message: 'a full mesh',
    })
    await eventually(() => peers.every((p) => p.ready), { timeout: 30_000, message: 'every watch ready' })

    // A watcher of peer 1 that stops reading from here: the writes and the heal overflow its queue.
    const slow = new SlowReader()
    await slow.open(peers[1])
    expect(await slow.read('ready')).toBe('found')

    const groups = [
      [peers[0], peers[1]],
      [peers[2], peers[3]],
    ]
    for (const x of groups[0])
      for (const y of groups[1]) {
        await x.test.mesh.block(y.test.mesh.peerId)
        await y.test.mesh.block(x.test.mesh.peerId)
      }
    await eventually(
      () =>
        groups[0].every((x) => groups[1].every((y) => !linked(x.test, y.test) && !linked(y.test, x.test))),
      { timeout: 30_000, message: 'the partition closed every link between the groups' },
    )

    // Each peer writes 1200 values over 600 keys, each key twice.
    const lasts = await Promise.all(peers.map((p, w) => writeSide(p, w, 1200, 600, 25)))
    const expected = new Map<string, number>()
    for (const last of lasts) for (const [key, seq] of last) expected.set(key, seq)
    expect(expected.size).toBe(2400)
    // Each side sees its own writes, and not the other side's.
    for (const [g, group] of groups.entries()) {
      const own = new Map([...lasts[2 * g]!, ...lasts[2 * g + 1]!])
      await eventually(() => group.every((p) => missing(p, own).length === 0), {
        timeout: 60_000,
        message: () => `group ${g} shows its own writes: ${group.map((p) => missing(p, own).length)} missing`,
      })
    }
    expect(groups[0][0].test.peer.namespace(NS).get('w2/k0')).toBeUndefined()

    for (const x of groups[0])
      for (const y of groups[1]) {
        x.test.mesh.unblock(y.test.mesh.peerId)
        y.test.mesh.unblock(x.test.mesh.peerId)
      }
    for (const x of groups[0]) for (const y of groups[1]) await x.test.peer.dial(y.test.address)

    await eventually(
      () =>
        allEqual(
          digests(
            peers.map((p) => p.test),
            NS,
          ),
        ),
      {
        timeout: 60_000,
        message: 'equal digests after the heal',
      },
    )
    await eventually(() => peers.every((p) => missing(p, expected).length === 0), {
      timeout: 60_000,
      message: () =>
        `every watch shows every final write: missing ${peers.map((p) => missing(p, expected).length)}, reopened ${peers.map((p) => p.reopened)}`,
    })
    for (const p of peers) expect(missing(p, expected)).toEqual([])

    // The stalled watcher was cut off with overflow; resuming from its last id shows the rest.
    expect(await slow.read()).toBe('ended')
    expect(slow.events).toContain('overflow')
    expect(missing(slow, expected).length).toBeGreaterThan(0)
    await slow.open(peers[1])
    expect(await slow.read('ready')).toBe('found')
    expect(missing(slow, expected)).toEqual([])
  }, 180_000)
})

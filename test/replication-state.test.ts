import { describe, expect, it } from 'vitest'
import { CausalContext } from '../src/crdt/context.ts'
import { EventLogLimiter, eventData } from '../src/daemon/events.ts'
import { DaemonMetrics, MAX_PEER_LABELS } from '../src/daemon/metrics.ts'
import { HearsayPeer } from '../src/peer/peer.ts'
import {
  dotHolders,
  lackFigures,
  type MemberView,
  type MeshEvent,
  missingCount,
  PeerActivity,
  replicationRows,
} from '../src/peer/replication-state.ts'
import { createMemoryStore } from '../src/store/memory.ts'

const ctx = (ranges: Record<string, number[]>) => CausalContext.fromRanges(Object.entries(ranges))

function clock(start = 1_700_000_000_000) {
  let now = start
  return {
    now: () => now,
    advance(ms: number) {
      now += ms
    },
  }
}

describe('lackFigures', () => {
  it('counts the dots each side lacks, gaps included', () => {
    const own = ctx({ a: [1, 10], b: [1, 3] })
    const theirs = ctx({ a: [1, 4, 7, 8], c: [1, 2] })
    // They lack a5, a6, a9, a10 and b1..b3; we lack c1, c2.
    expect(lackFigures(own, theirs)).toEqual({ theyLack: 7, weLack: 2 })
  })

  it('is zero both ways for equal contexts and null when their context is unknown', () => {
    const own = ctx({ a: [1, 5] })
    expect(lackFigures(own, own.clone())).toEqual({ theyLack: 0, weLack: 0 })
    expect(lackFigures(own, undefined)).toEqual({ theyLack: null, weLack: null })
  })
})

describe('missingCount', () => {
  it('equals the size of the difference, for random contexts', () => {
    let seed = 7
    const random = (n: number) => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31
      return seed % n
    }
    const randomContext = () => {
      const context = new CausalContext()
      for (let i = 0; i < 40; i++) {
        const lo = 1 + random(60)
        context.addRange(`r${random(4)}`, lo, lo + random(8))
      }
      return context
    }
    for (let round = 0; round < 200; round++) {
      const a = randomContext()
      const b = randomContext()
      expect(missingCount(a, b)).toBe(a.difference(b).size())
      expect(missingCount(b, a)).toBe(b.difference(a).size())
      expect(missingCount(a, a.clone())).toBe(0)
    }
  })
})

describe('dotHolders', () => {
  const members: MemberView[] = [
    { peerId: 'p3', holds: new Map() },
    { peerId: 'p2', holds: new Map([['ns', ctx({ r: [1, 2] })]]) },
    { peerId: 'p1', holds: new Map([['ns', ctx({ r: [1, 5] })]]) },
  ]

  it('splits known peers by whether their context holds the dot; self always holds it', () => {
    expect(dotHolders('ns', { replica: 'r', counter: 4 }, members, 'me')).toEqual({
      heldBy: ['me', 'p1'],
      notYetAt: ['p2'],
      unknown: ['p3'],
    })
    expect(dotHolders('other', { replica: 'r', counter: 1 }, members, 'me')).toEqual({
      heldBy: ['me'],
      notYetAt: [],
      unknown: ['p1', 'p2', 'p3'],
    })
  })

  it('counts what gossip showed a peer with, and leaves a peer known only from gossip unknown otherwise', () => {
    const withGossip: MemberView[] = [
      {
        peerId: 'p1',
        holds: new Map([['ns', ctx({ r: [1, 2] })]]),
        seen: new Map([['ns', ctx({ r: [1, 4] })]]),
      },
      { peerId: 'p2', holds: new Map(), seen: new Map([['ns', ctx({ r: [4, 4] })]]) },
    ]
    expect(dotHolders('ns', { replica: 'r', counter: 4 }, withGossip, 'me')).toEqual({
      heldBy: ['me', 'p1', 'p2'],
      notYetAt: [],
      unknown: [],
    })
    expect(dotHolders('ns', { replica: 'r', counter: 5 }, withGossip, 'me')).toEqual({
      heldBy: ['me'],
      notYetAt: ['p1'],
      unknown: ['p2'],
    })
  })

  it("counts a write's author among its holders, whatever its last known context says", () => {
    expect(dotHolders('ns', { replica: 'p2~x1', counter: 9 }, members, 'me')).toEqual({
      heldBy: ['me', 'p2'],
      notYetAt: ['p1'],
      unknown: ['p3'],
    })
  })
})

describe('PeerActivity', () => {
  it('records connections, sessions with their reasons and cost, and failures, emitting each event', () => {
    const time = clock()
    const activity = new PeerActivity({ now: time.now })
    const events: MeshEvent[] = []
    const stop = activity.on((event) => events.push(event))

    activity.connectFailed('p1', 'connection refused')
    expect(activity.record('p1')?.connection).toBe('never')
    expect(activity.record('p1')?.lastFailure).toEqual({ at: time.now(), reason: 'connection refused' })

    time.advance(1000)
    activity.connected('p1')
    activity.requested('p1', 'ns', 'connected')
    activity.syncStarted('p1', 'ns', 'initiator')
    time.advance(20)
    activity.syncCompleted('p1', 'ns', {
      role: 'initiator',
      durationMs: 20,
      bytesSent: 100,
      bytesReceived: 300,
      entriesReceived: 2,
      equal: false,
    })
    activity.syncStarted('p1', 'ns', 'responder')
    activity.syncFailed('p1', 'ns', 'stream reset', 'timeout')
    time.advance(5)
    activity.disconnected('p1')
    stop()
    activity.connected('p1')

    expect(events.map((event) => event.type)).toEqual([
      'peer-connected',
      'sync-started',
      'sync-completed',
      'sync-started',
      'sync-failed',
      'peer-disconnected',
    ])
    expect(events[1]).toMatchObject({ reason: 'connected', role: 'initiator', namespace: 'ns' })
    expect(events[2]).toMatchObject({ reason: 'connected', bytesReceived: 300, entriesReceived: 2 })
    expect(events[3]).toMatchObject({ reason: 'remote', role: 'responder' })
    expect(events[4]).toMatchObject({ role: 'responder', error: 'stream reset', code: 'timeout' })
    const record = activity.record('p1')!
    expect(record.namespaces.get('ns')?.lastSync).toMatchObject({ reason: 'connected', bytesSent: 100 })
    expect(record.namespaces.get('ns')?.lastSyncFailure?.reason).toBe('stream reset')
  })

  it('keeps at most maxPeers records, dropping the least recently active', () => {
    const activity = new PeerActivity({ maxPeers: 2 })
    activity.connected('a')
    activity.connected('b')
    activity.connected('a')
    activity.connected('c')
    expect(activity.peers().sort()).toEqual(['a', 'c'])
  })

  it('a listener that throws does not stop the others', () => {
    const activity = new PeerActivity()
    const seen: string[] = []
    activity.on(() => {
      throw new Error('broken listener')
    })
    activity.on((event) => seen.push(event.type))
    activity.connected('p')
    expect(seen).toEqual(['peer-connected'])
  })
})

describe('replicationRows', () => {
  it('combines membership, contexts and activity into one row per peer, self left out', () => {
    const time = clock()
    const activity = new PeerActivity({ now: time.now })
    activity.connected('p1')
    activity.syncCompleted('p1', 'ns', {
      role: 'responder',
      durationMs: 3.14,
      bytesSent: 1,
      bytesReceived: 2,
      entriesReceived: 0,
      equal: true,
    })
    activity.connectFailed('p9', 'no route')
    const own = ctx({ me: [1, 4], p1: [1, 2] })
    const members: MemberView[] = [
      {
        peerId: 'p1',
        lastSeen: time.now(),
        rttMs: 3,
        holds: new Map([['ns', ctx({ me: [1, 2], p1: [1, 3] })]]),
      },
      { peerId: 'p2', holds: new Map() },
      { peerId: 'me', holds: new Map() },
    ]
    const rows = replicationRows({
      namespace: 'ns',
      own,
      members,
      activity,
      connected: new Set(['p1']),
      self: 'me',
    })
    expect(rows.map((row) => row.peerId)).toEqual(['p1', 'p2', 'p9'])
    const [p1, p2, p9] = rows
    expect(p1).toMatchObject({
      connected: true,
      connection: { state: 'connected', lastFailure: null },
      contextKnown: true,
      theyLack: 2,
      weLack: 1,
      rttMs: 3,
      lastSyncFailure: null,
    })
    expect(p1.lastSync).toMatchObject({ role: 'responder', reason: 'remote', durationMs: 3.1, equal: true })
    expect(p1.lastContactAt).toBe(new Date(time.now()).toISOString())
    expect(p2).toMatchObject({
      connected: false,
      connection: { state: 'never', since: null },
      contextKnown: false,
      theyLack: null,
      weLack: null,
      lastSync: null,
      lastContactAt: null,
    })
    expect(p9.connection.lastFailure).toEqual({ at: new Date(time.now()).toISOString(), reason: 'no route' })
  })

  it('counts lag against what sessions and gossip taught together, and waits for a session', () => {
    const activity = new PeerActivity({ now: clock().now })
    const own = ctx({ me: [1, 6] })
    const members: MemberView[] = [
      // A session taught 1..2; gossip since showed it with 3..5.
      {
        peerId: 'p1',
        holds: new Map([['ns', ctx({ me: [1, 2] })]]),
        seen: new Map([['ns', ctx({ me: [1, 5] })]]),
      },
      // Gossip only: what it lacks is not known.
      { peerId: 'p2', holds: new Map(), seen: new Map([['ns', ctx({ me: [6, 6] })]]) },
      // A session, no gossip.
      { peerId: 'p3', holds: new Map([['ns', ctx({ me: [1, 2] })]]) },
    ]
    const rows = replicationRows({
      namespace: 'ns',
      own,
      members,
      activity,
      connected: new Set(),
      self: 'me',
    })
    expect(
      rows.map(({ peerId, contextKnown, theyLack, weLack }) => ({ peerId, contextKnown, theyLack, weLack })),
    ).toEqual([
      { peerId: 'p1', contextKnown: true, theyLack: 1, weLack: 0 },
      { peerId: 'p2', contextKnown: false, theyLack: null, weLack: null },
      { peerId: 'p3', contextKnown: true, theyLack: 4, weLack: 0 },
    ])
  })
})

describe('events in the log', () => {
  it('lets at most perPeer lines per window through, then says how many it left out', () => {
    const time = clock()
    const limiter = new EventLogLimiter({ perPeer: 3, windowMs: 1000, now: time.now })
    const admitted = Array.from({ length: 10 }, () => limiter.admit('flappy').log)
    expect(admitted.filter(Boolean)).toHaveLength(3)
    expect(limiter.admit('calm')).toEqual({ log: true, suppressed: 0 })
    time.advance(1000)
    expect(limiter.admit('flappy')).toEqual({ log: true, suppressed: 7 })
    expect(limiter.admit('flappy')).toEqual({ log: true, suppressed: 0 })
  })

  it('bounds the lines over all peers too, keeping count per peer of what it left out', () => {
    const time = clock()
    const limiter = new EventLogLimiter({ perPeer: 5, total: 4, windowMs: 1000, now: time.now })
    const admitted = ['a', 'b', 'c', 'd', 'e', 'f'].map((peer) => limiter.admit(peer).log)
    expect(admitted).toEqual([true, true, true, true, false, false])
    time.advance(1000)
    expect(limiter.admit('e')).toEqual({ log: true, suppressed: 1 })
  })

  it('renders an event with an ISO time and milliseconds', () => {
    const data = eventData({ type: 'peer-connected', at: 0, peerId: 'p' })
    expect(data).toEqual({ type: 'peer-connected', peerId: 'p', at: '1970-01-01T00:00:00.000Z', atMs: 0 })
  })
})

describe('per-peer gauges', () => {
  it('label at most 64 peers, connected ones first; the rest are one peer="other"', async () => {
    const peer = new HearsayPeer({ store: createMemoryStore(), peerId: 'self', namespaces: ['ns'] })
    const ids = Array.from({ length: 70 }, (_, i) => `peer-${String(i).padStart(2, '0')}`)
    // The last six are connected: they take labels before unconnected ones.
    const connected = ids.slice(64)
    const members: MemberView[] = ids.map((peerId) => ({ peerId, holds: new Map([['ns', ctx({})]]) }))
    const activity = new PeerActivity()
    peer.attach({
      peerId: 'self',
      insight: { activity, members: () => members, connectedPeers: () => connected },
      addresses: () => [],
      peers: () => [],
      dial: async () => 'never',
      join: () => {},
      replicatedTo: async () => 0,
      stop: async () => {},
    })
    await peer.namespace('ns').put('k', new TextEncoder().encode('v'), 'text/plain')
    const text = await new DaemonMetrics(peer).text()
    const lines = (name: string) => text.split('\n').filter((line) => line.startsWith(`${name}{`))
    const connectedLines = lines('hearsay_peer_connected')
    expect(connectedLines).toHaveLength(MAX_PEER_LABELS + 1)
    for (const id of connected) expect(connectedLines).toContain(`hearsay_peer_connected{peer="${id}"} 1`)
    expect(connectedLines).toContain('hearsay_peer_connected{peer="other"} 0')
    const lacking = lines('hearsay_peer_they_lack')
    expect(lacking).toHaveLength(MAX_PEER_LABELS)
    expect(lacking).toContain(`hearsay_peer_they_lack{peer="peer-00",namespace="ns"} 1`)
    await peer.stop()
  })
})

import { describe, expect, it } from 'vitest'
import { SyncScheduler } from '../src/peer/sync-scheduler.ts'
import { seededRandom, testSeed } from './helpers/seed.ts'

const namespaces = ['a', 'b']

describe('SyncScheduler', () => {
  it('on connect, only the smaller peer id starts, once per namespace', () => {
    const scheduler = new SyncScheduler({ self: 'm' })
    expect(scheduler.connected('z', namespaces)).toEqual([
      { peer: 'z', namespace: 'a', reason: 'connected' },
      { peer: 'z', namespace: 'b', reason: 'connected' },
    ])
    expect(scheduler.connected('c', namespaces)).toEqual([])
    expect(scheduler.requested.connected).toBe(2)
  })

  it('a hub client starts every session with its hub, whatever the ids', () => {
    const scheduler = new SyncScheduler({ self: 'z', alwaysInitiate: true })
    expect(scheduler.connected('a', ['ns'])).toEqual([{ peer: 'a', namespace: 'ns', reason: 'connected' }])
  })

  it('a hub leaves the session on connect to its clients, whatever the ids: a client catches up once', () => {
    const hub = new SyncScheduler({ self: 'a', neverInitiate: true })
    expect(hub.connected('z', ['ns'])).toEqual([])
    expect(hub.requested.connected).toBe(0)
    // Its other reasons are unchanged.
    expect(hub.periodic(['z'], ['ns'])).toEqual([{ peer: 'z', namespace: 'ns', reason: 'periodic' }])
  })

  it('on join, catches up with every connected peer', () => {
    const scheduler = new SyncScheduler({ self: 'm' })
    expect(scheduler.joined('ns', ['p', 'q']).map((r) => `${r.peer}/${r.reason}`)).toEqual([
      'p/joined',
      'q/joined',
    ])
  })

  it('the periodic round picks one peer from the random source, for every namespace', () => {
    const seed = testSeed('sync-scheduler', 'HEARSAY_SCHEDULER_SEED')
    const random = seededRandom(seed)
    const picks: number[] = []
    const scheduler = new SyncScheduler({
      self: 'm',
      random: () => {
        const r = random()
        picks.push(r)
        return r
      },
    })
    const peers = ['p0', 'p1', 'p2', 'p3']
    const seen = new Set<string>()
    for (let round = 0; round < 200; round++) {
      const requests = scheduler.periodic(peers, namespaces)
      expect(
        requests.map((r) => r.namespace),
        `seed ${seed}`,
      ).toEqual(namespaces)
      expect(new Set(requests.map((r) => r.peer)).size, `seed ${seed}`).toBe(1)
      expect(requests[0].peer, `seed ${seed}`).toBe(peers[Math.floor(picks[round] * peers.length)])
      seen.add(requests[0].peer)
    }
    expect(seen.size, `seed ${seed}: 200 rounds reach every peer`).toBe(4)
    expect(scheduler.periodic([], namespaces)).toEqual([])
  })

  it('never picks past the last peer, even for a random source at its bound', () => {
    const scheduler = new SyncScheduler({ self: 'm', random: () => 0.9999999999999999 })
    expect(scheduler.periodic(['p', 'q'], ['ns'])[0].peer).toBe('q')
  })

  it('pushes once soon after a publish reached nobody while peers are connected, or failed', () => {
    const scheduler = new SyncScheduler({ self: 'm', pushDelayMs: 100 })
    expect(scheduler.pushDelayMs).toBe(100)
    expect(scheduler.published('ns', { recipients: 2, connected: 2 })).toBe(false)
    expect(scheduler.published('ns', { recipients: 0, connected: 0 })).toBe(false)
    expect(scheduler.published('ns', { recipients: 0, connected: 1 })).toBe(true)
    // Already pending: no second timer.
    expect(scheduler.published('ns', { recipients: 0, connected: 1 })).toBe(false)
    expect(scheduler.published('other', { recipients: 0, connected: 0, failed: true })).toBe(true)
    expect(scheduler.pushDue('ns', ['p', 'q'])).toEqual([
      { peer: 'p', namespace: 'ns', reason: 'publish-reached-nobody' },
      { peer: 'q', namespace: 'ns', reason: 'publish-reached-nobody' },
    ])
    // Done: the next miss schedules again; a push not pending asks for nothing.
    expect(scheduler.pushDue('ns', ['p'])).toEqual([])
    expect(scheduler.published('ns', { recipients: 0, connected: 1 })).toBe(true)
  })

  it('counts ack pushes by reason', () => {
    const scheduler = new SyncScheduler({ self: 'm' })
    expect(scheduler.ack('p', 'ns')).toEqual({ peer: 'p', namespace: 'ns', reason: 'ack' })
    expect(scheduler.requested).toEqual({
      connected: 0,
      joined: 0,
      periodic: 0,
      'publish-reached-nobody': 0,
      ack: 1,
      relay: 0,
    })
  })

  it('a hub relays a session that brought entries to every connected peer, once per delay', () => {
    const hub = new SyncScheduler({ self: 'h', neverInitiate: true, relaysSessions: true })
    expect(hub.received('ns', 0)).toBe(false)
    expect(hub.received('ns', 3)).toBe(true)
    // Pending already: a second session before the push changes nothing.
    expect(hub.received('ns', 5)).toBe(false)
    expect(hub.relayDue('ns', ['a', 'b'])).toEqual([
      { peer: 'a', namespace: 'ns', reason: 'relay' },
      { peer: 'b', namespace: 'ns', reason: 'relay' },
    ])
    expect(hub.relayDue('ns', ['a'])).toEqual([])
    expect(hub.requested.relay).toBe(2)
    // A peer that is no hub passes nothing on: its neighbours gossip and sync among themselves.
    const member = new SyncScheduler({ self: 'm' })
    expect(member.received('ns', 3)).toBe(false)
  })
})

/**
 * Who to run anti-entropy with, when, and why. Pure: no timers, no network; the random source is
 * injected. The mesh shell turns its answers into sessions (and, for pushes, into one timer).
 *
 * - `connected`: a connection opened; both sides would start a session, so only one does: the
 *   smaller peer id, or in the hub shape the client (always) and never the hub, so a new client
 *   gets what it lacks once.
 * - `joined`: we started replicating a namespace; catch up with everyone connected (the sync service
 *   runs a namespace's sessions one at a time, so what the first brings the others do not send again).
 * - `periodic`: every interval, one random connected peer, every namespace.
 * - `publish-reached-nobody`: gossip went to no neighbour while peers are connected (gossip links
 *   still forming just after a connect), or publishing failed: push to every connected peer soon,
 *   at most once per `pushDelayMs` per namespace.
 * - `ack`: a `?ack=N` write waits for a peer to hold it (the ack tracker asks).
 * - `relay`: a hub took writes in a session (a client that was cut off, or wrote while the hub was
 *   down): its other clients reach those writes only through the hub, and gossip does not carry
 *   what anti-entropy delivered, so push to every connected client soon, at most once per
 *   `pushDelayMs` per namespace, rather than at each client's next periodic round.
 */

export type SyncReason = 'connected' | 'joined' | 'periodic' | 'publish-reached-nobody' | 'ack' | 'relay'

export const SYNC_REASONS: readonly SyncReason[] = [
  'connected',
  'joined',
  'periodic',
  'publish-reached-nobody',
  'ack',
  'relay',
]

export interface SyncRequest {
  peer: string
  namespace: string
  reason: SyncReason
}

export interface SyncSchedulerInit {
  self: string
  /** Start every session on connect, whatever the peer ids (hub clients). */
  alwaysInitiate?: boolean
  /** Leave the session on connect to the other side (a hub: its clients always start one). */
  neverInitiate?: boolean
  /** Pass on what sessions bring to every other connected peer (a hub: its clients meet only through it). */
  relaysSessions?: boolean
  /** Returns a number in [0, 1). Default Math.random. */
  random?: () => number
  /** Delay of a push after gossip reached nobody, and the least gap between two. Default 250 ms. */
  pushDelayMs?: number
  /** Told every request, as it is made (why a session ran, for events). */
  onRequest?(request: SyncRequest): void
}

export const DEFAULT_PUSH_DELAY_MS = 250

export class SyncScheduler {
  /** Sessions requested so far, by reason (metrics, tests). */
  readonly requested: Record<SyncReason, number> = {
    connected: 0,
    joined: 0,
    periodic: 0,
    'publish-reached-nobody': 0,
    ack: 0,
    relay: 0,
  }
  private readonly init: SyncSchedulerInit
  private readonly random: () => number
  private readonly pendingPushes = new Set<string>()
  private readonly pendingRelays = new Set<string>()

  constructor(init: SyncSchedulerInit) {
    this.init = init
    this.random = init.random ?? Math.random
  }

  get pushDelayMs(): number {
    return this.init.pushDelayMs ?? DEFAULT_PUSH_DELAY_MS
  }

  /** A peer that speaks the sync protocol connected. */
  connected(peer: string, namespaces: Iterable<string>): SyncRequest[] {
    if (this.init.neverInitiate === true && this.init.alwaysInitiate !== true) return []
    if (!(this.init.alwaysInitiate === true || this.init.self < peer)) return []
    return this.count([...namespaces].map((namespace) => ({ peer, namespace, reason: 'connected' })))
  }

  /** We joined a namespace. */
  joined(namespace: string, peers: Iterable<string>): SyncRequest[] {
    return this.count([...peers].map((peer) => ({ peer, namespace, reason: 'joined' })))
  }

  /** The periodic round: one random connected peer, every namespace. */
  periodic(peers: readonly string[], namespaces: Iterable<string>): SyncRequest[] {
    if (peers.length === 0) return []
    const peer = peers[Math.min(peers.length - 1, Math.floor(this.random() * peers.length))]
    return this.count([...namespaces].map((namespace) => ({ peer, namespace, reason: 'periodic' })))
  }

  /**
   * A publish ended: `recipients` neighbours took it, or it failed (`failed`). True when the shell
   * should call `pushDue` for the namespace after `pushDelayMs`; false when gossip did its job or a
   * push is already pending.
   */
  published(
    namespace: string,
    outcome: { recipients: number; connected: number; failed?: boolean },
  ): boolean {
    const reachedNobody = outcome.failed === true || (outcome.recipients === 0 && outcome.connected > 0)
    if (!reachedNobody || this.pendingPushes.has(namespace)) return false
    this.pendingPushes.add(namespace)
    return true
  }

  /** The pending push of a namespace is due: one session with every connected peer. */
  pushDue(namespace: string, peers: Iterable<string>): SyncRequest[] {
    if (!this.pendingPushes.delete(namespace)) return []
    return this.count([...peers].map((peer) => ({ peer, namespace, reason: 'publish-reached-nobody' })))
  }

  /**
   * A session of the namespace ended having brought `entries` entries. True when the shell should
   * call `relayDue` after `pushDelayMs`: we relay sessions, it brought something, and no relay of
   * the namespace is pending already.
   */
  received(namespace: string, entries: number): boolean {
    if (this.init.relaysSessions !== true || entries === 0 || this.pendingRelays.has(namespace)) return false
    this.pendingRelays.add(namespace)
    return true
  }

  /** The pending relay of a namespace is due: one push session with every connected peer. */
  relayDue(namespace: string, peers: Iterable<string>): SyncRequest[] {
    if (!this.pendingRelays.delete(namespace)) return []
    return this.count([...peers].map((peer) => ({ peer, namespace, reason: 'relay' })))
  }

  /** The ack tracker pushes a namespace to a peer that lacks a write. */
  ack(peer: string, namespace: string): SyncRequest {
    return this.count([{ peer, namespace, reason: 'ack' }])[0]
  }

  private count(requests: SyncRequest[]): SyncRequest[] {
    for (const request of requests) {
      this.requested[request.reason]++
      this.init.onRequest?.(request)
    }
    return requests
  }
}

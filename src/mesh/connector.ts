/**
 * The connector keeps the node connected, to a bounded number of neighbours: it dials peers that
 * discovery (mDNS, bootstrap, peer exchange) reports while it has fewer than its target, remembers
 * every peer it learns of, redials with capped exponential backoff and jitter, tops up to the target
 * from the peers it remembers when neighbours leave, and trims connections beyond its maximum (the
 * least useful first: see `chooseTrimVictims`). Without the bound every peer ends up connected to
 * every other one, and the idle cost of the mesh grows with N².
 *
 * Why not libp2p's own machinery: libp2p 3 dials nothing on `peer:discovery` (there is no autodialer
 * any more), emits `peer:discovery` only the first time a peer enters the peer store (an mDNS peer that
 * comes back after a reboot is never "discovered" again), and its reconnect queue (KEEP_ALIVE tag)
 * doubles without a cap and gives up after 5 tries (~31 s). An edge peer asleep for ten minutes must be
 * found again.
 */
import type { AbortOptions, Connection, Libp2p, PeerId, PeerInfo, Startable } from '@libp2p/interface'
import {
  CONNECTION_GRACE_MS,
  CONNECTION_MAINTAIN_MS,
  DEFAULT_TARGET_CONNECTIONS,
  DIAL_TIMEOUT_MS,
  MAX_CONNECTIONS_PER_TARGET,
  MAX_KNOWN_PEERS,
  PEER_EXCHANGE_PROTOCOL,
  RECENT_DISCONNECT_MS,
  REDIAL_BASE_MS,
  REDIAL_JITTER,
  REDIAL_MAX_ATTEMPTS,
  REDIAL_MAX_MS,
} from './constants.ts'
import { asError } from './errors.ts'

export interface ConnectorInit {
  /**
   * Redial known peers after a disconnect. A hub, whose clients come and go on their own, turns this
   * off; pinned (bootstrap) peers are still redialled. Default: true.
   */
  redial?: boolean
  /** First redial delay after a disconnect or failed dial. Default: 1 s. */
  redialBaseMs?: number
  /** Cap on the redial delay. Default: 60 s. */
  redialMaxMs?: number
  /** Failed redials before an unpinned peer is forgotten. Default: 20 (≈15 min with the defaults). */
  maxAttempts?: number
  /**
   * Failed dials before a peer we have never been connected to is forgotten (a stale address from
   * peer exchange or mDNS should not cost 15 minutes of dials). Default: 3.
   */
  maxAttemptsNeverConnected?: number
  /** Relative jitter on every delay (0.2 = ±20 %). Default: 0.2. */
  jitter?: number
  /** Peers remembered; the least recently seen unpinned, unconnected ones are dropped first. Default: 128. */
  maxKnownPeers?: number
  /**
   * Neighbours to keep: discovered (not pinned) peers are dialled only while we have fewer, and when
   * neighbours leave, remembered peers are dialled until we have this many again. Default: 8.
   */
  targetConnections?: number
  /**
   * Neighbours kept at most: beyond it the least useful connections past their grace period are
   * closed (never a pinned peer, one in `keep`, or one carrying a stream of another protocol than
   * gossipsub, identify, ping and peer exchange). Default: 1.5 × the target.
   */
  maxConnections?: number
  /** A new connection is not trimmed before this age in ms. Default: 10 s. */
  graceMs?: number
  /** Period of the top-up and trim check in ms (jittered); 0 disables both. Default: 5 s. */
  maintainIntervalMs?: number
  /** Peers whose connections must not be trimmed (the node passes its gossipsub mesh). Default: none. */
  keep?: (peer: PeerId) => boolean
  /** Per-dial timeout when the dial has no other signal. Default: 5 s. */
  dialTimeoutMs?: number
  /** Random source in [0, 1) for jitter; injectable for tests. Default: Math.random. */
  random?: () => number
  /** Called with every dial failure (for logs and metrics). Default: none. */
  onDialError?: (peer: PeerId, err: Error) => void
}

/** Exactly what the connector needs from the libp2p node. */
export type ConnectorComponents = Pick<
  Libp2p,
  'peerId' | 'peerStore' | 'getConnections' | 'dial' | 'hangUp' | 'addEventListener' | 'removeEventListener'
>

export interface DiscoveredOptions {
  /** Where the peer came from, for logs: 'mdns', 'bootstrap', 'pex', 'dial'. */
  source: string
  /**
   * A pinned peer (bootstrap, hub) is never forgotten nor trimmed, is dialled when pinned whatever the
   * target, and is redialled with backoff after a failed dial while we are below the target and after
   * a disconnect that left us with no neighbour. Default: false.
   */
  pinned?: boolean
  /** Dial even when at the connection target (an explicit user request). Default: false. */
  force?: boolean
}

export interface Connector extends Startable {
  /** Remember a peer (merging its addresses into the peer store) and dial it soon if not connected. */
  discovered(peer: PeerInfo, options: DiscoveredOptions): void
  /** Stop redialling a peer (before a deliberate hang-up). */
  forget(peer: PeerId): void
  /** Peers currently remembered. */
  known(): PeerId[]
  /** True when the peer is remembered and a redial is scheduled or running. */
  isRedialing(peer: PeerId): boolean
  /**
   * How many neighbours `peer` says it has (from its peer-exchange sample). The trimmer prefers
   * closing connections to well-connected peers: they lose the least.
   */
  reportDegree(peer: PeerId, neighbours: number): void
  /** One top-up and trim pass now (it also runs every maintain interval). */
  maintain(): Promise<void>
}

/** A connection the trimmer may close, as `chooseTrimVictims` sees it. */
export interface TrimCandidate {
  peer: string
  /** Neighbours the peer last reported through peer exchange; undefined when it has not yet. */
  degree?: number
  /** Who dialled: a connection we dialled was chosen by us (gossipsub's Dout counts on it). */
  direction: 'inbound' | 'outbound'
  /** When it opened (ms since epoch). */
  openedAt: number
}

/**
 * Which peers to disconnect to shed `excess` connections: those with the most neighbours first (a
 * well-connected peer loses least, and a newcomer, which reports few, keeps its links), then the ones
 * that dialled us before the ones we chose, then the newest. Pure; ties keep the input order.
 */
export function chooseTrimVictims(candidates: readonly TrimCandidate[], excess: number): string[] {
  if (excess <= 0) return []
  const ranked = [...candidates].sort(
    (a, b) =>
      (b.degree ?? -1) - (a.degree ?? -1) ||
      (a.direction === b.direction ? 0 : a.direction === 'inbound' ? -1 : 1) ||
      b.openedAt - a.openedAt,
  )
  return ranked.slice(0, excess).map((c) => c.peer)
}

/** Streams that do not make a connection busy: the ones every connection carries while idle. */
function isIdleProtocol(protocol: string | undefined): boolean {
  return (
    protocol == null ||
    protocol.startsWith('/meshsub/') ||
    protocol.startsWith('/ipfs/id/') ||
    protocol.startsWith('/ipfs/ping/') ||
    protocol === PEER_EXCHANGE_PROTOCOL
  )
}

interface KnownPeer {
  id: PeerId
  pinned: boolean
  everConnected: boolean
  connected: boolean
  attempts: number
  lastSeen: number
  timer?: ReturnType<typeof setTimeout>
  dialing: boolean
  /** When its last connection closed (ms since epoch); 0 if never. */
  disconnectedAt: number
  /** Neighbours it reported in its last peer-exchange sample. */
  degree?: number
  /** Aborts the dial in flight, so forget() (hangUp) cannot be undone by a dial that lands later. */
  abort?: AbortController
}

export function connector(init: ConnectorInit = {}): (components: ConnectorComponents) => Connector {
  return (components) => new DefaultConnector(components, init)
}

class DefaultConnector implements Connector {
  readonly #c: ConnectorComponents
  readonly #redial: boolean
  readonly #base: number
  readonly #max: number
  readonly #maxAttempts: number
  readonly #maxAttemptsNew: number
  readonly #jitter: number
  readonly #maxKnown: number
  readonly #target: number
  readonly #maxPeers: number
  readonly #grace: number
  readonly #maintainInterval: number
  readonly #keep: (peer: PeerId) => boolean
  #maintainTimer?: ReturnType<typeof setTimeout>
  #maintaining = false
  readonly #dialTimeout: number
  readonly #random: () => number
  readonly #onDialError?: (peer: PeerId, err: Error) => void
  readonly #known = new Map<string, KnownPeer>()
  #started = false
  #stopController = new AbortController()

  constructor(components: ConnectorComponents, init: ConnectorInit) {
    this.#c = components
    this.#redial = init.redial ?? true
    this.#base = init.redialBaseMs ?? REDIAL_BASE_MS
    this.#max = init.redialMaxMs ?? REDIAL_MAX_MS
    this.#maxAttempts = init.maxAttempts ?? REDIAL_MAX_ATTEMPTS
    this.#maxAttemptsNew = init.maxAttemptsNeverConnected ?? 3
    this.#jitter = init.jitter ?? REDIAL_JITTER
    this.#maxKnown = init.maxKnownPeers ?? MAX_KNOWN_PEERS
    const target = init.targetConnections ?? DEFAULT_TARGET_CONNECTIONS
    this.#maxPeers = init.maxConnections ?? Math.ceil(target * MAX_CONNECTIONS_PER_TARGET)
    this.#target = Math.min(target, this.#maxPeers)
    this.#grace = init.graceMs ?? CONNECTION_GRACE_MS
    this.#maintainInterval = init.maintainIntervalMs ?? CONNECTION_MAINTAIN_MS
    this.#keep = init.keep ?? (() => false)
    this.#dialTimeout = init.dialTimeoutMs ?? DIAL_TIMEOUT_MS
    this.#random = init.random ?? Math.random
    this.#onDialError = init.onDialError
  }

  readonly #onConnect = (evt: CustomEvent<PeerId>): void => {
    const k = this.#remember(evt.detail, false)
    if (k == null) return
    k.connected = true
    k.everConnected = true
    k.attempts = 0
    k.lastSeen = Date.now()
    this.#clearTimer(k)
  }

  readonly #onDisconnect = (evt: CustomEvent<PeerId>): void => {
    const k = this.#known.get(evt.detail.toString())
    if (k == null) return
    k.connected = false
    k.lastSeen = Date.now()
    // Another connection may still be up (peer:disconnect fires when the last one closes, but be safe).
    if (this.#c.getConnections(k.id).length > 0) return
    k.disconnectedAt = Date.now()
    if (!this.#redial && !k.pinned) {
      this.forget(k.id)
      return
    }
    // Below the target, top up from the other remembered peers at once. The peer that just left is
    // redialled after the usual backoff, never at once: we may have hung up on it (a hostile frame),
    // or it closed the connection for being over its own maximum. A pinned peer is redialled only
    // when nothing else is left: a hub client's hub, or a bootstrap peer that was our only neighbour.
    const connected = this.#connectedCount()
    if (connected >= this.#target) return
    if (!k.pinned || connected === 0) this.#schedule(k, this.#delay(0))
    this.#topUp()
  }

  start(): void {
    if (this.#started) return
    this.#started = true
    this.#stopController = new AbortController()
    this.#c.addEventListener('peer:connect', this.#onConnect)
    this.#c.addEventListener('peer:disconnect', this.#onDisconnect)
    this.#scheduleMaintain()
  }

  stop(): void {
    if (!this.#started) return
    this.#started = false
    this.#c.removeEventListener('peer:connect', this.#onConnect)
    this.#c.removeEventListener('peer:disconnect', this.#onDisconnect)
    this.#stopController.abort()
    if (this.#maintainTimer != null) clearTimeout(this.#maintainTimer)
    this.#maintainTimer = undefined
    for (const k of this.#known.values()) this.#clearTimer(k)
    this.#known.clear()
  }

  discovered(peer: PeerInfo, options: DiscoveredOptions): void {
    if (!this.#started || peer.id.equals(this.#c.peerId)) return
    const k = this.#remember(peer.id, options.pinned === true)
    if (k == null) return
    if (options.pinned === true) k.pinned = true
    k.lastSeen = Date.now()
    const addrs = peer.multiaddrs
    const merge =
      addrs.length > 0 ? this.#c.peerStore.merge(peer.id, { multiaddrs: addrs }) : Promise.resolve()
    merge
      .catch(() => {}) // a peer store failure only means the dial below has fewer addresses
      .then(() => {
        if (!this.#started || this.#isConnected(k.id) || k.dialing) return
        // Only the pinning source (bootstrap) itself dials past the target: a pinned peer that peer
        // exchange mentions again is just another peer, or everyone would keep redialling the seed.
        const exempt = options.force === true || options.pinned === true
        if (!exempt && this.#busyCount() >= this.#target) return
        // A fresh discovery resets the failure count: the peer is evidently alive somewhere.
        k.attempts = 0
        this.#clearTimer(k)
        void this.#dial(k, exempt)
      })
  }

  forget(peer: PeerId): void {
    const k = this.#known.get(peer.toString())
    if (k == null) return
    this.#clearTimer(k)
    k.abort?.abort(new Error('peer forgotten'))
    this.#known.delete(peer.toString())
  }

  known(): PeerId[] {
    return [...this.#known.values()].map((k) => k.id)
  }

  isRedialing(peer: PeerId): boolean {
    const k = this.#known.get(peer.toString())
    return k != null && (k.timer != null || k.dialing)
  }

  reportDegree(peer: PeerId, neighbours: number): void {
    const k = this.#known.get(peer.toString())
    if (k != null && Number.isFinite(neighbours) && neighbours >= 0) k.degree = neighbours
  }

  async maintain(): Promise<void> {
    if (!this.#started || this.#maintaining) return
    this.#maintaining = true
    try {
      if (this.#redial) this.#topUp()
      await this.#trim()
    } finally {
      this.#maintaining = false
    }
  }

  #scheduleMaintain(): void {
    if (!this.#started || this.#maintainInterval <= 0) return
    this.#maintainTimer = setTimeout(() => {
      this.maintain()
        .catch(() => {}) // a failed hang-up leaves the connection for the next pass
        .finally(() => this.#scheduleMaintain())
    }, this.#delayAround(this.#maintainInterval))
    this.#maintainTimer.unref?.()
  }

  /** Distinct peers with an open connection (two connections to one peer count once). */
  #connectedCount(): number {
    const peers = new Set<string>()
    for (const c of this.#c.getConnections()) if (c.status === 'open') peers.add(c.remotePeer.toString())
    return peers.size
  }

  /** Neighbours plus dials in flight to peers not yet connected. */
  #busyCount(): number {
    let dialing = 0
    for (const k of this.#known.values()) if (k.dialing && !this.#isConnected(k.id)) dialing++
    return this.#connectedCount() + dialing
  }

  /**
   * Below the target: dial remembered peers that are neither connected nor already being dialled or
   * backing off, in random order, the ones that disconnected recently last.
   */
  #topUp(): void {
    if (!this.#started) return
    const missing = this.#target - this.#busyCount()
    if (missing <= 0) return
    const now = Date.now()
    const idle = [...this.#known.values()].filter(
      (k) => !k.dialing && k.timer == null && !this.#isConnected(k.id),
    )
    for (let i = idle.length - 1; i > 0; i--) {
      const j = Math.floor(this.#random() * (i + 1))
      const t = idle[i]!
      idle[i] = idle[j]!
      idle[j] = t
    }
    const recent = (k: KnownPeer): number => (now - k.disconnectedAt < RECENT_DISCONNECT_MS ? 1 : 0)
    idle.sort((a, b) => recent(a) - recent(b))
    for (const k of idle.slice(0, missing)) void this.#dial(k)
  }

  /** Above the maximum: close the least useful connections that are past their grace period. */
  async #trim(): Promise<void> {
    const now = Date.now()
    const byPeer = new Map<string, Connection[]>()
    for (const c of this.#c.getConnections()) {
      if (c.status !== 'open') continue
      const id = c.remotePeer.toString()
      byPeer.set(id, [...(byPeer.get(id) ?? []), c])
    }
    const excess = byPeer.size - this.#maxPeers
    if (excess <= 0) return
    const candidates: TrimCandidate[] = []
    for (const [id, conns] of byPeer) {
      const peer = conns[0]!.remotePeer
      const k = this.#known.get(id)
      if (k?.pinned === true || this.#keep(peer)) continue
      const openedAt = Math.min(...conns.map((c) => c.timeline.open))
      if (now - openedAt < this.#grace) continue
      if (conns.some((c) => c.streams.some((s) => !isIdleProtocol(s.protocol)))) continue
      candidates.push({
        peer: id,
        degree: k?.degree,
        direction: conns.some((c) => c.direction === 'outbound') ? 'outbound' : 'inbound',
        openedAt,
      })
    }
    const victims = new Set(chooseTrimVictims(candidates, excess))
    await Promise.all(
      [...byPeer.values()]
        .filter((conns) => victims.has(conns[0]!.remotePeer.toString()))
        .map((conns) =>
          this.#c.hangUp(conns[0]!.remotePeer, { signal: AbortSignal.timeout(this.#dialTimeout) }),
        ),
    )
  }

  #remember(id: PeerId, pinned: boolean): KnownPeer | undefined {
    if (!this.#started) return undefined
    const key = id.toString()
    let k = this.#known.get(key)
    if (k == null) {
      k = {
        id,
        pinned,
        everConnected: false,
        connected: false,
        attempts: 0,
        lastSeen: Date.now(),
        dialing: false,
        disconnectedAt: 0,
      }
      this.#known.set(key, k)
      this.#evict()
    }
    return k
  }

  #evict(): void {
    if (this.#known.size <= this.#maxKnown) return
    let victim: KnownPeer | undefined
    for (const k of this.#known.values()) {
      if (k.pinned || k.connected) continue
      if (victim == null || k.lastSeen < victim.lastSeen) victim = k
    }
    if (victim != null) this.forget(victim.id)
  }

  #isConnected(id: PeerId): boolean {
    return this.#c.getConnections(id).length > 0
  }

  #delay(attempts: number): number {
    return this.#delayAround(Math.min(this.#max, this.#base * 2 ** Math.min(attempts, 30)))
  }

  #delayAround(ms: number): number {
    const j = 1 + this.#jitter * (2 * this.#random() - 1)
    return Math.max(0, Math.round(ms * j))
  }

  #schedule(k: KnownPeer, ms: number): void {
    if (!this.#started) return
    this.#clearTimer(k)
    k.timer = setTimeout(() => {
      k.timer = undefined
      void this.#dial(k)
    }, ms)
    // The libp2p listener keeps a daemon alive; a pending redial alone must not keep a process alive.
    k.timer.unref?.()
  }

  #clearTimer(k: KnownPeer): void {
    if (k.timer != null) clearTimeout(k.timer)
    k.timer = undefined
  }

  /** Dials `k`; unless forced, only while below the target. Retries with backoff on failure. */
  async #dial(k: KnownPeer, force = false): Promise<void> {
    if (!this.#started || k.dialing || this.#known.get(k.id.toString()) !== k) return
    if (this.#isConnected(k.id)) return
    // Dials in flight count: a peer-exchange frame hands over up to 8 peers at once.
    if (!force && this.#busyCount() >= this.#target) return
    k.dialing = true
    k.abort = new AbortController()
    const options: AbortOptions = {
      signal: AbortSignal.any([
        this.#stopController.signal,
        k.abort.signal,
        AbortSignal.timeout(this.#dialTimeout),
      ]),
    }
    try {
      await this.#c.dial(k.id, options)
      k.attempts = 0 // peer:connect also resets, but a dial can find an existing connection
    } catch (err) {
      if (!this.#started || k.abort?.signal.aborted === true) return
      this.#onDialError?.(k.id, asError(err))
      k.attempts++
      const limit = k.everConnected ? this.#maxAttempts : this.#maxAttemptsNew
      if (!k.pinned && k.attempts >= limit) {
        this.forget(k.id)
        return
      }
      // Retry only while we still need neighbours; otherwise the peer waits for a later top-up.
      if (!k.pinned && this.#connectedCount() >= this.#target) return
      this.#schedule(k, this.#delay(k.attempts))
    } finally {
      k.dialing = false
      k.abort = undefined
    }
  }
}

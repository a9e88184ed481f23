/**
 * The connector keeps the node connected: it dials peers that discovery (mDNS, bootstrap, peer
 * exchange) reports, remembers every peer it has been connected to, and redials a known peer after a
 * disconnect with capped exponential backoff and jitter.
 *
 * Why not libp2p's own machinery: libp2p 3 dials nothing on `peer:discovery` (there is no autodialer
 * any more), emits `peer:discovery` only the first time a peer enters the peer store (an mDNS peer that
 * comes back after a reboot is never "discovered" again), and its reconnect queue (KEEP_ALIVE tag)
 * doubles without a cap and gives up after 5 tries (~31 s). An edge peer asleep for ten minutes must be
 * found again.
 */
import type { AbortOptions, Libp2p, PeerId, PeerInfo, Startable } from '@libp2p/interface'
import {
  DIAL_TIMEOUT_MS,
  MAX_KNOWN_PEERS,
  PEX_TARGET_CONNECTIONS,
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
  /** Discovered (not pinned) peers are dialled only while we have fewer connections. Default: 16. */
  targetConnections?: number
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
  'peerId' | 'peerStore' | 'getConnections' | 'dial' | 'addEventListener' | 'removeEventListener'
>

export interface DiscoveredOptions {
  /** Where the peer came from, for logs: 'mdns', 'bootstrap', 'pex', 'dial'. */
  source: string
  /** A pinned peer is never forgotten and always redialled (bootstrap peers). Default: false. */
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
    this.#target = init.targetConnections ?? PEX_TARGET_CONNECTIONS
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
    if (!this.#redial && !k.pinned) {
      this.forget(k.id)
      return
    }
    this.#schedule(k, this.#delay(0))
  }

  start(): void {
    if (this.#started) return
    this.#started = true
    this.#stopController = new AbortController()
    this.#c.addEventListener('peer:connect', this.#onConnect)
    this.#c.addEventListener('peer:disconnect', this.#onDisconnect)
  }

  stop(): void {
    if (!this.#started) return
    this.#started = false
    this.#c.removeEventListener('peer:connect', this.#onConnect)
    this.#c.removeEventListener('peer:disconnect', this.#onDisconnect)
    this.#stopController.abort()
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
        if (!k.pinned && options.force !== true && this.#c.getConnections().length >= this.#target) return
        // A fresh discovery resets the failure count: the peer is evidently alive somewhere.
        k.attempts = 0
        this.#clearTimer(k)
        void this.#dial(k)
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
    const raw = Math.min(this.#max, this.#base * 2 ** Math.min(attempts, 30))
    const j = 1 + this.#jitter * (2 * this.#random() - 1)
    return Math.max(0, Math.round(raw * j))
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

  async #dial(k: KnownPeer): Promise<void> {
    if (!this.#started || k.dialing || this.#known.get(k.id.toString()) !== k) return
    if (this.#isConnected(k.id)) return
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
      this.#schedule(k, this.#delay(k.attempts))
    } finally {
      k.dialing = false
      k.abort = undefined
    }
  }
}

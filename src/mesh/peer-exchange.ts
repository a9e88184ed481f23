/**
 * Peer exchange, `/hearsay/peers/1.0.0`: a peer tells another which peers it is connected to, so a
 * node that was given one address finds the whole mesh (A-B-C in a line becomes a triangle).
 *
 * libp2p 3 offers no peer exchange for this shape: gossipsub's PX only travels in PRUNE messages (and
 * needs signed peer records and `doPX` on trusted nodes); identify-push shares a peer's own addresses,
 * never its neighbours'; `@libp2p/pubsub-peer-discovery` and kad-dht are not installed (and the DHT is
 * far heavier than a mesh of tens of peers needs).
 *
 * Protocol: one request/response exchange per stream. The dialer writes one length-prefixed frame with
 * its sample, the listener answers with its own, both close. A frame is UTF-8 JSON:
 *   {"v":1,"peers":[{"id":"12D3Koo...","addrs":["/ip4/10.0.0.7/tcp/4001", ...]}, ...]}
 * bounded in bytes, peers and addresses per peer. Exchanges run when a peer that speaks the protocol
 * connects (only the side that dialled the connection starts one, so each connect costs one stream) and
 * every `intervalMs` with one random peer, so a peer that joined later still spreads.
 *
 * Received peers go to the connector, which remembers them and dials them only while it has fewer
 * neighbours than its target (bounded per frame, with backoff); the size of a received sample tells
 * it how many neighbours the sender has.
 */

import type {
  AbortOptions,
  Connection,
  PeerId,
  PeerInfo,
  PeerStore,
  Startable,
  Stream,
} from '@libp2p/interface'
import type { ConnectionManager, Registrar } from '@libp2p/interface-internal'
import { peerIdFromString } from '@libp2p/peer-id'
import type { RepeatingTask } from '@libp2p/utils'
import { isLoopback, lpStream, repeatingTask } from '@libp2p/utils'
import { type Multiaddr, multiaddr } from '@multiformats/multiaddr'
import type { Connector } from './connector.ts'
import {
  PEER_EXCHANGE_PROTOCOL,
  PEX_INTERVAL_MS,
  PEX_MAX_ADDR_CHARS,
  PEX_MAX_ADDRS_PER_PEER,
  PEX_MAX_DIALS_PER_FRAME,
  PEX_MAX_FRAME_BYTES,
  PEX_MAX_PEERS,
  PEX_MAX_STREAMS,
  PEX_TIMEOUT_MS,
} from './constants.ts'
import { asError, PeerExchangeFrameError } from './errors.ts'

export interface PeerExchangeInit {
  /** Protocol id. Default: `/hearsay/peers/1.0.0`. */
  protocol?: string
  /** Peers listed in one frame we send, and accepted in one we receive. Default: 32. */
  maxPeers?: number
  /** Addresses per peer, both ways. Default: 8. */
  maxAddrsPerPeer?: number
  /** Largest frame read. Default: 32 KiB. */
  maxFrameBytes?: number
  /** Whole-exchange timeout when the caller gives no signal. Default: 5 s. */
  timeoutMs?: number
  /** Period of the background exchange with one random peer; 0 disables it. Default: 30 s. */
  intervalMs?: number
  /** New peers handed to the connector from one frame. Default: 8. */
  maxDialsPerFrame?: number
  /** Called when an exchange fails (for logs and metrics). Default: none. */
  onError?: (peer: PeerId, err: Error) => void
}

/**
 * What peer exchange takes from libp2p (the components libp2p hands every service) and, in its
 * service init, the connector to hand peers to.
 */
export interface PeerExchangeComponents {
  peerId: PeerId
  peerStore: Pick<PeerStore, 'get'>
  registrar: Pick<Registrar, 'handle' | 'unhandle' | 'register' | 'unregister'>
  connectionManager: Pick<ConnectionManager, 'getConnections' | 'openStream'>
}

export interface PeerExchangeServiceInit extends PeerExchangeInit {
  connector: Pick<Connector, 'discovered'> & Partial<Pick<Connector, 'reportDegree'>>
}

export interface PeerExchange extends Startable {
  /** Runs one exchange with `peer` now; resolves with the number of peers it handed to the connector. */
  exchange(peer: PeerId, options?: AbortOptions): Promise<number>
}

/** One listed peer, as decoded from a frame. */
export interface PexEntry {
  id: PeerId
  addrs: Multiaddr[]
}

/** The libp2p service factory, in the shape of libp2p's own protocol packages. */
export function peerExchange(
  init: PeerExchangeServiceInit,
): (components: PeerExchangeComponents) => PeerExchange {
  return (components) => new DefaultPeerExchange(components, init)
}

class DefaultPeerExchange implements PeerExchange {
  readonly [Symbol.toStringTag] = '@hearsay/peer-exchange'
  readonly #c: PeerExchangeComponents
  readonly #connector: PeerExchangeServiceInit['connector']
  readonly #protocol: string
  readonly #maxPeers: number
  readonly #maxAddrs: number
  readonly #maxFrame: number
  readonly #timeout: number
  readonly #interval: number
  readonly #maxDials: number
  readonly #onError?: (peer: PeerId, err: Error) => void
  #topologyId?: string
  #task?: RepeatingTask
  #started = false

  constructor(components: PeerExchangeComponents, init: PeerExchangeServiceInit) {
    this.#c = components
    this.#connector = init.connector
    this.#protocol = init.protocol ?? PEER_EXCHANGE_PROTOCOL
    this.#maxPeers = init.maxPeers ?? PEX_MAX_PEERS
    this.#maxAddrs = init.maxAddrsPerPeer ?? PEX_MAX_ADDRS_PER_PEER
    this.#maxFrame = init.maxFrameBytes ?? PEX_MAX_FRAME_BYTES
    this.#timeout = init.timeoutMs ?? PEX_TIMEOUT_MS
    this.#interval = init.intervalMs ?? PEX_INTERVAL_MS
    this.#maxDials = init.maxDialsPerFrame ?? PEX_MAX_DIALS_PER_FRAME
    this.#onError = init.onError
  }

  async start(): Promise<void> {
    if (this.#started) return
    this.#started = true
    await this.#c.registrar.handle(
      this.#protocol,
      (stream, connection) => this.#onStream(stream, connection),
      {
        maxInboundStreams: PEX_MAX_STREAMS,
        maxOutboundStreams: PEX_MAX_STREAMS,
      },
    )
    // onConnect fires after identify says the peer speaks the protocol; it fires again on every
    // identify (and identify-push) of that peer, hence the filter. It is awaited by the registrar in
    // sequence with other topologies, so it only starts the work.
    const seen = new Set<string>()
    this.#topologyId = await this.#c.registrar.register(this.#protocol, {
      filter: {
        has: (p) => seen.has(p.toString()),
        add: (p) => void seen.add(p.toString()),
        remove: (p) => void seen.delete(p.toString()),
      },
      onConnect: (peer, connection) => {
        if (connection.direction !== 'outbound') return
        this.#exchangeLogged(peer)
      },
    })
    if (this.#interval > 0) {
      this.#task = repeatingTask(
        async (options) => {
          const peers = this.#connectedPeers()
          if (peers.length === 0) return
          const peer = peers[Math.floor(Math.random() * peers.length)]!
          await this.exchange(peer, options).catch((err) => this.#onError?.(peer, asError(err)))
        },
        this.#interval,
        { timeout: this.#timeout },
      )
      this.#task.start()
    }
  }

  async stop(): Promise<void> {
    if (!this.#started) return
    this.#started = false
    this.#task?.stop()
    this.#task = undefined
    if (this.#topologyId != null) this.#c.registrar.unregister(this.#topologyId)
    this.#topologyId = undefined
    await this.#c.registrar.unhandle(this.#protocol)
  }

  async exchange(peer: PeerId, options: AbortOptions = {}): Promise<number> {
    const signal = options.signal ?? AbortSignal.timeout(this.#timeout)
    const stream = await this.#c.connectionManager.openStream(peer, this.#protocol, { signal })
    try {
      const lp = lpStream(stream, { maxDataLength: this.#maxFrame })
      await lp.write(await this.#sample(peer, this.#loopbackOk(peer), { signal }), { signal })
      const reply = await lp.read({ signal })
      await stream.close({ signal })
      return this.#accept(peer, decodePexFrame(reply.subarray(), this.#limits()))
    } catch (err) {
      stream.abort(asError(err))
      throw err
    }
  }

  #exchangeLogged(peer: PeerId): void {
    if (!this.#started) return
    this.exchange(peer).catch((err) => this.#onError?.(peer, asError(err)))
  }

  async #onStream(stream: Stream, connection: Connection): Promise<void> {
    const peer = connection.remotePeer
    const signal = AbortSignal.timeout(this.#timeout)
    try {
      const lp = lpStream(stream, { maxDataLength: this.#maxFrame })
      const request = await lp.read({ signal })
      const entries = decodePexFrame(request.subarray(), this.#limits())
      await lp.write(await this.#sample(peer, isLoopback(connection.remoteAddr), { signal }), { signal })
      await stream.close({ signal })
      this.#accept(peer, entries)
    } catch (err) {
      // Aborted, not closed: the peer must not take a truncated exchange for a complete one.
      stream.abort(asError(err))
      this.#onError?.(peer, asError(err))
    }
  }

  #limits(): FrameLimits {
    return { maxPeers: this.#maxPeers, maxAddrsPerPeer: this.#maxAddrs }
  }

  #connectedPeers(): PeerId[] {
    const seen = new Map<string, PeerId>()
    for (const conn of this.#c.connectionManager.getConnections()) {
      if (conn.status === 'open') seen.set(conn.remotePeer.toString(), conn.remotePeer)
    }
    return [...seen.values()]
  }

  #loopbackOk(peer: PeerId): boolean {
    const conns = this.#c.connectionManager.getConnections(peer)
    return conns.length > 0 && conns.every((c) => isLoopback(c.remoteAddr))
  }

  /** Our sample for `to`: connected peers except `to`, shuffled, with the addresses they advertise. */
  async #sample(to: PeerId, loopbackOk: boolean, options: AbortOptions): Promise<Uint8Array> {
    const peers = this.#connectedPeers().filter((p) => !p.equals(to))
    shuffle(peers)
    const out: PexEntry[] = []
    for (const id of peers) {
      if (out.length >= this.#maxPeers) break
      const addrs = await this.#advertisedAddrs(id, loopbackOk, options)
      if (addrs.length > 0) out.push({ id, addrs })
    }
    return encodePexFrame(out)
  }

  /**
   * The peer's listen addresses as identify reported them (the peer store), not the connection's
   * remote address: an inbound connection comes from an ephemeral port nobody can dial. Loopback
   * addresses only go to a peer that reaches us over loopback (same host); elsewhere they would point
   * the receiver at itself.
   */
  async #advertisedAddrs(id: PeerId, loopbackOk: boolean, options: AbortOptions): Promise<Multiaddr[]> {
    let addresses: Multiaddr[]
    try {
      addresses = (await this.#c.peerStore.get(id, options)).addresses.map((a) => a.multiaddr)
    } catch {
      return [] // not identified yet: nothing useful to share
    }
    const out: Multiaddr[] = []
    for (const ma of addresses) {
      if (out.length >= this.#maxAddrs) break
      if (!loopbackOk && isLoopback(ma)) continue
      if (ma.toString().includes('/p2p-circuit')) continue
      out.push(ma)
    }
    return out
  }

  #accept(from: PeerId, entries: PexEntry[]): number {
    // The sample lists the sender's neighbours but us: its size tells the connector how well connected
    // the sender is (the trimmer closes links to well-connected peers first).
    this.#connector.reportDegree?.(from, entries.length + 1)
    let handed = 0
    for (const e of entries) {
      if (handed >= this.#maxDials) break
      if (e.id.equals(this.#c.peerId) || e.id.equals(from)) continue
      if (this.#c.connectionManager.getConnections(e.id).length > 0) continue
      this.#connector.discovered({ id: e.id, multiaddrs: e.addrs } satisfies PeerInfo, { source: 'pex' })
      handed++
    }
    return handed
  }
}

interface FrameLimits {
  maxPeers: number
  maxAddrsPerPeer: number
}

function shuffle<T>(a: T[]): void {
  for (let i = a.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1))
    const t = a[i]!
    a[i] = a[j]!
    a[j] = t
  }
}

const encoder = new TextEncoder()
const decoder = new TextDecoder('utf-8', { fatal: true })

/** Encodes a frame. Addresses carry no /p2p/ suffix: the id is its own field. */
export function encodePexFrame(entries: readonly PexEntry[]): Uint8Array {
  const peers = entries.map((e) => ({
    id: e.id.toString(),
    addrs: e.addrs.map((a) => stripPeerId(a).toString()),
  }))
  return encoder.encode(JSON.stringify({ v: 1, peers }))
}

/**
 * Decodes and bounds a frame. A malformed frame throws PeerExchangeFrameError; an entry with a bad
 * address only loses that address (a peer may run a transport we cannot parse), but a bad peer id
 * fails the frame (the sender is broken or hostile).
 */
export function decodePexFrame(bytes: Uint8Array, limits: FrameLimits): PexEntry[] {
  let doc: unknown
  try {
    doc = JSON.parse(decoder.decode(bytes))
  } catch (err) {
    throw new PeerExchangeFrameError('not UTF-8 JSON', { cause: err })
  }
  if (typeof doc !== 'object' || doc == null) throw new PeerExchangeFrameError('not an object')
  const { v, peers } = doc as { v?: unknown; peers?: unknown }
  if (v !== 1) throw new PeerExchangeFrameError(`unsupported version ${JSON.stringify(v)}`)
  if (!Array.isArray(peers)) throw new PeerExchangeFrameError('peers is not an array')
  if (peers.length > limits.maxPeers)
    throw new PeerExchangeFrameError(`${peers.length} peers > ${limits.maxPeers}`)
  const out: PexEntry[] = []
  for (const p of peers) {
    if (typeof p !== 'object' || p == null) throw new PeerExchangeFrameError('peer entry is not an object')
    const { id, addrs } = p as { id?: unknown; addrs?: unknown }
    if (typeof id !== 'string' || id.length > 128) throw new PeerExchangeFrameError('bad peer id')
    let peerId: PeerId
    try {
      peerId = peerIdFromString(id)
    } catch (err) {
      throw new PeerExchangeFrameError(`bad peer id ${JSON.stringify(id)}`, { cause: err })
    }
    if (!Array.isArray(addrs) || addrs.length > limits.maxAddrsPerPeer) {
      throw new PeerExchangeFrameError('addrs missing or too many')
    }
    const mas: Multiaddr[] = []
    for (const a of addrs) {
      if (typeof a !== 'string' || a.length > PEX_MAX_ADDR_CHARS) continue
      try {
        mas.push(stripPeerId(multiaddr(a)))
      } catch {
        // unparseable address: skip it, keep the peer
      }
    }
    if (mas.length > 0) out.push({ id: peerId, addrs: mas })
  }
  return out
}

function stripPeerId(ma: Multiaddr): Multiaddr {
  const parts = ma.getComponents()
  const last = parts[parts.length - 1]
  if (last?.name === 'p2p') return ma.decapsulateCode(last.code)
  return ma
}

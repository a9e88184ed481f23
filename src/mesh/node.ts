/**
 * The mesh node: a started libp2p 3 node (TCP, noise, yamux, identify, ping, gossipsub; mDNS,
 * bootstrap and peer exchange for discovery) behind a small interface for the rest of hearsay.
 *
 *   const node = await createMeshNode({ privateKey, listen: ['/ip4/0.0.0.0/tcp/4001'], meshName: 'home' })
 *   node.subscribe(topic, (msg) => replica.merge(msg.data), (msg) => validate(msg.data))
 *   await node.publish(topic, batchBytes)
 *
 * The libp2p object stays reachable as `node.libp2p` for anything this interface does not cover.
 * docs/mesh.md explains every setting.
 */
import { createHash, randomUUID } from 'node:crypto'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { bootstrap } from '@libp2p/bootstrap'
import { type GossipSub, type GossipsubOpts, gossipsub, TopicValidatorResult } from '@libp2p/gossipsub'
import { createTopicScoreParams } from '@libp2p/gossipsub/score'
import { type Identify, identify } from '@libp2p/identify'
import type {
  AbortOptions,
  Connection,
  Libp2p,
  PeerDiscovery,
  PeerId,
  PeerInfo,
  PrivateKey,
  Stream,
  StreamHandler,
  StreamHandlerOptions,
} from '@libp2p/interface'
import { mdns } from '@libp2p/mdns'
import { peerIdFromString } from '@libp2p/peer-id'
import { type Ping, ping } from '@libp2p/ping'
import { generateKey as generatePnetKey, preSharedKey } from '@libp2p/pnet'
import { tcp } from '@libp2p/tcp'
import { type Multiaddr, multiaddr } from '@multiformats/multiaddr'
import { createLibp2p, type Libp2pOptions } from 'libp2p'
import { type SyncService, type SyncServiceInit, syncService } from '../sync/service.ts'
import { type LinkLoss, lossyMemory } from '../transport/lossy-memory.ts'
import { type Connector, type ConnectorInit, connector } from './connector.ts'
import {
  BOOTSTRAP_DELAY_MS,
  CONNECTION_HEADROOM,
  CONNECTION_MONITOR_MIN_TIMEOUT_MS,
  DECODE_MAX_CONTROL_MESSAGES,
  DECODE_MAX_IDONTWANT_IDS,
  DECODE_MAX_IHAVE_IDS,
  DECODE_MAX_IWANT_IDS,
  DECODE_MAX_MESSAGES,
  DECODE_MAX_PEER_INFOS,
  DECODE_MAX_SUBSCRIPTIONS,
  DEFAULT_LISTEN,
  DEFAULT_TARGET_CONNECTIONS,
  DIAL_TIMEOUT_MS,
  GOSSIP_D,
  GOSSIP_DHI,
  GOSSIP_DLAZY,
  GOSSIP_DLO,
  GOSSIP_DOUT,
  GOSSIP_DSCORE,
  GOSSIP_HEARTBEAT_MS,
  GOSSIP_HISTORY_GOSSIP,
  GOSSIP_LINK_CHECK_MS,
  INVALID_MESSAGE_DECAY,
  INVALID_MESSAGE_WEIGHT,
  LOOPBACK_CONNECTION_MONITOR_MIN_TIMEOUT_MS,
  LOOPBACK_INBOUND_CONNECTION_THRESHOLD,
  LOOPBACK_MAX_INCOMING_PENDING_CONNECTIONS,
  MAX_CONNECTIONS_PER_TARGET,
  MAX_DNS_LABEL,
  MAX_MESSAGE_BYTES,
  MAX_TOPIC_BYTES_PER_PEER,
  MDNS_INTERVAL_MS,
  MDNS_SERVICE_TAG_PREFIX,
  MDNS_SERVICE_TAG_SUFFIX,
  OPEN_STREAM_TIMEOUT_MS,
  PING_TIMEOUT_MS,
  RPC_FRAME_OVERHEAD_BYTES,
  YAMUX_MAX_STREAM_WINDOW,
} from './constants.ts'
import {
  AlreadySubscribedError,
  asError,
  describeThrown,
  InvalidAddressError,
  MeshNodeStoppedError,
  MessageTooLargeError,
  TopicNotAllowedError,
} from './errors.ts'
import { checkInternals, installAdmission, installAllowlist } from './gossipsub-workarounds.ts'
import { msgIdFn, msgIdToStrFn } from './message-id.ts'
import { type PeerExchange, type PeerExchangeInit, peerExchange } from './peer-exchange.ts'
import { meshTopicPattern, type TopicAllowlist, type TopicRule, topicAllowlist } from './topics.ts'

/** Gossip knobs worth changing; see constants.ts for where each default comes from. */
export interface GossipTuning {
  /** Mesh degree. Default: 3. */
  D?: number
  /** Mesh repair threshold. Default: 2. */
  Dlo?: number
  /** Mesh prune threshold. Default: 4. */
  Dhi?: number
  /** IHAVE gossip fan-out. Default: 3. */
  Dlazy?: number
  /** Heartbeat period in ms. Default: 1000. */
  heartbeatMs?: number
  /**
   * Send our own messages to every subscribed peer (above the publish score threshold) instead of our
   * D mesh peers. Fewer hops, more copies. Default: false (see docs/mesh.md for the measurement).
   */
  floodPublish?: boolean
}

/**
 * How bytes travel between nodes. `tcp` is the real network; `memory` connects nodes of this process
 * only (libp2p's in-memory transport under the same noise, yamux, gossipsub and protocols), with an
 * optional latency per buffer and seeded loss (a lost buffer resets its connection, see
 * src/transport/lossy-memory.ts): for tests that need the whole stack but no sockets.
 */
export type MeshTransport = { kind: 'tcp' } | { kind: 'memory'; latencyMs?: number; loss?: LinkLoss }

export interface MeshNodeInit {
  /** Default TCP. With `memory`, listen addresses look like `/memory/<name>`. */
  transport?: MeshTransport
  /** The node's identity (see identity.ts). Default: a fresh Ed25519 key, i.e. a new peer each start. */
  privateKey?: PrivateKey
  /** Listen multiaddrs. Default: `/ip4/127.0.0.1/tcp/0` (loopback only; the daemon picks its own). */
  listen?: string[]
  /** Addresses to announce instead of the listen addresses (e.g. a public one behind a port forward). */
  announce?: string[]
  /** Peers to dial at start and keep redialling (multiaddrs with `/p2p/<id>`). Default: none. */
  bootstrap?: string[]
  /** LAN discovery by mDNS. Default: true. Tests outside a network namespace must pass false. */
  mdns?: boolean
  /**
   * Mesh name. Scopes the default topic allowlist (`hearsay/<mesh>/<namespace>/v<n>`) and the mDNS
   * service tag, so two meshes on one LAN neither dial each other by mDNS nor track each other's topics.
   * Default: none (any hearsay topic is allowed; mDNS tag `_hearsay._udp.local`).
   */
  meshName?: string
  /**
   * Topics this node will track, subscribe to and relay: exact names or patterns. Every inbound
   * subscription and message on another topic is dropped by gossipsub before it costs memory.
   * Default: `[meshTopicPattern(meshName)]`.
   */
  allowedTopics?: TopicRule[]
  /**
   * For many nodes on one host (tests, benchmarks): exempts 127.0.0.1/::1 from gossipsub's
   * IP-colocation penalty, lifts libp2p's 5-connections-per-second-per-host inbound limit and its
   * 10 pending inbound upgrades, and relaxes the liveness ping. Never in production. Default: false.
   */
  loopbackTesting?: boolean
  /**
   * Private mesh by PeerId allowlist: connections to or from any other peer are refused after the
   * noise handshake proves who the remote is. Default: null (anyone).
   */
  allowPeers?: string[] | null
  /**
   * Private mesh by pre-shared key (libp2p pnet, a swarm key as made by `generateSwarmKey`): every
   * connection is encrypted with it before anything else, so peers without it cannot even
   * handshake. Default: none.
   */
  swarmKey?: Uint8Array
  /** Largest message data published or accepted. Default: 1 MiB. */
  maxMessageBytes?: number
  /**
   * Peers kept connected at most. Beyond it the connector closes the least useful connections once
   * past their grace period, and libp2p refuses inbound connections beyond it plus a headroom of 8
   * (room for newcomers to exchange peers with a full node). A hub raises it to take all its clients.
   * Default: 1.5 × `connector.targetConnections` (8 → 12).
   */
  maxConnections?: number
  /** Gossip tuning. */
  gossip?: GossipTuning
  /** Raw gossipsub options applied last (escape hatch, e.g. for benchmarks). Default: none. */
  gossipsubOverrides?: Partial<GossipsubOpts>
  /** Peer exchange options, or false to disable it. Default: enabled with its defaults. */
  peerExchange?: false | PeerExchangeInit
  /**
   * The anti-entropy protocol (`/hearsay/sync/3.0.0`): when given, the node runs it as the libp2p
   * service `sync`, reached as `node.libp2p.services.sync`. Default: none.
   */
  sync?: SyncServiceInit
  /** Connector (dial on discovery, redial with backoff) options. */
  connector?: ConnectorInit
  /**
   * Called for every gossip message as it comes off the wire, before gossipsub hashes, caches or
   * validates it: false drops it on the spot (a per-neighbour rate limit). A dropped message is not
   * marked seen, so the same message from another neighbour is still taken. Default: admit all.
   */
  admitMessage?: (from: PeerId, topic: string) => boolean
  /** Errors that have no caller to throw to (a failed background dial, a throwing handler). Default: ignored. */
  onError?: (err: Error, context: { where: string; peer?: PeerId; topic?: string }) => void
}

/** A message delivered to a subscriber. */
export interface MeshMessage {
  topic: string
  data: Uint8Array
  /**
   * The neighbour that delivered it. Not necessarily the author: with StrictNoSign gossipsub carries
   * no author, so authorship must be proved inside `data` (a signature per batch).
   */
  from: PeerId
  /** Content-derived message id (base64), the key of gossipsub's seen cache. */
  id: string
}

export type Verdict = 'accept' | 'reject' | 'ignore'

/**
 * Runs before a message is delivered or forwarded. 'accept' delivers and forwards; 'ignore' drops it
 * without blame (use it for "cannot judge": an unknown schema version, a delta we cannot check yet);
 * 'reject' drops it and lowers the score of every peer that sent it (only for provably bad data:
 * a bad signature, an undecodable batch). Must be fast: gossipsub waits for it. A validator that throws
 * counts as 'ignore' (our bug should not get honest peers pruned).
 */
export type MessageValidator = (msg: Omit<MeshMessage, 'id'>) => Verdict | Promise<Verdict>

export type MessageHandler = (msg: MeshMessage) => void

/**
 * Judges a message and acts on it in one step (gossipsub's asynchronous validation): the verdict it
 * resolves to decides forwarding and blame as for `MessageValidator`; a receiver that throws counts as
 * 'ignore'. What it decoded and checked stays in its own scope for whatever it does on 'accept'.
 */
export type MessageReceiver = (msg: MeshMessage) => Verdict | Promise<Verdict>

/** Topology callbacks for peers that speak a protocol (after identify). */
export interface ProtocolWatcher {
  onConnect?(peer: PeerId, connection: Connection): void
  onDisconnect?(peer: PeerId): void
}

export interface MeshStatus {
  peerId: string
  addresses: string[]
  connections: Array<{ peer: string; remoteAddr: string; direction: string; rttMs?: number }>
  topics: Array<{ topic: string; subscribers: number; meshPeers: number }>
}

export interface MeshServices extends Record<string, unknown> {
  identify: Identify
  ping: Ping
  pubsub: GossipSub
  /** Present unless `peerExchange: false`. */
  peerExchange?: PeerExchange
  /** Present when the init has `sync`. */
  sync?: SyncService
}

export interface MeshNode {
  readonly peerId: PeerId
  /** The underlying libp2p node, for advanced use. */
  readonly libp2p: Libp2p<MeshServices>
  /** Dialable addresses, each ending in `/p2p/<peerId>`. */
  addresses(): Multiaddr[]
  /** Subscribes to a topic; one handler per topic. Throws TopicNotAllowedError, AlreadySubscribedError. */
  subscribe(topic: string, onMessage: MessageHandler, validate?: MessageValidator): void
  /**
   * Subscribes with one receiver that judges each message and acts on it; the message is forwarded
   * only once the receiver resolves to 'accept'. One receiver (or handler) per topic. Throws as
   * `subscribe`.
   */
  receive(topic: string, receiver: MessageReceiver): void
  unsubscribe(topic: string): void
  /**
   * Publishes to a topic. Never throws for lack of peers (then `recipients` is 0 and only
   * anti-entropy will carry the data). Identical bytes on the same topic within gossipsub's seen TTL
   * (2 min) are a no-op. Throws TopicNotAllowedError, MessageTooLargeError, MeshNodeStoppedError.
   */
  publish(topic: string, data: Uint8Array): Promise<{ recipients: number }>
  /** Dials a multiaddr (with or without /p2p/) or a known PeerId. Resolves with the remote PeerId. */
  dial(target: string | Multiaddr | PeerId, options?: AbortOptions): Promise<PeerId>
  /**
   * Closes all connections to a peer and stops redialling it. The remote may redial us (and peer
   * exchange may hand it back to us later); to keep a peer away, use block().
   */
  hangUp(peer: PeerId): Promise<void>
  /** Refuses every connection to or from `peer` until unblock(), and closes the current ones. */
  block(peer: PeerId): Promise<void>
  unblock(peer: PeerId): void
  /** Peers with at least one open connection. */
  peers(): PeerId[]
  /** Peers remembered for redial (connected now or recently; bootstrap peers always). */
  knownPeers(): PeerId[]
  /** Peers known to be subscribed to `topic`. */
  topicPeers(topic: string): PeerId[]
  /** Registers a stream handler for a protocol (libp2p 3 handler: `(stream, connection) => void | Promise<void>`). */
  handleProtocol(protocol: string, handler: StreamHandler, options?: StreamHandlerOptions): Promise<void>
  unhandleProtocol(protocol: string): Promise<void>
  /** Calls back when a peer that speaks `protocol` connects / disconnects; returns an unregister function. */
  watchProtocol(protocol: string, watcher: ProtocolWatcher): Promise<() => void>
  /** Opens a stream to `peer` on `protocol` (dialling if needed). Default timeout 10 s for the opening only. */
  openStream(peer: PeerId, protocol: string, options?: AbortOptions): Promise<Stream>
  /** Called with each peer when its first connection opens; returns an unsubscribe function. */
  onPeerConnect(cb: (peer: PeerId) => void): () => void
  /** Called with each peer when its last connection closes; returns an unsubscribe function. */
  onPeerDisconnect(cb: (peer: PeerId) => void): () => void
  /** Round-trip time to `peer` in ms (dials if needed). Default timeout 5 s. */
  ping(peer: PeerId, options?: AbortOptions): Promise<number>
  /** A snapshot for status output and metrics. */
  status(): MeshStatus
  /** gossipsub's score for a peer (negative after it sent rejected messages). */
  score(peer: PeerId): number
  /** Stops everything; idempotent. */
  stop(): Promise<void>
}

export async function createMeshNode(init: MeshNodeInit = {}): Promise<MeshNode> {
  for (const [name, value] of [
    ['maxConnections', init.maxConnections],
    ['connector.targetConnections', init.connector?.targetConnections],
  ] as const) {
    if (value !== undefined && !(Number.isInteger(value) && value >= 1)) {
      throw new RangeError(`${name} must be a whole number of at least 1, not ${value}`)
    }
  }
  const maxMessageBytes = init.maxMessageBytes ?? MAX_MESSAGE_BYTES
  const allowlist = topicAllowlist(init.allowedTopics ?? [meshTopicPattern(init.meshName)])
  // Reporting must never fail in turn: it runs inside catch handlers, where a throw would become an
  // unhandled rejection.
  const onError = (err: Error, context: { where: string; peer?: PeerId; topic?: string }): void => {
    try {
      init.onError?.(err, context)
    } catch {
      // The reporter's own bug: nothing sensible left to tell.
    }
  }
  const allowPeers =
    init.allowPeers == null ? null : new Set(init.allowPeers.map((p) => peerIdFromString(p).toString()))
  const blocked = new Set<string>()
  const denied = (peer: PeerId): boolean =>
    blocked.has(peer.toString()) || (allowPeers != null && !allowPeers.has(peer.toString()))

  // Discovery sources report to the connector, which exists only once libp2p does: late binding.
  let conn: Connector | undefined
  const report = (source: string, pinned: boolean) => (evt: CustomEvent<PeerInfo>) =>
    conn?.discovered(evt.detail, { source, pinned })

  const bootstrapList = (init.bootstrap ?? []).map((a) => checkBootstrapAddr(a))
  const peerDiscovery: NonNullable<Libp2pOptions['peerDiscovery']> = []
  if (bootstrapList.length > 0) {
    peerDiscovery.push(
      tap(bootstrap({ list: bootstrapList, timeout: BOOTSTRAP_DELAY_MS }), report('bootstrap', true)),
    )
  }
  if (init.mdns ?? true) {
    const serviceTag = mdnsServiceTag(init.meshName)
    peerDiscovery.push(tap(mdns({ serviceTag, interval: MDNS_INTERVAL_MS }), report('mdns', false)))
  }

  const libp2p = await createLibp2p<MeshServices>(
    buildLibp2pOptions(init, {
      allowlist,
      maxMessageBytes,
      peerDiscovery,
      denied,
      discovered: (peer, options) => conn?.discovered(peer, options),
      reportDegree: (peer, neighbours) => conn?.reportDegree(peer, neighbours),
      onError,
    }),
  )

  const pubsub = libp2p.services.pubsub
  const internals = checkInternals(pubsub)
  conn = connector({
    ...init.connector,
    maxConnections: maxConnectionsOf(init),
    // Links in a gossip mesh are the ones carrying messages: trimming them costs a regraft.
    keep: (peer) => {
      const id = peer.toString()
      return pubsub.getTopics().some((topic) => internals.getMeshPeers(topic).includes(id))
    },
    onDialError: (peer, err) => {
      init.connector?.onDialError?.(peer, err)
      onError(err, { where: 'dial', peer })
    },
  })(libp2p)
  // Services (peer exchange, sync) register their handlers and topologies as libp2p starts, before
  // it listens, so no early peer is missed.
  conn.start()
  try {
    await libp2p.start()
  } catch (err) {
    conn.stop()
    throw err
  }

  const receivers = new Map<string, MessageReceiver>()
  let stopped = false
  const ensureRunning = (action: string): void => {
    if (stopped) throw new MeshNodeStoppedError(action)
  }
  const checkTopic = (topic: string): void => {
    if (!allowlist.has(topic)) throw new TopicNotAllowedError(topic, "not in this node's topic allowlist")
  }

  // Asynchronous validation: gossipsub hands over every message that passed the size check and
  // forwards it only once we report the receiver's verdict (a reject lowers the sender's score).
  pubsub.addEventListener('gossipsub:message', (evt) => {
    const { propagationSource, msgId, msg } = evt.detail
    const report = (result: TopicValidatorResult) =>
      internals.reportMessageValidationResult(msgId, propagationSource.toString(), result)
    const receiver = receivers.get(msg.topic)
    if (receiver == null) return report(TopicValidatorResult.Ignore)
    const judge = async () =>
      toResult(await receiver({ topic: msg.topic, data: msg.data, from: propagationSource, id: msgId }))
    judge().then(report, (err: unknown) => {
      onError(asError(err), { where: 'receiver', topic: msg.topic, peer: propagationSource })
      report(TopicValidatorResult.Ignore)
    })
  })

  // gossipsub keeps one outbound stream per peer, on whichever connection came first. When a peer has
  // two connections (both sides dialled at once) and the one carrying that stream closes, gossipsub
  // drops the stream but keeps the peer in its mesh, and sends it nothing until the next identify of a
  // connection (measured: messages silently lost). Re-identifying a remaining connection makes
  // gossipsub open a new outbound stream on it.
  libp2p.addEventListener('connection:close', (evt) => {
    const peer = evt.detail.remotePeer
    setTimeout(() => {
      if (stopped || internals.streamsOutbound.has(peer.toString())) return
      if (!pubsub.getPeers().some((p) => p.equals(peer))) return
      const remaining = libp2p.getConnections(peer).find((c) => c.status === 'open')
      if (remaining == null) return
      libp2p.services.identify
        .identify(remaining, { signal: AbortSignal.timeout(OPEN_STREAM_TIMEOUT_MS) })
        .catch((err: unknown) => onError(asError(err), { where: 'gossip stream repair', peer }))
    }, 0)
  })

  // gossipsub forgets a peer whose RPC frame it cannot decode (too large, malformed) but leaves the
  // stream and connection open: no gossip flows either way until the connection closes. A peer that
  // speaks gossipsub, is connected and is unknown to gossipsub twice in a row gets hung up on.
  const gossipMissing = new Set<string>()
  const linkCheck = setInterval(() => {
    void (async () => {
      const known = new Set(pubsub.getPeers().map((p) => p.toString()))
      for (const peer of libp2p.getPeers()) {
        const id = peer.toString()
        if (known.has(id)) {
          gossipMissing.delete(id)
          continue
        }
        const protocols = await libp2p.peerStore
          .get(peer)
          .then((p) => p.protocols)
          .catch(() => [] as string[])
        if (!protocols.some((protocol) => protocol.startsWith('/meshsub/'))) continue
        if (!gossipMissing.has(id)) {
          gossipMissing.add(id)
          continue
        }
        gossipMissing.delete(id)
        onError(new Error('gossip link dropped while connected; closing the connection'), {
          where: 'gossip link check',
          peer,
        })
        await libp2p.hangUp(peer).catch(() => {})
      }
    })().catch((err: unknown) => onError(asError(err), { where: 'gossip link check' }))
  }, GOSSIP_LINK_CHECK_MS)
  linkCheck.unref()

  const node: MeshNode = {
    peerId: libp2p.peerId,
    libp2p,

    addresses() {
      return libp2p.getMultiaddrs()
    },

    subscribe(topic, onMessage, validate) {
      node.receive(topic, async (message) => {
        let verdict: Verdict = 'accept'
        if (validate != null) {
          try {
            verdict = await validate(message)
          } catch (err) {
            onError(asError(err), { where: 'validator', topic: message.topic, peer: message.from })
            return 'ignore'
          }
        }
        if (verdict !== 'accept') return verdict
        try {
          onMessage(message)
        } catch (err) {
          onError(asError(err), { where: 'message handler', topic: message.topic, peer: message.from })
        }
        return 'accept'
      })
    },

    receive(topic, receiver) {
      ensureRunning('subscribe')
      checkTopic(topic)
      if (receivers.has(topic)) throw new AlreadySubscribedError(topic)
      // Score P4 (invalid deliveries) only: without topic params gossipsub blames nobody for a reject.
      // Every other topic score term stays 0: mesh-delivery deficits (P3) would punish honest peers on
      // the low-rate topics a CRDT mesh has.
      internals.score.params.topics[topic] ??= createTopicScoreParams({
        topicWeight: 1,
        timeInMeshWeight: 0,
        firstMessageDeliveriesWeight: 0,
        meshMessageDeliveriesWeight: 0,
        meshFailurePenaltyWeight: 0,
        invalidMessageDeliveriesWeight: INVALID_MESSAGE_WEIGHT,
        invalidMessageDeliveriesDecay: INVALID_MESSAGE_DECAY,
      })
      receivers.set(topic, receiver)
      // Only the size check runs inside gossipsub; everything else waits for the receiver's verdict.
      pubsub.topicValidators.set(topic, async (_peer, msg) =>
        msg.data.byteLength > maxMessageBytes ? TopicValidatorResult.Reject : TopicValidatorResult.Accept,
      )
      pubsub.subscribe(topic)
    },

    unsubscribe(topic) {
      if (stopped) return
      receivers.delete(topic)
      pubsub.topicValidators.delete(topic)
      pubsub.unsubscribe(topic)
    },

    async publish(topic, data) {
      ensureRunning('publish')
      checkTopic(topic)
      if (data.byteLength > maxMessageBytes) throw new MessageTooLargeError(data.byteLength, maxMessageBytes)
      const { recipients } = await pubsub.publish(topic, data)
      return { recipients: recipients.length }
    },

    async dial(target, options) {
      ensureRunning('dial')
      let t: Multiaddr | PeerId
      if (typeof target === 'string') {
        try {
          t = multiaddr(target)
        } catch (err) {
          throw new InvalidAddressError(target, describeThrown(err), { cause: err })
        }
      } else {
        t = target
      }
      const c = await libp2p.dial(t, options)
      return c.remotePeer
    },

    async hangUp(peer) {
      conn?.forget(peer)
      await libp2p.hangUp(peer)
      conn?.forget(peer) // a redial may have been scheduled by the disconnect itself
    },

    async block(peer) {
      blocked.add(peer.toString())
      await node.hangUp(peer)
    },

    unblock(peer) {
      blocked.delete(peer.toString())
    },

    peers() {
      return libp2p.getPeers()
    },

    knownPeers() {
      return conn?.known() ?? []
    },

    topicPeers(topic) {
      return pubsub.getSubscribers(topic)
    },

    async handleProtocol(protocol, handler, options) {
      ensureRunning('handle a protocol')
      await libp2p.handle(protocol, handler, options)
    },

    async unhandleProtocol(protocol) {
      if (stopped) return
      await libp2p.unhandle(protocol)
    },

    async watchProtocol(protocol, watcher) {
      ensureRunning('watch a protocol')
      const seen = new Set<string>()
      const id = await libp2p.register(protocol, {
        // Without a filter onConnect fires again on every identify / identify-push of the peer.
        filter: {
          has: (p) => seen.has(p.toString()),
          add: (p) => void seen.add(p.toString()),
          remove: (p) => void seen.delete(p.toString()),
        },
        onConnect: (peer, connection) => {
          try {
            watcher.onConnect?.(peer, connection)
          } catch (err) {
            onError(asError(err), { where: `${protocol} onConnect`, peer })
          }
        },
        onDisconnect: (peer) => {
          try {
            watcher.onDisconnect?.(peer)
          } catch (err) {
            onError(asError(err), { where: `${protocol} onDisconnect`, peer })
          }
        },
      })
      // register() does not report peers that are already connected: report them now.
      for (const c of libp2p.getConnections()) {
        if (seen.has(c.remotePeer.toString())) continue
        const protocols: string[] = await libp2p.peerStore.get(c.remotePeer).then(
          (p) => p.protocols,
          () => [],
        )
        if (protocols.includes(protocol) && !seen.has(c.remotePeer.toString())) {
          seen.add(c.remotePeer.toString())
          watcher.onConnect?.(c.remotePeer, c)
        }
      }
      return () => libp2p.unregister(id)
    },

    async openStream(peer, protocol, options) {
      ensureRunning('open a stream')
      return libp2p.dialProtocol(peer, protocol, {
        signal: options?.signal ?? AbortSignal.timeout(OPEN_STREAM_TIMEOUT_MS),
      })
    },

    onPeerConnect(cb) {
      const l = (evt: CustomEvent<PeerId>): void => cb(evt.detail)
      libp2p.addEventListener('peer:connect', l)
      return () => libp2p.removeEventListener('peer:connect', l)
    },

    onPeerDisconnect(cb) {
      const l = (evt: CustomEvent<PeerId>): void => cb(evt.detail)
      libp2p.addEventListener('peer:disconnect', l)
      return () => libp2p.removeEventListener('peer:disconnect', l)
    },

    async ping(peer, options) {
      ensureRunning('ping')
      return libp2p.services.ping.ping(peer, {
        signal: options?.signal ?? AbortSignal.timeout(PING_TIMEOUT_MS),
      })
    },

    status() {
      return {
        peerId: libp2p.peerId.toString(),
        addresses: libp2p.getMultiaddrs().map(String),
        connections: libp2p.getConnections().map((c) => ({
          peer: c.remotePeer.toString(),
          remoteAddr: c.remoteAddr.toString(),
          direction: c.direction,
          ...(c.rtt != null ? { rttMs: c.rtt } : {}),
        })),
        topics: pubsub.getTopics().map((topic) => ({
          topic,
          subscribers: pubsub.getSubscribers(topic).length,
          meshPeers: internals.getMeshPeers(topic).length,
        })),
      }
    },

    score(peer) {
      return internals.getScore(peer.toString())
    },

    async stop() {
      clearInterval(linkCheck)
      if (stopped) return
      stopped = true
      receivers.clear()
      conn?.stop()
      await libp2p.stop()
    },
  }
  return node
}

function toResult(v: Verdict): TopicValidatorResult {
  switch (v) {
    case 'accept':
      return TopicValidatorResult.Accept
    case 'reject':
      return TopicValidatorResult.Reject
    case 'ignore':
      return TopicValidatorResult.Ignore
    default:
      return TopicValidatorResult.Ignore
  }
}

/** Peers kept at most: the init's, else 1.5 × the connector's target. */
export function maxConnectionsOf(init: Pick<MeshNodeInit, 'maxConnections' | 'connector'>): number {
  if (init.maxConnections !== undefined) return init.maxConnections
  const target = init.connector?.targetConnections ?? DEFAULT_TARGET_CONNECTIONS
  return Math.ceil(target * MAX_CONNECTIONS_PER_TARGET)
}

/** Wraps a discovery factory so its 'peer' events also reach `listener`. */
function tap<C>(
  factory: (components: C) => PeerDiscovery,
  listener: (evt: CustomEvent<PeerInfo>) => void,
): (components: C) => PeerDiscovery {
  return (components) => {
    const d = factory(components)
    d.addEventListener('peer', listener)
    return d
  }
}

/** `_hearsay-<mesh>._udp.local`; a mesh name that is not a valid DNS label is replaced by its hash. */
export function mdnsServiceTag(meshName?: string): string {
  if (meshName == null) return `${MDNS_SERVICE_TAG_PREFIX}${MDNS_SERVICE_TAG_SUFFIX}`
  let label = `${MDNS_SERVICE_TAG_PREFIX}-${meshName}`
  if (label.length > MAX_DNS_LABEL || !/^_[A-Za-z0-9-]+$/.test(label)) {
    label = `${MDNS_SERVICE_TAG_PREFIX}-${createHash('sha256').update(meshName).digest('hex').slice(0, 16)}`
  }
  return `${label}${MDNS_SERVICE_TAG_SUFFIX}`
}

/** What `buildLibp2pOptions` needs beyond the init: pieces the node keeps references to. */
export interface Libp2pOptionParts {
  allowlist: TopicAllowlist
  maxMessageBytes: number
  peerDiscovery: NonNullable<Libp2pOptions['peerDiscovery']>
  /** The PeerId allowlist and runtime block list, checked once noise has proved the identity. */
  denied(peer: PeerId): boolean
  /** Where peer exchange hands the peers it learns (the node's connector). */
  discovered: Connector['discovered']
  /** Where peer exchange reports how many neighbours a peer has (the node's connector). */
  reportDegree?: Connector['reportDegree']
  /** Reports errors that have no caller (here: failed peer exchanges). */
  onError(err: Error, context: { where: string; peer?: PeerId }): void
}

/**
 * The libp2p options of a mesh node, from its init: transport, encryption, muxer, limits, gater and
 * services (gossipsub with the workarounds of ./gossipsub-workarounds.ts). Pure: it builds factories
 * and starts nothing.
 */
export function buildLibp2pOptions(
  init: MeshNodeInit,
  parts: Libp2pOptionParts,
): Libp2pOptions<MeshServices> {
  const { allowlist, maxMessageBytes, peerDiscovery, denied } = parts
  const pexInit = init.peerExchange === false ? undefined : (init.peerExchange ?? {})
  const loopback = init.loopbackTesting === true
  const gossipOpts: Partial<GossipsubOpts> = {
    globalSignaturePolicy: 'StrictNoSign',
    msgIdFn,
    msgIdToStrFn,
    emitSelf: false,
    fallbackToFloodsub: false,
    asyncValidation: true,
    allowPublishToZeroTopicPeers: true,
    ignoreDuplicatePublishError: true,
    floodPublish: init.gossip?.floodPublish ?? false,
    D: init.gossip?.D ?? GOSSIP_D,
    Dlo: init.gossip?.Dlo ?? GOSSIP_DLO,
    Dhi: init.gossip?.Dhi ?? GOSSIP_DHI,
    Dlazy: init.gossip?.Dlazy ?? GOSSIP_DLAZY,
    Dout: GOSSIP_DOUT,
    Dscore: GOSSIP_DSCORE,
    heartbeatInterval: init.gossip?.heartbeatMs ?? GOSSIP_HEARTBEAT_MS,
    mcacheGossip: GOSSIP_HISTORY_GOSSIP,
    // Replaced by our allowlist below; a non-null set here makes gossipsub consult it at all.
    allowedTopics: [],
    maxTopicBytesPerPeer: MAX_TOPIC_BYTES_PER_PEER,
    maxInboundDataLength: maxMessageBytes + RPC_FRAME_OVERHEAD_BYTES,
    decodeRpcLimits: {
      maxSubscriptions: DECODE_MAX_SUBSCRIPTIONS,
      maxMessages: DECODE_MAX_MESSAGES,
      maxIhaveMessageIDs: DECODE_MAX_IHAVE_IDS,
      maxIwantMessageIDs: DECODE_MAX_IWANT_IDS,
      maxIdontwantMessageIDs: DECODE_MAX_IDONTWANT_IDS,
      maxControlMessages: DECODE_MAX_CONTROL_MESSAGES,
      maxPeerInfos: DECODE_MAX_PEER_INFOS,
    },
    scoreParams: loopback ? { IPColocationFactorWhitelist: new Set(['127.0.0.1', '::1']) } : {},
    ...init.gossipsubOverrides,
  }

  return {
    start: false,
    ...(init.privateKey != null ? { privateKey: init.privateKey } : {}),
    addresses: {
      listen:
        init.listen ?? (init.transport?.kind === 'memory' ? [`/memory/${randomUUID()}`] : DEFAULT_LISTEN),
      ...(init.announce != null ? { announce: init.announce } : {}),
    },
    transports: [
      init.transport?.kind === 'memory'
        ? lossyMemory({ latencyMs: init.transport.latencyMs, loss: init.transport.loss })
        : tcp(),
    ],
    connectionEncrypters: [noise()],
    ...(init.swarmKey !== undefined ? { connectionProtector: preSharedKey({ psk: init.swarmKey }) } : {}),
    streamMuxers: [guardedYamux({ streamOptions: { maxStreamWindowSize: YAMUX_MAX_STREAM_WINDOW } })],
    peerDiscovery,
    connectionManager: {
      maxConnections: maxConnectionsOf(init) + CONNECTION_HEADROOM,
      dialTimeout: DIAL_TIMEOUT_MS,
      ...(loopback
        ? {
            inboundConnectionThreshold: LOOPBACK_INBOUND_CONNECTION_THRESHOLD,
            maxIncomingPendingConnections: LOOPBACK_MAX_INCOMING_PENDING_CONNECTIONS,
          }
        : {}),
    },
    connectionMonitor: {
      pingTimeout: {
        minTimeout: loopback ? LOOPBACK_CONNECTION_MONITOR_MIN_TIMEOUT_MS : CONNECTION_MONITOR_MIN_TIMEOUT_MS,
      },
    },
    // The PeerId allowlist and the runtime block list; both checked once noise has proved the identity.
    connectionGater: {
      denyDialPeer: denied,
      denyInboundEncryptedConnection: denied,
      denyOutboundEncryptedConnection: denied,
    },
    services: {
      identify: identify(),
      ping: ping(),
      pubsub: (components: Parameters<ReturnType<typeof gossipsub>>[0]) => {
        const gs = gossipsub(gossipOpts)(components)
        installAllowlist(gs, allowlist)
        if (init.admitMessage !== undefined) installAdmission(gs, init.admitMessage)
        return gs
      },
      ...(pexInit !== undefined
        ? {
            peerExchange: peerExchange({
              ...pexInit,
              connector: { discovered: parts.discovered, reportDegree: parts.reportDegree },
              onError: (peer, err) => {
                pexInit.onError?.(peer, err)
                parts.onError(err, { where: 'peer-exchange', peer })
              },
            }),
          }
        : {}),
      ...(init.sync !== undefined ? { sync: syncService(init.sync) } : {}),
    },
  }
}

/**
 * yamux opens a new stream by sending its first frame from a microtask. When the connection resets in
 * between (measured on lossy links), that send throws StreamStateError out of the microtask: an
 * uncaught exception, which stops the daemon. A frame for a connection that is closed has nowhere to
 * go: the wrapped muxer drops it instead of throwing. Streams still fail on their own state checks.
 */
function guardedYamux(init: Parameters<typeof yamux>[0]): ReturnType<typeof yamux> {
  const factory = yamux(init)
  return () => {
    const muxers = factory()
    const create = muxers.createStreamMuxer.bind(muxers)
    muxers.createStreamMuxer = (maConn) => {
      const muxer = create(maConn)
      const sender = muxer as unknown as { send(data: unknown): boolean }
      const send = sender.send.bind(muxer)
      sender.send = (data) => {
        try {
          return send(data)
        } catch (err) {
          if (asError(err).name === 'StreamStateError' && maConn.status !== 'open') return true
          throw err
        }
      }
      return muxer
    }
    return muxers
  }
}

function checkBootstrapAddr(a: string): string {
  let ma: Multiaddr
  try {
    ma = multiaddr(a)
  } catch (err) {
    throw new InvalidAddressError(a, describeThrown(err), { cause: err })
  }
  if (!ma.getComponents().some((c) => c.name === 'p2p')) {
    throw new InvalidAddressError(a, 'a bootstrap address must end in /p2p/<peer id>')
  }
  return a
}

/** A new pre-shared swarm key for a private mesh (the pnet key file format, as bytes to store). */
export function generateSwarmKey(): Uint8Array {
  const key = new Uint8Array(95)
  generatePnetKey(key)
  return key
}

import type { PrivateKey } from '@libp2p/interface'
import { peerIdFromString } from '@libp2p/peer-id'
import { DEFAULT_GOSSIP_RATE_LIMIT, GossipAdmission, peerIdsOfAddresses } from '../gossip/admission.ts'
import { DeltaBatcher } from '../gossip/batcher.ts'
import { GossipPublisher } from '../gossip/publisher.ts'
import { batchReceiver } from '../gossip/receiver.ts'
import { TurnBudget } from '../gossip/turn-budget.ts'
import { describeDialFailure, describeThrown } from '../mesh/errors.ts'
import { createMeshNode, type MeshNode, type MeshTransport } from '../mesh/node.ts'
import { meshTopic } from '../mesh/topics.ts'
import type { Replica } from '../replica/replica.ts'
import { DEFAULT_SYNC_INTERVAL_MS, SYNC_PROTOCOL } from '../sync/constants.ts'
import { SyncQuota, type SyncQuotaLimits } from '../sync/quota.ts'
import { SyncProtocolError } from '../sync/session.ts'
import { AckTracker } from './ack-tracker.ts'
import { GarbageCollector } from './gc-service.ts'
import { Membership } from './membership.ts'
import type { HearsayPeer, MeshAttachment, MeshCounters, PeerInfo } from './peer.ts'
import { PeriodicTask } from './periodic.ts'
import { RttPinger } from './ping-service.ts'
import { type MeshInsight, PeerActivity } from './replication-state.ts'
import { type SyncRequest, SyncScheduler } from './sync-scheduler.ts'

/** How a peer joins the network. Every field has a default suitable for one laptop on a LAN. */
export interface MeshOptions {
  privateKey: PrivateKey
  /** Name of the mesh: peers only replicate with peers of the same mesh. Default 'default'. */
  meshName?: string
  /** Multiaddrs to listen on. Default ['/ip4/0.0.0.0/tcp/0']. */
  listen?: string[]
  /** How bytes travel: TCP (default) or libp2p's in-memory transport (tests; same process only). */
  transport?: MeshTransport
  /** Multiaddrs to dial at start and keep connected to. */
  bootstrap?: string[]
  /** LAN discovery over multicast DNS. Default true. */
  mdns?: boolean
  /** Relax per-IP limits for many peers on 127.0.0.1 (tests and benchmarks only). */
  loopbackTesting?: boolean
  /**
   * Client-server shape: dial only these hub addresses; no mDNS, no peer exchange. The protocol is
   * unchanged (the hub is the client's only gossip neighbour and sync partner).
   */
  hub?: string[]
  /** Act as a hub: accept many clients, never go looking for peers. */
  isHub?: boolean
  /**
   * Neighbours a mesh peer keeps (it dials more only below this, and trims above 1.5 times it).
   * Default 8. Not for hubs and their clients.
   */
  meshPeers?: number
  /** Gossip batching window, ms. Default 2. */
  batchDelayMs?: number
  /** Period of anti-entropy with one random peer, ms. Default 10 s. */
  syncIntervalMs?: number
  /** Period of tombstone collection, ms. Default 30 s. */
  gcIntervalMs?: number
  /** Period of RTT pings to connected peers, ms. Default 15 s. */
  pingIntervalMs?: number
  /** Private mesh: only these PeerIds may connect. Default: anyone. */
  allowPeers?: string[]
  /** Private mesh: a pre-shared swarm key (see `generateSwarmKey`). Default: none. */
  swarmKey?: Uint8Array
  /**
   * Gossip messages per second one neighbour may deliver (burst: 2 s worth). Checked as each message
   * comes off the wire; beyond it messages are dropped unchecked. A client's `hub` peers are exempt
   * (they relay everyone's batches). Default 1,000.
   */
  /** Bytes and entries one peer may send us by anti-entropy per minute (default DEFAULT_SYNC_QUOTA). */
  syncQuota?: Partial<SyncQuotaLimits>
  gossipRateLimit?: number
  /** Gossip mesh degree (D). Default 4. */
  gossipDegree?: number
  /** Receives one line per notable event; default silent. */
  log?: MeshLog
}

export interface MeshLog {
  info(fields: object, message: string): void
  warn(fields: object, message: string): void
}

export type { MeshCounters }

export interface HearsayMesh extends MeshAttachment {
  readonly node: MeshNode
  readonly membership: Membership
  /** Anti-entropy sessions requested so far, by reason (`scheduler.requested`). */
  readonly scheduler: SyncScheduler
  readonly counters: MeshCounters
  /** Connections, sessions and their events per peer (see replication-state.ts). */
  readonly insight: MeshInsight
  /** Closes connections to a peer; it may come back (discovery, redial). */
  hangUp(peerId: string): Promise<void>
  /** Refuses every connection to or from a peer until unblock (partitions, operator action). */
  block(peerId: string): Promise<void>
  unblock(peerId: string): void
}

export { DEFAULT_GOSSIP_RATE_LIMIT }

/** Gossip validations (signature check, then merge) started per event-loop turn at most. */
const VALIDATIONS_PER_TURN = 32

/**
 * A hub forwards every client's batch to every other client at once: its gossip mesh must hold all
 * of them. With the default degree (4) it would forward to 4 clients and leave the rest to IHAVE
 * gossip on the next heartbeat (measured: p50 ~470 ms instead of a few ms with 8 peers). Beyond
 * Dhi clients, the rest still get messages through IHAVE/IWANT and anti-entropy, only later.
 */
const HUB_GOSSIP = { D: 64, Dlo: 32, Dhi: 256, Dlazy: 8, floodPublish: true }

/** A hub client's cap on the delay between two redials of its hub (the default cap is 60 s). */
export const HUB_REDIAL_MAX_MS = 2_000

export async function attachMesh(peer: HearsayPeer, options: MeshOptions): Promise<HearsayMesh> {
  const meshName = options.meshName ?? 'default'
  const hubMode = options.hub !== undefined && options.hub.length > 0
  const log = options.log
  // Batching keeps honest traffic below this: one writer's 10,000 writes/s travel as ~500 batches/s.
  // A client's hubs relay every other client's batches: they are not held to one neighbour's rate.
  const admission = new GossipAdmission({
    ratePerSecond: options.gossipRateLimit ?? DEFAULT_GOSSIP_RATE_LIMIT,
    exempt: hubMode ? peerIdsOfAddresses(options.hub ?? []) : [],
  })
  const logged = new Set<string>()
  const counters: MeshCounters = {
    gossipPublished: 0,
    gossipBytesSent: 0,
    gossipReceived: 0,
    gossipBytesReceived: 0,
    gossipRejected: 0,
    gossipIgnored: 0,
    gossipThrottled: 0,
    entriesMerged: 0,
    syncSessions: 0,
    syncFailures: 0,
    syncBytesSent: 0,
    syncBytesReceived: 0,
    syncEntriesReceived: 0,
    tombstonesCollected: 0,
  }
  const joined = new Map<string, Replica>()
  // What happened with each peer, as events and as a record: fed by the callbacks below.
  const activity = new PeerActivity()
  const node = await createMeshNode({
    privateKey: options.privateKey,
    transport: options.transport,
    listen: options.listen ?? (options.transport?.kind === 'memory' ? undefined : ['/ip4/0.0.0.0/tcp/0']),
    bootstrap: hubMode ? options.hub : options.bootstrap,
    mdns: hubMode || options.isHub ? false : (options.mdns ?? true),
    meshName,
    loopbackTesting: options.loopbackTesting,
    allowPeers: options.allowPeers,
    swarmKey: options.swarmKey,
    // A hub serves many clients and never goes looking for peers; a client talks to its hub only.
    peerExchange: hubMode || options.isHub ? false : undefined,
    // A hub client has no other neighbour: it redials a lost hub at least every HUB_REDIAL_MAX_MS, so
    // it is back within about that long of the hub's restart, however long the hub was away.
    connector: options.isHub
      ? { redial: false }
      : hubMode
        ? { redialMaxMs: HUB_REDIAL_MAX_MS }
        : options.meshPeers !== undefined
          ? { targetConnections: options.meshPeers }
          : undefined,
    maxConnections: options.isHub ? 1024 : undefined,
    gossip: options.isHub
      ? HUB_GOSSIP
      : options.gossipDegree !== undefined
        ? { D: options.gossipDegree }
        : undefined,
    onError: (error, context) => {
      if (context.where === 'dial' && context.peer !== undefined)
        activity.connectFailed(context.peer.toString(), describeDialFailure(error))
      logOnce(
        'mesh',
        context.peer?.toString(),
        context.where === 'dial' ? describeDialFailure(error) : error,
        context,
      )
    },
    // The anti-entropy protocol, a libp2p service of the node. Its callbacks reach membership and
    // acks, made below once the node exists: a session needs a joined namespace, and join() only
    // runs once they do.
    sync: {
      replica: (namespace) => joined.get(namespace),
      quota: new SyncQuota(options.syncQuota),
      onStart: (remote, namespace, role) => activity.syncStarted(remote.toString(), namespace, role),
      onSession: (event) => {
        counters.syncSessions++
        counters.syncBytesSent += event.bytesSent
        counters.syncBytesReceived += event.bytesReceived
        counters.syncEntriesReceived += event.stats.entriesReceived
        const remote = event.peer.toString()
        membership.saw(remote)
        if (event.stats.equal) {
          membership.holds(remote, event.namespace, event.localContext)
        } else {
          if (event.stats.remoteContext !== undefined)
            membership.holds(remote, event.namespace, event.stats.remoteContext)
          // The session ended only after the other side merged what we sent: it holds our context too.
          if (event.role === 'initiator') membership.holds(remote, event.namespace, event.localContext)
        }
        acks.changed()
        // A hub passes on what a session brought: its clients meet only through it.
        if (!stopped && scheduler.received(event.namespace, event.stats.entriesReceived))
          setTimeout(
            () => runAll(scheduler.relayDue(event.namespace, connectedPeers())),
            scheduler.pushDelayMs,
          ).unref()
        activity.syncCompleted(remote, event.namespace, {
          role: event.role,
          durationMs: event.durationMs,
          bytesSent: event.bytesSent,
          bytesReceived: event.bytesReceived,
          entriesReceived: event.stats.entriesReceived,
          equal: event.stats.equal,
        })
      },
      onError: (error, remote, namespace) => {
        counters.syncFailures++
        const code = error instanceof SyncProtocolError ? error.code : undefined
        activity.syncFailed(remote.toString(), namespace, describeThrown(error), code)
        if (error instanceof SyncProtocolError && error.code === 'remote-not-joined') return
        logOnce('sync', remote.toString(), error, { namespace }, 'anti-entropy failed: ')
      },
    },
    // Checked as each message comes off the wire: a flood costs a counter increment per message.
    admitMessage: (from, topic) => {
      if (admission.admit(from.toString())) return true
      counters.gossipThrottled++
      logOnce('gossip', from.toString(), 'gossip above the rate limit: dropping', { topic })
      return false
    },
  })
  // createMeshNode lists the service whenever `sync` is given.
  const sync = node.libp2p.services.sync!
  const self = node.peerId.toString()
  const membership = new Membership({ self })
  const topicOf = (namespace: string) => meshTopic(meshName, namespace)
  const connectedPeers = () => node.peers().map((p) => p.toString())
  let stopped = false

  // Errors from peers are logged once per (peer, kind), so a hostile peer cannot flood the log.
  // `problem` is whatever was thrown or rejected: libp2p streams reject with undefined at times.
  function logOnce(
    kind: string,
    peerId: string | undefined,
    problem: unknown,
    fields: object = {},
    prefix = '',
  ): void {
    const message = prefix + describeThrown(problem)
    const key = `${kind} ${peerId ?? ''} ${message.slice(0, 80)}`
    if (logged.has(key)) return
    if (logged.size > 10_000) logged.clear()
    logged.add(key)
    log?.warn({ ...fields, kind, peer: peerId }, message)
  }

  // Which peer, when, why: pure; this shell only runs the sessions it asks for.
  const scheduler = new SyncScheduler({
    self,
    alwaysInitiate: hubMode,
    onRequest: (request) => activity.requested(request.peer, request.namespace, request.reason),
    neverInitiate: options.isHub === true,
    relaysSessions: options.isHub === true,
  })
  const runAll = (requests: SyncRequest[]): void => {
    for (const request of requests)
      void sync
        .syncWith(peerIdFromString(request.peer), request.namespace, undefined, {
          push: request.reason === 'publish-reached-nobody' || request.reason === 'relay',
        })
        .catch(() => {})
  }

  // `?ack=N`: waits on what sync sessions teach membership and on peers connecting.
  const acks = new AckTracker({
    connectedPeers,
    holds: (peerId, namespace, replica, counter) => membership.hasDot(peerId, namespace, replica, counter),
    holders: (namespace, replica, counter) => membership.holdersOf(namespace, replica, counter),
    // A session both pushes the write and tells us, once it is durable there, what the peer holds.
    push: (peerId, namespace, signal) => {
      const request = scheduler.ack(peerId, namespace)
      return sync.syncWith(peerIdFromString(request.peer), request.namespace, signal, { push: true }).then(
        () => true,
        (error: unknown) => {
          // It does not replicate the namespace, or does not speak the sync protocol at all.
          if (error instanceof SyncProtocolError && error.code === 'remote-not-joined') return false
          if ((error as { name?: string }).name === 'UnsupportedProtocolError') return false
          throw error
        },
      )
    },
  })

  acks.start()

  const publisher = new GossipPublisher({
    node,
    counters,
    published: (namespace, outcome) => {
      if (outcome.error !== undefined && !stopped)
        logOnce('gossip', undefined, outcome.error, { namespace }, 'publish failed: ')
      const failed = outcome.error !== undefined
      if (stopped || !scheduler.published(namespace, { ...outcome, failed, connected: node.peers().length }))
        return
      // Connected but nobody took it (gossip links still forming just after a connect): push by
      // anti-entropy soon rather than at the next periodic round.
      setTimeout(() => runAll(scheduler.pushDue(namespace, connectedPeers())), scheduler.pushDelayMs).unref()
    },
  })
  const batcher = new DeltaBatcher({
    delayMs: options.batchDelayMs,
    send: (namespace, delta) => void publisher.publish(namespace, delta),
  })

  // Signature checks (and the merges they lead to) spread over event-loop turns, so a burst of gossip
  // cannot starve the HTTP API and the pings.
  const validationTurns = new TurnBudget({ perTurn: VALIDATIONS_PER_TURN })

  function join(replica: Replica): void {
    if (joined.has(replica.namespace)) return
    joined.set(replica.namespace, replica)
    node.receive(
      topicOf(replica.namespace),
      batchReceiver({
        topic: topicOf(replica.namespace),
        namespace: replica.namespace,
        self,
        budget: validationTurns,
        replica,
        counters,
        heard: (author, neighbour, delta) => {
          membership.saw(author)
          membership.saw(neighbour, { connected: true })
          // Seen, not held: the neighbour forwards before its merge is durable, so acks and garbage
          // collection never count this; the replication figures do. We publish with no receipt, so
          // our own batches teach nothing.
          membership.sawDots(author, replica.namespace, delta.context)
          if (neighbour !== author) membership.sawDots(neighbour, replica.namespace, delta.context)
        },
        problem: (kind, peerId, message, fields) => logOnce(kind, peerId, message, fields),
      }),
    )
    publisher.addTopic(replica.namespace, topicOf(replica.namespace))
    replica.on('delta', batcher.adder(replica.namespace))
    // Catch up with everyone already connected.
    runAll(scheduler.joined(replica.namespace, connectedPeers()))
  }

  const unwatch = await node.watchProtocol(SYNC_PROTOCOL, {
    onConnect: (remote) => {
      membership.saw(remote.toString(), { connected: true })
      activity.connected(remote.toString())
      acks.changed()
      runAll(scheduler.connected(remote.toString(), joined.keys()))
    },
    onDisconnect: (remote) => {
      membership.disconnected(remote.toString())
      activity.disconnected(remote.toString())
    },
  })

  const periodicSync = new PeriodicTask({
    periodMs: options.syncIntervalMs ?? DEFAULT_SYNC_INTERVAL_MS,
    task: () =>
      Promise.allSettled(
        scheduler
          .periodic(connectedPeers(), joined.keys())
          .map((request) => sync.syncWith(peerIdFromString(request.peer), request.namespace)),
      ),
  })
  const collector = new GarbageCollector({
    periodMs: options.gcIntervalMs ?? 30_000,
    replicas: () => joined.values(),
    stableContext: (namespace, own) =>
      membership.stableContext(namespace, own, (peerId) =>
        node.topicPeers(topicOf(namespace)).some((p) => p.toString() === peerId),
      ),
    collected: (count) => {
      counters.tombstonesCollected += count
    },
  })
  const pinger = new RttPinger({
    periodMs: options.pingIntervalMs ?? 15_000,
    peers: connectedPeers,
    ping: (peerId, signal) => node.ping(peerIdFromString(peerId), { signal }),
    knownRtt: (peerId) =>
      node.libp2p.getConnections(peerIdFromString(peerId)).find((c) => c.rtt !== undefined)?.rtt,
    measured: (peerId, rttMs) => membership.saw(peerId, { connected: true, rttMs }),
  })
  const services = [periodicSync, collector, pinger]
  for (const service of services) service.start()

  const mesh: HearsayMesh = {
    node,
    membership,
    scheduler,
    counters,
    insight: { activity, members: () => membership.list(), connectedPeers },
    syncProgress: () => sync.progress(),
    syncWaiting: (namespace) => sync.waiting(namespace),
    peerId: self,
    addresses: () => node.addresses().map((a) => a.toString()),
    peers: (): PeerInfo[] => {
      const connected = new Set(node.peers().map((p) => p.toString()))
      // Peers found by mDNS or that dialled in have no dialled address: show where they connect from.
      const observed = new Map(
        node.libp2p.getConnections().map((c) => [c.remotePeer.toString(), c.remoteAddr.toString()]),
      )
      return membership.list().map((m) => ({
        peerId: m.peerId,
        addresses:
          m.addresses.length > 0 || !observed.has(m.peerId) ? m.addresses : [observed.get(m.peerId)!],
        connected: connected.has(m.peerId),
        rttMs: m.rttMs,
        lastSeen: m.lastSeen,
      }))
    },
    dial: async (address, signal) => {
      const remote = await node.dial(address, { signal })
      membership.saw(remote.toString(), { connected: true, addresses: [address] })
      return remote.toString()
    },
    join,
    leave: (namespace) => {
      if (!joined.delete(namespace)) return
      node.unsubscribe(topicOf(namespace))
    },
    forget: (peerId) => {
      if (node.peers().some((p) => p.toString() === peerId)) return false
      activity.forget(peerId)
      return membership.forget(peerId)
    },
    replicatedTo: (namespace, replica, counter, count, signal) =>
      acks.waitFor(namespace, replica, counter, count, signal),
    hangUp: async (peerId) => {
      const target = node.peers().find((p) => p.toString() === peerId)
      if (target !== undefined) await node.hangUp(target)
    },
    block: (peerId) => node.block(peerIdFromString(peerId)),
    unblock: (peerId) => node.unblock(peerIdFromString(peerId)),
    stop: async () => {
      if (stopped) return
      stopped = true
      for (const service of services) service.stop()
      acks.stop()
      batcher.flushAll()
      unwatch()
      await node.stop() // stops the sync service with it
    },
  }
  peer.attach(mesh)
  log?.info({ peerId: self, addresses: mesh.addresses(), mesh: meshName }, 'joined the mesh')
  return mesh
}

import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client'
import type { HearsayPeer, MeshCounters as PeerMeshCounters } from '../peer/peer.ts'

/**
 * Prometheus metrics of one daemon, on a registry of its own (not prom-client's global one, so tests
 * can run several apps in one process). Counters the daemon itself sees (requests, writes, changes,
 * ack waits, convergence lag) are counted as they happen; gauges of the peer and the store are read
 * at scrape time, so an unscraped daemon pays nothing for them.
 */

/** Running totals a mesh keeps; a peer without a mesh reports zeros. */
type MeshCounters = Partial<PeerMeshCounters>

/**
 * Process-wide counts of events no request or peer owns. The process's `unhandledRejection` handler
 * increments them; each daemon's registry reports them (one daemon per process in production).
 */
const processTotals = { unhandledRejections: 0 }

/** Counts a promise rejection nobody handled (the daemon logs it and keeps running). */
export function countUnhandledRejection(): void {
  processTotals.unhandledRejections++
}

export type WriteOp = 'put' | 'delete' | 'increment' | 'reset' | 'set_add' | 'set_remove'

export class DaemonMetrics {
  readonly registry = new Registry()
  private readonly requests: Counter<'method' | 'route' | 'status'>
  private readonly duration: Histogram<'route'>
  private readonly writes: Counter<'namespace' | 'op'>
  private readonly changes: Counter<'namespace' | 'origin'>
  private readonly lag: Histogram<never>
  private readonly ackWaits: Counter<'outcome'>
  private readonly watchClients: Gauge<never>

  constructor(peer: HearsayPeer) {
    const registers = [this.registry]
    collectDefaultMetrics({ register: this.registry })
    this.requests = new Counter({
      name: 'hearsay_http_requests_total',
      help: 'HTTP requests answered, by route template and status',
      labelNames: ['method', 'route', 'status'],
      registers,
    })
    this.duration = new Histogram({
      name: 'hearsay_http_request_duration_seconds',
      help: 'Time to answer an HTTP request (watch streams count until their headers are sent)',
      labelNames: ['route'],
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5],
      registers,
    })
    this.writes = new Counter({
      name: 'hearsay_writes_total',
      help: 'Local writes acknowledged through the API',
      labelNames: ['namespace', 'op'],
      registers,
    })
    this.changes = new Counter({
      name: 'hearsay_key_changes_total',
      help: 'Keys whose state changed after commit; origin=remote counts keys changed by merges from other peers',
      labelNames: ['namespace', 'origin'],
      registers,
    })
    this.lag = new Histogram({
      name: 'hearsay_convergence_lag_seconds',
      help: "Age of another peer's register write when it reached this peer (HLC wall time to merge)",
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300],
      registers,
    })
    this.ackWaits = new Counter({
      name: 'hearsay_ack_waits_total',
      help: 'Writes with ?ack=N, by whether N peers held the write before the timeout',
      labelNames: ['outcome'],
      registers,
    })
    this.watchClients = new Gauge({ name: 'hearsay_watch_clients', help: 'Open watch streams', registers })

    new Gauge({
      name: 'hearsay_store_size_bytes',
      help: 'Bytes the store uses on disk (or in memory)',
      registers,
      collect() {
        this.set(peer.store.sizeBytes())
      },
    })
    new Gauge({
      name: 'hearsay_namespace_entries',
      help: 'CRDT entries held per namespace, tombstones included',
      labelNames: ['namespace'],
      registers,
      collect() {
        this.reset()
        for (const ns of peer.namespaces()) this.set({ namespace: ns }, peer.namespace(ns).entryCount)
      },
    })
    new Gauge({
      name: 'hearsay_namespace_tombstones',
      help: 'Tombstones held per namespace (collected once every known member has seen them)',
      labelNames: ['namespace'],
      registers,
      collect() {
        this.reset()
        for (const ns of peer.namespaces()) this.set({ namespace: ns }, peer.namespace(ns).tombstoneCount)
      },
    })
    new Gauge({
      name: 'hearsay_sync_progress',
      help: 'Anti-entropy under way, by namespace: sessions running and waiting, entries received and merged so far',
      labelNames: ['namespace', 'measure'],
      registers,
      collect() {
        this.reset()
        for (const ns of peer.namespaces()) {
          const sync = peer.syncStatus(ns)
          this.set({ namespace: ns, measure: 'sessions' }, sync.sessions)
          this.set({ namespace: ns, measure: 'waiting' }, sync.waiting)
          this.set({ namespace: ns, measure: 'entries_received' }, sync.entriesReceived)
          this.set({ namespace: ns, measure: 'entries_merged' }, sync.entriesMerged)
        }
      },
    })
    new Gauge({
      name: 'hearsay_peers',
      help: 'Peers this peer knows of, by whether a connection is open',
      labelNames: ['state'],
      registers,
      collect() {
        const peers = peer.peers()
        const connected = peers.filter((p) => p.connected).length
        this.set({ state: 'connected' }, connected)
        this.set({ state: 'known' }, peers.length)
      },
    })
    new Gauge({
      name: 'hearsay_mesh_attached',
      help: '1 when the peer runs with a mesh (networking), 0 when alone',
      registers,
      collect() {
        this.set(peer.attachedMesh === undefined ? 0 : 1)
      },
    })
    const counters = (): MeshCounters => peer.attachedMesh?.counters ?? {}
    /** A counter whose value the mesh keeps: set at scrape time from its running totals. */
    const meshCounter = (
      name: string,
      help: string,
      label: string,
      values: Record<string, keyof PeerMeshCounters>,
    ) =>
      new Counter({
        name,
        help,
        labelNames: [label],
        registers,
        collect() {
          const totals = counters()
          this.reset()
          for (const [labelValue, field] of Object.entries(values))
            this.inc({ [label]: labelValue }, totals[field] ?? 0)
        },
      })
    meshCounter('hearsay_sync_rounds_total', 'Anti-entropy sessions, by outcome', 'outcome', {
      completed: 'syncSessions',
      failed: 'syncFailures',
    })
    meshCounter('hearsay_gossip_messages_total', 'Gossip messages (signed delta batches)', 'direction', {
      published: 'gossipPublished',
      received: 'gossipReceived',
      rejected: 'gossipRejected',
      ignored: 'gossipIgnored',
      throttled: 'gossipThrottled',
    })
    meshCounter(
      'hearsay_merged_entries_total',
      'CRDT entries merged from other peers, by how they came',
      'via',
      {
        gossip: 'entriesMerged',
        sync: 'syncEntriesReceived',
      },
    )
    new Counter({
      name: 'hearsay_unhandled_rejections_total',
      help: 'Promise rejections nobody handled (each is a bug: logged at error level, the daemon keeps running)',
      registers,
      collect() {
        this.reset()
        this.inc(processTotals.unhandledRejections)
      },
    })
    new Counter({
      name: 'hearsay_tombstones_collected_total',
      help: 'Tombstones collected once every known member had seen them',
      registers,
      collect() {
        this.reset()
        this.inc(counters().tombstonesCollected ?? 0)
      },
    })
    new Counter({
      name: 'hearsay_protocol_bytes_total',
      help: 'Bytes of hearsay protocol payload sent and received (gossip batches, anti-entropy frames)',
      labelNames: ['protocol', 'direction'],
      registers,
      collect() {
        const totals = counters()
        this.reset()
        this.inc({ protocol: 'gossip', direction: 'sent' }, totals.gossipBytesSent ?? 0)
        this.inc({ protocol: 'gossip', direction: 'received' }, totals.gossipBytesReceived ?? 0)
        this.inc({ protocol: 'sync', direction: 'sent' }, totals.syncBytesSent ?? 0)
        this.inc({ protocol: 'sync', direction: 'received' }, totals.syncBytesReceived ?? 0)
      },
    })
  }

  /** Per-label-set children, cached: prom-client hashes a label object on every call otherwise. */
  private readonly requestChildren = new Map<
    string,
    { count: { inc(): void }; time: { observe(v: number): void } }
  >()

  request(method: string, route: string, status: number, seconds: number): void {
    const key = `${method} ${route} ${status}`
    let child = this.requestChildren.get(key)
    if (child === undefined) {
      child = {
        count: this.requests.labels({ method, route, status: String(status) }),
        time: this.duration.labels({ route }),
      }
      this.requestChildren.set(key, child)
    }
    child.count.inc()
    child.time.observe(seconds)
  }

  write(namespace: string, op: WriteOp): void {
    this.writes.inc({ namespace, op })
  }

  change(namespace: string, origin: string): void {
    this.changes.inc({ namespace, origin })
  }

  convergenceLag(seconds: number): void {
    this.lag.observe(Math.max(0, seconds))
  }

  ackWait(reached: boolean): void {
    this.ackWaits.inc({ outcome: reached ? 'reached' : 'timeout' })
  }

  watchOpened(): void {
    this.watchClients.inc()
  }

  watchClosed(): void {
    this.watchClients.dec()
  }

  get contentType(): string {
    return this.registry.contentType
  }

  text(): Promise<string> {
    return this.registry.metrics()
  }
}

import type { Counter, Gauge, Histogram, Registry } from 'prom-client'
// Each part from its own file: prom-client's index also loads its Pushgateway (node:https, node:zlib)
// and its cluster aggregator (node:cluster), ~2 MiB of heap and ~4 MiB of resident memory that a
// daemon never uses.
import CounterMetric from 'prom-client/lib/counter.js'
import collectDefaultMetrics from 'prom-client/lib/defaultMetrics.js'
import GaugeMetric from 'prom-client/lib/gauge.js'
import HistogramMetric from 'prom-client/lib/histogram.js'
import MetricRegistry from 'prom-client/lib/registry.js'
import type { HearsayPeer, MeshCounters as PeerMeshCounters } from '../peer/peer.ts'
import { type PeerReplication, replicationRows } from '../peer/replication-state.ts'

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
  readonly registry = new MetricRegistry()
  private readonly requests: Counter<'method' | 'route' | 'status'>
  private readonly duration: Histogram<'route'>
  private readonly writes: Counter<'namespace' | 'op'>
  private readonly changes: Counter<'namespace' | 'origin'>
  private readonly lag: Histogram<never>
  private readonly ackWaits: Counter<'outcome'>
  private readonly watchClients: Gauge<never>
  private readonly eventClients: Gauge<never>
  private readonly meshEvents: Counter<'type'>

  constructor(peer: HearsayPeer) {
    const registers = [this.registry]
    collectDefaultMetrics({ register: this.registry })
    this.requests = new CounterMetric({
      name: 'hearsay_http_requests_total',
      help: 'HTTP requests answered, by route template and status',
      labelNames: ['method', 'route', 'status'],
      registers,
    })
    this.duration = new HistogramMetric({
      name: 'hearsay_http_request_duration_seconds',
      help: 'Time to answer an HTTP request (watch streams count until their headers are sent)',
      labelNames: ['route'],
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5],
      registers,
    })
    this.writes = new CounterMetric({
      name: 'hearsay_writes_total',
      help: 'Local writes acknowledged through the API',
      labelNames: ['namespace', 'op'],
      registers,
    })
    this.changes = new CounterMetric({
      name: 'hearsay_key_changes_total',
      help: 'Keys whose state changed after commit; origin=remote counts keys changed by merges from other peers',
      labelNames: ['namespace', 'origin'],
      registers,
    })
    this.lag = new HistogramMetric({
      name: 'hearsay_convergence_lag_seconds',
      help: "Age of another peer's register write when it reached this peer (HLC wall time to merge)",
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300],
      registers,
    })
    this.ackWaits = new CounterMetric({
      name: 'hearsay_ack_waits_total',
      help: 'Writes with ?ack=N, by whether N peers held the write before the timeout',
      labelNames: ['outcome'],
      registers,
    })
    this.watchClients = new GaugeMetric({
      name: 'hearsay_watch_clients',
      help: 'Open watch streams',
      registers,
    })
    this.eventClients = new GaugeMetric({
      name: 'hearsay_event_clients',
      help: 'Open mesh event streams (GET /v1/events)',
      registers,
    })
    this.meshEvents = new CounterMetric({
      name: 'hearsay_mesh_events_total',
      help: 'Mesh events (peer-connected, peer-disconnected, sync-started, sync-completed, sync-failed)',
      labelNames: ['type'],
      registers,
    })
    registerPeerGauges(peer, registers)

    new GaugeMetric({
      name: 'hearsay_store_size_bytes',
      help: 'Bytes the store uses on disk (or in memory)',
      registers,
      collect() {
        this.set(peer.store.sizeBytes())
      },
    })
    new GaugeMetric({
      name: 'hearsay_namespace_entries',
      help: 'CRDT entries held per namespace, tombstones included',
      labelNames: ['namespace'],
      registers,
      collect() {
        this.reset()
        for (const ns of peer.namespaces()) this.set({ namespace: ns }, peer.namespace(ns).entryCount)
      },
    })
    new GaugeMetric({
      name: 'hearsay_namespace_tombstones',
      help: 'Tombstones held per namespace (collected once every known member has seen them)',
      labelNames: ['namespace'],
      registers,
      collect() {
        this.reset()
        for (const ns of peer.namespaces()) this.set({ namespace: ns }, peer.namespace(ns).tombstoneCount)
      },
    })
    new GaugeMetric({
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
    new GaugeMetric({
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
    new GaugeMetric({
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
      new CounterMetric({
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
    new CounterMetric({
      name: 'hearsay_unhandled_rejections_total',
      help: 'Promise rejections nobody handled (each is a bug: logged at error level, the daemon keeps running)',
      registers,
      collect() {
        this.reset()
        this.inc(processTotals.unhandledRejections)
      },
    })
    new CounterMetric({
      name: 'hearsay_tombstones_collected_total',
      help: 'Tombstones collected once every known member had seen them',
      registers,
      collect() {
        this.reset()
        this.inc(counters().tombstonesCollected ?? 0)
      },
    })
    new CounterMetric({
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

  private readonly writeChildren = new Map<string, { inc(): void }>()
  private readonly changeChildren = new Map<string, { inc(): void }>()

  write(namespace: string, op: WriteOp): void {
    const key = `${namespace} ${op}`
    let child = this.writeChildren.get(key)
    if (child === undefined) {
      child = this.writes.labels({ namespace, op })
      this.writeChildren.set(key, child)
    }
    child.inc()
  }

  change(namespace: string, origin: string): void {
    const key = `${namespace} ${origin}`
    let child = this.changeChildren.get(key)
    if (child === undefined) {
      child = this.changes.labels({ namespace, origin })
      this.changeChildren.set(key, child)
    }
    child.inc()
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

  eventStreamOpened(): void {
    this.eventClients.inc()
  }

  eventStreamClosed(): void {
    this.eventClients.dec()
  }

  meshEvent(type: string): void {
    this.meshEvents.inc({ type })
  }

  get contentType(): string {
    return this.registry.contentType
  }

  text(): Promise<string> {
    return this.registry.metrics()
  }
}

/** Peers with a label of their own in the per-peer gauges; the rest are summed under `peer="other"`. */
export const MAX_PEER_LABELS = 64

/**
 * Per-peer replication gauges, computed at scrape time. Cardinality is bounded: the first
 * MAX_PEER_LABELS peers (connected ones first, then by id) get their own label, the rest are one
 * `other` (connections summed; for the age of the last sync, the oldest; lack figures are computed for
 * the labelled peers only, so a hub's scrape stays cheap).
 */
function registerPeerGauges(peer: HearsayPeer, registers: Registry[]): void {
  /** Rows per namespace of one scrape, computed once for the four gauges. */
  let cached:
    | { at: number; rows: Array<{ namespace: string; row: PeerReplication }>; labels: Map<string, string> }
    | undefined
  const snapshot = () => {
    const now = Date.now()
    if (cached !== undefined && now - cached.at < 1000) return cached
    const insight = peer.attachedMesh?.insight
    const rows: Array<{ namespace: string; row: PeerReplication }> = []
    let labelled = new Set<string>()
    if (insight !== undefined) {
      const members = insight.members()
      const connected = new Set(insight.connectedPeers())
      const ids = [...new Set([...members.map((m) => m.peerId), ...insight.activity.peers()])]
      ids.sort((a, b) => Number(connected.has(b)) - Number(connected.has(a)) || (a < b ? -1 : a > b ? 1 : 0))
      labelled = new Set(ids.slice(0, MAX_PEER_LABELS))
      for (const namespace of peer.namespaces()) {
        const own = peer.namespace(namespace).context()
        for (const row of replicationRows({
          namespace,
          own,
          members,
          activity: insight.activity,
          connected,
          self: peer.peerId,
          // The lack figures walk both contexts: only for the labelled peers (a hub has a thousand).
          lackFor: (id) => labelled.has(id),
        }))
          rows.push({ namespace, row })
      }
    }
    const labels = new Map(
      rows.map(({ row }) => [row.peerId, labelled.has(row.peerId) ? row.peerId : 'other']),
    )
    cached = { at: now, rows, labels }
    return cached
  }
  const gauge = (
    name: string,
    help: string,
    withNamespace: boolean,
    value: (row: PeerReplication, now: number) => number | null,
    combine: (a: number, b: number) => number,
  ) =>
    new GaugeMetric({
      name,
      help,
      labelNames: withNamespace ? ['peer', 'namespace'] : ['peer'],
      registers,
      collect() {
        this.reset()
        const { rows, labels } = snapshot()
        const now = Date.now()
        const totals = new Map<string, { labels: Record<string, string>; value: number }>()
        // Without a namespace label, each peer counts once (not once per namespace).
        const counted = new Set<string>()
        for (const { namespace, row } of rows) {
          const once = withNamespace ? `${row.peerId} ${namespace}` : row.peerId
          if (counted.has(once)) continue
          counted.add(once)
          const v = value(row, now)
          if (v === null) continue
          const label = labels.get(row.peerId) ?? 'other'
          const set: Record<string, string> = withNamespace ? { peer: label, namespace } : { peer: label }
          const key = withNamespace ? `${label} ${namespace}` : label
          const known = totals.get(key)
          if (known === undefined) totals.set(key, { labels: set, value: v })
          else known.value = combine(known.value, v)
        }
        for (const { labels: set, value: v } of totals.values()) this.set(set, v)
      },
    })
  gauge(
    'hearsay_peer_connected',
    'Whether a connection to the peer is open (1) or not (0); peer="other" counts the open ones beyond the labelled peers',
    false,
    (row) => (row.connected ? 1 : 0),
    (a, b) => a + b,
  )
  gauge(
    'hearsay_peer_they_lack',
    "Writes in this peer's context that the peer's last known context lacks, per namespace",
    true,
    (row) => row.theyLack,
    (a, b) => a + b,
  )
  gauge(
    'hearsay_peer_we_lack',
    "Writes in the peer's last known context that this peer's context lacks, per namespace",
    true,
    (row) => row.weLack,
    (a, b) => a + b,
  )
  gauge(
    'hearsay_peer_last_sync_seconds',
    'Seconds since the last completed anti-entropy session with the peer, per namespace (peer="other": the oldest)',
    true,
    (row, now) => (row.lastSync === null ? null : (now - Date.parse(row.lastSync.at)) / 1000),
    (a, b) => Math.max(a, b),
  )
}

import type { CausalContext } from '../crdt/context.ts'
import { replicaAuthor } from '../replica/signing.ts'

/**
 * What this peer knows of each other peer's replication: connection state and its failures, the
 * anti-entropy sessions with it and their cost, and how its last known causal context compares with
 * ours (writes it lacks from us, writes we lack from it). Pure: the clock is injected, and the
 * figures are functions of the contexts handed in. The mesh shell feeds `PeerActivity` from its
 * callbacks; the API and the metrics read the figures.
 */

export type ConnectionState = 'connected' | 'disconnected' | 'never'
export type SyncRole = 'initiator' | 'responder'

/** Why a session ran: the scheduler's reason for ours, `remote` for one the other peer started. */
export type SyncCause = string

export interface SyncFigures {
  role: SyncRole
  durationMs: number
  bytesSent: number
  bytesReceived: number
  entriesReceived: number
  /** Digests matched: nothing was exchanged. */
  equal: boolean
}

export type MeshEvent =
  | { type: 'peer-connected'; at: number; peerId: string }
  | { type: 'peer-disconnected'; at: number; peerId: string }
  | { type: 'sync-started'; at: number; peerId: string; namespace: string; role: SyncRole; reason: SyncCause }
  | ({
      type: 'sync-completed'
      at: number
      peerId: string
      namespace: string
      reason: SyncCause
    } & SyncFigures)
  | {
      type: 'sync-failed'
      at: number
      peerId: string
      namespace?: string
      role?: SyncRole
      reason?: SyncCause
      error: string
      /** The protocol's error code, when it has one (`remote-not-joined`, `timeout`, …). */
      code?: string
    }

export type MeshEventType = MeshEvent['type']

export const MESH_EVENT_TYPES: readonly MeshEventType[] = [
  'peer-connected',
  'peer-disconnected',
  'sync-started',
  'sync-completed',
  'sync-failed',
]

export interface Failure {
  at: number
  reason: string
}

export interface SyncOutcome extends SyncFigures {
  at: number
  reason: SyncCause
}

export interface NamespaceActivity {
  lastSync?: SyncOutcome
  lastSyncFailure?: Failure
}

export interface PeerRecord {
  /** 'never' until the first connection. */
  connection: ConnectionState
  /** When the connection state last changed (undefined: never connected). */
  since?: number
  /** The last failed attempt to connect. */
  lastFailure?: Failure
  /** The last connect, disconnect or session end. */
  lastContact?: number
  namespaces: Map<string, NamespaceActivity>
}

export interface PeerActivityInit {
  now?: () => number
  /** Peers remembered at most; the least recently active is dropped beyond it. Default 4,096. */
  maxPeers?: number
}

/** Entries of the in-flight and pending-reason maps at most (each is dropped as its session ends). */
const MAX_PENDING = 10_000

/** The record of what happened with each peer, and the stream of events that built it. */
export class PeerActivity {
  private readonly now: () => number
  private readonly maxPeers: number
  private readonly records = new Map<string, PeerRecord>()
  private readonly listeners = new Set<(event: MeshEvent) => void>()
  /** `peer ns` → why the scheduler asked for the next session we start. */
  private readonly pendingReasons = new Map<string, SyncCause>()
  /** `peer ns role` → the reason of a session under way. */
  private readonly inFlight = new Map<string, SyncCause>()

  constructor(init: PeerActivityInit = {}) {
    this.now = init.now ?? Date.now
    this.maxPeers = init.maxPeers ?? 4096
  }

  /** Calls `listener` with every event from now on; returns the function that stops it. */
  on(listener: (event: MeshEvent) => void): () => void {
    this.listeners.add(listener)
    return () => this.listeners.delete(listener)
  }

  get listenerCount(): number {
    return this.listeners.size
  }

  record(peerId: string): Readonly<PeerRecord> | undefined {
    return this.records.get(peerId)
  }

  /** Peers with a record, most recently active last. */
  peers(): string[] {
    return [...this.records.keys()]
  }

  /** The scheduler asked for a session with a peer, for this reason. */
  requested(peerId: string, namespace: string, reason: SyncCause): void {
    if (this.pendingReasons.size >= MAX_PENDING) this.pendingReasons.clear()
    this.pendingReasons.set(`${peerId} ${namespace}`, reason)
  }

  connected(peerId: string): void {
    const record = this.touch(peerId)
    record.connection = 'connected'
    record.since = record.lastContact
    this.emit({ type: 'peer-connected', at: record.since!, peerId })
  }

  disconnected(peerId: string): void {
    const record = this.touch(peerId)
    record.connection = 'disconnected'
    record.since = record.lastContact
    this.emit({ type: 'peer-disconnected', at: record.since!, peerId })
  }

  /** A dial failed: kept as the connection's last failure (not an event: discovery retries often). */
  connectFailed(peerId: string, reason: string): void {
    const record = this.touch(peerId, false)
    record.lastFailure = { at: this.now(), reason }
  }

  syncStarted(peerId: string, namespace: string, role: SyncRole): void {
    let reason: SyncCause = 'remote'
    if (role === 'initiator') {
      const key = `${peerId} ${namespace}`
      reason = this.pendingReasons.get(key) ?? 'other'
      this.pendingReasons.delete(key)
    }
    if (this.inFlight.size >= MAX_PENDING) this.inFlight.clear()
    this.inFlight.set(`${peerId} ${namespace} ${role}`, reason)
    this.emit({ type: 'sync-started', at: this.now(), peerId, namespace, role, reason })
  }

  syncCompleted(peerId: string, namespace: string, figures: SyncFigures): void {
    const key = `${peerId} ${namespace} ${figures.role}`
    const reason = this.inFlight.get(key) ?? (figures.role === 'responder' ? 'remote' : 'other')
    this.inFlight.delete(key)
    const record = this.touch(peerId)
    const outcome: SyncOutcome = { at: record.lastContact!, reason, ...figures }
    this.activity(record, namespace).lastSync = outcome
    this.emit({ type: 'sync-completed', peerId, namespace, ...outcome })
  }

  syncFailed(peerId: string, namespace: string | undefined, error: string, code?: string): void {
    const at = this.now()
    let role: SyncRole | undefined
    let reason: SyncCause | undefined
    if (namespace !== undefined) {
      for (const candidate of ['initiator', 'responder'] as const) {
        const key = `${peerId} ${namespace} ${candidate}`
        const found = this.inFlight.get(key)
        if (found === undefined) continue
        role = candidate
        reason = found
        this.inFlight.delete(key)
        break
      }
      const record = this.touch(peerId, false)
      this.activity(record, namespace).lastSyncFailure = { at, reason: error }
    }
    this.emit({
      type: 'sync-failed',
      at,
      peerId,
      ...(namespace === undefined ? {} : { namespace }),
      ...(role === undefined ? {} : { role }),
      ...(reason === undefined ? {} : { reason }),
      error,
      ...(code === undefined ? {} : { code }),
    })
  }

  /** Forgets a peer (gone for good). */
  forget(peerId: string): void {
    this.records.delete(peerId)
  }

  private activity(record: PeerRecord, namespace: string): NamespaceActivity {
    let activity = record.namespaces.get(namespace)
    if (activity === undefined) {
      activity = {}
      record.namespaces.set(namespace, activity)
    }
    return activity
  }

  /** The peer's record, moved to the most recent end; `contact` marks that we heard from it. */
  private touch(peerId: string, contact = true): PeerRecord {
    let record = this.records.get(peerId)
    if (record === undefined) {
      record = { connection: 'never', namespaces: new Map() }
      if (this.records.size >= this.maxPeers) {
        const oldest = this.records.keys().next().value
        if (oldest !== undefined) this.records.delete(oldest)
      }
    } else this.records.delete(peerId)
    this.records.set(peerId, record)
    if (contact) record.lastContact = this.now()
    return record
  }

  private emit(event: MeshEvent): void {
    for (const listener of this.listeners) {
      try {
        listener(event)
      } catch {
        // A listener's failure is its own: the mesh goes on, and so do the other listeners.
      }
    }
  }
}

// ---- figures ----------------------------------------------------------------------------------

/**
 * Writes (dots) in our context that their last known context lacks, and the reverse; null when we
 * never learned their context. Their context is what they held at least when we last synced, plus
 * what gossip has shown them with since, so `theyLack` may overstate (gossip that did not reach us,
 * or was not relayed through them) but never understates what anti-entropy would send.
 */
export function lackFigures(
  own: CausalContext,
  theirs: CausalContext | undefined,
): { theyLack: number | null; weLack: number | null } {
  if (theirs === undefined) return { theyLack: null, weLack: null }
  return { theyLack: missingCount(own, theirs), weLack: missingCount(theirs, own) }
}

/**
 * How many dots of `a` are not in `b`: `a.difference(b).size()` without building the difference. A
 * hub asks this for every client on every request and scrape, and most writers' ranges are equal.
 */
export function missingCount(a: CausalContext, b: CausalContext): number {
  let count = 0
  for (const [replica, mine] of a.unsortedEntries()) {
    const theirs = b.rangesOf(replica)
    if (sameRanges(mine, theirs)) continue
    let j = 0
    for (let i = 0; i < mine.length; i += 2) {
      let lo = mine[i]
      const hi = mine[i + 1]
      while (j < theirs.length && theirs[j + 1] < lo) j += 2
      for (let k = j; lo <= hi; k += 2) {
        if (k >= theirs.length || theirs[k] > hi) {
          count += hi - lo + 1
          break
        }
        if (theirs[k] > lo) count += theirs[k] - lo
        lo = Math.max(lo, theirs[k + 1] + 1)
      }
    }
  }
  return count
}

function sameRanges(a: readonly number[], b: readonly number[]): boolean {
  if (a.length !== b.length) return false
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false
  return true
}

/** What membership knows of a peer, as the figures need it. */
export interface MemberView {
  peerId: string
  /** ms since epoch, when we last heard from it (directly or through gossip). */
  lastSeen?: number
  rttMs?: number
  /** Per namespace, the context it is known to hold at least (from sync sessions: durable). */
  holds: ReadonlyMap<string, CausalContext>
  /** Per namespace, `holds` plus what gossip showed it with (not durable); absent: `holds` alone. */
  seen?: ReadonlyMap<string, CausalContext>
}

/** What a member is known to have at least seen of a namespace: its sessions' context and gossip's. */
function seenContext(member: MemberView | undefined, namespace: string): CausalContext | undefined {
  return member?.seen?.get(namespace) ?? member?.holds.get(namespace)
}

export interface PeerReplication {
  peerId: string
  connected: boolean
  connection: {
    state: ConnectionState
    since: string | null
    lastFailure: { at: string; reason: string } | null
  }
  lastContactAt: string | null
  contextKnown: boolean
  theyLack: number | null
  weLack: number | null
  /** The last session's figures, its time as an ISO string. */
  lastSync: (SyncFigures & { at: string; reason: SyncCause }) | null
  lastSyncFailure: { at: string; reason: string } | null
  rttMs: number | null
}

const iso = (ms: number | undefined): string | null => (ms === undefined ? null : new Date(ms).toISOString())

/**
 * One row per peer known by membership or by its record (a peer we never reached still shows its
 * failures), sorted by peer id. `connected`: the peers with an open connection now.
 */
export function replicationRows(input: {
  namespace: string
  own: CausalContext
  members: readonly MemberView[]
  activity: Pick<PeerActivity, 'record' | 'peers'>
  connected: ReadonlySet<string>
  self: string
  /** Peers whose lack figures to compute (each costs a walk over both contexts); default all. */
  lackFor?: (peerId: string) => boolean
}): PeerReplication[] {
  const members = new Map(input.members.map((member) => [member.peerId, member]))
  const ids = new Set([...members.keys(), ...input.activity.peers()])
  ids.delete(input.self)
  return [...ids].sort().map((peerId) => {
    const member = members.get(peerId)
    const record = input.activity.record(peerId)
    const known = member?.holds.get(input.namespace)
    const connected = input.connected.has(peerId)
    // A member may be known only as the author of relayed gossip: that is no connection.
    const state: ConnectionState = connected
      ? 'connected'
      : record === undefined || record.connection === 'never'
        ? 'never'
        : 'disconnected'
    const activity = record?.namespaces.get(input.namespace)
    const lastContact = Math.max(record?.lastContact ?? 0, member?.lastSeen ?? 0)
    const sync = activity?.lastSync
    return {
      peerId,
      connected,
      connection: {
        state,
        since: iso(record?.since),
        lastFailure:
          record?.lastFailure === undefined
            ? null
            : { at: iso(record.lastFailure.at)!, reason: record.lastFailure.reason },
      },
      lastContactAt: lastContact === 0 ? null : iso(lastContact),
      contextKnown: known !== undefined,
      // Gossip alone (no session yet) would make every older write look missing: figures wait for one.
      ...lackFigures(
        input.own,
        known !== undefined && (input.lackFor === undefined || input.lackFor(peerId))
          ? seenContext(member, input.namespace)
          : undefined,
      ),
      lastSync:
        sync === undefined
          ? null
          : {
              at: iso(sync.at)!,
              reason: sync.reason,
              role: sync.role,
              durationMs: Math.round(sync.durationMs * 10) / 10,
              bytesSent: sync.bytesSent,
              bytesReceived: sync.bytesReceived,
              entriesReceived: sync.entriesReceived,
              equal: sync.equal,
            },
      lastSyncFailure:
        activity?.lastSyncFailure === undefined
          ? null
          : { at: iso(activity.lastSyncFailure.at)!, reason: activity.lastSyncFailure.reason },
      rttMs: member?.rttMs ?? null,
    }
  })
}

/**
 * Which known peers hold a dot (from their last known contexts, sessions' and gossip's) and which do
 * not yet; peers whose context for the namespace we never learned are `unknown`. This peer holds
 * every dot it shows.
 */
export function dotHolders(
  namespace: string,
  dot: { replica: string; counter: number },
  members: readonly MemberView[],
  self: string,
): { heldBy: string[]; notYetAt: string[]; unknown: string[] } {
  const heldBy = [self]
  const author = replicaAuthor(dot.replica)
  const notYetAt: string[] = []
  const unknown: string[] = []
  for (const member of [...members].sort((a, b) => (a.peerId < b.peerId ? -1 : 1))) {
    if (member.peerId === self) continue
    // A write's author holds it from the moment it was made, whatever we last learned of it.
    if (member.peerId === author) heldBy.push(member.peerId)
    else if (seenContext(member, namespace)?.has(dot.replica, dot.counter) === true)
      heldBy.push(member.peerId)
    // Gossip alone does not tell what a peer lacks: only a session's context does.
    else if (member.holds.get(namespace) === undefined) unknown.push(member.peerId)
    else notYetAt.push(member.peerId)
  }
  return { heldBy, notYetAt, unknown }
}

/** The shape the mesh offers to the API: what happened, and what membership knows now. */
export interface MeshInsight {
  readonly activity: PeerActivity
  members(): MemberView[]
  /** Peers with an open connection now. */
  connectedPeers(): string[]
}

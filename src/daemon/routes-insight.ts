import type { CausalContext } from '../crdt/context.ts'
import { compareEntries, type Entry, EntryKind, isExpired } from '../crdt/entry.ts'
import type { HearsayPeer } from '../peer/peer.ts'
import { dotHolders, type MemberView, replicationRows } from '../peer/replication-state.ts'
import { replicaBase } from '../replica/incarnation.ts'
import type { Replica } from '../replica/replica.ts'
import { ApiError } from './errors.ts'
import { eventStream } from './http.ts'
import { json, pageParams, type Route } from './route.ts'
import { encodeValue } from './values.ts'

/**
 * Seeing the mesh: per-peer replication state, the events stream, why a key reads as it does
 * (explain), and the keys with concurrent values (conflicts).
 */

// ---- replication ------------------------------------------------------------------------------

export const replicationRoute: Route = {
  template: '/v1/ns/:ns/replication',
  methods: {
    GET(context) {
      const replica = context.existing()
      const peer = context.app.peer
      const own = replica.context()
      return json(200, {
        namespace: replica.namespace,
        self: {
          peerId: peer.peerId,
          replicaId: replica.replicaId,
          versionVector: Object.fromEntries(replica.versionVector()),
          digest: replica.digest(),
          dots: own.size(),
        },
        peers: namespacePeers(peer, replica, own),
      })
    },
  },
}

// ---- events -----------------------------------------------------------------------------------

export const eventsRoute: Route = {
  template: '/v1/events',
  methods: {
    GET(context) {
      const events = context.app.events
      if (events === undefined)
        throw new ApiError(503, 'MESH_UNAVAILABLE', 'this peer has no mesh events to stream')
      return eventStream(events.open(context.app.peer.peerId))
    },
  },
}

// ---- explain ----------------------------------------------------------------------------------

/** Covers ranges shown per entry at most (covers compact to about one range per writer). */
const MAX_COVERS_SHOWN = 64

function coversSummary(covers: CausalContext) {
  const ranges: Array<{ replica: string; from: number; to: number }> = []
  let total = 0
  for (const [replica, flat] of covers.entries()) {
    for (let i = 0; i < flat.length; i += 2) {
      total++
      if (ranges.length < MAX_COVERS_SHOWN) ranges.push({ replica, from: flat[i], to: flat[i + 1] })
    }
  }
  return { ranges, truncated: total > ranges.length }
}

function hlcOf(entry: Entry) {
  return { wall: entry.wall, logical: entry.logical, at: new Date(entry.wall).toISOString() }
}

function shortPeer(peerId: string): string {
  return peerId.length > 16 ? `${peerId.slice(0, 6)}…${peerId.slice(-6)}` : peerId
}

function describeEntry(
  entry: Entry,
  namespace: string,
  members: readonly MemberView[],
  self: string,
  now: number,
) {
  const covers = coversSummary(entry.covers)
  return {
    replica: entry.replica,
    peerId: replicaBase(entry.replica),
    hlc: hlcOf(entry),
    dot: { replica: entry.replica, counter: entry.counter },
    covers: covers.ranges,
    ...(covers.truncated ? { coversTruncated: true } : {}),
    ...dotHolders(namespace, entry, members, self),
    ...(entry.expiresAt === undefined
      ? {}
      : { expiresAt: new Date(entry.expiresAt).toISOString(), expired: isExpired(entry, now) }),
  }
}

/** Why the winner beats the runner-up, in words: HLC wall time, then logical counter, then replica id. */
function whyWinner(winner: Entry, runnerUp: Entry): string {
  if (winner.wall !== runnerUp.wall)
    return `its HLC timestamp (${new Date(winner.wall).toISOString()}) is the latest`
  if (winner.logical !== runnerUp.logical)
    return `its HLC timestamp ties on wall time (${new Date(winner.wall).toISOString()}) and its logical counter (${winner.logical}) is higher`
  return `its HLC timestamp ties exactly, and its replica id sorts last (the tie-break)`
}

export function explainWhy(input: {
  live: readonly Entry[]
  expired: readonly Entry[]
  tombstone: Entry | undefined
  now: number
}): string {
  const { live, expired, tombstone } = input
  if (live.length === 0) {
    if (tombstone !== undefined && (expired.length === 0 || compareEntries(tombstone, expired.at(-1)!) > 0)) {
      return `Deleted by peer ${shortPeer(replicaBase(tombstone.replica))} at ${new Date(tombstone.wall).toISOString()}: the delete superseded every value it had seen, and no value written concurrently with it survives. A read answers 404 KEY_NOT_FOUND.`
    }
    const last = expired.at(-1)!
    return `Expired at ${new Date(last.expiresAt!).toISOString()} (a TTL set by its writer, peer ${shortPeer(replicaBase(last.replica))}); expiry writes no tombstone, so every peer hides it at the same deadline. A read answers 404 KEY_NOT_FOUND.`
  }
  const winner = live.at(-1)!
  const by = `peer ${shortPeer(replicaBase(winner.replica))}`
  const survivedDelete =
    tombstone === undefined
      ? ''
      : ` A delete by peer ${shortPeer(replicaBase(tombstone.replica))} ran concurrently and removed only the values it had seen, so ${live.length === 1 ? 'this one survives' : 'these survive'} (deletes are observed-remove).`
  if (live.length === 1) {
    return `One value, written by ${by} at ${new Date(winner.wall).toISOString()}; no concurrent write is live, so every read returns it.${survivedDelete}`
  }
  return `${live.length} values were written concurrently (no writer had seen the others), so all are kept as siblings. A plain read resolves to the one by ${by}: ${whyWinner(winner, live.at(-2)!)}. Write a value with If-Match set to the ETag of a read with ?siblings=1 to replace them all.${survivedDelete}`
}

export const explainRoute: Route = {
  template: '/v1/ns/:ns/kv/:key/explain',
  methods: {
    GET(context) {
      const replica = context.existing()
      const key = context.params.key!
      const peer = context.app.peer
      const { entries, now, collected } = replica.inspect(key)
      if (entries.length === 0) throw keyNotFound(replica, key)
      const values = entries.filter((entry) => entry.kind === EntryKind.Value).sort(compareEntries)
      const live = values.filter((entry) => !isExpired(entry, now))
      const expired = values.filter((entry) => isExpired(entry, now))
      const tombstones = entries.filter((entry) => entry.kind === EntryKind.Tombstone).sort(compareEntries)
      const tombstone = tombstones.at(-1)
      if (live.length === 0 && values.length === 0 && tombstone === undefined) {
        // Counter or set internals never share a register's key: nothing here to explain.
        throw keyNotFound(replica, key)
      }
      const members = peer.attachedMesh?.insight?.members() ?? []
      const winner = live.at(-1)
      const read = winner === undefined ? undefined : replica.get(key)
      const describe = (entry: Entry) => describeEntry(entry, replica.namespace, members, peer.peerId, now)
      return json(200, {
        namespace: replica.namespace,
        key,
        state: live.length > 0 ? 'live' : 'deleted',
        resolved:
          read === undefined
            ? null
            : { ...encodeValue(read.winner.value, read.winner.contentType), etag: read.etag },
        why: explainWhy({ live, expired, tombstone, now }),
        siblings: values.map((entry) => ({
          ...encodeValue(entry.value!, entry.contentType!),
          ...describe(entry),
          winner: entry === winner,
        })),
        tombstone:
          tombstone === undefined
            ? null
            : { ...describe(tombstone), ...(tombstones.length > 1 ? { concurrent: tombstones.length } : {}) },
        horizon: horizonOf(entries, collected),
      })
    },
  },
}

/**
 * Whether collected tombstones are involved: null when the namespace has collected none; otherwise
 * whether what this key's entries supersede reaches into the collected dots.
 */
function horizonOf(entries: readonly Entry[], collected: CausalContext) {
  if (collected.isEmpty()) return null
  const involved = entries.some((entry) => !entry.covers.intersection(collected).isEmpty())
  return {
    collected: involved,
    note: involved
      ? 'Some writes this key supersedes were removed by tombstones that have since been collected (every member had seen them). A peer whose context is behind the collection horizon gets a full snapshot, so it cannot bring them back.'
      : 'This namespace has collected tombstones, but none among what this key supersedes.',
  }
}

function keyNotFound(replica: Replica, key: string): ApiError {
  return new ApiError(404, 'KEY_NOT_FOUND', `no key "${key}" in namespace ${replica.namespace}`)
}

// ---- conflicts --------------------------------------------------------------------------------

/** Keys read per request at most while looking for conflicts: a page may come back short. */
export const MAX_CONFLICT_SCAN = 100_000
const SCAN_PAGE = 1_000

/** Registers under `prefix` with more than one live value, in key order, a page at a time. */
export function findConflicts(
  replica: Replica,
  prefix: string,
  options: { cursor?: string; limit: number; maxScan?: number },
): { conflicts: Array<{ key: string; siblings: number; etag: string }>; cursor: string | null } {
  const conflicts: Array<{ key: string; siblings: number; etag: string }> = []
  const maxScan = options.maxScan ?? MAX_CONFLICT_SCAN
  let cursor = options.cursor
  let scanned = 0
  for (;;) {
    const page = replica.list(prefix, { cursor, limit: Math.min(SCAN_PAGE, maxScan - scanned) })
    for (let i = 0; i < page.items.length; i++) {
      const { key, read } = page.items[i]
      scanned++
      cursor = key
      if (read.siblings.length > 1) conflicts.push({ key, siblings: read.siblings.length, etag: read.etag })
      if (conflicts.length === options.limit) {
        const more = i < page.items.length - 1 || page.cursor !== undefined
        return { conflicts, cursor: more ? key : null }
      }
    }
    if (page.cursor === undefined) return { conflicts, cursor: null }
    if (scanned >= maxScan) return { conflicts, cursor: cursor ?? null }
  }
}

export const conflictsRoute: Route = {
  template: '/v1/ns/:ns/conflicts',
  methods: {
    GET(context) {
      const replica = context.existing()
      const { prefix, limit, cursor } = pageParams(context.query)
      const page = findConflicts(replica, prefix, { cursor, limit })
      return json(200, { namespace: replica.namespace, prefix, ...page })
    },
  },
}

/** One row per known peer: what we know of its replication of this namespace. */
function namespacePeers(peer: HearsayPeer, replica: Replica, own: CausalContext) {
  const insight = peer.attachedMesh?.insight
  if (insight === undefined) return []
  return replicationRows({
    namespace: replica.namespace,
    own,
    members: insight.members(),
    activity: insight.activity,
    connected: new Set(insight.connectedPeers()),
    self: peer.peerId,
  })
}

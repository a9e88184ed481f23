import { createHash } from 'node:crypto'
import { decodeContext } from '../codec/delta.ts'
import { DEFAULT_LIMITS } from '../codec/limits.ts'
import { Reader, readRanges, Writer, writeRanges } from '../codec/wire.ts'
import { CausalContext } from '../crdt/context.ts'
import { parseInternalKey } from '../crdt/document.ts'
import type { HearsayPeer } from '../peer/peer.ts'
import { replicaBase } from '../replica/incarnation.ts'
import type { ChangeEvent, ReadResult, Replica } from '../replica/replica.ts'
import { DEFAULT_WATCH_QUEUE_BYTES, MAX_WATCH_QUEUE, SINCE_TOKEN_PREFIX } from './constants.ts'
import { ApiError } from './errors.ts'
import type { DaemonMetrics } from './metrics.ts'
import { encodeValue, stringifyJson } from './values.ts'

/**
 * Watch streams (Server-Sent Events) and resume tokens.
 *
 * A resume token is the namespace's causal context at a commit, encoded (`c2.` + base64url; each
 * writer named by a 4-byte tag of its replica id, which this peer maps back, so the token stays
 * small however long replica ids are; `c1.` tokens, with whole replica ids, are still read). Given
 * one back as `since` (or as the `Last-Event-ID` an EventSource sends when it reconnects), the stream
 * first replays every key that changed after that point (`Replica.deltasSince(context)`: what a peer
 * at that context lacks), then follows live changes. So a client resumes across its own reconnects
 * and across daemon restarts, and loses nothing: delivery is at least once, and the latest event for
 * a key carries its latest state.
 *
 * Tokens are taken only at commit points (inside the replica's change event, before anything else can
 * run), never from in-memory state that a pending batch could still change, and only the last event
 * of a commit carries one; resuming from it replays nothing that was not seen, skips nothing that was.
 */

/** `expire`: a key's entry reached its expiry on this peer (a register `delete`; nothing was written). */
export type WatchOrigin = 'local' | 'remote' | 'replay' | 'expire'

export interface WatchEventData {
  namespace: string
  type: 'register' | 'counter' | 'set'
  key: string
  element?: string
  /** register: put | delete; counter: update; set: add | remove. */
  op: 'put' | 'delete' | 'update' | 'add' | 'remove'
  origin: WatchOrigin
  [field: string]: unknown
}

/**
 * `full`: every field (the default). `compact`: the key, the value and only what differs from the
 * common case (see docs/api.md), for clients that want the smallest stream.
 */
export type WatchFormat = 'full' | 'compact'

interface Watcher {
  namespace: string
  prefix: string
  format: WatchFormat
  stream: WatchStream
}

interface BurstEvent {
  data: WatchEventData
  /** The change left a register with more siblings than one, where it had one or none before. */
  conflict: boolean
}

interface Burst {
  namespace: string
  context: CausalContext
  token: string | undefined
  watchers: Watcher[]
  events: BurstEvent[]
}

export class WatchHub {
  private readonly watchers = new Map<string, Set<Watcher>>()
  /** Context of each namespace at its latest commit that changed anything. */
  private readonly committed = new Map<string, CausalContext>()
  private readonly bursts = new Map<string, Burst>()
  private readonly heartbeat: NodeJS.Timeout
  private closed = false
  private readonly peer: HearsayPeer
  private readonly metrics: DaemonMetrics
  private readonly queueBytes: number

  /** `queueBytes`: what one watcher may have queued before it is cut off with `overflow`. */
  constructor(
    peer: HearsayPeer,
    metrics: DaemonMetrics,
    heartbeatMs: number,
    queueBytes = DEFAULT_WATCH_QUEUE_BYTES,
  ) {
    this.peer = peer
    this.metrics = metrics
    this.queueBytes = queueBytes
    for (const name of peer.namespaces()) this.track(peer.namespace(name))
    peer.on('change', this.onChange)
    this.heartbeat = setInterval(() => {
      for (const set of this.watchers.values()) for (const watcher of set) watcher.stream.push(': ping\n\n')
    }, heartbeatMs)
    this.heartbeat.unref()
  }

  /** Records a namespace's committed context; call when it is opened, before anything writes to it. */
  track(replica: Replica): void {
    if (!this.committed.has(replica.namespace)) this.committed.set(replica.namespace, replica.context())
  }

  get clientCount(): number {
    let count = 0
    for (const set of this.watchers.values()) count += set.size
    return count
  }

  /**
   * Opens a stream: replay of what changed since `since` (if given), a `ready` event carrying the
   * current token, then live changes.
   */
  async open(
    replica: Replica,
    prefix: string,
    since: CausalContext | undefined,
    format: WatchFormat = 'full',
  ): Promise<AsyncIterable<string>> {
    if (this.closed) throw new ApiError(503, 'SHUTTING_DOWN', 'the daemon is shutting down')
    this.track(replica)
    // Let writes already applied in memory reach the disk, so the replay is of committed state.
    await replica.flush()
    const namespace = replica.namespace
    const stream = new WatchStream(() => this.remove(watcher), this.queueBytes)
    const watcher: Watcher = { namespace, prefix, format, stream }
    let set = this.watchers.get(namespace)
    if (set === undefined) {
      set = new Set()
      this.watchers.set(namespace, set)
    }
    set.add(watcher)
    this.metrics.watchOpened()

    // From here to the end of this function nothing awaits: the set of replayed keys and the token
    // describe one instant, and every later commit reaches the stream live.
    const committed = this.committed.get(namespace) ?? replica.context()
    const token = encodeSince(committed)
    if (since === undefined) {
      stream.push(sseBlock('ready', { namespace, prefix, replayed: 0, reset: false }, token))
      return stream
    }
    const delta = replica.deltasSince(since)
    // deltasSince falls back to a full snapshot when the token predates collected tombstones:
    // deletions from before then cannot be replayed, so tell the client to start over.
    const reset = !delta.context.intersection(since).isEmpty()
    // Which keys changed is fixed now; each is described when the client reads that far (so a large
    // replay is never all in memory at once), with its state then: at least as new as now, and any
    // later change also arrives live.
    const changed: { type: 'register' | 'counter' | 'set'; key: string; element?: string }[] = []
    const seen = new Set<string>()
    for (const entry of delta.entries) {
      if (!committed.has(entry.replica, entry.counter) || seen.has(entry.key)) continue
      seen.add(entry.key)
      const parsed = parseInternalKey(entry.key)
      if (parsed.key.startsWith(prefix)) changed.push(parsed)
    }
    stream.replay(
      (function* () {
        if (reset)
          yield sseBlock('reset', { namespace, reason: 'the token is older than this peer can replay' })
        let replayed = 0
        for (const change of changed) {
          const data = describeChange(replica, change, 'replay')
          if (data === undefined) continue
          replayed++
          yield sseBlock('change', shaped(data, format))
        }
        yield sseBlock('ready', { namespace, prefix, replayed, reset }, token)
      })(),
    )
    return stream
  }

  /** Ends every stream with a `shutdown` event. */
  close(): void {
    if (this.closed) return
    this.closed = true
    clearInterval(this.heartbeat)
    this.peer.off('change', this.onChange)
    for (const set of this.watchers.values()) {
      for (const watcher of [...set])
        watcher.stream.end(sseBlock('shutdown', { reason: 'the daemon is stopping' }))
    }
  }

  /** The namespace was left: its streams end with a `left` event and its record is dropped. */
  leave(namespace: string): void {
    this.committed.delete(namespace)
    for (const watcher of [...(this.watchers.get(namespace) ?? [])])
      watcher.stream.end(sseBlock('left', { namespace, reason: 'this peer left the namespace' }))
  }

  private remove(watcher: Watcher): void {
    const set = this.watchers.get(watcher.namespace)
    if (set?.delete(watcher)) this.metrics.watchClosed()
  }

  private readonly onChange = (event: ChangeEvent): void => {
    if (event.origin === 'gc') return
    this.metrics.change(event.namespace, event.origin)
    let burst = this.bursts.get(event.namespace)
    const replica = this.peer.namespace(event.namespace)
    if (burst === undefined) {
      // The first change of a commit: the context now is exactly what that commit made durable.
      // Expiries are announced outside commits, when a merge may be applied in memory and not yet
      // committed (nor shown): their token is the last commit's, or resuming from it would skip
      // that merge.
      let context = this.committed.get(event.namespace)
      if (event.origin !== 'expire' || context === undefined) {
        context = replica.context()
        this.committed.set(event.namespace, context)
      }
      burst = {
        namespace: event.namespace,
        context,
        token: undefined,
        watchers: [...(this.watchers.get(event.namespace) ?? [])],
        events: [],
      }
      this.bursts.set(event.namespace, burst)
      const current = burst
      queueMicrotask(() => this.flush(current))
    }
    // One read of a register serves the lag metric and the event (its ETag is encoded only if shown).
    const watched = burst.watchers.length > 0
    const read =
      event.type === 'register' && (watched || event.origin === 'remote')
        ? readQuietly(replica, event.key)
        : undefined
    if (event.origin === 'remote' && read !== undefined) this.recordLag(read)
    if (!watched) return
    const data = describeChange(replica, event, event.origin, read)
    if (data === undefined) return
    const siblings = typeof data.siblings === 'number' ? data.siblings : 0
    const conflict = siblings > 1 && siblings - (event.siblingsAdded ?? 0) <= 1
    burst.events.push({ data, conflict })
  }

  /** How long a remote write took to arrive. */
  private recordLag(read: ReadResult): void {
    const winner = read.winner
    if (replicaBase(winner.replica) !== this.peer.peerId)
      this.metrics.convergenceLag((Date.now() - winner.wall) / 1000)
  }

  private flush(burst: Burst): void {
    this.bursts.delete(burst.namespace)
    if (burst.events.length === 0) return
    // Watchers of one format share one string per event (a 1 MiB value is not copied per watcher).
    const shared: Record<WatchFormat, string[]> = { full: [], compact: [] }
    for (const watcher of burst.watchers) {
      let last = -1
      for (let i = 0; i < burst.events.length; i++)
        if (burst.events[i].data.key.startsWith(watcher.prefix)) last = i
      if (last < 0) continue
      burst.token ??= encodeSince(burst.context)
      const blocks = shared[watcher.format]
      let text = ''
      for (let i = 0; i <= last; i++) {
        const { data, conflict } = burst.events[i]
        if (!data.key.startsWith(watcher.prefix)) continue
        // The commit's token goes on its last event only.
        if (i === last && !conflict) {
          text += sseBlock('change', shaped(data, watcher.format), burst.token)
          continue
        }
        blocks[2 * i] ??= sseBlock('change', shaped(data, watcher.format))
        text += blocks[2 * i]
        if (!conflict) continue
        if (i === last) text += sseBlock('conflict', shaped(data, watcher.format), burst.token)
        else {
          blocks[2 * i + 1] ??= sseBlock('conflict', shaped(data, watcher.format))
          text += blocks[2 * i + 1]
        }
      }
      watcher.stream.push(text)
    }
  }
}

function readQuietly(replica: Replica, key: string): ReadResult | undefined {
  try {
    return replica.get(key)
  } catch {
    // A key that cannot be read has nothing to show.
    return undefined
  }
}

/**
 * An event's data in a watcher's format. Compact keeps the key and value and adds a field only
 * where it differs from the common case: `type` unless register, `op` for a delete or a set
 * remove, `encoding` and `contentType` unless the value is JSON, `siblings` when more than one.
 */
function shaped(data: WatchEventData, format: WatchFormat): WatchEventData | Record<string, unknown> {
  if (format === 'full') return data
  const out: Record<string, unknown> = { key: data.key }
  if (data.type !== 'register') out.type = data.type
  if (data.element !== undefined) out.element = data.element
  if (data.op === 'delete' || data.op === 'remove') out.op = data.op
  if (data.encoding !== undefined && data.encoding !== 'json') {
    out.encoding = data.encoding
    out.contentType = data.contentType
  }
  if (data.value !== undefined) out.value = data.value
  if (typeof data.siblings === 'number' && data.siblings > 1) out.siblings = data.siblings
  if (data.origin === 'replay' || data.origin === 'expire') out.origin = data.origin
  return out
}

/** The state of a changed key now, as a watch event; undefined if it cannot be read. */
function describeChange(
  replica: Replica,
  change: { type: 'register' | 'counter' | 'set'; key: string; element?: string },
  origin: WatchOrigin,
  /** A register's state when the caller read it already. */
  known?: ReadResult,
): WatchEventData | undefined {
  const base = { namespace: replica.namespace, type: change.type, key: change.key, origin }
  try {
    if (change.type === 'register') {
      const read = known ?? replica.get(change.key)
      if (read === undefined) return { ...base, op: 'delete' }
      return {
        ...base,
        op: 'put',
        ...encodeValue(read.winner.value, read.winner.contentType),
        etag: read.etag,
        siblings: read.siblings.length,
        replica: read.winner.replica,
        wall: read.winner.wall,
      }
    }
    if (change.type === 'counter') return { ...base, op: 'update', value: replica.counter(change.key) }
    const element = change.element ?? ''
    return { ...base, element, op: replica.setHas(change.key, element) ? 'add' : 'remove' }
  } catch {
    return undefined
  }
}

export function sseBlock(event: string, data: unknown, id?: string): string {
  // JSON strings escape newlines and embedded values have none, so the data is always one `data:` line.
  return `${id === undefined ? '' : `id: ${id}\n`}event: ${event}\ndata: ${stringifyJson(data)}\n\n`
}

/** Resume tokens with replica tags (see the top of this file); `SINCE_TOKEN_PREFIX` (c1) ones name replicas whole. */
const TAGGED_TOKEN_PREFIX = 'c2.'
const REPLICA_TAG_BYTES = 4
const MAX_TOKEN_CHARS = 65_536

/** Replica id → its tag; replica ids are few and long-lived, so the cache stays small. */
const replicaTags = new Map<string, number>()
const MAX_CACHED_TAGS = 10_000

function replicaTag(replica: string): number {
  let tag = replicaTags.get(replica)
  if (tag === undefined) {
    tag = createHash('sha256').update(replica, 'utf8').digest().readUInt32BE(0)
    if (replicaTags.size >= MAX_CACHED_TAGS) replicaTags.clear()
    replicaTags.set(replica, tag)
  }
  return tag
}

/** A resume token for `context`: count, then per replica (tag, ranges), base64url. */
export function encodeSince(context: CausalContext): string {
  const writer = new Writer()
  const entries = context.entries()
  writer.uint(entries.length)
  for (const [replica, ranges] of entries) {
    const tag = replicaTag(replica)
    for (let shift = 24; shift >= 0; shift -= 8) writer.byte((tag >>> shift) & 0xff)
    writeRanges(writer, ranges)
  }
  return TAGGED_TOKEN_PREFIX + Buffer.from(writer.finish()).toString('base64url')
}

/**
 * The context a resume token names. A tagged token's replicas are looked up among `known` (the
 * namespace's replicas, asked for only when needed); a tag this peer cannot map back to exactly one
 * replica is left out, which can only replay more, never less (delivery is at least once).
 */
export function decodeSince(token: string, known: () => Iterable<string> = () => []): CausalContext {
  const prefix = token.startsWith(TAGGED_TOKEN_PREFIX) ? TAGGED_TOKEN_PREFIX : SINCE_TOKEN_PREFIX
  const body = token.slice(prefix.length)
  if (!token.startsWith(prefix) || body.length > MAX_TOKEN_CHARS || !/^[A-Za-z0-9_-]*$/.test(body)) {
    throw new ApiError(
      400,
      'INVALID_SINCE',
      `since must be "now" or a token from a watch event id (${TAGGED_TOKEN_PREFIX}...)`,
    )
  }
  try {
    const bytes = Buffer.from(body, 'base64url')
    return prefix === SINCE_TOKEN_PREFIX ? decodeContext(bytes) : decodeTagged(bytes, known)
  } catch (error) {
    if (error instanceof ApiError) throw error
    throw new ApiError(400, 'INVALID_SINCE', `since token does not decode: ${(error as Error).message}`)
  }
}

function decodeTagged(bytes: Uint8Array, known: () => Iterable<string>): CausalContext {
  const reader = new Reader(bytes)
  const count = reader.count('token replicas', DEFAULT_LIMITS.maxStrings, REPLICA_TAG_BYTES + 1)
  const tagged: Array<[number, number[]]> = []
  for (let i = 0; i < count; i++) {
    let tag = 0
    for (let b = 0; b < REPLICA_TAG_BYTES; b++) tag = tag * 256 + reader.byte('token replica tag')
    tagged.push([tag, readRanges(reader, 'token', DEFAULT_LIMITS.maxRanges)])
  }
  reader.end()
  if (tagged.length === 0) return new CausalContext()
  const byTag = new Map<number, string | null>()
  for (const replica of known()) {
    const tag = replicaTag(replica)
    byTag.set(tag, byTag.has(tag) ? null : replica)
  }
  const parsed: Array<[string, number[]]> = []
  for (const [tag, ranges] of tagged) {
    const replica = byTag.get(tag)
    if (typeof replica === 'string') parsed.push([replica, ranges])
  }
  return CausalContext.fromRanges(parsed)
}

/**
 * The body of one watch response: a queue of text chunks the HTTP adapter drains (honouring socket
 * backpressure). A client that falls MAX_WATCH_QUEUE events or `maxBytes` of text behind is cut off
 * with an `overflow` event; it resumes from its last id and loses nothing.
 */
/** Replay text handed to the socket per read. */
const REPLAY_CHUNK_UNITS = 64 * 1024
/** Queued text handed to the socket per read (one event may be larger). */
const READ_CHUNK_UNITS = 256 * 1024

export class WatchStream implements AsyncIterableIterator<string> {
  private queue: string[] = []
  /** UTF-16 code units queued: a cheap bound on bytes (a unit is at most 3 bytes of UTF-8). */
  private queuedUnits = 0
  /** Events described as the client reads them, sent before anything queued. */
  private replaying: Iterator<string> | undefined
  private waiting: ((result: IteratorResult<string>) => void) | undefined
  private ended = false
  private cleaned = false
  private readonly onClose: () => void
  private readonly maxUnits: number

  constructor(onClose: () => void, maxBytes = DEFAULT_WATCH_QUEUE_BYTES) {
    this.onClose = onClose
    this.maxUnits = maxBytes
  }

  /** Sends these chunks first, producing each only when the client has read what came before. */
  replay(chunks: Iterator<string>): void {
    this.replaying = chunks
  }

  push(chunk: string): void {
    if (this.ended) return
    if (this.waiting !== undefined) {
      const resolve = this.waiting
      this.waiting = undefined
      resolve({ value: chunk, done: false })
      return
    }
    this.queue.push(chunk)
    this.queuedUnits += chunk.length
    if (this.queue.length > MAX_WATCH_QUEUE || this.queuedUnits > this.maxUnits) {
      this.queue = []
      this.queuedUnits = 0
      this.replaying = undefined
      this.end(sseBlock('overflow', { reason: 'the client read too slowly; resume with the last event id' }))
    }
  }

  /** Ends the stream after what is queued (and `last`, if given). */
  end(last?: string): void {
    if (this.ended) return
    if (last !== undefined) {
      this.push(last)
      // The closing event is always delivered, even to a full queue.
      if (this.ended) return
    }
    this.ended = true
    this.cleanup()
    if (this.waiting !== undefined && this.queue.length === 0) {
      const resolve = this.waiting
      this.waiting = undefined
      resolve({ value: undefined, done: true })
    }
  }

  next(): Promise<IteratorResult<string>> {
    if (this.replaying !== undefined) {
      let text = ''
      // Up to REPLAY_CHUNK_UNITS per read, so the socket's backpressure paces the replay.
      while (text.length < REPLAY_CHUNK_UNITS) {
        const item = this.replaying.next()
        if (item.done === true) {
          this.replaying = undefined
          break
        }
        text += item.value
      }
      if (text !== '') return Promise.resolve({ value: text, done: false })
    }
    if (this.queue.length > 0) {
      // At most READ_CHUNK_UNITS (or one event) per read: what a stalled socket holds beyond the
      // queue stays small, and the queue's bound stays the bound.
      let count = 1
      let units = this.queue[0].length
      while (count < this.queue.length && units + this.queue[count].length <= READ_CHUNK_UNITS)
        units += this.queue[count++].length
      const value = count === 1 ? this.queue[0] : this.queue.slice(0, count).join('')
      this.queue = count === this.queue.length ? [] : this.queue.slice(count)
      this.queuedUnits -= units
      return Promise.resolve({ value, done: false })
    }
    if (this.ended) return Promise.resolve({ value: undefined, done: true })
    return new Promise((resolve) => {
      this.waiting = resolve
    })
  }

  return(): Promise<IteratorResult<string>> {
    this.ended = true
    this.replaying = undefined
    this.queue = []
    this.queuedUnits = 0
    this.cleanup()
    if (this.waiting !== undefined) {
      const resolve = this.waiting
      this.waiting = undefined
      resolve({ value: undefined, done: true })
    }
    return Promise.resolve({ value: undefined, done: true })
  }

  [Symbol.asyncIterator](): AsyncIterableIterator<string> {
    return this
  }

  private cleanup(): void {
    if (this.cleaned) return
    this.cleaned = true
    this.onClose()
  }
}

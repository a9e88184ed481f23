import { decodeContext, encodeContext } from '../codec/delta.ts'
import type { CausalContext } from '../crdt/context.ts'
import { parseInternalKey } from '../crdt/document.ts'
import type { HearsayPeer } from '../peer/peer.ts'
import { replicaBase } from '../replica/incarnation.ts'
import type { ChangeEvent, Replica } from '../replica/replica.ts'
import { DEFAULT_WATCH_QUEUE_BYTES, MAX_WATCH_QUEUE, SINCE_TOKEN_PREFIX } from './constants.ts'
import { ApiError } from './errors.ts'
import type { DaemonMetrics } from './metrics.ts'
import { encodeValue, stringifyJson } from './values.ts'

/**
 * Watch streams (Server-Sent Events) and resume tokens.
 *
 * A resume token is the namespace's causal context at a commit, encoded (`c1.` + base64url). Given
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

interface Watcher {
  namespace: string
  prefix: string
  stream: WatchStream
}

interface Burst {
  namespace: string
  context: CausalContext
  token: string | undefined
  watchers: Watcher[]
  events: WatchEventData[]
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
  ): Promise<AsyncIterable<string>> {
    if (this.closed) throw new ApiError(503, 'SHUTTING_DOWN', 'the daemon is shutting down')
    this.track(replica)
    // Let writes already applied in memory reach the disk, so the replay is of committed state.
    await replica.flush()
    const namespace = replica.namespace
    const stream = new WatchStream(() => this.remove(watcher), this.queueBytes)
    const watcher: Watcher = { namespace, prefix, stream }
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
          yield sseBlock('change', data)
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
      const context = replica.context()
      this.committed.set(event.namespace, context)
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
    if (event.origin === 'remote' && event.type === 'register') this.recordLag(replica, event.key)
    if (burst.watchers.length === 0) return
    const data = describeChange(replica, event, event.origin)
    if (data === undefined) return
    burst.events.push(data)
  }

  /** How long a remote write took to arrive (without encoding its value: nobody may be watching). */
  private recordLag(replica: Replica, key: string): void {
    try {
      const winner = replica.get(key)?.winner
      if (winner !== undefined && replicaBase(winner.replica) !== this.peer.peerId)
        this.metrics.convergenceLag((Date.now() - winner.wall) / 1000)
    } catch {
      // A key that cannot be read has no lag to show.
    }
  }

  private flush(burst: Burst): void {
    this.bursts.delete(burst.namespace)
    if (burst.events.length === 0) return
    const blocks: string[] = []
    for (const watcher of burst.watchers) {
      let last = -1
      for (let i = 0; i < burst.events.length; i++)
        if (burst.events[i].key.startsWith(watcher.prefix)) last = i
      if (last < 0) continue
      burst.token ??= encodeSince(burst.context)
      let text = ''
      for (let i = 0; i <= last; i++) {
        const data = burst.events[i]
        if (!data.key.startsWith(watcher.prefix)) continue
        if (i === last) text += sseBlock('change', data, burst.token)
        else {
          // Watchers share one string per event (a 1 MiB value is not copied per watcher).
          blocks[i] ??= sseBlock('change', data)
          text += blocks[i]
        }
      }
      watcher.stream.push(text)
    }
  }
}

/** The state of a changed key now, as a watch event; undefined if it cannot be read. */
function describeChange(
  replica: Replica,
  change: { type: 'register' | 'counter' | 'set'; key: string; element?: string },
  origin: WatchOrigin,
): WatchEventData | undefined {
  const base = { namespace: replica.namespace, type: change.type, key: change.key, origin }
  try {
    if (change.type === 'register') {
      const read = replica.get(change.key)
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

export function encodeSince(context: CausalContext): string {
  return SINCE_TOKEN_PREFIX + Buffer.from(encodeContext(context)).toString('base64url')
}

export function decodeSince(token: string): CausalContext {
  if (
    !token.startsWith(SINCE_TOKEN_PREFIX) ||
    !/^[A-Za-z0-9_-]*$/.test(token.slice(SINCE_TOKEN_PREFIX.length))
  ) {
    throw new ApiError(
      400,
      'INVALID_SINCE',
      `since must be "now" or a token from a watch event id (${SINCE_TOKEN_PREFIX}...)`,
    )
  }
  try {
    return decodeContext(Buffer.from(token.slice(SINCE_TOKEN_PREFIX.length), 'base64url'))
  } catch (error) {
    throw new ApiError(400, 'INVALID_SINCE', `since token does not decode: ${(error as Error).message}`)
  }
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

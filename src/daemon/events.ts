import type { Logger } from 'pino'
import type { MeshEvent, PeerActivity } from '../peer/replication-state.ts'
import { DEFAULT_WATCH_QUEUE_BYTES } from './constants.ts'
import { ApiError } from './errors.ts'
import type { DaemonMetrics } from './metrics.ts'
import { sseBlock, WatchStream } from './watch.ts'

/**
 * The mesh's events (peers connecting and disconnecting, anti-entropy sessions starting, completing,
 * failing) on `GET /v1/events` and in the log. Each stream is bounded like a watch stream: a client
 * that falls `queueBytes` behind gets an `overflow` event and the stream ends (events are not
 * replayed: the current state is at /v1/ns/{ns}/replication). The log is rate-limited per peer, so a
 * peer that connects and drops in a loop cannot flood it.
 */

/** The JSON of one event: times as ISO strings (`at`) and milliseconds since the epoch (`atMs`). */
export function eventData(event: MeshEvent): Record<string, unknown> {
  const { at, ...rest } = event
  return { ...rest, at: new Date(at).toISOString(), atMs: at }
}

export interface LogLimit {
  /** Lines per peer per window. Default 20. */
  perPeer?: number
  /** Lines over all peers per window (a hub has many peers). Default 300. */
  total?: number
  /** Default 60 s. */
  windowMs?: number
  now?: () => number
}

/** Peers tracked at most by the limiter; past it the slate is wiped (a burst of new ids). */
const MAX_LIMITED_PEERS = 10_000

/**
 * At most `perPeer` lines per peer and `total` lines in all per window; the first line about a peer in
 * a later window says how many about it were left out. Pure: the clock is injected.
 */
export class EventLogLimiter {
  private readonly perPeer: number
  private readonly total: number
  private readonly windowMs: number
  private readonly now: () => number
  private readonly windows = new Map<string, { start: number; lines: number; suppressed: number }>()
  private overall = { start: Number.NEGATIVE_INFINITY, lines: 0 }

  constructor(limit: LogLimit = {}) {
    this.perPeer = limit.perPeer ?? 20
    this.total = limit.total ?? 300
    this.windowMs = limit.windowMs ?? 60_000
    this.now = limit.now ?? Date.now
  }

  /** Whether to log a line about `peerId` now, and how many lines the previous window left out. */
  admit(peerId: string): { log: boolean; suppressed: number } {
    const now = this.now()
    if (now - this.overall.start >= this.windowMs) this.overall = { start: now, lines: 0 }
    let window = this.windows.get(peerId)
    let suppressed = 0
    if (window === undefined || now - window.start >= this.windowMs) {
      suppressed = window?.suppressed ?? 0
      if (window === undefined && this.windows.size >= MAX_LIMITED_PEERS) this.windows.clear()
      window = { start: now, lines: 0, suppressed: 0 }
      this.windows.set(peerId, window)
    }
    if (window.lines >= this.perPeer || this.overall.lines >= this.total) {
      window.suppressed += suppressed + 1
      return { log: false, suppressed: 0 }
    }
    window.lines++
    this.overall.lines++
    return { log: true, suppressed }
  }
}

const MESSAGES: Record<MeshEvent['type'], string> = {
  'peer-connected': 'peer connected',
  'peer-disconnected': 'peer disconnected',
  'sync-started': 'anti-entropy session started',
  'sync-completed': 'anti-entropy session completed',
  'sync-failed': 'anti-entropy session failed',
}

/**
 * Info for what an operator looks for when peers do not converge (connections, failures, sessions
 * that moved data); debug for the routine: a session starting, a periodic session that found both
 * sides equal, a peer that does not replicate the namespace.
 */
function levelOf(event: MeshEvent): 'info' | 'debug' {
  switch (event.type) {
    case 'sync-started':
      return 'debug'
    case 'sync-completed':
      return event.equal ? 'debug' : 'info'
    case 'sync-failed':
      return event.code === 'remote-not-joined' ? 'debug' : 'info'
    default:
      return 'info'
  }
}

export interface EventHubInit {
  metrics: DaemonMetrics
  logger: Logger
  heartbeatMs: number
  /** What one client may have queued before it is cut off with `overflow`. */
  queueBytes?: number
  logLimit?: LogLimit
}

export class EventHub {
  private readonly streams = new Set<WatchStream>()
  private readonly init: EventHubInit
  private readonly limiter: EventLogLimiter
  private readonly heartbeat: NodeJS.Timeout
  private readonly detach: Array<() => void> = []
  private closed = false

  constructor(init: EventHubInit) {
    this.init = init
    this.limiter = new EventLogLimiter(init.logLimit)
    this.heartbeat = setInterval(() => {
      for (const stream of this.streams) stream.push(': ping\n\n')
    }, init.heartbeatMs)
    this.heartbeat.unref()
  }

  get clientCount(): number {
    return this.streams.size
  }

  /** Follows a mesh's events; `describePeer` adds log fields (where a peer connects from). */
  attach(activity: PeerActivity, describePeer: (peerId: string) => object = () => ({})): void {
    this.detach.push(activity.on((event) => this.publish(event, describePeer)))
  }

  /** A new stream: `ready`, then every event from now on. */
  open(self: string): AsyncIterable<string> {
    if (this.closed) throw new ApiError(503, 'SHUTTING_DOWN', 'the daemon is shutting down')
    const stream = new WatchStream(() => {
      if (this.streams.delete(stream)) this.init.metrics.eventStreamClosed()
    }, this.init.queueBytes ?? DEFAULT_WATCH_QUEUE_BYTES)
    this.streams.add(stream)
    this.init.metrics.eventStreamOpened()
    const now = Date.now()
    stream.push(
      sseBlock('ready', { type: 'ready', peerId: self, at: new Date(now).toISOString(), atMs: now }),
    )
    return stream
  }

  /** Ends every stream with a `shutdown` event. */
  close(): void {
    if (this.closed) return
    this.closed = true
    clearInterval(this.heartbeat)
    for (const stop of this.detach) stop()
    for (const stream of [...this.streams])
      stream.end(sseBlock('shutdown', { reason: 'the daemon is stopping' }))
  }

  private publish(event: MeshEvent, describePeer: (peerId: string) => object): void {
    this.init.metrics.meshEvent(event.type)
    const data = eventData(event)
    this.log(event, data, describePeer)
    if (this.streams.size === 0) return
    const block = sseBlock(event.type, data)
    for (const stream of this.streams) stream.push(block)
  }

  private log(
    event: MeshEvent,
    data: Record<string, unknown>,
    describePeer: (peerId: string) => object,
  ): void {
    const level = levelOf(event)
    const logger = this.init.logger
    if (!logger.isLevelEnabled(level)) return
    const { log, suppressed } = this.limiter.admit(event.peerId)
    if (!log) return
    const { type: _type, peerId, at: _at, atMs: _atMs, ...fields } = data
    const extra = event.type === 'peer-connected' ? describePeer(event.peerId) : {}
    logger[level](
      { peer: peerId, ...fields, ...extra, ...(suppressed > 0 ? { suppressedBefore: suppressed } : {}) },
      MESSAGES[event.type],
    )
  }
}

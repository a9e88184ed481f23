import type { PeerId, Stream } from '@libp2p/interface'
import type { ConnectionManager, Registrar } from '@libp2p/interface-internal'
import { lpStream } from '@libp2p/utils'
import { DecodeError } from '../codec/errors.ts'
import type { CausalContext } from '../crdt/context.ts'
import type { Replica } from '../replica/replica.ts'
import { SignatureError } from '../replica/signing.ts'
import {
  BUSY_RETRY_FIRST_MS,
  BUSY_RETRY_MAX_MS,
  BUSY_RETRY_TOTAL_MS,
  DEFAULT_CHUNK_BYTES,
  DEFAULT_IDLE_TIMEOUT_MS,
  DEFAULT_MAX_SESSION_BYTES,
  MAX_SYNC_FRAME_BYTES,
  MERGE_BACKLOG_PAUSE_BYTES,
  MERGE_BACKLOG_RESUME_BYTES,
  PAUSED_READ_BUFFER_BYTES,
  SYNC_PROTOCOL,
  TURN_STALL_MS,
} from './constants.ts'
import { decodeSyncFrame, encodeSyncFrame, type SyncFrame } from './frames.ts'
import { NamespaceGate } from './gate.ts'
import { SyncQuota } from './quota.ts'
import { type SessionStats, SyncProtocolError, SyncSession } from './session.ts'

/**
 * The anti-entropy protocol on libp2p streams: one stream per (peer, namespace) session, frames
 * length-prefixed and bounded, reading and writing decoupled so two large transfers in opposite
 * directions cannot deadlock on flow control. Every read has an idle timeout; a session has a byte
 * budget; any protocol error aborts the stream (never the process).
 *
 * A libp2p service: `syncService(init)` is listed under the node's `services` (see
 * buildLibp2pOptions), and libp2p starts and stops it with the node.
 */

export interface SyncServiceInit {
  /** The replica of a joined namespace, or undefined when we do not replicate it. */
  replica(namespace: string): Replica | undefined
  chunkBytes?: number
  idleTimeoutMs?: number
  maxSessionBytes?: number
  /** Bytes and entries each peer may send us per minute (default DEFAULT_SYNC_QUOTA). */
  quota?: SyncQuota
  /** Told as each session starts, once its stream is open (events). */
  onStart?(peer: PeerId, namespace: string, role: 'initiator' | 'responder'): void
  /** Told about every finished session (metrics, membership). */
  onSession?(event: SessionEvent): void
  /** Told about every failed session, once per failure. */
  onError?(error: Error, peer: PeerId, namespace: string | undefined): void
  /**
   * Received bytes a session may hold unmerged before it stops reading (backpressure); it reads
   * again at a quarter of this. Default MERGE_BACKLOG_PAUSE_BYTES.
   */
  mergeBacklogBytes?: number
  /** A turn's holder quiet this long no longer keeps others out. Default TURN_STALL_MS. */
  turnStallMs?: number
  /** Returns a number in [0, 1) (jitter of the retries after BUSY). Default Math.random. */
  random?: () => number
}

/** A session under way, as status and metrics show it. */
export interface SessionProgress {
  peer: string
  namespace: string
  role: 'initiator' | 'responder'
  /** ms since epoch. */
  startedAt: number
  entriesReceived: number
  bytesReceived: number
  /** Entries received and durably merged so far. */
  entriesMerged: number
}

export interface SessionEvent {
  peer: PeerId
  namespace: string
  role: 'initiator' | 'responder'
  stats: SessionStats
  bytesSent: number
  bytesReceived: number
  /** Round trips the initiator waited for (1 when digests matched). */
  roundTrips: number
  durationMs: number
  /** Our context as we sent it: together with stats.remoteContext, what the peer now holds at least. */
  localContext: CausalContext
}

/** What the sync service takes from libp2p: the protocol registrar and the stream opener. */
export interface SyncServiceComponents {
  registrar: Pick<Registrar, 'handle' | 'unhandle'>
  connectionManager: Pick<ConnectionManager, 'openStream'>
}

/** The libp2p service factory, in the shape of libp2p's own protocol packages. */
export function syncService(init: SyncServiceInit): (components: SyncServiceComponents) => SyncService {
  return (components) => new SyncService(components, init)
}

export class SyncService {
  readonly [Symbol.toStringTag] = '@hearsay/sync'
  private readonly components: SyncServiceComponents
  private readonly init: SyncServiceInit
  private readonly controller = new AbortController()
  private readonly running = new Map<string, Promise<SessionEvent>>()
  private readonly quota: SyncQuota
  /** One session at a time per namespace: catch-up comes once, not once per neighbour. */
  private readonly gate = new NamespaceGate()
  private readonly live = new Set<SessionProgress>()
  /** Sessions answered BUSY so far, and retries after a BUSY (metrics, tests). */
  readonly busy = { refused: 0, retried: 0 }
  /** Times a session stopped reading until its merges caught up (tests). */
  pauses = 0

  constructor(components: SyncServiceComponents, init: SyncServiceInit) {
    this.components = components
    this.init = init
    this.quota = init.quota ?? new SyncQuota()
  }

  async start(): Promise<void> {
    await this.components.registrar.handle(
      SYNC_PROTOCOL,
      (stream, connection) => {
        void this.respond(stream, connection.remotePeer)
      },
      { maxInboundStreams: 64, maxOutboundStreams: 64 },
    )
  }

  async stop(): Promise<void> {
    this.controller.abort(new Error('sync service stopped'))
    await this.components.registrar.unhandle(SYNC_PROTOCOL).catch(() => {})
    await Promise.allSettled(this.running.values())
  }

  /** Sessions under way (status and metrics: a catch-up's progress). */
  progress(): SessionProgress[] {
    return [...this.live].map((session) => ({ ...session }))
  }

  /** Sessions of a namespace waiting for their turn behind the one under way. */
  waiting(namespace: string): number {
    return this.gate.waiters(namespace)
  }

  /**
   * Runs one session with a peer for a namespace. Concurrent calls for the same pair share one
   * session. Sessions of one namespace run one at a time; a peer busy with another session of it
   * answers BUSY, and the session is tried again after a jittered backoff (for BUSY_RETRY_TOTAL_MS
   * at most). Rejects on protocol errors, timeouts and aborts.
   */
  syncWith(
    peer: PeerId,
    namespace: string,
    signal?: AbortSignal,
    options: { push?: boolean } = {},
  ): Promise<SessionEvent> {
    const key = `${peer.toString()} ${namespace}`
    let session = this.running.get(key)
    if (session === undefined) {
      session = this.initiateUntilNotBusy(peer, namespace, signal, options.push === true).finally(() =>
        this.running.delete(key),
      )
      this.running.set(key, session)
    }
    return session
  }

  private async initiateUntilNotBusy(
    peer: PeerId,
    namespace: string,
    signal: AbortSignal | undefined,
    push: boolean,
  ): Promise<SessionEvent> {
    const random = this.init.random ?? Math.random
    const sessionSignal = this.sessionSignal(signal)
    let waited = 0
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.initiate(peer, namespace, sessionSignal, push)
      } catch (error) {
        if (!(error instanceof SyncProtocolError && error.code === 'remote-busy')) throw error
        const delay = Math.min(BUSY_RETRY_MAX_MS, BUSY_RETRY_FIRST_MS * 2 ** attempt) * (0.5 + random())
        if (waited + delay > BUSY_RETRY_TOTAL_MS) throw error
        waited += delay
        this.busy.retried++
        await pauseFor(delay, sessionSignal)
      }
    }
  }

  private async initiate(
    peer: PeerId,
    namespace: string,
    sessionSignal: AbortSignal,
    push: boolean,
  ): Promise<SessionEvent> {
    const replica = this.init.replica(namespace)
    if (replica === undefined)
      throw new SyncProtocolError('not-joined', `namespace ${namespace} is not joined here`)
    // Our turn first (locally, holding nothing of the peer's), so what we hold when we open is what
    // the sessions before this one left. A push (a write for `?ack`, gossip that reached nobody) is
    // about what we send, and does not wait.
    const release = push ? NO_TURN : await this.turn(namespace, sessionSignal)
    try {
      return await this.initiateInTurn(peer, namespace, replica, sessionSignal, release !== NO_TURN)
    } finally {
      release()
    }
  }

  /** Waits for the namespace's turn, or until its holder stalls (then goes ahead without it). */
  private async turn(namespace: string, signal: AbortSignal): Promise<() => void> {
    const quit = new AbortController()
    const waiting = this.gate.enter(namespace, AbortSignal.any([signal, quit.signal]))
    waiting.catch(() => {})
    for (;;) {
      const release = await Promise.race([waiting, pauseFor(this.stallMs, signal).then(() => undefined)])
      if (release !== undefined) return release
      // Still progressing: keep our place in the queue.
      if (this.gate.busyWithin(namespace, this.stallMs)) continue
      quit.abort(new Error('the session holding the turn stalled'))
      // The turn may have come meanwhile: then take it, else go ahead without it.
      const late = await waiting.then(
        (turn) => turn,
        () => undefined,
      )
      return late ?? NO_TURN
    }
  }

  private async initiateInTurn(
    peer: PeerId,
    namespace: string,
    replica: Replica,
    sessionSignal: AbortSignal,
    holdsTurn: boolean,
  ): Promise<SessionEvent> {
    let stream: Stream
    try {
      stream = await this.components.connectionManager.openStream(peer, SYNC_PROTOCOL, {
        signal: sessionSignal,
      })
    } catch (error) {
      const failure = toError(error)
      this.init.onError?.(failure, peer, namespace)
      throw failure
    }
    const session = new SyncSession({
      role: 'initiator',
      namespace,
      state: replica,
      chunkBytes: this.chunkBytes,
    })
    try {
      return await this.run(stream, session, replica, peer, namespace, sessionSignal, holdsTurn)
    } catch (error) {
      const failure = toError(error)
      // BUSY is not a failure: the session is tried again (syncWith), and reported if it stays busy.
      if (!(failure instanceof SyncProtocolError && failure.code === 'remote-busy'))
        this.init.onError?.(failure, peer, namespace)
      throw failure
    }
  }

  private async respond(stream: Stream, peer: PeerId): Promise<void> {
    const signal = this.sessionSignal()
    const lp = lpStream(stream, {
      maxDataLength: MAX_SYNC_FRAME_BYTES,
      maxBufferSize: PAUSED_READ_BUFFER_BYTES,
    })
    let namespace: string | undefined
    try {
      const first = await lp.read({ signal: this.idle(signal) })
      const frame = decodeSyncFrame(first.subarray())
      if (frame.type !== 'open') throw new SyncProtocolError('unexpected-frame', `${frame.type} before OPEN`)
      namespace = frame.namespace
      const replica = this.init.replica(frame.namespace)
      if (replica === undefined) {
        await lp.write(
          encodeSyncFrame({ type: 'error', code: 'not-joined', message: `not replicating ${namespace}` }),
        )
        await stream.close({ signal })
        return
      }
      // A turn is needed only to receive: not when the digests are equal (EQUAL, nothing merged),
      // nor when our context covers the peer's (it has nothing we lack: a hub answering a client).
      // Otherwise a session of this namespace under way means BUSY: never wait on another's behalf.
      // A session that brings only writers no running session brings goes ahead beside them.
      const brings =
        frame.digest === replica.digest() ? undefined : frame.context.difference(replica.context())
      let release =
        brings === undefined || brings.isEmpty()
          ? NO_TURN
          : this.gate.tryEnter(namespace, new Set(brings.replicas()))
      // A holder that stalled (its peer stopped answering) does not make us refuse: answer anyway.
      if (release === undefined && !this.gate.busyWithin(namespace, this.stallMs)) release = NO_TURN
      if (release === undefined) {
        this.busy.refused++
        await lp.write(
          encodeSyncFrame({ type: 'error', code: 'busy', message: `a session of ${namespace} is under way` }),
          { signal },
        )
        await stream.close({ signal })
        return
      }
      const session = new SyncSession({
        role: 'responder',
        namespace,
        state: replica,
        chunkBytes: this.chunkBytes,
      })
      try {
        const holdsTurn = release !== NO_TURN
        await this.run(
          stream,
          session,
          replica,
          peer,
          namespace,
          signal,
          holdsTurn,
          frame,
          lp,
          first.byteLength,
        )
      } finally {
        release()
      }
    } catch (caught) {
      const error = toError(caught)
      this.init.onError?.(error, peer, namespace)
      await tellRefusal(lp, error)
      stream.abort(error)
    }
  }

  private async run(
    stream: Stream,
    session: SyncSession,
    replica: Replica,
    peer: PeerId,
    namespace: string,
    signal: AbortSignal,
    holdsTurn: boolean,
    firstFrame?: SyncFrame,
    existing?: ReturnType<typeof lpStream<Stream>>,
    firstBytes = 0,
  ): Promise<SessionEvent> {
    const started = performance.now()
    this.init.onStart?.(peer, namespace, session.role)
    const lp =
      existing ??
      lpStream(stream, { maxDataLength: MAX_SYNC_FRAME_BYTES, maxBufferSize: PAUSED_READ_BUFFER_BYTES })
    const maxBytes = this.init.maxSessionBytes ?? DEFAULT_MAX_SESSION_BYTES
    let bytesSent = 0
    let bytesReceived = firstBytes
    let roundTrips = 0
    let localContext: CausalContext | undefined
    let writing: Promise<void> = Promise.resolve()
    let writeError: Error | undefined
    let merging: Promise<void> = Promise.resolve()
    let mergeError: Error | undefined
    const progress: SessionProgress = {
      peer: peer.toString(),
      namespace,
      role: session.role,
      startedAt: Date.now(),
      entriesReceived: 0,
      bytesReceived: firstBytes,
      entriesMerged: 0,
    }
    this.live.add(progress)
    // Backpressure: frames read but not merged yet. Past the high mark the stream pauses (the muxer
    // stops granting the sender window), and resumes once merges catch up.
    let backlogBytes = 0
    let paused = false
    const pauseAt = this.init.mergeBacklogBytes ?? MERGE_BACKLOG_PAUSE_BYTES
    const resumeAt = this.init.mergeBacklogBytes === undefined ? MERGE_BACKLOG_RESUME_BYTES : pauseAt / 4
    const pauseReading = () => {
      if (paused || backlogBytes < pauseAt) return
      try {
        // What the sender's window still lets through must fit while paused.
        stream.maxReadBufferLength = Math.max(stream.maxReadBufferLength, PAUSED_READ_BUFFER_BYTES)
        stream.pause()
        paused = true
        this.pauses++
      } catch {
        // Closing already: nothing more will come.
      }
    }
    const resumeReading = () => {
      if (!paused || backlogBytes > resumeAt) return
      paused = false
      try {
        stream.resume()
      } catch {
        // Closed meanwhile.
      }
    }

    // Writes go through one chain so the reader below never waits on the other side's window.
    const send = (frames: SyncFrame[]): void => {
      for (const frame of frames)
        if (frame.type === 'open' || frame.type === 'context') localContext = frame.context
      writing = writing.then(async () => {
        for (const frame of frames) {
          if (writeError !== undefined) return
          const bytes = encodeSyncFrame(frame)
          bytesSent += bytes.length
          try {
            await lp.write(bytes, { signal })
          } catch (error) {
            writeError = toError(error)
          }
        }
      })
    }

    try {
      if (session.role === 'initiator') {
        send(session.open())
        roundTrips = 1
      }
      let pending = firstFrame
      while (!session.done) {
        let frame = pending
        let frameBytes = 0
        pending = undefined
        if (frame === undefined) {
          const bytes = await lp.read({ signal: this.idle(signal) })
          frameBytes = bytes.byteLength
          if (holdsTurn) this.gate.touch(namespace)
          bytesReceived += bytes.byteLength
          progress.bytesReceived = bytesReceived
          if (bytesReceived > maxBytes) {
            throw new SyncProtocolError('too-much-data', `session exceeded ${maxBytes} bytes`)
          }
          frame = decodeSyncFrame(bytes.subarray())
          const entries = frame.type === 'deltas' ? frame.delta.entries.length : 0
          const exhausted = this.quota.charge(peer.toString(), bytes.byteLength, entries)
          if (exhausted !== undefined) {
            // What was merged so far stays; a later session goes on from there.
            throw new SyncProtocolError(
              'quota-exceeded',
              `peer sent more sync ${exhausted} than its quota per minute`,
            )
          }
        }
        if (session.role === 'initiator' && frame.type === 'context') roundTrips = 2
        const step = session.receive(frame)
        send(step.send)
        // Merges run in order but off the read loop: reading promptly keeps the stream's receive
        // buffer small (libp2p resets a stream whose unread data passes 4 MiB).
        const merge = step.merge
        if (merge !== undefined) {
          const entries = merge.delta.entries.length
          const size = frameBytes
          progress.entriesReceived += entries
          backlogBytes += size
          pauseReading()
          merging = merging.then(async () => {
            if (mergeError !== undefined) return
            try {
              await replica.merge(merge.delta, merge.options)
              progress.entriesMerged += entries
              if (holdsTurn) this.gate.touch(namespace)
            } catch (error) {
              // A forged or damaged entry ends the session; what came before it was verified and stays.
              mergeError =
                error instanceof SignatureError
                  ? new SyncProtocolError('bad-signature', error.message)
                  : toError(error)
            } finally {
              backlogBytes -= size
              resumeReading()
            }
          })
        }
        if (writeError !== undefined) throw writeError
        if (mergeError !== undefined) throw mergeError
      }
      await merging
      if (mergeError !== undefined) throw mergeError
      await writing
      if (writeError !== undefined) throw writeError
      if (session.role === 'initiator' && !session.stats.equal) {
        // The responder closes once our last chunk is durable on its side: wait for that.
        await stream.close({ signal })
        await drainUntilEnd(lp, this.idle(signal))
      } else {
        await stream.close({ signal })
      }
    } catch (error) {
      const failure = toError(error)
      await tellRefusal(lp, failure)
      stream.abort(failure)
      throw failure
    } finally {
      this.live.delete(progress)
    }
    const event: SessionEvent = {
      peer,
      namespace,
      role: session.role,
      stats: session.stats,
      bytesSent,
      bytesReceived,
      roundTrips,
      durationMs: performance.now() - started,
      // On EQUAL the responder sends no context of its own: the peer's, whose digest matched ours when
      // the session compared them, is exactly what both held then. Reading ours now would count local
      // writes made during the session as held by the peer.
      localContext: localContext ?? session.stats.remoteContext ?? replica.context(),
    }
    this.init.onSession?.(event)
    return event
  }

  private get stallMs(): number {
    return this.init.turnStallMs ?? TURN_STALL_MS
  }

  private get chunkBytes(): number {
    return this.init.chunkBytes ?? DEFAULT_CHUNK_BYTES
  }

  private sessionSignal(signal?: AbortSignal): AbortSignal {
    return signal === undefined ? this.controller.signal : AbortSignal.any([this.controller.signal, signal])
  }

  private idle(signal: AbortSignal): AbortSignal {
    return AbortSignal.any([signal, AbortSignal.timeout(this.init.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS)])
  }
}

/** The release of a session that runs without the namespace's turn. */
const NO_TURN = (): void => {}

/** Resolves after `ms`, or rejects when the signal aborts first. */
function pauseFor(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) {
      reject(signal.reason)
      return
    }
    const onAbort = () => {
      clearTimeout(timer)
      reject(signal.reason)
    }
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort)
      resolve()
    }, ms)
    signal.addEventListener('abort', onAbort, { once: true })
  })
}

/** Errors whose ERROR frame was already sent (or attempted). */
const told = new WeakSet<Error>()

/** Tells the peer why we end the session (protocol errors only), briefly; never throws. */
async function tellRefusal(lp: ReturnType<typeof lpStream<Stream>>, error: Error): Promise<void> {
  if (told.has(error) || !(error instanceof SyncProtocolError || error instanceof DecodeError)) return
  // The other side's own refusal: it has ended the session already.
  if (error instanceof SyncProtocolError && error.remote) return
  told.add(error)
  const code = error instanceof DecodeError ? 'malformed-frame' : error.code
  await lp
    .write(encodeSyncFrame({ type: 'error', code, message: error.message }), {
      signal: AbortSignal.timeout(1000),
    })
    .catch(() => {})
}

/** libp2p streams can reject with their close Event rather than an Error: unwrap it. */
function toError(error: unknown): Error {
  if (error instanceof Error) return error
  const inner = (error as { error?: unknown } | undefined)?.error
  if (inner instanceof Error) return inner
  return new Error(String((error as { type?: string })?.type ?? error))
}

/** Reads until the remote closes its side; anything it still sends is a protocol error. */
async function drainUntilEnd(lp: ReturnType<typeof lpStream<Stream>>, signal: AbortSignal): Promise<void> {
  try {
    await lp.read({ signal })
  } catch (error) {
    const failure = toError(error)
    if (failure.name === 'UnexpectedEOFError') return
    throw failure
  }
  throw new SyncProtocolError('unexpected-frame', 'data after the session ended')
}

import type { PeerId, Stream } from '@libp2p/interface'
import type { ConnectionManager, Registrar } from '@libp2p/interface-internal'
import { lpStream } from '@libp2p/utils'
import { DecodeError } from '../codec/errors.ts'
import type { CausalContext } from '../crdt/context.ts'
import type { Replica } from '../replica/replica.ts'
import { SignatureError } from '../replica/signing.ts'
import {
  DEFAULT_CHUNK_BYTES,
  DEFAULT_IDLE_TIMEOUT_MS,
  DEFAULT_MAX_SESSION_BYTES,
  MAX_SYNC_FRAME_BYTES,
  SYNC_PROTOCOL,
} from './constants.ts'
import { decodeSyncFrame, encodeSyncFrame, type SyncFrame } from './frames.ts'
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

  /**
   * Runs one session with a peer for a namespace. Concurrent calls for the same pair share one
   * session. Rejects on protocol errors, timeouts and aborts.
   */
  syncWith(peer: PeerId, namespace: string, signal?: AbortSignal): Promise<SessionEvent> {
    const key = `${peer.toString()} ${namespace}`
    let session = this.running.get(key)
    if (session === undefined) {
      session = this.initiate(peer, namespace, signal).finally(() => this.running.delete(key))
      this.running.set(key, session)
    }
    return session
  }

  private async initiate(peer: PeerId, namespace: string, signal?: AbortSignal): Promise<SessionEvent> {
    const replica = this.init.replica(namespace)
    if (replica === undefined)
      throw new SyncProtocolError('not-joined', `namespace ${namespace} is not joined here`)
    const sessionSignal = this.sessionSignal(signal)
    const stream = await this.components.connectionManager.openStream(peer, SYNC_PROTOCOL, {
      signal: sessionSignal,
    })
    const session = new SyncSession({
      role: 'initiator',
      namespace,
      state: replica,
      chunkBytes: this.chunkBytes,
    })
    try {
      return await this.run(stream, session, replica, peer, namespace, sessionSignal)
    } catch (error) {
      const failure = toError(error)
      this.init.onError?.(failure, peer, namespace)
      throw failure
    }
  }

  private async respond(stream: Stream, peer: PeerId): Promise<void> {
    const signal = this.sessionSignal()
    const lp = lpStream(stream, { maxDataLength: MAX_SYNC_FRAME_BYTES })
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
      const session = new SyncSession({
        role: 'responder',
        namespace,
        state: replica,
        chunkBytes: this.chunkBytes,
      })
      await this.run(stream, session, replica, peer, namespace, signal, frame, lp, first.byteLength)
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
    firstFrame?: SyncFrame,
    existing?: ReturnType<typeof lpStream<Stream>>,
    firstBytes = 0,
  ): Promise<SessionEvent> {
    const started = performance.now()
    this.init.onStart?.(peer, namespace, session.role)
    const lp = existing ?? lpStream(stream, { maxDataLength: MAX_SYNC_FRAME_BYTES })
    const maxBytes = this.init.maxSessionBytes ?? DEFAULT_MAX_SESSION_BYTES
    let bytesSent = 0
    let bytesReceived = firstBytes
    let roundTrips = 0
    let localContext: CausalContext | undefined
    let writing: Promise<void> = Promise.resolve()
    let writeError: Error | undefined
    let merging: Promise<void> = Promise.resolve()
    let mergeError: Error | undefined

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
        pending = undefined
        if (frame === undefined) {
          const bytes = await lp.read({ signal: this.idle(signal) })
          bytesReceived += bytes.byteLength
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
          merging = merging.then(async () => {
            if (mergeError !== undefined) return
            try {
              await replica.merge(merge.delta, merge.options)
            } catch (error) {
              // A forged or damaged entry ends the session; what came before it was verified and stays.
              mergeError =
                error instanceof SignatureError
                  ? new SyncProtocolError('bad-signature', error.message)
                  : toError(error)
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

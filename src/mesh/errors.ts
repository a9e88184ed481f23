import { HearsayError } from '../errors.ts'

/** Why a mesh operation failed. */
export type MeshErrorCode =
  /** The key file exists but does not hold a key we can use. */
  | 'CORRUPT_KEY_FILE'
  /** The key file is readable or writable by other users. */
  | 'INSECURE_KEY_FILE'
  /** Reading or writing the key file failed. */
  | 'KEY_FILE_IO'
  /** A topic (or mesh or namespace name) is malformed or outside the topic allowlist. */
  | 'TOPIC_NOT_ALLOWED'
  /** subscribe() on a topic that already has a handler. */
  | 'ALREADY_SUBSCRIBED'
  /** publish() with data larger than the mesh accepts. */
  | 'MESSAGE_TOO_LARGE'
  /** An address is not a multiaddr we can dial. */
  | 'INVALID_ADDRESS'
  /** The node was used after stop(). */
  | 'NODE_STOPPED'
  /** A peer-exchange frame could not be decoded. */
  | 'BAD_PEER_EXCHANGE_FRAME'
  /** A gossipsub internal we rely on is missing: the package changed. */
  | 'GOSSIPSUB_INTERNALS_CHANGED'
  /** An invite ticket is mistyped, truncated or malformed. */
  | 'INVALID_TICKET'

/**
 * Every failure of the mesh layer: match on `instanceof MeshError` and `code`. The subclasses below
 * fix the code and build the message (with the fields a caller may want, like a key file's path);
 * each keeps its own `name` for logs.
 */
export class MeshError extends HearsayError<MeshErrorCode> {
  override name = 'MeshError'
}

/** The key file exists but does not hold a key we can use. It is never replaced silently. */
export class CorruptKeyFileError extends MeshError {
  static readonly NAME = 'CorruptKeyFileError'
  override readonly name = CorruptKeyFileError.NAME
  readonly path: string

  constructor(path: string, reason: string, options?: ErrorOptions) {
    super(
      'CORRUPT_KEY_FILE',
      `key file ${path} is not a usable private key (${reason}); move it aside to create a new identity, ` +
        'or restore it from a backup to keep the old one',
      options,
    )
    this.path = path
  }
}

/** The key file is readable or writable by other users; we refuse to use it, as ssh does. */
export class InsecureKeyFileError extends MeshError {
  static readonly NAME = 'InsecureKeyFileError'
  override readonly name = InsecureKeyFileError.NAME
  readonly path: string
  readonly mode: number

  constructor(path: string, mode: number) {
    super(
      'INSECURE_KEY_FILE',
      `key file ${path} has mode ${mode.toString(8).padStart(4, '0')}; run: chmod 600 ${path}`,
    )
    this.path = path
    this.mode = mode
  }
}

/** Reading or writing the key file failed for a reason other than "it does not exist yet". */
export class KeyFileIOError extends MeshError {
  static readonly NAME = 'KeyFileIOError'
  override readonly name = KeyFileIOError.NAME
  readonly path: string

  constructor(path: string, action: string, options?: ErrorOptions) {
    super(
      'KEY_FILE_IO',
      `could not ${action} key file ${path}: ${(options?.cause as Error | undefined)?.message ?? ''}`,
      options,
    )
    this.path = path
  }
}

/** A topic (or a mesh or namespace name) is malformed or outside the node's topic allowlist. */
export class TopicNotAllowedError extends MeshError {
  static readonly NAME = 'TopicNotAllowedError'
  override readonly name = TopicNotAllowedError.NAME
  readonly topic: string

  constructor(topic: string, reason: string) {
    super('TOPIC_NOT_ALLOWED', `topic ${JSON.stringify(topic)} not allowed: ${reason}`)
    this.topic = topic
  }
}

/** subscribe() on a topic that already has a handler on this node. */
export class AlreadySubscribedError extends MeshError {
  static readonly NAME = 'AlreadySubscribedError'
  override readonly name = AlreadySubscribedError.NAME
  readonly topic: string

  constructor(topic: string) {
    super('ALREADY_SUBSCRIBED', `already subscribed to ${topic}; unsubscribe first`)
    this.topic = topic
  }
}

/** publish() with data larger than the mesh accepts; peers would drop it, so we refuse up front. */
export class MessageTooLargeError extends MeshError {
  static readonly NAME = 'MessageTooLargeError'
  override readonly name = MessageTooLargeError.NAME
  readonly size: number
  readonly limit: number

  constructor(size: number, limit: number) {
    super('MESSAGE_TOO_LARGE', `message of ${size} bytes exceeds the mesh limit of ${limit} bytes`)
    this.size = size
    this.limit = limit
  }
}

/** An address given to dial() (or in the bootstrap list) is not a multiaddr we can dial. */
export class InvalidAddressError extends MeshError {
  static readonly NAME = 'InvalidAddressError'
  override readonly name = InvalidAddressError.NAME
  readonly address: string

  constructor(address: string, reason: string, options?: ErrorOptions) {
    super('INVALID_ADDRESS', `invalid address ${JSON.stringify(address)}: ${reason}`, options)
    this.address = address
  }
}

/** The node was used after stop(). */
export class MeshNodeStoppedError extends MeshError {
  static readonly NAME = 'MeshNodeStoppedError'
  override readonly name = MeshNodeStoppedError.NAME

  constructor(action: string) {
    super('NODE_STOPPED', `cannot ${action}: the mesh node is stopped`)
  }
}

/** A peer-exchange frame could not be decoded (oversized, not JSON, wrong shape). The stream is aborted. */
export class PeerExchangeFrameError extends MeshError {
  static readonly NAME = 'PeerExchangeFrameError'
  override readonly name = PeerExchangeFrameError.NAME

  constructor(reason: string, options?: ErrorOptions) {
    super('BAD_PEER_EXCHANGE_FRAME', `bad peer-exchange frame: ${reason}`, options)
  }
}

/** A gossipsub internal we rely on (see node.ts, topic allowlist) is missing: the package changed. */
export class GossipsubInternalsChangedError extends MeshError {
  static readonly NAME = 'GossipsubInternalsChangedError'
  override readonly name = GossipsubInternalsChangedError.NAME

  constructor(what: string) {
    super(
      'GOSSIPSUB_INTERNALS_CHANGED',
      `@libp2p/gossipsub no longer has ${what}; re-check src/mesh/node.ts against the installed version`,
    )
  }
}

/**
 * A thrown value as an Error. JavaScript lets anything be thrown or rejected, and libp2p streams do
 * reject with `undefined` (a stream that closed without an error while a read waited on it): code
 * that logs a failure must not assume a `message`, or the logging itself throws.
 */
export function asError(value: unknown): Error {
  if (value instanceof Error) return value
  return new Error(describeThrown(value), { cause: value })
}

/** A one-line description of any thrown value, never throwing itself. */
export function describeThrown(value: unknown): string {
  if (value instanceof Error) return typeof value.message === 'string' ? value.message : String(value.name)
  if (value === undefined) return 'failed without an error (undefined)'
  if (value === null) return 'failed without an error (null)'
  if (typeof value === 'string') return value
  if (typeof value === 'object') {
    const message = (value as { message?: unknown }).message
    if (typeof message === 'string') return message
    const type = (value as { type?: unknown }).type
    if (typeof type === 'string') return `failed with a ${type} event`
    return `failed with a non-error value (${Object.prototype.toString.call(value)})`
  }
  return `failed with ${typeof value} ${String(value)}`
}

/** Appended to a dial failure that looks like the other side hung up during the handshake. */
export const DIAL_RESET_HINT = 'different mesh key, or not a hearsay peer?'

/**
 * Describes a failed dial. A peer with another swarm key (or a port that is not a hearsay peer)
 * drops the connection during the pnet/noise handshake, which surfaces only as a socket reset.
 */
export function describeDialFailure(value: unknown): string {
  const message = describeThrown(value)
  return /\b(ECONNRESET|EPIPE)\b/.test(message) ? `${message} (${DIAL_RESET_HINT})` : message
}

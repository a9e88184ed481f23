/**
 * The daemon's two kinds of failure: an HTTP request it refuses (ApiError, sent as
 * `{"error":{"code","message"}}` with a stable code) and a daemon that cannot start (DaemonStartError,
 * reported by `hearsay up` with a non-zero exit code). Callers match on `code`, never on the message.
 */

import { HearsayError } from '../errors.ts'

export type ApiErrorCode =
  /** No route has this path. */
  | 'NOT_FOUND'
  /** The path exists but not with this method (the `Allow` header lists the ones that do). */
  | 'METHOD_NOT_ALLOWED'
  /** A body that should be JSON does not parse. */
  | 'INVALID_JSON'
  /** A JSON body or value nests arrays and objects deeper than the limit (128). */
  | 'JSON_TOO_DEEP'
  /** JSON that parses but has the wrong shape (a missing or mistyped field). */
  | 'INVALID_BODY'
  /** A JSON endpoint was sent something other than `application/json`. */
  | 'UNSUPPORTED_MEDIA_TYPE'
  /** A PUT's Content-Type is not a short printable string. */
  | 'INVALID_CONTENT_TYPE'
  /** A JSON request body is over its limit. */
  | 'PAYLOAD_TOO_LARGE'
  /** A value is over its limit (1 MiB). */
  | 'VALUE_TOO_LARGE'
  /** A key (or set element) is empty, too long, malformed, or contains a NUL. */
  | 'INVALID_KEY'
  /** A namespace name does not match `[A-Za-z0-9][A-Za-z0-9._-]{0,63}`. */
  | 'INVALID_NAMESPACE'
  /** A read of a namespace this peer has not joined. */
  | 'NAMESPACE_NOT_FOUND'
  /** The key does not exist (or was deleted). */
  | 'KEY_NOT_FOUND'
  /** An If-Match header that is empty or is not a token this daemon issued. */
  | 'INVALID_IF_MATCH'
  /** The daemon runs with `requireIfMatch` and a write to an existing key came without If-Match. */
  | 'PRECONDITION_REQUIRED'
  /** A query parameter is missing, malformed or out of range. */
  | 'INVALID_PARAMETER'
  /** A counter increment is not a safe integer, or the counter would overflow. */
  | 'INVALID_NUMBER'
  /** A watch `since` token (or Last-Event-ID) that cannot be decoded. */
  | 'INVALID_SINCE'
  /** A multiaddr that does not parse. */
  | 'INVALID_ADDRESS'
  /** The peer runs without a mesh (networking is off or not available). */
  | 'MESH_UNAVAILABLE'
  /** Dialing a peer failed or timed out. */
  | 'DIAL_FAILED'
  /** The store failed; the daemon refuses writes until it is restarted. */
  | 'STORE_FAILED'
  /** The Host header names neither loopback nor an `apiAllowedHosts` entry (DNS rebinding). */
  | 'FORBIDDEN_HOST'
  /** A request from a web page of another origin (Origin, Sec-Fetch-Site), or a form-like write. */
  | 'FORBIDDEN_ORIGIN'
  /** The API listens beyond loopback and the request lacks the bearer token of `api.token`. */
  | 'UNAUTHORIZED'
  /** A request body stopped arriving for longer than the idle timeout. */
  | 'REQUEST_TIMEOUT'
  /** Too many request bodies are in memory at once (64 MiB); retry after the Retry-After seconds. */
  | 'SERVER_BUSY'
  /** The daemon is shutting down. */
  | 'SHUTTING_DOWN'
  /** A bug: the daemon logged the details. */
  | 'INTERNAL'
  /** Backup: the target file exists (send `"overwrite": true` to replace it). */
  | 'BACKUP_EXISTS'
  /** Backup: the target cannot be written (missing or read-only directory, disk full, ...). */
  | 'BACKUP_FAILED'
  /** Backup: another backup is running, or the store is not a SQLite file. */
  | 'BACKUP_UNAVAILABLE'
  /** Leaving a namespace: `confirm` does not name it. */
  | 'CONFIRMATION_REQUIRED'
  /** Forgetting a peer: membership does not know it, or it is connected right now. */
  | 'PEER_NOT_FOUND'
  | 'PEER_CONNECTED'

export class ApiError extends HearsayError<ApiErrorCode> {
  override readonly name = 'ApiError'
  readonly status: number
  readonly headers: Record<string, string> | undefined

  constructor(
    status: number,
    code: ApiErrorCode,
    message: string,
    options?: { headers?: Record<string, string>; cause?: unknown },
  ) {
    super(code, message, options)
    this.status = status
    this.headers = options?.headers
  }
}

export type DaemonStartErrorCode =
  /** Another daemon holds the data dir's lock file. */
  | 'LOCKED'
  /** The API port is taken by another process. */
  | 'PORT_IN_USE'
  /** config.json, a flag or an environment variable has a bad value. */
  | 'CONFIG_INVALID'
  /** The data dir or its files cannot be created, read or written. */
  | 'DATA_DIR'
  /** The store cannot be opened (corrupt, newer version, permissions). */
  | 'STORE_FAILED'
  /** The identity key cannot be loaded or created. */
  | 'IDENTITY_FAILED'
  /** Networking failed to start (a p2p port in use, a bad listen address). */
  | 'MESH_FAILED'
  /** The API could not listen for another reason (address not available, permission). */
  | 'LISTEN_FAILED'

export class DaemonStartError extends HearsayError<DaemonStartErrorCode> {
  override readonly name = 'DaemonStartError'
}

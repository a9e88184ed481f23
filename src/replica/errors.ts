import { HearsayError } from '../errors.ts'

export type ReplicaErrorCode =
  /** A key is empty, too long, not well-formed Unicode or contains a NUL. */
  | 'INVALID_KEY'
  /** A value or set element is larger than allowed. */
  | 'VALUE_TOO_LARGE'
  /** A content type is not a short printable string. */
  | 'INVALID_CONTENT_TYPE'
  /** An If-Match token could not be decoded. */
  | 'INVALID_TOKEN'
  /** An increment is not a safe integer, or would overflow. */
  | 'INVALID_NUMBER'
  /** A TTL outside 1 s .. 30 days, or not a whole number of ms. */
  | 'INVALID_TTL'
  /** The replica was closed, or its store failed and it refuses further writes. */
  | 'REPLICA_CLOSED'

/** Refusal of a local operation; nothing was written. */
export class ReplicaError extends HearsayError<ReplicaErrorCode> {
  override readonly name = 'ReplicaError'
}

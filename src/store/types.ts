/**
 * The Store port: what a Replica needs from durable storage, and nothing more.
 *
 * The port is synchronous on purpose: the default adapter (node:sqlite) is synchronous, and the
 * Replica does its own group commit (many writes of one tick in one `commit`). A call that returns
 * has made its batch durable; a call that throws has made none of it durable.
 */

import { HearsayError } from '../errors.ts'

/** One CRDT entry as the store sees it: addressed by its dot, with an opaque encoded body. */
export interface StoredEntry {
  /** Replica id of the entry's dot. */
  replica: string
  /** Counter of the entry's dot (a positive safe integer). */
  counter: number
  /** The internal key the entry belongs to (kept in the clear so a store can index it). */
  key: string
  /** The encoded entry body; the store never looks inside. */
  data: Uint8Array
}

export interface DotRef {
  replica: string
  counter: number
}

/** Everything one namespace holds, as read back on open. */
export interface NamespaceSnapshot {
  entries: StoredEntry[]
  /** Small named blobs: the causal context, the replica id, and the like. */
  meta: Map<string, Uint8Array>
}

/** One atomic unit of change to a namespace. */
export interface StoreBatch {
  put: StoredEntry[]
  remove: DotRef[]
  meta: Array<[name: string, value: Uint8Array]>
}

export interface CommitOptions {
  /** Default true: survive power loss. False: survive a process crash only (cheaper: no fsync). */
  durable?: boolean
}

export interface Store {
  /** 'sqlite' or 'memory': shown in status output. */
  readonly kind: string
  /** Namespaces that hold anything (an entry or a meta value), sorted by name. */
  namespaces(): string[]
  /**
   * Everything stored for a namespace (empty when it has never been written). Entries come grouped
   * by replica, in ascending counter order within a replica; the order of replicas is unspecified.
   * Every byte array returned is a fresh copy the caller owns.
   */
  load(namespace: string): NamespaceSnapshot
  /**
   * Applies a batch atomically and durably; throws StoreError and applies nothing on failure.
   * Puts upsert by dot; removes apply after puts (a dot both put and removed ends up removed) and
   * ignore unknown dots; meta upserts by name. The store copies the bytes it is given.
   * A malformed batch (bad counter, non-Uint8Array data, ...) throws a TypeError, changes nothing and
   * leaves the store usable. Any other failure is fatal: the store answers STORE_CLOSED from then on,
   * because a write that failed once must never be retried and acknowledged.
   * With `{ durable: false }` the batch survives a process crash but may be lost to a power loss
   * (the next durable commit makes it durable too): for data a peer can fetch again.
   */
  commit(namespace: string, batch: StoreBatch, options?: CommitOptions): void
  /**
   * Names the physical home of the data (a file's device and inode). When it differs from the one
   * recorded at creation, the data was copied or restored from a backup, and the Replica starts a
   * new incarnation rather than risk reusing dots. Stores without a physical home omit it.
   */
  identity?(): string
  /**
   * Deletes everything stored for a namespace in one transaction (the peer left it), so it is not
   * listed by `namespaces()` any more. A failure is fatal, as for `commit`.
   */
  dropNamespace?(namespace: string): void
  /** Bytes used on disk (or in memory), for metrics. */
  sizeBytes(): number
  /** Releases the store; idempotent. Every other call then throws STORE_CLOSED. */
  close(): void
}

export type StoreErrorCode =
  /** The file is not a database, or fails its integrity check. */
  | 'STORE_CORRUPT'
  /** The file was written by a newer hearsay with a schema we do not know. */
  | 'STORE_NEWER_VERSION'
  /** The data dir or file cannot be read or written. */
  | 'STORE_PERMISSION'
  /** The store was used after close, or a write failed: the store is unusable from then on. */
  | 'STORE_CLOSED'
  | 'STORE_IO'

export class StoreError extends HearsayError<StoreErrorCode> {
  override readonly name = 'StoreError'
}

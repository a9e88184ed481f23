/**
 * The Store port: what a Replica needs from durable storage, and nothing more.
 *
 * The port is synchronous on purpose: the default adapter (node:sqlite) is synchronous, and the
 * Replica does its own group commit (many writes of one tick in one `commit`). A call that returns
 * has made its batch durable; a call that throws has made none of it durable.
 */

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

export interface Store {
  /** 'sqlite' or 'memory': shown in status output. */
  readonly kind: string
  /** Namespaces that hold anything. */
  namespaces(): string[]
  /** Everything stored for a namespace (empty when it has never been written). */
  load(namespace: string): NamespaceSnapshot
  /** Applies a batch atomically and durably; throws StoreError and applies nothing on failure. */
  commit(namespace: string, batch: StoreBatch): void
  /** Bytes used on disk (or in memory), for metrics. */
  sizeBytes(): number
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

export class StoreError extends Error {
  override readonly name = 'StoreError'
  readonly code: StoreErrorCode

  constructor(code: StoreErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.code = code
  }
}

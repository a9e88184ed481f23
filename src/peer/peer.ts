import { EventEmitter } from 'node:events'
import type { PrivateKey } from '@libp2p/interface'
import { HearsayError } from '../errors.ts'
import type { GossipCounters } from '../gossip/counters.ts'
import { type ChangeEvent, Replica } from '../replica/replica.ts'
import { createEntrySigner, type EntrySigner } from '../replica/signing.ts'
import type { Store } from '../store/types.ts'
import type { SessionProgress } from '../sync/service.ts'
import type { MeshInsight } from './replication-state.ts'

/**
 * A hearsay peer: one store, the replicas of the namespaces it has joined, and (when a mesh is
 * attached) the gossip, anti-entropy and membership that keep them converged. The daemon is an HTTP
 * face on one of these; tests and benchmarks run several in one process.
 */

export interface PeerInfo {
  peerId: string
  addresses: string[]
  connected: boolean
  /** Round-trip time of the last ping, ms. */
  rttMs?: number
  /** When we last heard from the peer (ms since epoch), directly or through gossip. */
  lastSeen?: number
}

export interface NamespaceStatus {
  name: string
  replicaId: string
  digest: string
  versionVector: Record<string, number>
  entries: number
  tombstones: number
  /** Anti-entropy under way for the namespace: a catch-up's progress (all zero when none runs). */
  sync: SyncStatus
}

export interface SyncStatus {
  /** Sessions under way (one at a time per namespace; a second may be answering BUSY). */
  sessions: number
  /** Sessions waiting for their turn behind it. */
  waiting: number
  entriesReceived: number
  entriesMerged: number
  bytesReceived: number
}

export interface PeerStatus {
  peerId: string
  addresses: string[]
  namespaces: NamespaceStatus[]
  uptimeMs: number
  store: { kind: string; sizeBytes: number }
}

/** Running totals for metrics. */
export interface MeshCounters extends GossipCounters {
  syncSessions: number
  syncFailures: number
  syncBytesSent: number
  syncBytesReceived: number
  syncEntriesReceived: number
  tombstonesCollected: number
}

/** What the networking side offers a peer; absent when the peer runs alone (tests, offline tools). */
export interface MeshAttachment {
  readonly peerId: string
  /** Running totals for metrics. */
  readonly counters?: MeshCounters
  /** Per-peer connections, sessions and known contexts (replication state, events). */
  readonly insight?: MeshInsight
  /** Anti-entropy sessions under way, with their progress. */
  syncProgress?(): SessionProgress[]
  /** Sessions of a namespace waiting for their turn. */
  syncWaiting?(namespace: string): number
  addresses(): string[]
  peers(): PeerInfo[]
  dial(address: string, signal?: AbortSignal): Promise<string>
  /** Starts replicating a namespace (subscribe, sync). */
  join(replica: Replica): void
  /** Stops replicating a namespace (unsubscribe; no more sync or GC for it). */
  leave?(namespace: string): void
  /**
   * Drops a member that is not connected from membership, so it no longer holds back tombstone
   * collection; false when it is unknown. If it comes back it is a member again.
   */
  forget?(peerId: string): boolean
  /**
   * Resolves with how many other peers are known to hold a write (its dot), once `count` do or the
   * signal aborts (then with how many did).
   */
  replicatedTo(
    namespace: string,
    replica: string,
    counter: number,
    count: number,
    signal: AbortSignal,
  ): Promise<number>
  stop(): Promise<void>
}

export interface PeerInit {
  store: Store
  /** Author part of replica ids (the libp2p PeerId when a mesh is attached). */
  peerId: string
  /**
   * The peer's identity key, which signs every entry written here (required to take part in a mesh:
   * peers refuse entries not signed by the key in their replica id). Without it each namespace signs
   * with a throwaway key, which is enough for a peer that runs alone.
   */
  privateKey?: PrivateKey
  /** Namespaces to open at start (others open on first use). */
  namespaces?: string[]
  /** Physical clock for HLCs (tests). */
  now?: () => number
}

export interface PeerEvents {
  change: [ChangeEvent]
  failed: [Error]
}

const NAMESPACE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/

export class NamespaceError extends HearsayError<'INVALID_NAMESPACE'> {
  override readonly name = 'NamespaceError'

  constructor(message: string) {
    super('INVALID_NAMESPACE', message)
  }
}

export class HearsayPeer extends EventEmitter<PeerEvents> {
  readonly peerId: string
  readonly store: Store
  private readonly replicas = new Map<string, Replica>()
  private readonly started = Date.now()
  private readonly now: (() => number) | undefined
  private readonly signer: EntrySigner | undefined
  private mesh: MeshAttachment | undefined
  private stopped = false

  constructor(init: PeerInit) {
    super()
    this.peerId = init.peerId
    this.store = init.store
    this.now = init.now
    this.signer = init.privateKey === undefined ? undefined : createEntrySigner(init.privateKey)
    if (this.signer !== undefined && this.signer.peerId !== init.peerId) {
      throw new TypeError(`privateKey belongs to ${this.signer.peerId}, not to peerId ${init.peerId}`)
    }
    for (const name of new Set([...init.store.namespaces(), ...(init.namespaces ?? [])])) this.namespace(name)
  }

  static isValidNamespace(name: string): boolean {
    return NAMESPACE.test(name)
  }

  /** The replica of a namespace, opened (and joined on the mesh) on first use. */
  namespace(name: string): Replica {
    let replica = this.replicas.get(name)
    if (replica !== undefined) return replica
    if (!NAMESPACE.test(name)) {
      throw new NamespaceError(`namespace must match ${NAMESPACE.source}`)
    }
    replica = Replica.open({
      namespace: name,
      store: this.store,
      replicaBase: this.peerId,
      signer: this.signer,
      now: this.now,
    })
    replica.on('change', (event) => this.emit('change', event))
    replica.on('failed', (error) => this.emit('failed', error))
    this.replicas.set(name, replica)
    this.mesh?.join(replica)
    return replica
  }

  hasNamespace(name: string): boolean {
    return this.replicas.has(name)
  }

  namespaces(): string[] {
    return [...this.replicas.keys()].sort()
  }

  /**
   * Leaves a namespace: stops replicating it, closes its replica (pending writes are flushed first)
   * and deletes its data from the store, so a restart does not reopen it. False when not joined.
   */
  async leave(name: string): Promise<boolean> {
    const replica = this.replicas.get(name)
    if (replica === undefined) return false
    this.replicas.delete(name)
    this.mesh?.leave?.(name)
    await replica.close()
    replica.removeAllListeners()
    this.store.dropNamespace?.(name)
    return true
  }

  /** Forgets a member that is gone for good (see MeshAttachment.forget); false when unknown. */
  forgetPeer(peerId: string): boolean {
    return this.mesh?.forget?.(peerId) ?? false
  }

  attach(mesh: MeshAttachment): void {
    this.mesh = mesh
    for (const replica of this.replicas.values()) mesh.join(replica)
  }

  get attachedMesh(): MeshAttachment | undefined {
    return this.mesh
  }

  status(): PeerStatus {
    return {
      peerId: this.peerId,
      addresses: this.mesh?.addresses() ?? [],
      namespaces: this.namespaces().map((name) => {
        const replica = this.replicas.get(name)!
        return {
          name,
          replicaId: replica.replicaId,
          digest: replica.digest(),
          versionVector: Object.fromEntries(replica.versionVector()),
          entries: replica.entryCount,
          tombstones: replica.tombstoneCount,
          sync: this.syncStatus(name),
        }
      }),
      uptimeMs: Date.now() - this.started,
      store: { kind: this.store.kind, sizeBytes: this.store.sizeBytes() },
    }
  }

  peers(): PeerInfo[] {
    return this.mesh?.peers() ?? []
  }

  /** What anti-entropy is doing for a namespace now (status, metrics). */
  syncStatus(namespace: string): SyncStatus {
    const status: SyncStatus = {
      sessions: 0,
      waiting: this.mesh?.syncWaiting?.(namespace) ?? 0,
      entriesReceived: 0,
      entriesMerged: 0,
      bytesReceived: 0,
    }
    for (const session of this.mesh?.syncProgress?.() ?? []) {
      if (session.namespace !== namespace) continue
      status.sessions++
      status.entriesReceived += session.entriesReceived
      status.entriesMerged += session.entriesMerged
      status.bytesReceived += session.bytesReceived
    }
    return status
  }

  async dial(address: string, signal?: AbortSignal): Promise<string> {
    if (this.mesh === undefined) throw new Error('this peer runs without a mesh')
    return this.mesh.dial(address, signal)
  }

  /** How many other peers hold a write; 0 at once without a mesh. */
  async replicatedTo(
    namespace: string,
    replica: string,
    counter: number,
    count: number,
    signal: AbortSignal,
  ) {
    if (this.mesh === undefined || count <= 0) return 0
    return this.mesh.replicatedTo(namespace, replica, counter, count, signal)
  }

  /** Flushes every namespace, leaves the mesh, closes the store. */
  async stop(): Promise<void> {
    if (this.stopped) return
    this.stopped = true
    await Promise.all([...this.replicas.values()].map((replica) => replica.close()))
    await this.mesh?.stop()
    this.store.close()
  }
}

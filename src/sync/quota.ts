/**
 * Per-peer quotas on anti-entropy: bytes and entries a peer may send us per minute, over all its
 * sessions. An honest catch-up larger than the quota is not lost, only spread out: the session that
 * runs over is aborted after merging what it delivered, and a later session goes on from there.
 * Pure: the clock is injected.
 */
export interface SyncQuotaLimits {
  /** Bytes of sync frames a peer may send per minute (also the burst). */
  bytesPerMinute: number
  /** Entries a peer may send per minute (also the burst). */
  entriesPerMinute: number
}

export const DEFAULT_SYNC_QUOTA: SyncQuotaLimits = {
  bytesPerMinute: 64 * 1024 * 1024,
  entriesPerMinute: 200_000,
}

interface Bucket {
  bytes: number
  entries: number
  at: number
}

const MAX_TRACKED_PEERS = 10_000

export class SyncQuota {
  private readonly buckets = new Map<string, Bucket>()
  private readonly limits: SyncQuotaLimits
  private readonly now: () => number

  constructor(limits: Partial<SyncQuotaLimits> = {}, now: () => number = () => performance.now()) {
    this.limits = { ...DEFAULT_SYNC_QUOTA, ...limits }
    this.now = now
  }

  /**
   * Charges what `peer` just sent, or returns the resource (`bytes` or `entries`) it had already
   * used up. A frame larger than what is left still passes and leaves a debt that later frames wait
   * out, so a chunk bigger than the whole quota cannot stall an honest catch-up for ever.
   */
  charge(peer: string, bytes: number, entries: number): 'bytes' | 'entries' | undefined {
    const bucket = this.refill(peer)
    if (bucket.bytes <= 0) return 'bytes'
    if (bucket.entries <= 0) return 'entries'
    bucket.bytes -= bytes
    bucket.entries -= entries
    return undefined
  }

  /** True while the peer still has quota left (a new session is worth starting or accepting). */
  allows(peer: string): boolean {
    const bucket = this.refill(peer)
    return bucket.bytes > 0 && bucket.entries > 0
  }

  private refill(peer: string): Bucket {
    const now = this.now()
    let bucket = this.buckets.get(peer)
    if (bucket === undefined) {
      if (this.buckets.size >= MAX_TRACKED_PEERS) this.buckets.clear()
      bucket = { bytes: this.limits.bytesPerMinute, entries: this.limits.entriesPerMinute, at: now }
      this.buckets.set(peer, bucket)
      return bucket
    }
    const minutes = Math.max(0, now - bucket.at) / 60_000
    bucket.bytes = Math.min(this.limits.bytesPerMinute, bucket.bytes + minutes * this.limits.bytesPerMinute)
    bucket.entries = Math.min(
      this.limits.entriesPerMinute,
      bucket.entries + minutes * this.limits.entriesPerMinute,
    )
    bucket.at = now
    return bucket
  }
}

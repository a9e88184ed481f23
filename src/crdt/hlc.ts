/**
 * Hybrid logical clock (Kulkarni et al., "Logical Physical Clocks", 2014).
 *
 * A timestamp is (wall milliseconds, logical counter). It never goes backwards on one replica and
 * moves past every timestamp the replica has received, so HLC order respects causality while staying
 * close to physical time. The physical clock is injected so tests are deterministic.
 */

export interface Hlc {
  /** Milliseconds since the epoch, as the physical clock (or a received timestamp) said. */
  wall: number
  /** Tie-breaker among timestamps with the same wall time. */
  logical: number
}

export type PhysicalClock = () => number

/** A remote clock further ahead than this is not adopted: one bad peer must not drag every clock forward. */
export const DEFAULT_MAX_DRIFT_MS = 60_000

export function compareHlc(a: Hlc, b: Hlc): number {
  return a.wall - b.wall || a.logical - b.logical
}

export class HybridClock {
  private wall = 0
  private logical = 0
  private readonly physical: PhysicalClock
  private readonly maxDriftMs: number

  constructor(now: PhysicalClock = Date.now, maxDriftMs = DEFAULT_MAX_DRIFT_MS) {
    this.physical = now
    this.maxDriftMs = maxDriftMs
  }

  /** A fresh timestamp for a local event, greater than every timestamp seen so far. */
  tick(): Hlc {
    const physical = this.physical()
    if (physical > this.wall) {
      this.wall = physical
      this.logical = 0
    } else {
      this.logical++
    }
    return { wall: this.wall, logical: this.logical }
  }

  /**
   * Moves the clock past a received timestamp. Returns false (and ignores it) when the timestamp is
   * further in the future than the allowed drift.
   */
  observe(remote: Hlc): boolean {
    if (remote.wall > this.physical() + this.maxDriftMs) return false
    if (remote.wall > this.wall || (remote.wall === this.wall && remote.logical > this.logical)) {
      this.wall = remote.wall
      this.logical = remote.logical
    }
    return true
  }

  /**
   * The clock's reading now, without issuing a timestamp: the physical clock, or the last timestamp
   * issued or observed when that is ahead. Expiry is judged against it, so a peer never shows a key
   * its own writes or what it received already placed past the deadline.
   */
  now(): number {
    return Math.max(this.physical(), this.wall)
  }

  /** The last timestamp issued or observed. */
  peek(): Hlc {
    return { wall: this.wall, logical: this.logical }
  }
}

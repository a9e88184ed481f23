import { multiaddr } from '@multiformats/multiaddr'
import { RateLimiter } from './rate-limit.ts'

/** Default of the per-neighbour gossip rate, messages per second. */
export const DEFAULT_GOSSIP_RATE_LIMIT = 1000
/** A neighbour's burst allowance, in seconds of its rate. */
export const GOSSIP_BURST_SECONDS = 2

export interface GossipAdmissionInit {
  /** Messages per second one neighbour may deliver; its burst is `GOSSIP_BURST_SECONDS` of that. */
  ratePerSecond: number
  /**
   * Neighbours never throttled: a client's configured hubs, which relay every other client's batches
   * and so legitimately send far more than any single peer writes.
   */
  exempt?: Iterable<string>
  now?: () => number
}

/**
 * Whether a gossip message coming off the wire from a neighbour is taken at all. Pure (clock
 * injected); one map lookup and a token bucket per message, before any decoding.
 */
export class GossipAdmission {
  private readonly limiter: RateLimiter
  private readonly exempt: ReadonlySet<string>

  constructor(init: GossipAdmissionInit) {
    this.limiter = new RateLimiter({
      ratePerSecond: init.ratePerSecond,
      burst: init.ratePerSecond * GOSSIP_BURST_SECONDS,
      now: init.now,
    })
    this.exempt = new Set(init.exempt ?? [])
  }

  admit(from: string): boolean {
    return this.exempt.has(from) || this.limiter.take(from)
  }
}

/** The peer ids named by `/p2p/<id>` in multiaddrs (addresses without one are skipped). */
export function peerIdsOfAddresses(addresses: readonly string[]): string[] {
  const ids: string[] = []
  for (const address of addresses) {
    try {
      const id = multiaddr(address)
        .getComponents()
        .findLast((c) => c.name === 'p2p')?.value
      if (id !== undefined) ids.push(id)
    } catch {
      // Bad addresses are refused where they are dialled, with their own error.
    }
  }
  return ids
}

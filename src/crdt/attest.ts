import type { Delta } from './causal-map.ts'
import type { CausalContext } from './context.ts'

/**
 * Attestation of causal context. A peer must never come to believe it has seen a dot unless its
 * author signed something for it: a forged claim of another replica's dots 1..1,000,000 would
 * otherwise make every later write of that replica look already seen (ignored for good) and remove
 * what it holds of it. The rule, applied to every remote delta before the join: a context claim of
 * dot (R, c) stands only when c is at most the highest counter R has attested with its own
 * signature (an entry of R we hold or held, one in the delta, or a signed head of R).
 */

/**
 * The signed header of one entry: enough to prove its author wrote counter `counter`, without the
 * entry itself (the signature covers the dot and a hash of the body, see codec/signature.ts). A peer
 * keeps the head of the highest-counter entry it has verified per replica, even after the entry is
 * superseded or collected, so it can still vouch for that replica's context.
 */
export interface SignedHead {
  readonly replica: string
  readonly counter: number
  /** SHA-256 of the entry's canonical body (32 bytes). */
  readonly bodyHash: Uint8Array
  /**
   * The author's proof (codec/proof.ts): its Ed25519 signature (64 bytes) for an entry signed alone,
   * or for one signed in a tree of one commit turn the tree's signature, the leaf's index and path.
   */
  readonly signature: Uint8Array
}

/**
 * The delta with every context claim beyond `attested(replica)` dropped. Entries are left alone:
 * each one attests its own dot (the codec guarantees every entry's dot is in the context). Returns
 * the same delta when nothing needed clipping.
 */
export function clipDelta(delta: Delta, attested: (replica: string) => number): Delta {
  let clipped: CausalContext | undefined
  for (const [replica, ranges] of delta.context.unsortedEntries()) {
    const limit = attested(replica)
    if (ranges[ranges.length - 1] <= limit) continue
    clipped ??= delta.context.clone()
    clipped.setRanges(replica, clipRanges(ranges, limit))
  }
  return clipped === undefined ? delta : { entries: delta.entries, context: clipped }
}

/** Sorted disjoint ranges cut at `limit`: what of them lies in [1, limit]. */
export function clipRanges(ranges: readonly number[], limit: number): number[] {
  const out: number[] = []
  for (let i = 0; i < ranges.length; i += 2) {
    if (ranges[i] > limit) break
    out.push(ranges[i], Math.min(ranges[i + 1], limit))
  }
  return out
}

/**
 * The highest counter per replica that a delta's own entries and the heads sent with it attest
 * (assuming they were verified). Combine with what the receiver already holds.
 */
export function attestedBy(delta: Delta, heads: readonly SignedHead[] = []): Map<string, number> {
  const highest = new Map<string, number>()
  for (const entry of delta.entries) {
    if ((highest.get(entry.replica) ?? 0) < entry.counter) highest.set(entry.replica, entry.counter)
  }
  for (const head of heads) {
    if ((highest.get(head.replica) ?? 0) < head.counter) highest.set(head.replica, head.counter)
  }
  return highest
}

import type { CausalContext } from '../crdt/context.ts'

/**
 * Who is in the mesh, as far as this peer can tell: peers it is connected to, peers whose signed
 * gossip it has relayed, and what each is known to hold per namespace. Pure: the clock is injected.
 *
 * Two kinds of knowledge are kept apart. `holds` comes from anti-entropy sessions, which end only
 * once the other side has merged: it is durable there, and acknowledgements and garbage collection
 * rest on it. `seen` adds what gossip shows: the author of a batch and the neighbour that forwarded
 * it (gossipsub forwards only after its validator accepted, and the merge may still be under way or
 * fail). It only feeds the replication figures, never acks or collection.
 *
 * Removals are collected only once every member seen within `memberTtlMs` is known to hold them. A
 * member that stays away longer no longer holds collection back; when it returns it is behind the
 * collection horizon and anti-entropy sends it a full snapshot, so nothing deleted comes back.
 */

export interface Member {
  peerId: string
  connected: boolean
  addresses: string[]
  rttMs?: number
  /** ms since epoch, when we last heard from the member directly or through gossip. */
  lastSeen: number
  /** Namespaces the member replicates, with the context it is known to hold at least. */
  holds: Map<string, CausalContext>
  /**
   * Per namespace, `holds` plus the dots gossip showed the member with; present only once gossip
   * taught something beyond the sessions. Not durable: for the replication figures alone.
   */
  seen: Map<string, CausalContext>
}

export interface MembershipInit {
  self: string
  now?: () => number
  /** Members not heard from for this long stop holding back garbage collection. Default 24 h. */
  memberTtlMs?: number
}

export const DEFAULT_MEMBER_TTL_MS = 24 * 60 * 60 * 1000

export class Membership {
  private readonly members = new Map<string, Member>()
  private readonly self: string
  private readonly now: () => number
  private readonly ttl: number

  constructor(init: MembershipInit) {
    this.self = init.self
    this.now = init.now ?? Date.now
    this.ttl = init.memberTtlMs ?? DEFAULT_MEMBER_TTL_MS
  }

  private member(peerId: string): Member | undefined {
    if (peerId === this.self) return undefined
    let member = this.members.get(peerId)
    if (member === undefined) {
      member = {
        peerId,
        connected: false,
        addresses: [],
        lastSeen: this.now(),
        holds: new Map(),
        seen: new Map(),
      }
      this.members.set(peerId, member)
    }
    return member
  }

  /** We heard from a peer (a connection, a ping, a message it signed). */
  saw(peerId: string, update: { connected?: boolean; rttMs?: number; addresses?: string[] } = {}): void {
    const member = this.member(peerId)
    if (member === undefined) return
    member.lastSeen = this.now()
    if (update.connected !== undefined) member.connected = update.connected
    if (update.rttMs !== undefined) member.rttMs = update.rttMs
    if (update.addresses !== undefined && update.addresses.length > 0) member.addresses = update.addresses
  }

  disconnected(peerId: string): void {
    const member = this.members.get(peerId)
    if (member !== undefined) member.connected = false
  }

  /** A peer is known to hold (at least) `context` of a namespace. Contexts only grow. */
  holds(peerId: string, namespace: string, context: CausalContext): void {
    const member = this.member(peerId)
    if (member === undefined) return
    const known = member.holds.get(namespace)
    if (known === undefined) member.holds.set(namespace, context.clone())
    else known.merge(context)
    member.seen.get(namespace)?.merge(context)
  }

  /**
   * Gossip showed the peer with these dots (the author of an accepted batch, or the neighbour that
   * forwarded it): recorded in `seen` only. Costs a merge of the batch's small context; the peer's
   * durable context is copied once, the first time gossip teaches anything of the namespace.
   */
  sawDots(peerId: string, namespace: string, dots: CausalContext): void {
    const member = this.member(peerId)
    if (member === undefined) return
    const seen = member.seen.get(namespace)
    if (seen !== undefined) {
      seen.merge(dots)
      return
    }
    const held = member.holds.get(namespace)
    if (held?.covers(dots) === true) return
    const union = held === undefined ? dots.clone() : held.clone()
    if (held !== undefined) union.merge(dots)
    member.seen.set(namespace, union)
  }

  /** True when the peer is known to hold the dot. */
  hasDot(peerId: string, namespace: string, replica: string, counter: number): boolean {
    return this.members.get(peerId)?.holds.get(namespace)?.has(replica, counter) ?? false
  }

  /** How many members are known to hold the dot (connected or not: a holder stays one). */
  holdersOf(namespace: string, replica: string, counter: number): number {
    let count = 0
    for (const member of this.members.values())
      if (member.holds.get(namespace)?.has(replica, counter) === true) count++
    return count
  }

  /**
   * Drops a member (gone for good: a decommissioned peer), so it no longer holds back garbage
   * collection. Hearing from it again makes it a member again, with nothing known of its holdings.
   */
  forget(peerId: string): boolean {
    return this.members.delete(peerId)
  }

  list(): Member[] {
    return [...this.members.values()].sort((a, b) => (a.peerId < b.peerId ? -1 : 1))
  }

  get(peerId: string): Member | undefined {
    return this.members.get(peerId)
  }

  /**
   * What every current member of a namespace holds, intersected with our own context: tombstones
   * inside it are safe to collect. Undefined while some current member's holdings are unknown.
   */
  stableContext(
    namespace: string,
    own: CausalContext,
    joinedBy: (peerId: string) => boolean,
  ): CausalContext | undefined {
    let stable = own.clone()
    const horizon = this.now() - this.ttl
    for (const member of this.members.values()) {
      if (member.lastSeen < horizon) continue
      const held = member.holds.get(namespace)
      if (held === undefined) {
        if (joinedBy(member.peerId)) return undefined
        continue
      }
      stable = stable.intersection(held)
    }
    return stable
  }
}

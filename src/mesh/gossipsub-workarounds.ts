/**
 * Every place hearsay reaches past gossipsub's public interface, in one file. Each is checked when a
 * node starts (an upgrade that renames a member fails loudly rather than silently changing
 * behaviour), and test/gossipsub-workarounds.test.ts runs each check against a stock gossipsub.
 * The connection-level repairs (outbound stream repair, gossip link check) live in node.ts, where
 * the connections are; test/mesh-node.test.ts covers them.
 */
import type { GossipSub, TopicValidatorResult } from '@libp2p/gossipsub'
import type { PeerScoreParams } from '@libp2p/gossipsub/score'
import type { PeerId } from '@libp2p/interface'
import { GossipsubInternalsChangedError } from './errors.ts'
import type { TopicAllowlist } from './topics.ts'

/** The gossipsub class method every received RPC goes through (public on the class, not the interface). */
export interface RpcHandler {
  handleReceivedRpc(from: PeerId, rpc: { messages: Array<{ topic: string }> }): Promise<void>
}

/** The gossipsub class members we use beyond its public `GossipSub` interface; checked at start. */
export interface GossipsubInternals {
  getMeshPeers(topic: string): string[]
  getScore(peerId: string): number
  score: { params: PeerScoreParams }
  streamsOutbound: Map<string, unknown>
  /** Class method, not on the exported interface: reports a verdict under `asyncValidation`. */
  reportMessageValidationResult(msgId: string, propagationSource: string, result: TopicValidatorResult): void
}

/**
 * gossipsub keeps `allowedTopics` as a private exact-match Set built at construction and only ever
 * calls `.has()` on it. We swap in our allowlist (exact names + patterns). Checked, so an upgrade that
 * renames the field fails loudly at start instead of silently allowing every topic.
 */
export function installAllowlist(gs: GossipSub, allowlist: TopicAllowlist): void {
  const current: unknown = Reflect.get(gs, 'allowedTopics')
  if (!(current instanceof Set)) throw new GossipsubInternalsChangedError('a private allowedTopics Set')
  Reflect.set(gs, 'allowedTopics', allowlist)
}

/**
 * Filters each received RPC's messages through `admit` before gossipsub touches them. gossipsub
 * starts every message of every RPC at once without waiting for the previous ones, and computes the
 * message id, the seen cache entry and the IDONTWANTs before any topic validator runs: a limit in the
 * validator is checked only after that work, and at the pace the node manages to do it, so a flood
 * that outruns the node is never seen above the limit. Here the check is the first thing done.
 */
export function installAdmission(pubsub: GossipSub, admit: (from: PeerId, topic: string) => boolean): void {
  const gs = pubsub as unknown as Partial<RpcHandler>
  const handle = gs.handleReceivedRpc
  if (typeof handle !== 'function') throw new GossipsubInternalsChangedError('handleReceivedRpc()')
  gs.handleReceivedRpc = async function admitted(this: RpcHandler, from, rpc) {
    if (rpc.messages.length > 0) {
      const messages = rpc.messages.filter((message) => admit(from, message.topic))
      if (messages.length !== rpc.messages.length) rpc = { ...rpc, messages }
    }
    return handle.call(this, from, rpc)
  }
}

export function checkInternals(gs: GossipSub): GossipsubInternals {
  const g = gs as unknown as Partial<GossipsubInternals>
  if (typeof g.getMeshPeers !== 'function') throw new GossipsubInternalsChangedError('getMeshPeers()')
  if (typeof g.getScore !== 'function') throw new GossipsubInternalsChangedError('getScore()')
  if (g.score?.params?.topics == null) throw new GossipsubInternalsChangedError('score.params.topics')
  if (!(g.streamsOutbound instanceof Map)) throw new GossipsubInternalsChangedError('streamsOutbound')
  if (typeof g.reportMessageValidationResult !== 'function')
    throw new GossipsubInternalsChangedError('reportMessageValidationResult()')
  return g as GossipsubInternals
}

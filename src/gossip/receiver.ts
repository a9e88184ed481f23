import type { Delta } from '../crdt/causal-map.ts'
import type { MessageReceiver } from '../mesh/node.ts'
import { checkBatch } from './batch.ts'
import type { GossipCounters } from './counters.ts'
import type { TurnBudget } from './turn-budget.ts'

export interface BatchReceiverInit {
  topic: string
  /** The topic's namespace. */
  namespace: string
  /** Our own peer id: our batches coming back are ignored. */
  self: string
  /** Spreads signature checks (and the merges they lead to) over event-loop turns. */
  budget: TurnBudget
  /** Where an accepted batch is merged (the namespace's replica); resolves to what it added. */
  replica: { merge(delta: Delta): Promise<{ added: readonly unknown[] }> }
  counters: GossipCounters
  /**
   * An accepted batch: its author and the neighbour that delivered it were heard from, and both
   * have seen its dots (the author wrote them; the neighbour forwarded only after accepting them).
   */
  heard(author: string, neighbour: string, delta: Delta): void
  /** A refused batch or a failed merge (logged once per peer and kind by the caller). */
  problem(kind: 'gossip' | 'merge', peer: string, message: string, fields?: object): void
}

/**
 * The receiving side of one namespace's topic: each message is decoded and checked once, the
 * verdict goes back to gossipsub (forward or not, blame or not), and an accepted batch is merged
 * from the same scope. The merge is not awaited: forwarding does not wait for our disk.
 */
export function batchReceiver(init: BatchReceiverInit): MessageReceiver {
  const { topic, counters } = init
  return async (message) => {
    await init.budget.take()
    const result = await checkBatch(topic, message.data, init.self, init.namespace)
    if (result.verdict === 'reject') {
      counters.gossipRejected++
      init.problem('gossip', message.from.toString(), `rejected gossip: ${result.reason}`, { topic })
      return 'reject'
    }
    if (result.delta === undefined || result.signer === undefined) {
      counters.gossipIgnored++
      return 'ignore'
    }
    const author = result.signer
    counters.gossipReceived++
    counters.gossipBytesReceived += message.data.length
    init.heard(author, message.from.toString(), result.delta)
    init.replica
      .merge(result.delta)
      .then((change) => {
        counters.entriesMerged += change.added.length
      })
      .catch((error: unknown) => init.problem('merge', author, `merge failed: ${describe(error)}`))
    return 'accept'
  }
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error)
}

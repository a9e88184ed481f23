import type { Delta } from '../crdt/causal-map.ts'
import { encodeBatch } from './batch.ts'
import type { GossipCounters } from './counters.ts'

export interface GossipPublisherInit {
  /** Where batches go (the mesh node): `publish` resolves to how many neighbours took them. */
  node: { publish(topic: string, data: Uint8Array): Promise<{ recipients: number }> }
  counters: GossipCounters
  /**
   * Told how each publish ended: `recipients` neighbours took it, or it failed (with the error).
   * Anti-entropy repairs whatever gossip could not carry; the caller decides when.
   */
  published(namespace: string, outcome: { recipients: number; error?: unknown }): void
}

/** Publishes a namespace's batch (of entries signed when they were committed) on the namespace's topic. */
export class GossipPublisher {
  private readonly init: GossipPublisherInit
  private readonly topics = new Map<string, string>()

  constructor(init: GossipPublisherInit) {
    this.init = init
  }

  /** The topic a namespace's batches go to (set when the namespace is joined). */
  addTopic(namespace: string, topic: string): void {
    this.topics.set(namespace, topic)
  }

  async publish(namespace: string, delta: Delta): Promise<void> {
    const topic = this.topics.get(namespace)
    if (topic === undefined)
      return this.init.published(namespace, { recipients: 0, error: new Error(`no topic for ${namespace}`) })
    let recipients: number
    try {
      const data = encodeBatch(delta)
      ;({ recipients } = await this.init.node.publish(topic, data))
      this.init.counters.gossipPublished++
      this.init.counters.gossipBytesSent += data.length
    } catch (error) {
      this.init.published(namespace, { recipients: 0, error })
      return
    }
    this.init.published(namespace, { recipients })
  }
}

import type { PrivateKey } from '@libp2p/interface'
import type { Delta } from '../crdt/causal-map.ts'
import { signBatch } from './batch.ts'
import type { GossipCounters } from './counters.ts'

export interface GossipPublisherInit {
  privateKey: PrivateKey
  topicOf(namespace: string): string
  /** Publishes bytes on a topic; resolves to how many neighbours took them. */
  publish(topic: string, data: Uint8Array): Promise<{ recipients: number }>
  counters: GossipCounters
  /**
   * Told how each publish ended: `recipients` neighbours took it, or it failed (with the error).
   * Anti-entropy repairs whatever gossip could not carry; the caller decides when.
   */
  published(namespace: string, outcome: { recipients: number; error?: unknown }): void
}

/** Signs a namespace's batch with our key and publishes it on the namespace's topic. */
export class GossipPublisher {
  private readonly init: GossipPublisherInit

  constructor(init: GossipPublisherInit) {
    this.init = init
  }

  async publish(namespace: string, delta: Delta): Promise<void> {
    const topic = this.init.topicOf(namespace)
    let recipients: number
    try {
      const data = await signBatch(this.init.privateKey, topic, delta)
      ;({ recipients } = await this.init.publish(topic, data))
      this.init.counters.gossipPublished++
      this.init.counters.gossipBytesSent += data.length
    } catch (error) {
      this.init.published(namespace, { recipients: 0, error })
      return
    }
    this.init.published(namespace, { recipients })
  }
}

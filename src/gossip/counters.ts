/** Gossip traffic counters, kept by the publisher, the admission check and the receiver. */
export interface GossipCounters {
  gossipPublished: number
  gossipBytesSent: number
  gossipReceived: number
  gossipBytesReceived: number
  gossipRejected: number
  gossipIgnored: number
  /** Messages dropped because their neighbour sent more than the rate limit allows. */
  gossipThrottled: number
  entriesMerged: number
}

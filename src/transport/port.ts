import { createMeshNode, type MeshNode, type MeshNodeInit } from '../mesh/node.ts'
import type { LinkLoss } from './lossy-memory.ts'

/**
 * The narrow port the replication layers need from the network: publish and receive per topic,
 * open and handle protocol streams, peers connecting and leaving, dial and hang up. Both adapters
 * are a full libp2p node (noise, yamux, gossipsub, identify, ping); they differ only in how bytes
 * travel. test/transport-acceptance.ts is the contract both pass.
 */
export type TransportPort = Pick<
  MeshNode,
  | 'peerId'
  | 'addresses'
  | 'receive'
  | 'subscribe'
  | 'unsubscribe'
  | 'publish'
  | 'topicPeers'
  | 'handleProtocol'
  | 'unhandleProtocol'
  | 'watchProtocol'
  | 'openStream'
  | 'onPeerConnect'
  | 'onPeerDisconnect'
  | 'peers'
  | 'dial'
  | 'hangUp'
  | 'stop'
>

/** libp2p over TCP: the real network. */
export function createTcpTransport(init: Omit<MeshNodeInit, 'transport'> = {}): Promise<MeshNode> {
  return createMeshNode({ ...init, transport: { kind: 'tcp' } })
}

/**
 * libp2p over its in-memory transport: nodes of this process only, no sockets, the same stack
 * above. `latencyMs` delays every buffer sent; `loss` loses a seeded fraction of them, each loss
 * resetting its connection (./lossy-memory.ts).
 */
export function createMemoryTransport(
  init: Omit<MeshNodeInit, 'transport'> & { latencyMs?: number; loss?: LinkLoss } = {},
): Promise<MeshNode> {
  const { latencyMs, loss, ...rest } = init
  return createMeshNode({ ...rest, transport: { kind: 'memory', latencyMs, loss } })
}

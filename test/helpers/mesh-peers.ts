import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { attachMesh, type HearsayMesh, type MeshOptions } from '../../src/peer/attach-mesh.ts'
import { HearsayPeer } from '../../src/peer/peer.ts'
import { createMemoryStore } from '../../src/store/memory.ts'
import type { Store } from '../../src/store/types.ts'

export { eventually } from './eventually.ts'

export interface TestPeer {
  peer: HearsayPeer
  mesh: HearsayMesh
  address: string
  stop(): Promise<void>
}

/** A peer on 127.0.0.1 (or in memory, with `transport`) with a memory store (unless given one), mDNS off, loopback limits relaxed. */
export async function startTestPeer(
  options: Partial<MeshOptions> & { namespaces?: string[]; store?: Store } = {},
): Promise<TestPeer> {
  const privateKey = options.privateKey ?? (await generateKeyPair('Ed25519'))
  const peerId = peerIdFromPrivateKey(privateKey).toString()
  const peer = new HearsayPeer({
    store: options.store ?? createMemoryStore(),
    peerId,
    privateKey,
    namespaces: options.namespaces ?? ['ns'],
  })
  const mesh = await attachMesh(peer, {
    listen: options.transport?.kind === 'memory' ? undefined : ['/ip4/127.0.0.1/tcp/0'],
    mdns: false,
    loopbackTesting: true,
    ...options,
    privateKey,
  })
  return {
    peer,
    mesh,
    address: mesh.addresses()[0],
    stop: () => peer.stop(),
  }
}

export function digests(peers: TestPeer[], namespace = 'ns'): string[] {
  return peers.map((p) => p.peer.namespace(namespace).digest())
}

export function allEqual(values: string[]): boolean {
  return values.every((v) => v === values[0])
}

/** True while `x` has a connection to `y`. */
export function connected(x: TestPeer, y: TestPeer): boolean {
  return x.mesh.node.peers().some((p) => p.toString() === y.mesh.peerId)
}

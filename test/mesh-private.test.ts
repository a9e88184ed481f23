import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { afterEach, describe, expect, it } from 'vitest'
import { generateSwarmKey } from '../src/mesh/node.ts'
import { allEqual, digests, eventually, startTestPeer, type TestPeer } from './helpers/mesh-peers.ts'

const te = new TextEncoder()
let running: TestPeer[] = []
afterEach(async () => {
  await Promise.allSettled(running.map((p) => p.stop()))
  running = []
})

async function start(options: Parameters<typeof startTestPeer>[0]): Promise<TestPeer> {
  const peer = await startTestPeer(options)
  running.push(peer)
  return peer
}

describe('private meshes', () => {
  it('peers sharing a swarm key replicate; a peer with another key cannot even connect', async () => {
    const swarmKey = generateSwarmKey()
    const a = await start({ swarmKey })
    const b = await start({ swarmKey })
    const outsider = await start({ swarmKey: generateSwarmKey() })
    await b.peer.dial(a.address)
    await a.peer.namespace('ns').put('secret', te.encode('s'), 'text/plain')
    expect(await eventually(() => allEqual(digests([a, b])))).toBe(true)
    await expect(outsider.peer.dial(a.address)).rejects.toThrow()
    expect(outsider.peer.namespace('ns').get('secret')).toBeUndefined()
    expect(a.mesh.node.peers().map(String)).not.toContain(outsider.mesh.peerId)
  })

  it('a PeerId allowlist refuses everyone else', async () => {
    const memberKey = await generateKeyPair('Ed25519')
    const member = peerIdFromPrivateKey(memberKey).toString()
    const a = await start({ allowPeers: [member] })
    const allowed = await start({ privateKey: memberKey })
    const stranger = await start({})
    await allowed.peer.dial(a.address)
    // The stranger's side may finish its handshake; `a` drops the connection once noise has shown
    // who it is, before any protocol runs.
    await stranger.peer.dial(a.address).catch(() => undefined)
    expect(
      await eventually(() => !a.mesh.node.peers().some((p) => p.toString() === stranger.mesh.peerId)),
    ).toBe(true)
    await a.peer.namespace('ns').put('k', te.encode('v'), 'text/plain')
    expect(await eventually(() => allowed.peer.namespace('ns').get('k') !== undefined)).toBe(true)
    expect(stranger.peer.namespace('ns').get('k')).toBeUndefined()
    expect(a.mesh.membership.get(stranger.mesh.peerId)?.holds.size ?? 0).toBe(0)
  })
})

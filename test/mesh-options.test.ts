import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { describe, expect, it } from 'vitest'
import { CONNECTION_HEADROOM, PEER_EXCHANGE_PROTOCOL } from '../src/mesh/constants.ts'
import { buildLibp2pOptions, generateSwarmKey, type MeshNodeInit } from '../src/mesh/node.ts'
import { meshTopicPattern, topicAllowlist } from '../src/mesh/topics.ts'
import { SYNC_PROTOCOL } from '../src/sync/constants.ts'

const parts = (denied: (id: string) => boolean = () => false) => ({
  allowlist: topicAllowlist([meshTopicPattern('test')]),
  maxMessageBytes: 1024,
  peerDiscovery: [],
  denied: (peer: { toString(): string }) => denied(peer.toString()),
  discovered: () => {},
  onError: () => {},
})

const build = (init: MeshNodeInit, denied?: (id: string) => boolean) =>
  buildLibp2pOptions(init, parts(denied))

describe('buildLibp2pOptions (pure: builds factories, starts nothing)', () => {
  it('listens on loopback TCP by default, and in memory when asked', () => {
    expect(build({}).addresses?.listen).toEqual(['/ip4/127.0.0.1/tcp/0'])
    expect(build({}).transports).toHaveLength(1)
    const listen = build({ transport: { kind: 'memory' } }).addresses?.listen ?? []
    expect(listen).toHaveLength(1)
    expect(listen[0]).toMatch(/^\/memory\//)
    expect(build({ listen: ['/ip4/0.0.0.0/tcp/7000'] }).addresses?.listen).toEqual(['/ip4/0.0.0.0/tcp/7000'])
  })

  it('adds the pre-shared-key protector only for a swarm key', () => {
    expect(build({}).connectionProtector).toBeUndefined()
    expect(build({ swarmKey: generateSwarmKey() }).connectionProtector).toBeTypeOf('function')
  })

  it('relaxes per-host inbound limits only for loopback testing', () => {
    expect(build({}).connectionManager?.inboundConnectionThreshold).toBeUndefined()
    expect(build({ loopbackTesting: true }).connectionManager?.inboundConnectionThreshold).toBeGreaterThan(5)
    // libp2p refuses inbound connections only past the kept maximum plus a headroom for newcomers.
    expect(build({ maxConnections: 1024 }).connectionManager?.maxConnections).toBe(1024 + CONNECTION_HEADROOM)
    expect(build({}).connectionManager?.maxConnections).toBe(12 + CONNECTION_HEADROOM)
  })

  it('gates dials and connections with the given deny rule', async () => {
    const peer = peerIdFromPrivateKey(await generateKeyPair('Ed25519'))
    const gater = build({}, (id) => id === peer.toString()).connectionGater
    expect(await gater?.denyDialPeer?.(peer)).toBe(true)
    expect(await gater?.denyInboundEncryptedConnection?.(peer, undefined as never)).toBe(true)
    expect(await build({}).connectionGater?.denyDialPeer?.(peer)).toBe(false)
  })

  it('registers identify, ping, gossipsub and peer exchange, and does not start the node', () => {
    const options = build({ privateKey: undefined })
    expect(Object.keys(options.services ?? {}).sort()).toEqual(['identify', 'peerExchange', 'ping', 'pubsub'])
    expect(build({ peerExchange: false }).services?.peerExchange).toBeUndefined()
    expect(options.start).toBe(false)
  })

  it('lists the sync protocol as a libp2p service when asked, built from components alone', async () => {
    expect(build({}).services?.sync).toBeUndefined()
    const handled: string[] = []
    const registrar = {
      handle: async (protocol: string) => void handled.push(protocol),
      unhandle: async () => {},
      register: async () => 'topology',
      unregister: () => {},
    }
    const components = {
      peerId: peerIdFromPrivateKey(await generateKeyPair('Ed25519')),
      peerStore: { get: async () => Promise.reject(new Error('unknown')) },
      registrar,
      connectionManager: {
        getConnections: () => [],
        openStream: async () => Promise.reject(new Error('none')),
      },
    }
    const services = build({ sync: { replica: () => undefined }, peerExchange: { intervalMs: 0 } }).services
    const sync = services?.sync?.(components as never)
    const pex = services?.peerExchange?.(components as never)
    expect(String(sync)).toBe('[object @hearsay/sync]')
    expect(String(pex)).toBe('[object @hearsay/peer-exchange]')
    await sync?.start()
    await pex?.start()
    expect(handled.sort()).toEqual([PEER_EXCHANGE_PROTOCOL, SYNC_PROTOCOL].sort())
    await pex?.stop()
    await sync?.stop()
  })
})

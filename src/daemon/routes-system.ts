import { multiaddr } from '@multiformats/multiaddr'
import { DIAL_REQUEST_TIMEOUT_MS } from './constants.ts'
import { ApiError } from './errors.ts'
import { json, type Route, readJsonObject } from './route.ts'

/** Status and peers: the operational half of the API. */

export const statusRoute: Route = {
  template: '/v1/status',
  methods: {
    GET(context) {
      const { peer, hub } = context.app
      const info = context.app.info()
      const status = peer.status()
      const peers = peer.peers()
      const memory = process.memoryUsage()
      return json(200, {
        peerId: status.peerId,
        version: info.version,
        pid: process.pid,
        startedAt: info.startedAt,
        uptimeMs: status.uptimeMs,
        api: { url: info.url },
        dataDir: info.dataDir,
        topology: info.topology,
        mesh: {
          name: info.meshName,
          attached: peer.attachedMesh !== undefined,
          addresses: status.addresses,
          mdns: info.mdns,
          bootstrap: info.bootstrap,
          hubs: info.hubs,
          private: info.privateMesh,
        },
        peers: { connected: peers.filter((p) => p.connected).length, known: peers.length },
        namespaces: status.namespaces,
        store: { ...status.store, ...(info.storePath === undefined ? {} : { path: info.storePath }) },
        process: { rssBytes: memory.rss, heapUsedBytes: memory.heapUsed },
        watchClients: hub.clientCount,
      })
    },
  },
}

export const peerRoutes: Route = {
  template: '/v1/peers',
  methods: {
    GET(context) {
      const peers = [...context.app.peer.peers()].sort(
        (a, b) => Number(b.connected) - Number(a.connected) || a.peerId.localeCompare(b.peerId),
      )
      return json(200, {
        meshAttached: context.app.peer.attachedMesh !== undefined,
        peers: peers.map((p) => ({
          ...p,
          ...(p.lastSeen === undefined ? {} : { lastSeenAt: new Date(p.lastSeen).toISOString() }),
        })),
      })
    },
    async POST(context) {
      const body = await readJsonObject(context.request)
      const address = body.address
      if (typeof address !== 'string' || address === '') {
        throw new ApiError(
          400,
          'INVALID_BODY',
          'send {"address": "<multiaddr>"}, e.g. /ip4/192.168.1.7/tcp/7601/p2p/12D3KooW...',
        )
      }
      try {
        multiaddr(address)
      } catch (error) {
        throw new ApiError(
          400,
          'INVALID_ADDRESS',
          `"${address}" is not a multiaddr: ${(error as Error).message}`,
        )
      }
      const { peer } = context.app
      if (peer.attachedMesh === undefined) {
        throw new ApiError(
          503,
          'MESH_UNAVAILABLE',
          'this peer runs without a mesh, so it cannot dial other peers',
        )
      }
      const signal = AbortSignal.any([AbortSignal.timeout(DIAL_REQUEST_TIMEOUT_MS), context.request.signal])
      const started = performance.now()
      try {
        const peerId = await peer.dial(address, signal)
        return json(200, { peerId, address, dialMs: Math.round(performance.now() - started) })
      } catch (error) {
        const name = (error as Error).name
        if (
          name === 'InvalidAddressError' ||
          name === 'InvalidMultiaddrError' ||
          name === 'InvalidParametersError'
        ) {
          throw new ApiError(400, 'INVALID_ADDRESS', (error as Error).message)
        }
        throw new ApiError(502, 'DIAL_FAILED', `could not dial ${address}: ${(error as Error).message}`)
      }
    },
  },
}

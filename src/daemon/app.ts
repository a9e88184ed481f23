import type { Logger } from 'pino'
import { HearsayPeer, NamespaceError } from '../peer/peer.ts'
import { ReplicaError } from '../replica/errors.ts'
import { StoreError } from '../store/types.ts'
import { type AccessPolicy, accessProblem } from './access.ts'
import { ApiError } from './errors.ts'
import type { EventHub } from './events.ts'
import type { ApiRequest, ApiResponse } from './http.ts'
import type { DaemonMetrics } from './metrics.ts'
import { openApiDocument } from './openapi.ts'
import type { ReadCache } from './read-cache.ts'
import { errorResponse, JSON_TYPE, json, type Route, type RouteContext } from './route.ts'
import { backupRoute, exportRoute, forgetPeerRoute, leaveNamespace } from './routes-admin.ts'
import { matchDashboard } from './routes-dashboard.ts'
import { counterRoutes, kvRoutes, listRoute, namespaceRoutes, setRoutes, watchRoute } from './routes-data.ts'
import { conflictsRoute, eventsRoute, explainRoute, replicationRoute } from './routes-insight.ts'
import { peerRoutes, statusRoute } from './routes-system.ts'
import type { Topology } from './settings.ts'
import type { WatchHub } from './watch.ts'

/**
 * The HTTP API as a value: `createApp(...)` returns `{ handle(request) → response }`, with no socket
 * in sight (server.ts binds it to node:http). Every route and error is listed in docs/api.md and in
 * the OpenAPI document served at /v1/openapi.json.
 */

export interface DaemonInfo {
  version: string
  url: string
  dataDir: string
  meshName: string
  mdns: boolean
  bootstrap: string[]
  /** mesh, hub, or hub-client (see settings.ts). */
  topology: Topology
  /** The hubs a hub client talks to (empty otherwise). */
  hubs: string[]
  /** Private mesh: whether a swarm key is in use, and how many peer ids are allowed (0: anyone). */
  privateMesh: { swarmKey: boolean; allowPeers: number }
  storePath?: string
  startedAt: string
}

export interface AppInit {
  peer: HearsayPeer
  metrics: DaemonMetrics
  hub: WatchHub
  /** The mesh's events (GET /v1/events); absent: that route answers 503. */
  events?: EventHub
  /** Plain GETs, kept until their key changes. */
  reads: ReadCache
  logger: Logger
  /** Facts about the running daemon for /v1/status (read at request time: the URL is known late). */
  info: () => DaemonInfo
  requireIfMatch?: boolean
  /** Who may use the API (Host, Origin, bearer token); none checked when absent (unit tests). */
  access?: AccessPolicy
}

export interface App {
  handle(request: ApiRequest): Promise<ApiResponse>
  /** From now on every request is answered 503 SHUTTING_DOWN (watch streams are ended by the hub). */
  close(): void
}

export function createApp(init: AppInit): App {
  let closing = false
  const routes = {
    healthz: { template: '/healthz', methods: { GET: healthz } } satisfies Route,
    metrics: { template: '/metrics', methods: { GET: metricsRoute } } satisfies Route,
    openapi: { template: '/v1/openapi.json', methods: { GET: openapi } } satisfies Route,
    status: statusRoute,
    peers: peerRoutes,
    namespaces: { template: '/v1/ns', methods: { GET: namespaceRoutes.list } } satisfies Route,
    namespace: {
      template: '/v1/ns/:ns',
      methods: { GET: namespaceRoutes.get, PUT: namespaceRoutes.join, DELETE: leaveNamespace },
    },
    list: listRoute,
    kv: kvRoutes,
    counter: counterRoutes,
    set: setRoutes,
    watch: watchRoute,
    backup: backupRoute,
    export: exportRoute,
    forgetPeer: forgetPeerRoute,
    replication: replicationRoute,
    conflicts: conflictsRoute,
    explain: explainRoute,
    events: eventsRoute,
  }

  /** Finds the route of a path; undefined → 404. Keys may contain `/`, so they take the rest of the path. */
  function match(path: string, method: string): { route: Route; params: RouteContext['params'] } | undefined {
    if (path.startsWith('/v1/ns/')) {
      const rest = path.slice(7)
      const slash = rest.indexOf('/')
      const ns = decodePart(slash < 0 ? rest : rest.slice(0, slash), 'INVALID_NAMESPACE')
      if (slash < 0) return { route: routes.namespace, params: { ns } }
      const tail = rest.slice(slash + 1)
      const kindEnd = tail.indexOf('/')
      const kind = kindEnd < 0 ? tail : tail.slice(0, kindEnd)
      if (kindEnd < 0) {
        if (kind === 'kv') return { route: routes.list, params: { ns } }
        if (kind === 'watch') return { route: routes.watch, params: { ns } }
        if (kind === 'replication') return { route: routes.replication, params: { ns } }
        if (kind === 'conflicts') return { route: routes.conflicts, params: { ns } }
        return undefined
      }
      // GET `…/kv/{key}/explain`; a key that itself ends in `/explain` reads as `…/kv/{key}%2Fexplain`
      // (writes to it are unaffected).
      if (
        kind === 'kv' &&
        (method === 'GET' || method === 'HEAD') &&
        tail.endsWith(EXPLAIN_SUFFIX) &&
        tail.length > kindEnd + 1 + EXPLAIN_SUFFIX.length
      ) {
        const key = decodePart(tail.slice(kindEnd + 1, -EXPLAIN_SUFFIX.length), 'INVALID_KEY')
        return { route: routes.explain, params: { ns, key } }
      }
      const key = decodePart(tail.slice(kindEnd + 1), 'INVALID_KEY')
      if (kind === 'kv') return { route: routes.kv, params: { ns, key } }
      if (kind === 'counter') return { route: routes.counter, params: { ns, key } }
      if (kind === 'set') return { route: routes.set, params: { ns, key } }
      return undefined
    }
    if (path.startsWith('/v1/peers/') && path.length > 10) {
      return { route: routes.forgetPeer, params: { peer: decodePart(path.slice(10), 'INVALID_KEY') } }
    }
    if (path === '/' || path === '/index.html' || path.startsWith('/ui/')) return matchDashboard(path)
    switch (path) {
      case '/v1/admin/backup':
        return { route: routes.backup, params: {} }
      case '/v1/admin/export':
        return { route: routes.export, params: {} }
      case '/healthz':
        return { route: routes.healthz, params: {} }
      case '/metrics':
        return { route: routes.metrics, params: {} }
      case '/v1/openapi.json':
        return { route: routes.openapi, params: {} }
      case '/v1/status':
        return { route: routes.status, params: {} }
      case '/v1/peers':
        return { route: routes.peers, params: {} }
      case '/v1/ns':
        return { route: routes.namespaces, params: {} }
      case '/v1/events':
        return { route: routes.events, params: {} }
      default:
        return undefined
    }
  }

  async function handle(request: ApiRequest): Promise<ApiResponse> {
    const started = performance.now()
    let template = 'unmatched'
    let response: ApiResponse
    try {
      if (closing)
        throw new ApiError(503, 'SHUTTING_DOWN', 'the daemon is shutting down', {
          headers: { connection: 'close' },
        })
      const questionMark = request.url.indexOf('?')
      const path = questionMark < 0 ? request.url : request.url.slice(0, questionMark)
      const found = match(path, request.method)
      if (init.access !== undefined) {
        const problem = accessProblem(
          {
            method: request.method,
            template: found?.route.template ?? 'unmatched',
            headers: request.headers,
          },
          init.access,
        )
        if (problem !== undefined) throw problem
      }
      if (found === undefined)
        throw new ApiError(404, 'NOT_FOUND', `no route for ${path} (see GET /v1/openapi.json)`)
      template = found.route.template
      const method = request.method === 'HEAD' ? 'GET' : request.method
      const handler = found.route.methods[method as keyof Route['methods']]
      if (handler === undefined) {
        const allow = Object.keys(found.route.methods).join(', ')
        throw new ApiError(
          405,
          'METHOD_NOT_ALLOWED',
          `${request.method} is not allowed on ${template}; use ${allow}`,
          {
            headers: { allow },
          },
        )
      }
      const context = routeContext(
        request,
        found.params,
        questionMark < 0 ? '' : request.url.slice(questionMark + 1),
      )
      response = await handler(context)
    } catch (error) {
      response = errorResponse(toApiError(error, init.logger, request))
    }
    init.metrics.request(request.method, template, response.status, (performance.now() - started) / 1000)
    if (init.logger.isLevelEnabled('debug')) {
      init.logger.debug({ method: request.method, url: request.url, status: response.status }, 'request')
    }
    return response
  }

  function routeContext(request: ApiRequest, params: RouteContext['params'], search: string): RouteContext {
    let query: URLSearchParams | undefined
    return {
      request,
      params,
      get query() {
        query ??= new URLSearchParams(search)
        return query
      },
      app: init,
      existing() {
        const ns = params.ns!
        if (!init.peer.hasNamespace(ns)) {
          if (!HearsayPeer.isValidNamespace(ns)) throw invalidNamespace(ns)
          throw new ApiError(
            404,
            'NAMESPACE_NOT_FOUND',
            `namespace "${ns}" is not joined on this peer; write to it or PUT /v1/ns/${ns} to join it`,
          )
        }
        return init.peer.namespace(ns)
      },
      join() {
        const ns = params.ns!
        if (!HearsayPeer.isValidNamespace(ns)) throw invalidNamespace(ns)
        const replica = init.peer.namespace(ns)
        init.hub.track(replica)
        return replica
      },
    }
  }

  function healthz(): ApiResponse {
    return json(200, { ok: true, peerId: init.peer.peerId })
  }

  async function metricsRoute(): Promise<ApiResponse> {
    return {
      status: 200,
      headers: { 'content-type': init.metrics.contentType },
      body: await init.metrics.text(),
    }
  }

  // Built on the first request for it: most daemons never serve it, and start-up need not wait for it.
  let openApiText: string | undefined
  function openapi(): ApiResponse {
    openApiText ??= JSON.stringify(openApiDocument())
    return { status: 200, headers: { 'content-type': JSON_TYPE }, body: openApiText }
  }

  return {
    handle,
    close() {
      closing = true
    },
  }
}

const EXPLAIN_SUFFIX = '/explain'

function invalidNamespace(ns: string): ApiError {
  return new ApiError(
    400,
    'INVALID_NAMESPACE',
    `namespace "${ns}" must be 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit`,
  )
}

function decodePart(raw: string, code: 'INVALID_KEY' | 'INVALID_NAMESPACE'): string {
  if (!raw.includes('%')) return raw
  try {
    return decodeURIComponent(raw)
  } catch {
    throw new ApiError(
      400,
      code,
      `${code === 'INVALID_KEY' ? 'key' : 'namespace'} has a malformed %-escape: ${raw}`,
    )
  }
}

/** Maps whatever a handler threw to the API's error shape; unknown errors are logged as bugs. */
export function toApiError(error: unknown, logger: Logger, request: ApiRequest): ApiError {
  if (error instanceof ApiError) return error
  if (error instanceof ReplicaError) {
    switch (error.code) {
      case 'INVALID_KEY':
        return new ApiError(400, 'INVALID_KEY', error.message)
      case 'VALUE_TOO_LARGE':
        return new ApiError(413, 'VALUE_TOO_LARGE', error.message)
      case 'INVALID_CONTENT_TYPE':
        return new ApiError(415, 'INVALID_CONTENT_TYPE', error.message)
      case 'INVALID_TOKEN':
        return new ApiError(400, 'INVALID_IF_MATCH', error.message)
      case 'INVALID_NUMBER':
        return new ApiError(400, 'INVALID_NUMBER', error.message)
      case 'INVALID_TTL':
        return new ApiError(400, 'INVALID_PARAMETER', error.message)
      case 'REPLICA_CLOSED':
        return new ApiError(503, 'STORE_FAILED', error.message)
    }
  }
  if (error instanceof NamespaceError) return new ApiError(400, 'INVALID_NAMESPACE', error.message)
  if (error instanceof StoreError) {
    logger.error({ err: error }, 'store failed')
    return new ApiError(503, 'STORE_FAILED', `the store failed (${error.code}): ${error.message}`)
  }
  logger.error({ err: error, method: request.method, url: request.url }, 'request failed')
  return new ApiError(500, 'INTERNAL', 'internal error; the daemon log has the details')
}

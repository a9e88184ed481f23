import { HearsayPeer } from '../peer/peer.ts'
import { keyProblem, setElementProblem } from '../replica/keys.ts'
import { MAX_TTL_MS, MIN_TTL_MS, type Replica, type WriteAck } from '../replica/replica.ts'
import {
  DEFAULT_ACK_TIMEOUT_MS,
  MAX_ACK_PEERS,
  MAX_ACK_TIMEOUT_MS,
  MAX_SET_ELEMENTS_PER_REQUEST,
  MAX_VALUE_BYTES,
} from './constants.ts'
import { ApiError } from './errors.ts'
import { type ApiResponse, eventStream, header } from './http.ts'
import {
  checkJsonText,
  flagParam,
  intParam,
  json,
  pageParams,
  type Route,
  type RouteContext,
  readJsonObject,
} from './route.ts'
import { describeSibling, encodeValue, isJsonType } from './values.ts'
import { decodeSince, type WatchFormat } from './watch.ts'

/** Namespaces, keys, counters, sets and watch: the data half of the API. */

// ---- namespaces -------------------------------------------------------------------------------

export const namespaceRoutes = {
  list(context: RouteContext): ApiResponse {
    return json(200, { namespaces: context.app.peer.status().namespaces })
  },
  get(context: RouteContext): ApiResponse {
    const replica = context.existing()
    return json(200, namespaceStatus(context, replica))
  },
  join(context: RouteContext): ApiResponse {
    const existed = context.app.peer.hasNamespace(context.params.ns!)
    const replica = context.join()
    return json(existed ? 200 : 201, namespaceStatus(context, replica))
  },
}

function namespaceStatus(context: RouteContext, replica: Replica) {
  return context.app.peer.status().namespaces.find((ns) => ns.name === replica.namespace)
}

// ---- keys -------------------------------------------------------------------------------------

export const listRoute: Route = {
  template: '/v1/ns/:ns/kv',
  methods: {
    GET(context) {
      const replica = context.existing()
      const { prefix, limit, cursor } = pageParams(context.query)
      const values = context.query.has('values') ? flagParam(context.query, 'values') : true
      const page = replica.list(prefix, { cursor, limit })
      const items = page.items.map(({ key, read }) => ({
        key,
        etag: read.etag,
        siblings: read.siblings.length,
        writtenAt: new Date(read.winner.wall).toISOString(),
        ...(values
          ? encodeValue(read.winner.value, read.winner.contentType)
          : { contentType: read.winner.contentType }),
      }))
      return json(200, {
        namespace: replica.namespace,
        prefix,
        items,
        ...(page.cursor === undefined ? {} : { cursor: page.cursor }),
      })
    },
    /**
     * Deletes every key under `prefix` as one operation (one tombstone per key, one HLC timestamp,
     * one commit). Everything (empty prefix) only with `all=1`.
     */
    async DELETE(context) {
      const replica = context.existing()
      const prefix = context.query.get('prefix') ?? ''
      const all = context.query.has('all') ? flagParam(context.query, 'all') : false
      if (prefix === '' && !all) {
        throw new ApiError(
          400,
          'INVALID_PARAMETER',
          'a prefix delete needs a non-empty prefix; to delete every key of the namespace, send all=1',
        )
      }
      if (prefix !== '' && all)
        throw new ApiError(400, 'INVALID_PARAMETER', 'send either a prefix or all=1, not both')
      const ack = ackOption(context)
      const writes = await replica.deletePrefix(prefix)
      for (const _ of writes) context.app.metrics.write(replica.namespace, 'delete')
      const body = { namespace: replica.namespace, prefix, deleted: writes.length }
      const last = writes[writes.length - 1]
      if (last === undefined) return nothingWritten(ack, body)
      return acknowledged(context, ack, last, body, { etag: false })
    },
  },
}

export const kvRoutes: Route = {
  template: '/v1/ns/:ns/kv/:key',
  methods: {
    GET(context) {
      const replica = context.existing()
      const key = context.params.key!
      if (context.request.url.includes('?') && flagParam(context.query, 'siblings')) {
        const read = replica.get(key)
        if (read === undefined) throw keyNotFound(replica, key)
        const winner = read.siblings.indexOf(read.winner)
        return json(
          200,
          {
            namespace: replica.namespace,
            key,
            etag: read.etag,
            winner,
            siblings: read.siblings.map(describeSibling),
          },
          { etag: `"${read.etag}"` },
        )
      }
      const read = context.app.reads.read(replica, key)
      if (read === undefined) throw keyNotFound(replica, key)
      const headers: Record<string, string> = {
        'content-type': read.contentType,
        etag: read.etag,
        'x-hearsay-siblings': String(read.siblings),
      }
      if (header(context.request, 'if-none-match') === read.etag) return { status: 304, headers }
      return { status: 200, headers, body: read.value }
    },
    async PUT(context) {
      const key = context.params.key!
      checkNamespaceName(context)
      checkKey(key)
      const ack = ackOption(context)
      const ttlMs = ttlOption(context)
      const contentType = header(context.request, 'content-type')?.trim() || 'application/octet-stream'
      const value = await context.request.body(MAX_VALUE_BYTES, 'VALUE_TOO_LARGE')
      if (isJsonType(contentType)) checkJsonText(value, 'value')
      const ifMatch = ifMatchToken(context)
      const replica = context.join()
      if (ifMatch === undefined && context.app.requireIfMatch && replica.get(key) !== undefined)
        throw preconditionRequired(key)
      const result = await replica.put(key, value, contentType, {
        ifMatch: ifMatch === '*' ? undefined : ifMatch,
        ttlMs,
      })
      context.app.metrics.write(replica.namespace, 'put')
      return acknowledged(context, ack, result, writeBody(result))
    },
    async DELETE(context) {
      const key = context.params.key!
      const replica = context.existing()
      const ack = ackOption(context)
      const ifMatch = ifMatchToken(context)
      if (ifMatch === undefined && context.app.requireIfMatch && replica.get(key) !== undefined)
        throw preconditionRequired(key)
      const result = await replica.delete(key, { ifMatch: ifMatch === '*' ? undefined : ifMatch })
      if (result === undefined) throw keyNotFound(replica, key)
      context.app.metrics.write(replica.namespace, 'delete')
      return acknowledged(context, ack, result, { ...writeBody(result), deleted: true })
    },
    /** `POST /v1/ns/{ns}/kv/{key}/touch?ttl=…`: rewrites the value a read shows with a new TTL. */
    async POST(context) {
      const path = context.params.key!
      if (!path.endsWith(TOUCH_SUFFIX) || path.length === TOUCH_SUFFIX.length) {
        // POST means touch only: any other key answers as a method this route does not take.
        throw new ApiError(
          405,
          'METHOD_NOT_ALLOWED',
          'POST is not allowed on /v1/ns/:ns/kv/:key (only on /v1/ns/{ns}/kv/{key}/touch); use GET, PUT, DELETE',
          { headers: { allow: 'GET, PUT, DELETE' } },
        )
      }
      const key = path.slice(0, -TOUCH_SUFFIX.length)
      checkKey(key)
      const replica = context.existing()
      const ack = ackOption(context)
      const ttlMs = ttlOption(context)
      if (ttlMs === undefined)
        throw new ApiError(400, 'INVALID_PARAMETER', 'touch needs ttl (for example ttl=30s)')
      const result = await replica.touch(key, { ttlMs })
      if (result === undefined) throw keyNotFound(replica, key)
      context.app.metrics.write(replica.namespace, 'put')
      return acknowledged(context, ack, result, writeBody(result))
    },
  },
}

const TOUCH_SUFFIX = '/touch'

function writeBody(result: WriteAck) {
  return {
    namespace: result.namespace,
    key: result.key,
    etag: result.token,
    replica: result.replica,
    counter: result.counter,
    writtenAt: new Date(result.wall).toISOString(),
    ...(result.expiresAt === undefined ? {} : { expiresAt: new Date(result.expiresAt).toISOString() }),
  }
}

// ---- counters ---------------------------------------------------------------------------------

export const counterRoutes: Route = {
  template: '/v1/ns/:ns/counter/:key',
  methods: {
    GET(context) {
      const replica = context.existing()
      const key = context.params.key!
      return json(200, { namespace: replica.namespace, key, value: replica.counter(key) })
    },
    async POST(context) {
      const key = context.params.key!
      checkNamespaceName(context)
      checkKey(key)
      const ack = ackOption(context)
      const body = await readJsonObject(context.request)
      const by = body.by ?? 1
      if (typeof by !== 'number' || !Number.isSafeInteger(by)) {
        throw new ApiError(
          400,
          'INVALID_NUMBER',
          `"by" must be a safe integer (negative to subtract), got ${JSON.stringify(by).slice(0, 80)}`,
        )
      }
      const replica = context.join()
      const result = await replica.increment(key, by)
      context.app.metrics.write(replica.namespace, 'increment')
      return acknowledged(context, ack, result, {
        namespace: replica.namespace,
        key,
        value: result.value,
        replica: result.replica,
        counter: result.counter,
      })
    },
    async DELETE(context) {
      const key = context.params.key!
      const replica = context.existing()
      const ack = ackOption(context)
      const result = await replica.resetCounter(key)
      if (result === undefined)
        return json(200, { namespace: replica.namespace, key, value: replica.counter(key), reset: false })
      context.app.metrics.write(replica.namespace, 'reset')
      return acknowledged(context, ack, result, {
        namespace: replica.namespace,
        key,
        value: replica.counter(key),
        reset: true,
      })
    },
  },
}

// ---- sets -------------------------------------------------------------------------------------

export const setRoutes: Route = {
  template: '/v1/ns/:ns/set/:key',
  methods: {
    GET(context) {
      const replica = context.existing()
      const key = context.params.key!
      return json(200, { namespace: replica.namespace, key, members: replica.setMembers(key) })
    },
    async POST(context) {
      const key = context.params.key!
      checkNamespaceName(context)
      checkKey(key)
      const ack = ackOption(context)
      const body = await readJsonObject(context.request)
      const add = elements(body, 'add', key)
      const remove = elements(body, 'remove', key)
      if (add.length + remove.length === 0) {
        throw new ApiError(
          400,
          'INVALID_BODY',
          'send {"add": [...]} and/or {"remove": [...]} with at least one element',
        )
      }
      if (add.length + remove.length > MAX_SET_ELEMENTS_PER_REQUEST) {
        throw new ApiError(
          400,
          'INVALID_BODY',
          `at most ${MAX_SET_ELEMENTS_PER_REQUEST} elements per request`,
        )
      }
      const replica = context.join()
      // Every element was checked above, so these all apply (in one commit) or none is attempted.
      const removals = remove.map((element) => replica.setRemove(key, element))
      const additions = add.map((element) => replica.setAdd(key, element))
      const removed = await Promise.all(removals)
      const added = await Promise.all(additions)
      const writes = [...added, ...removed.filter((write): write is WriteAck => write !== undefined)]
      for (const _ of added) context.app.metrics.write(replica.namespace, 'set_add')
      for (let i = added.length; i < writes.length; i++)
        context.app.metrics.write(replica.namespace, 'set_remove')
      const result = {
        namespace: replica.namespace,
        key,
        members: replica.setMembers(key),
        added: add,
        removed: remove.filter((_, i) => removed[i] !== undefined),
      }
      // ?ack waits for the request's last (highest) dot.
      const last = writes.reduce<WriteAck | undefined>(
        (a, b) => (a === undefined || b.counter > a.counter ? b : a),
        undefined,
      )
      return last === undefined ? nothingWritten(ack, result) : acknowledged(context, ack, last, result)
    },
  },
}

function elements(body: Record<string, unknown>, field: 'add' | 'remove', key: string): string[] {
  const raw = body[field]
  if (raw === undefined) return []
  const list = Array.isArray(raw) ? raw : [raw]
  for (const element of list) {
    if (typeof element !== 'string')
      throw new ApiError(400, 'INVALID_BODY', `"${field}" must be a string or an array of strings`)
    const problem = setElementProblem(key, element)
    if (problem !== undefined) throw new ApiError(400, 'INVALID_KEY', problem)
  }
  return list as string[]
}

// ---- watch ------------------------------------------------------------------------------------

export const watchRoute: Route = {
  template: '/v1/ns/:ns/watch',
  methods: {
    async GET(context) {
      checkNamespaceName(context)
      const prefix = context.query.get('prefix') ?? ''
      // An EventSource reconnects to the same URL adding Last-Event-ID, which is newer than the URL's since.
      const raw = header(context.request, 'last-event-id') ?? context.query.get('since') ?? ''
      const format = watchFormat(context)
      // No GET changes state: watching a namespace this peer has not joined is a 404 (join it with
      // PUT /v1/ns/{ns} first), so a stray or cross-site request cannot create namespaces.
      const since =
        raw === '' || raw === 'now'
          ? undefined
          : decodeSince(raw, () => context.existing().context().replicas())
      const replica = context.existing()
      const stream = await context.app.hub.open(replica, prefix, since, format)
      return eventStream(stream)
    },
  },
}

/** `?format=full` (the default) or `compact`. */
function watchFormat(context: RouteContext): WatchFormat {
  const raw = context.query.get('format')
  if (raw === null || raw === '' || raw === 'full') return 'full'
  if (raw === 'compact') return 'compact'
  throw new ApiError(400, 'INVALID_PARAMETER', `format must be full or compact, got "${raw.slice(0, 40)}"`)
}

// ---- shared checks ----------------------------------------------------------------------------

function checkNamespaceName(context: RouteContext): void {
  const ns = context.params.ns!
  if (!HearsayPeer.isValidNamespace(ns)) {
    throw new ApiError(
      400,
      'INVALID_NAMESPACE',
      `namespace "${ns}" must be 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit`,
    )
  }
}

/** The Replica's key rules, checked before a write joins a namespace (so a bad key creates nothing). */
function checkKey(key: string): void {
  const problem = keyProblem(key)
  if (problem !== undefined) throw new ApiError(400, 'INVALID_KEY', problem)
}

/** The If-Match token, `*`, or undefined when absent; quotes and a weak prefix are accepted. */
function ifMatchToken(context: RouteContext): string | undefined {
  const raw = header(context.request, 'if-match')
  if (raw === undefined) return undefined
  let token = raw.trim()
  if (token === '*') return '*'
  if (token.startsWith('W/')) token = token.slice(2)
  if (token.length >= 2 && token.startsWith('"') && token.endsWith('"')) token = token.slice(1, -1)
  if (token === '')
    throw new ApiError(
      400,
      'INVALID_IF_MATCH',
      'If-Match is empty; send the ETag of a read, or leave the header out',
    )
  if (!/^[A-Za-z0-9_-]+$/.test(token)) {
    throw new ApiError(400, 'INVALID_IF_MATCH', 'If-Match must be one ETag exactly as a read returned it')
  }
  return token
}

function preconditionRequired(key: string): ApiError {
  return new ApiError(
    428,
    'PRECONDITION_REQUIRED',
    `key "${key}" exists and this daemon requires If-Match with the ETag of a read to change it`,
  )
}

function keyNotFound(replica: Replica, key: string): ApiError {
  return new ApiError(404, 'KEY_NOT_FOUND', `no key "${key}" in namespace ${replica.namespace}`)
}

interface AckOption {
  peers: number
  timeoutMs: number
}

/** `?ack=N&timeout=ms`, checked before the write so a bad parameter writes nothing. */
function ackOption(context: RouteContext): AckOption | undefined {
  if (!context.request.url.includes('ack=')) return undefined
  const peers = intParam(context.query, 'ack', 0, MAX_ACK_PEERS, 0)
  const timeoutMs = intParam(context.query, 'timeout', 1, MAX_ACK_TIMEOUT_MS, DEFAULT_ACK_TIMEOUT_MS)
  return peers === 0 ? undefined : { peers, timeoutMs }
}

/** `?ttl=30s` (ms, s, m or h; 1 s to 30 days), checked before the write; undefined when absent. */
function ttlOption(context: RouteContext): number | undefined {
  // Most writes have no query string: skip parsing one.
  if (!context.request.url.includes('ttl')) return undefined
  const raw = context.query.get('ttl')
  if (raw === null) return undefined
  const ttlMs = parseTtl(raw)
  if (ttlMs === undefined || ttlMs < MIN_TTL_MS || ttlMs > MAX_TTL_MS) {
    throw new ApiError(
      400,
      'INVALID_PARAMETER',
      `ttl must be a whole number with a unit (ms, s, m, h) from 1s to 30 days (720h), got "${raw.slice(0, 40)}"`,
    )
  }
  return ttlMs
}

const TTL_UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }

/** `30s` → 30000; undefined when not a whole number followed by a known unit. */
export function parseTtl(raw: string): number | undefined {
  const match = /^(\d{1,12})(ms|s|m|h)$/.exec(raw.trim())
  if (match === null) return undefined
  return Number(match[1]) * TTL_UNITS[match[2]]
}

/**
 * The answer to a request that wrote nothing (a set remove of absent members, a prefix that
 * matched no key): with `?ack`, nothing is left to wait for, so the ack is reached at once with
 * `replicated: 0`.
 */
function nothingWritten(ack: AckOption | undefined, body: Record<string, unknown>): ApiResponse {
  if (ack === undefined) return json(200, body)
  return json(200, {
    ...body,
    ack: { requested: ack.peers, replicated: 0, reached: true, timeoutMs: ack.timeoutMs, written: false },
  })
}

/**
 * The answer to a durable write: 200 at once, or with `?ack=N` once N other peers hold it; 202 with
 * how many did when the timeout (or the client) ends the wait first. The write stands either way.
 */
async function acknowledged(
  context: RouteContext,
  ack: AckOption | undefined,
  write: WriteAck,
  body: Record<string, unknown>,
  options: { etag?: boolean } = {},
): Promise<ApiResponse> {
  // A multi-key operation has no one token to give back.
  const headers: Record<string, string> = options.etag === false ? {} : { etag: `"${write.token}"` }
  if (ack === undefined) return json(200, body, headers)
  const signal = AbortSignal.any([AbortSignal.timeout(ack.timeoutMs), context.request.signal])
  let replicated = 0
  try {
    replicated = await context.app.peer.replicatedTo(
      write.namespace,
      write.replica,
      write.counter,
      ack.peers,
      signal,
    )
  } catch {
    replicated = 0
  }
  const reached = replicated >= ack.peers
  context.app.metrics.ackWait(reached)
  return json(
    reached ? 200 : 202,
    { ...body, ack: { requested: ack.peers, replicated, reached, timeoutMs: ack.timeoutMs } },
    { ...headers, 'x-hearsay-replicated': String(replicated) },
  )
}

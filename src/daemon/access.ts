import { createHash, randomBytes, timingSafeEqual } from 'node:crypto'
import { chmodSync, closeSync, openSync, readFileSync, statSync, writeSync } from 'node:fs'
import { join } from 'node:path'
import { API_TOKEN_FILE } from './constants.ts'
import { ApiError, DaemonStartError } from './errors.ts'

/**
 * Who may use the HTTP API, as Syncthing and Kubo decide it for theirs:
 *
 * - DNS rebinding: on a loopback bind, the Host header must name loopback (`localhost`, `127.x.y.z`,
 *   `[::1]`, with or without a port) or one of `apiAllowedHosts`; a web page whose own name resolves
 *   to 127.0.0.1 sends its own name and is refused.
 * - Cross-site requests (CSRF): a request from a web page of another origin (`Origin` other than the
 *   API's own, `Origin: null`, or `Sec-Fetch-Site: cross-site`/`same-site`) may not change state, nor
 *   read the watch stream or the status. A request that changes state and carries any `Origin` must
 *   also have a non-simple Content-Type (e.g. application/json), which no HTML form can send.
 * - Beyond loopback, every request but /healthz and the dashboard's static files needs
 *   `Authorization: Bearer <token>`, the token of the data dir's `api.token`, compared in constant time.
 *
 * The decision is a pure function of the request's method, route and headers.
 */

export interface AccessPolicy {
  /** Check the Host header (a loopback bind). */
  checkHost: boolean
  /** Host names (without port, lower case) accepted besides loopback. */
  allowedHosts: readonly string[]
  /** The bearer token every request must carry; undefined on a loopback bind. */
  token: string | undefined
}

export interface AccessRequest {
  method: string
  /** The route template (`/v1/ns/:ns/watch`), or `unmatched`. */
  template: string
  headers: Readonly<Record<string, string | string[] | undefined>>
}

/** Routes a cross-origin page may not even read: the live streams, the status, the dashboard. */
const GUARDED_READS = new Set([
  '/v1/ns/:ns/watch',
  '/v1/events',
  '/v1/status',
  '/v1/admin/export',
  '/',
  '/ui/:file',
])

/** Served without the token: the health check, and the dashboard's static files (no data in them). */
const OPEN_ROUTES = new Set(['/healthz', '/', '/ui/:file'])

/** The Content-Types an HTML form (or a "simple" fetch) can send without a CORS preflight. */
const SIMPLE_TYPES = new Set(['', 'application/x-www-form-urlencoded', 'multipart/form-data', 'text/plain'])

/** Undefined when the request may proceed; otherwise the 403 or 401 to answer. */
export function accessProblem(request: AccessRequest, policy: AccessPolicy): ApiError | undefined {
  const host = first(request.headers.host)?.trim().toLowerCase()
  if (policy.checkHost && host !== undefined) {
    const name = hostName(host)
    if (name === undefined || !(isLoopbackName(name) || policy.allowedHosts.includes(name))) {
      return new ApiError(
        403,
        'FORBIDDEN_HOST',
        `Host "${host}" is not a loopback name; use localhost or 127.0.0.1, or add the name to apiAllowedHosts`,
      )
    }
  }
  if (policy.token !== undefined && !OPEN_ROUTES.has(request.template)) {
    const presented = bearer(first(request.headers.authorization))
    if (presented === undefined || !sameToken(presented, policy.token)) {
      return new ApiError(
        401,
        'UNAUTHORIZED',
        presented === undefined
          ? 'this API listens beyond loopback: send Authorization: Bearer <the token in the data dir file api.token>'
          : 'the bearer token is not this daemon’s (see api.token in its data dir)',
        { headers: { 'www-authenticate': 'Bearer realm="hearsay"' } },
      )
    }
  }
  const changesState = request.method !== 'GET' && request.method !== 'HEAD'
  if (!changesState && !GUARDED_READS.has(request.template)) return undefined
  const origin = first(request.headers.origin)
  const site = first(request.headers['sec-fetch-site'])?.toLowerCase()
  const ownOrigin = host === undefined ? undefined : `http://${host}`
  if (
    (origin !== undefined && origin.toLowerCase() !== ownOrigin) ||
    site === 'cross-site' ||
    site === 'same-site'
  ) {
    return new ApiError(
      403,
      'FORBIDDEN_ORIGIN',
      `requests from ${origin === undefined ? 'another site' : `origin ${origin}`} may not ${changesState ? 'change data' : 'read this'} on this API`,
    )
  }
  if (changesState && origin !== undefined) {
    const type = (first(request.headers['content-type']) ?? '').split(';')[0].trim().toLowerCase()
    if (SIMPLE_TYPES.has(type)) {
      return new ApiError(
        403,
        'FORBIDDEN_ORIGIN',
        'a request from a web page that changes data must send a Content-Type a form cannot (e.g. application/json)',
      )
    }
  }
  return undefined
}

/** Whether an API bind address keeps the API on this machine. */
export function isLoopbackBind(address: string): boolean {
  return isLoopbackName(address.toLowerCase().replace(/^\[(.*)\]$/, '$1'))
}

/** The name part of a Host header (`[::1]:7600` → `::1`, `Localhost.:80` → `localhost`). */
export function hostName(host: string): string | undefined {
  let name: string
  if (host.startsWith('[')) {
    const end = host.indexOf(']')
    if (end < 0) return undefined
    const rest = host.slice(end + 1)
    if (rest !== '' && !/^:\d{1,5}$/.test(rest)) return undefined
    name = host.slice(1, end)
  } else {
    const colon = host.indexOf(':')
    if (colon >= 0 && !/^\d{1,5}$/.test(host.slice(colon + 1))) return undefined
    name = colon < 0 ? host : host.slice(0, colon)
  }
  return name.endsWith('.') ? name.slice(0, -1) : name
}

function isLoopbackName(name: string): boolean {
  if (name === 'localhost' || name === '::1' || name === '0:0:0:0:0:0:0:1') return true
  const octets = /^127\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(name)
  return octets?.slice(1).every((octet) => Number(octet) <= 255) === true
}

function first(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value
}

function bearer(authorization: string | undefined): string | undefined {
  const match = authorization === undefined ? null : /^Bearer\s+(\S+)\s*$/i.exec(authorization)
  return match === null ? undefined : match[1]
}

/** Constant time whatever the lengths: both sides are hashed to 32 bytes first. */
function sameToken(presented: string, expected: string): boolean {
  const digest = (text: string) => createHash('sha256').update(text).digest()
  return timingSafeEqual(digest(presented), digest(expected))
}

/**
 * The data dir's API token: read if present, else created (32 random bytes, base64url) with mode
 * 0600, readable by the daemon's user alone. A file readable by others is narrowed to 0600.
 */
export function loadOrCreateApiToken(path: string): string {
  try {
    const fd = openSync(path, 'wx', 0o600)
    try {
      writeSync(fd, `${randomBytes(32).toString('base64url')}\n`)
    } finally {
      closeSync(fd)
    }
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error
  }
  if (process.platform !== 'win32' && (statSync(path).mode & 0o077) !== 0) chmodSync(path, 0o600)
  const token = readFileSync(path, 'utf8').trim()
  if (!/^[A-Za-z0-9._~+/=-]{16,512}$/.test(token)) throw new Error(`${path} does not hold a token`)
  return token
}

/** The token of a data dir for the CLI: undefined when the file is absent or unreadable. */
export function readApiToken(path: string): string | undefined {
  try {
    const token = readFileSync(path, 'utf8').trim()
    return token === '' ? undefined : token
  } catch {
    return undefined
  }
}

export function apiTokenPath(dataDir: string): string {
  return join(dataDir, API_TOKEN_FILE)
}

/**
 * The policy of a daemon's config. The token file is created on every start (so moving the API off
 * loopback later keeps the token clients already have) but required only beyond loopback.
 */
export function apiAccessPolicy(config: {
  apiHost: string
  apiAllowedHosts: readonly string[]
  dataDir: string
}): AccessPolicy {
  const path = apiTokenPath(config.dataDir)
  let token: string
  try {
    token = loadOrCreateApiToken(path)
  } catch (error) {
    throw new DaemonStartError('DATA_DIR', `cannot create or read ${path}: ${(error as Error).message}`, {
      cause: error,
    })
  }
  const loopback = isLoopbackBind(config.apiHost)
  return {
    checkHost: loopback,
    allowedHosts: config.apiAllowedHosts.map((name) => hostName(name.trim().toLowerCase()) ?? name),
    token: loopback ? undefined : token,
  }
}

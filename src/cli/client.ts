import type { IncomingHttpHeaders, IncomingMessage } from 'node:http'
import { apiTokenPath, readApiToken } from '../daemon/access.ts'
import { readLock } from '../daemon/lock.ts'
import { dataDirFiles, type Env, resolveDataDir } from '../daemon/paths.ts'
import { CliError, EXIT } from './exit-codes.ts'

/**
 * How client commands reach the local daemon: the API URL comes from `--api` / `HEARSAY_API`, or from
 * the lock file the running daemon keeps in its data dir. The bearer token (needed when the API
 * listens beyond loopback) comes from `--token` / `HEARSAY_API_TOKEN`, or from the data dir's
 * `api.token` when the URL came from that data dir too (a token is never sent to a URL given by hand
 * unless given by hand as well).
 */

export interface ClientOptions {
  dataDir?: string
  api?: string
  token?: string
  env: Env
}

export interface DaemonTarget {
  url: string
  token?: string
}

export function findDaemon(options: ClientOptions): DaemonTarget {
  const explicitToken = options.env.HEARSAY_API_TOKEN || options.token || undefined
  const explicit = options.env.HEARSAY_API || options.api
  if (explicit) return { url: apiUrl(explicit), token: explicitToken }
  const dataDir = resolveDataDir({ flag: options.dataDir, env: options.env })
  const url = daemonUrl(dataDir)
  return { url, token: explicitToken ?? readApiToken(apiTokenPath(dataDir)) }
}

/**
 * An API address as typed: `localhost:7600`, `127.0.0.1:7600/` and `http://localhost:7600` all mean
 * the same URL. Anything that is not an http(s) URL then is a usage error, not a failed fetch.
 */
export function apiUrl(typed: string): string {
  const withScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(typed) ? typed : `http://${typed}`
  let url: URL
  try {
    url = new URL(withScheme)
  } catch {
    throw new CliError(
      EXIT.USAGE,
      `--api "${typed}" is not an address like localhost:7600 or http://host:7600`,
    )
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:')
    throw new CliError(EXIT.USAGE, `--api "${typed}": only http:// and https:// are supported`)
  return withScheme.replace(/\/+$/, '')
}

function daemonUrl(dataDir: string): string {
  const lock = readLock(dataDirFiles(dataDir).lock)
  switch (lock.state) {
    case 'missing':
      throw new CliError(
        EXIT.NO_DAEMON,
        `no daemon is running for data dir ${dataDir}; start one with \`hearsay up\``,
      )
    case 'unreadable':
      throw new CliError(EXIT.NO_DAEMON, `the daemon for ${dataDir} is starting; try again in a moment`)
    case 'stale':
      throw new CliError(
        EXIT.NO_DAEMON,
        `the daemon for ${dataDir} (pid ${lock.info.pid}) is not running any more; start it with \`hearsay up\``,
      )
    case 'live':
      if (lock.info.url === undefined) {
        throw new CliError(
          EXIT.NO_DAEMON,
          `the daemon for ${dataDir} (pid ${lock.info.pid}) is starting; try again in a moment`,
        )
      }
      return lock.info.url
  }
}

export interface RequestOptions {
  method?: string
  body?: string | Uint8Array
  headers?: Record<string, string>
  signal?: AbortSignal
  /** Statuses to hand back instead of throwing (e.g. 404 for `get`). */
  accept?: number[]
  /**
   * Hand back the body as it arrives (SSE, exports). Otherwise the whole body is read before the
   * response is returned, so the connection goes back to the pool even when nobody reads it.
   */
  stream?: boolean
}

/** Response headers by lower-case name, read like a fetch `Headers`. */
export class ResponseHeaders {
  private readonly raw: IncomingHttpHeaders

  constructor(raw: IncomingHttpHeaders) {
    this.raw = raw
  }

  get(name: string): string | null {
    const value = this.raw[name.toLowerCase()]
    if (value === undefined) return null
    return Array.isArray(value) ? value.join(', ') : value
  }
}

/**
 * A daemon's answer. The client speaks node:http rather than `fetch` because loading fetch (undici)
 * costs a short command like `hearsay get` more than its whole round trip; so the response is this
 * small type, not a fetch `Response`. `body` is the byte stream (live when requested with `stream`);
 * read it once, either through `body` or through `bytes()`/`text()`/`json()`.
 */
export class DaemonResponse {
  readonly status: number
  readonly statusText: string
  readonly headers: ResponseHeaders
  readonly body: AsyncIterable<Uint8Array>
  private readonly buffered: Buffer | undefined

  constructor(message: IncomingMessage, buffered?: Buffer) {
    this.buffered = buffered
    this.status = message.statusCode ?? 0
    this.statusText = message.statusMessage ?? ''
    this.headers = new ResponseHeaders(message.headers)
    this.body = buffered === undefined ? message : singleChunk(buffered)
  }

  get ok(): boolean {
    return this.status >= 200 && this.status < 300
  }

  async bytes(): Promise<Uint8Array> {
    if (this.buffered !== undefined) return this.buffered
    return readAll(this.body)
  }

  async text(): Promise<string> {
    return Buffer.from(await this.bytes()).toString('utf8')
  }

  async json(): Promise<unknown> {
    return JSON.parse(await this.text())
  }
}

/** Whether a read of a response body failed because the connection went away mid-stream. */
export function isConnectionLost(error: unknown): boolean {
  const code = (error as NodeJS.ErrnoException | undefined)?.code
  return code === 'ECONNRESET' || code === 'EPIPE' || (error as Error | undefined)?.message === 'aborted'
}

export class DaemonClient {
  readonly baseUrl: string
  private readonly token: string | undefined

  constructor(target: DaemonTarget | string) {
    this.baseUrl = typeof target === 'string' ? target : target.url
    this.token = typeof target === 'string' ? undefined : target.token
  }

  async request(path: string, options: RequestOptions = {}): Promise<DaemonResponse> {
    let response: DaemonResponse
    try {
      response = await send(new URL(this.baseUrl + path), {
        ...options,
        headers:
          this.token === undefined
            ? options.headers
            : { ...options.headers, authorization: `Bearer ${this.token}` },
      })
    } catch (error) {
      if (options.signal?.aborted === true) throw abortReason(options.signal, error)
      const code = (error as NodeJS.ErrnoException).code
      throw new CliError(
        EXIT.NO_DAEMON,
        `cannot reach the daemon at ${this.baseUrl} (${code ?? (error as Error).message}); is \`hearsay up\` running?`,
      )
    }
    if (response.ok || options.accept?.includes(response.status)) return response
    throw await errorFrom(response)
  }

  async json<T = Record<string, unknown>>(
    path: string,
    options: RequestOptions = {},
  ): Promise<{ status: number; body: T; headers: ResponseHeaders }> {
    const response = await this.request(path, options)
    const text = await response.text()
    return {
      status: response.status,
      headers: response.headers,
      body: (text === '' ? {} : JSON.parse(text)) as T,
    }
  }
}

/** One request over node:http(s); resolves once the status line and headers are in. */
async function send(url: URL, options: RequestOptions): Promise<DaemonResponse> {
  // Not `import`: an ES import of node:http reads all its exports, and its lazy `WebSocket` export
  // loads undici, the very cost this client avoids.
  const transport =
    url.protocol === 'https:' ? process.getBuiltinModule('node:https') : process.getBuiltinModule('node:http')
  const body = options.body === undefined ? undefined : Buffer.from(options.body)
  const headers: Record<string, string> = { ...options.headers }
  if (body !== undefined) headers['content-length'] = String(body.length)
  return new Promise((resolvePromise, reject) => {
    const request = transport.request(
      url,
      { method: options.method ?? 'GET', headers, signal: options.signal },
      (message) => {
        if (options.stream === true) return resolvePromise(new DaemonResponse(message))
        readAll(message).then((buffered) => resolvePromise(new DaemonResponse(message, buffered)), reject)
      },
    )
    request.once('error', reject)
    request.end(body)
  })
}

async function readAll(body: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const chunks: Uint8Array[] = []
  for await (const chunk of body) chunks.push(chunk)
  return Buffer.concat(chunks)
}

async function* singleChunk(bytes: Uint8Array): AsyncGenerator<Uint8Array> {
  if (bytes.length > 0) yield bytes
}

/** What an aborted request rejects with: the signal's reason (a timeout stays a TimeoutError), as fetch does. */
function abortReason(signal: AbortSignal, error: unknown): unknown {
  return signal.reason instanceof Error ? signal.reason : error
}

async function errorFrom(response: DaemonResponse): Promise<CliError> {
  let code = `HTTP_${response.status}`
  let message = response.statusText
  try {
    const body = (await response.json()) as { error?: { code?: string; message?: string } } | null
    if (body?.error?.code !== undefined) code = body.error.code
    if (body?.error?.message !== undefined) message = body.error.message
  } catch {
    // Not our error shape (a proxy?): keep the HTTP status.
  }
  const exitCode =
    response.status === 404 ? EXIT.NOT_FOUND : response.status >= 500 ? EXIT.FAILURE : EXIT.REJECTED
  return new CliError(exitCode, message, code)
}

/** A key as a URL path: `/` stays readable (keys may contain it), everything else is escaped. */
export function keyPath(key: string): string {
  return key.split('/').map(encodeURIComponent).join('/')
}

export function nsPath(ns: string): string {
  return `/v1/ns/${encodeURIComponent(ns)}`
}

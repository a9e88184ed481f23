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
}

export class DaemonClient {
  readonly baseUrl: string
  private readonly token: string | undefined

  constructor(target: DaemonTarget | string) {
    this.baseUrl = typeof target === 'string' ? target : target.url
    this.token = typeof target === 'string' ? undefined : target.token
  }

  async request(path: string, options: RequestOptions = {}): Promise<Response> {
    let response: Response
    try {
      response = await fetch(this.baseUrl + path, {
        method: options.method ?? 'GET',
        headers:
          this.token === undefined
            ? options.headers
            : { ...options.headers, authorization: `Bearer ${this.token}` },
        body: options.body,
        signal: options.signal,
      })
    } catch (error) {
      if ((error as Error).name === 'AbortError') throw error
      const cause = (error as { cause?: { code?: string; message?: string } }).cause
      throw new CliError(
        EXIT.NO_DAEMON,
        `cannot reach the daemon at ${this.baseUrl} (${cause?.code ?? cause?.message ?? (error as Error).message}); is \`hearsay up\` running?`,
      )
    }
    if (response.ok || options.accept?.includes(response.status)) return response
    throw await errorFrom(response)
  }

  async json<T = Record<string, unknown>>(
    path: string,
    options: RequestOptions = {},
  ): Promise<{ status: number; body: T; headers: Headers }> {
    const response = await this.request(path, options)
    const text = await response.text()
    return {
      status: response.status,
      headers: response.headers,
      body: (text === '' ? {} : JSON.parse(text)) as T,
    }
  }
}

async function errorFrom(response: Response): Promise<CliError> {
  let code = `HTTP_${response.status}`
  let message = response.statusText
  try {
    const body = (await response.json()) as { error?: { code?: string; message?: string } }
    if (body.error?.code !== undefined) code = body.error.code
    if (body.error?.message !== undefined) message = body.error.message
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

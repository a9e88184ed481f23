import { ApiError } from './errors.ts'

/**
 * The HTTP app's view of a request and a response: plain values, so the app runs without a socket
 * in unit tests (see `inject`) and one small adapter (server.ts) binds it to node:http. Deliberately
 * not the Fetch API's Request/Response: building those per request costs more than a local GET does.
 */

export interface ApiRequest {
  readonly method: string
  /** Path and query string, as sent. */
  readonly url: string
  /** Header names in lower case, as node:http gives them. */
  readonly headers: Readonly<Record<string, string | string[] | undefined>>
  /** Reads the whole body; rejects with a 413 ApiError of `code` beyond `limit` bytes. */
  body(limit: number, code: 'PAYLOAD_TOO_LARGE' | 'VALUE_TOO_LARGE'): Promise<Uint8Array>
  /** Aborts when the client goes away (for long waits and watch streams). */
  readonly signal: AbortSignal
}

export interface ApiResponse {
  status: number
  headers: Record<string, string>
  /** A stream (watch) is an async iterable of text chunks; it ends when the iterator does. */
  body?: string | Uint8Array | AsyncIterable<string>
}

/** A 200 answer streaming server-sent events (watch, mesh events); proxies must not buffer it. */
export function eventStream(body: AsyncIterable<string>): ApiResponse {
  return {
    status: 200,
    headers: {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache, no-transform',
      'x-accel-buffering': 'no',
    },
    body,
  }
}

export interface InjectOptions {
  method?: string
  url: string
  headers?: Record<string, string>
  body?: string | Uint8Array
  signal?: AbortSignal
}

/** A request made of plain values, for tests of the app without a socket. */
export function injectRequest(options: InjectOptions): ApiRequest {
  const headers: Record<string, string> = {}
  for (const [name, value] of Object.entries(options.headers ?? {})) headers[name.toLowerCase()] = value
  const bytes =
    typeof options.body === 'string'
      ? new TextEncoder().encode(options.body)
      : (options.body ?? new Uint8Array(0))
  if (options.body !== undefined) headers['content-length'] ??= String(bytes.length)
  return {
    method: options.method ?? 'GET',
    url: options.url,
    headers,
    signal: options.signal ?? new AbortController().signal,
    async body(limit, code) {
      if (bytes.length > limit) throw tooLarge(bytes.length, limit, code)
      return bytes
    },
  }
}

export function tooLarge(
  size: number,
  limit: number,
  code: 'PAYLOAD_TOO_LARGE' | 'VALUE_TOO_LARGE',
): ApiError {
  const what = code === 'VALUE_TOO_LARGE' ? 'value' : 'request body'
  return new ApiError(
    413,
    code,
    `${what} is ${size > limit ? `${size} bytes` : 'too large'}, the limit is ${limit} bytes`,
    {
      // The rest of an oversized upload is not worth reading: close the connection after the answer.
      headers: { connection: 'close' },
    },
  )
}

/** The first value of a header. */
export function header(request: ApiRequest, name: string): string | undefined {
  const value = request.headers[name]
  return Array.isArray(value) ? value[0] : value
}

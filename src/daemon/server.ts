import type { IncomingMessage, Server, ServerResponse } from 'node:http'
import type { AddressInfo, Socket } from 'node:net'
import type { Logger } from 'pino'
import type { App } from './app.ts'
import {
  BODY_IDLE_TIMEOUT_MS,
  BODY_LINGER_MS,
  DEFAULT_API_MAX_CONNECTIONS,
  HEADERS_TIMEOUT_MS,
  KEEP_ALIVE_TIMEOUT_MS,
  MAX_BUFFERED_BODY_BYTES,
  REQUEST_TIMEOUT_MS,
  STREAM_STALL_TIMEOUT_MS,
} from './constants.ts'
import { ApiError, DaemonStartError } from './errors.ts'
import { type ApiRequest, type ApiResponse, tooLarge } from './http.ts'

// Taken with getBuiltinModule, not imported: an ES import of node:http reads every export, and its
// WebSocket, MessageEvent and CloseEvent getters load Node's fetch client (undici, with node:tls,
// node:http2 and node:zlib): ~10 MiB of resident memory that a daemon never uses.
const { createServer } = process.getBuiltinModule('node:http')

/** Binds the HTTP app to a node:http server: the only place that touches sockets. */

export interface HttpServer {
  readonly url: string
  readonly port: number
  /**
   * Stops accepting, lets in-flight requests finish for up to `graceMs`, then closes what is left
   * (watch streams included).
   */
  close(graceMs: number): Promise<void>
}

export async function listenHttp(
  app: App,
  options: {
    host: string
    port: number
    logger: Logger
    /** Connections served at once; a new one beyond it is closed at once. */
    maxConnections?: number
    /** A request body idle this long is abandoned with 408. */
    bodyIdleTimeoutMs?: number
    /** Request body bytes buffered across all requests at once; beyond it, 503 SERVER_BUSY. */
    bodyBudgetBytes?: number
  },
): Promise<HttpServer> {
  let closing = false
  const bodyIdleTimeoutMs = options.bodyIdleTimeoutMs ?? BODY_IDLE_TIMEOUT_MS
  const budget: BodyBudget = { free: options.bodyBudgetBytes ?? MAX_BUFFERED_BODY_BYTES }
  const server = createServer(
    {
      keepAliveTimeout: KEEP_ALIVE_TIMEOUT_MS,
      // Slow or stalled requests cannot hold a connection for node's default 300 s.
      headersTimeout: HEADERS_TIMEOUT_MS,
      requestTimeout: REQUEST_TIMEOUT_MS,
      // How often node checks those two timeouts (default 30 s).
      connectionsCheckingInterval: 1_000,
    },
    (req, res) => onRequest(req, res),
  )
  // Over the cap node closes a new connection as soon as it is accepted; the others keep working.
  server.maxConnections = options.maxConnections ?? DEFAULT_API_MAX_CONNECTIONS
  // One warning per 10 s at most, with how many were refused: a flood must not flood the log too.
  let dropped = 0
  let lastDropLog = 0
  server.on('drop', () => {
    dropped++
    const now = Date.now()
    if (now - lastDropLog < 10_000) return
    lastDropLog = now
    options.logger.warn(
      { maxConnections: server.maxConnections, refused: dropped },
      'API connections refused: at the connection cap',
    )
    dropped = 0
  })
  const onRequest = (req: IncomingMessage, res: ServerResponse) => {
    const request = new NodeRequest(req, res, bodyIdleTimeoutMs, budget)
    app.handle(request).then(
      (response) => {
        // Once closing, a connection ends with the answer in flight rather than idling until its timeout.
        if (closing) res.shouldKeepAlive = false
        try {
          send(req, res, request, response, options.logger)
        } catch (error) {
          // A header node refuses (a bug: routes send safe headers): the client still gets an answer.
          options.logger.error({ err: error, url: req.url }, 'response could not be sent')
          if (res.headersSent) res.destroy()
          else {
            res.writeHead(500, { 'content-type': 'application/json', connection: 'close' })
            res.end('{"error":{"code":"INTERNAL","message":"internal error"}}')
          }
        }
      },
      (error) => {
        // handle() answers every error itself; reaching this is a bug, but the client still gets a reply.
        options.logger.error({ err: error }, 'unhandled request failure')
        if (!res.headersSent) res.writeHead(500, { 'content-type': 'application/json' })
        res.end('{"error":{"code":"INTERNAL","message":"internal error"}}')
      },
    )
  }
  server.on('clientError', (error, socket) => {
    // Malformed HTTP: answer 400 if the socket still takes it, as node's default handler would.
    if (socket.writable && !(error as NodeJS.ErrnoException).code?.startsWith('ECONN')) {
      socket.end('HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\n\r\n')
    } else {
      socket.destroy()
    }
  })

  await new Promise<void>((resolve, reject) => {
    const onError = (error: NodeJS.ErrnoException) => {
      server.off('listening', onListening)
      const where = `${options.host}:${options.port}`
      if (error.code === 'EADDRINUSE') {
        reject(
          new DaemonStartError(
            'PORT_IN_USE',
            `API port ${where} is in use (another hearsay daemon? try \`hearsay status\`); ` +
              'choose another with --api-port or HEARSAY_API_PORT, or 0 for any free port',
            { cause: error },
          ),
        )
      } else {
        reject(
          new DaemonStartError('LISTEN_FAILED', `cannot listen on ${where}: ${error.message}`, {
            cause: error,
          }),
        )
      }
    }
    const onListening = () => {
      server.off('error', onError)
      resolve()
    }
    server.once('error', onError)
    server.once('listening', onListening)
    server.listen(options.port, options.host)
  })

  const port = (server.address() as AddressInfo).port
  const host = options.host.includes(':') ? `[${options.host}]` : options.host
  return {
    url: `http://${host}:${port}`,
    port,
    close: (graceMs) => {
      closing = true
      return closeServer(server, graceMs)
    },
  }
}

function closeServer(server: Server, graceMs: number): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => server.closeAllConnections(), graceMs)
    timer.unref()
    server.close(() => {
      clearTimeout(timer)
      resolve()
    })
    server.closeIdleConnections()
  })
}

/** What is left of the bytes all request bodies together may hold in memory. */
interface BodyBudget {
  free: number
}

class NodeRequest implements ApiRequest {
  readonly method: string
  readonly url: string
  readonly headers: IncomingMessage['headers']
  bodyRead = false
  private readonly req: IncomingMessage
  private readonly res: ServerResponse
  private controller: AbortController | undefined
  readonly idleTimeoutMs: number
  private readonly budget: BodyBudget
  /** Bytes of the budget this request holds, given back when its response is done. */
  private held = 0

  constructor(req: IncomingMessage, res: ServerResponse, idleTimeoutMs: number, budget: BodyBudget) {
    this.req = req
    this.res = res
    this.idleTimeoutMs = idleTimeoutMs
    this.budget = budget
    this.method = req.method ?? 'GET'
    this.url = req.url ?? '/'
    this.headers = req.headers
  }

  /** Created on first use: most requests never wait on anything. */
  get signal(): AbortSignal {
    if (this.controller === undefined) {
      const controller = new AbortController()
      this.controller = controller
      this.res.once('close', () => {
        if (!this.res.writableFinished) controller.abort(new Error('client went away'))
      })
    }
    return this.controller.signal
  }

  private hold(bytes: number): void {
    if (this.held === 0) this.res.once('close', () => this.release())
    this.held += bytes
    this.budget.free -= bytes
  }

  private release(): void {
    this.budget.free += this.held
    this.held = 0
  }

  body(limit: number, code: 'PAYLOAD_TOO_LARGE' | 'VALUE_TOO_LARGE'): Promise<Uint8Array> {
    this.bodyRead = true
    const declared = Number(this.req.headers['content-length'])
    if (declared > limit) return Promise.reject(tooLarge(declared, limit, code))
    return new Promise((resolve, reject) => {
      const chunks: Buffer[] = []
      let size = 0
      let failed = false
      const fail = (error: Error) => {
        if (failed) return
        failed = true
        clearTimeout(idle)
        chunks.length = 0
        this.release()
        reject(error)
      }
      // A body abandoned mid-way is not kept: the answer says why, then the connection closes.
      const abandon = (error: ApiError) => {
        fail(error)
        lingerOnClose(this.req.socket)
      }
      const onIdle = () =>
        abandon(
          new ApiError(
            408,
            'REQUEST_TIMEOUT',
            `the request body sent nothing for ${this.idleTimeoutMs} ms; send it without pausing`,
            { headers: { connection: 'close' } },
          ),
        )
      const idle = setTimeout(onIdle, this.idleTimeoutMs)
      idle.unref()
      this.req.on('data', (chunk: Buffer) => {
        if (failed) return
        idle.refresh()
        size += chunk.length
        if (size > limit) {
          fail(tooLarge(size, limit, code))
          return
        }
        if (chunk.length > this.budget.free) {
          abandon(
            new ApiError(503, 'SERVER_BUSY', 'too many request bodies are arriving at once; retry shortly', {
              headers: { connection: 'close', 'retry-after': '1' },
            }),
          )
          return
        }
        this.hold(chunk.length)
        chunks.push(chunk)
      })
      this.req.once('end', () => {
        clearTimeout(idle)
        if (!failed) resolve(chunks.length === 1 ? chunks[0] : Buffer.concat(chunks, size))
      })
      this.req.once('error', (error) => fail(error))
      this.req.once('close', () => {
        if (!this.req.complete) fail(new Error('the client closed the request before its body ended'))
      })
    })
  }
}

/**
 * A connection whose request body is still arriving is closed without losing the answer: closing a
 * socket with unread bytes makes the kernel send a reset, and a reset can discard the answer before
 * the client reads it. node:http ends a `connection: close` answer with `destroySoon()`; on this
 * socket that instead sends our end (FIN), keeps reading and dropping what still arrives, and closes
 * for good when the client ends too or after BODY_LINGER_MS.
 */
function lingerOnClose(socket: Socket): void {
  socket.destroySoon = () => {
    if (socket.destroyed) return
    const timer = setTimeout(() => socket.destroy(), BODY_LINGER_MS)
    timer.unref()
    socket.once('close', () => clearTimeout(timer))
    socket.once('end', () => socket.destroy())
    socket.on('data', () => {})
    socket.resume()
    socket.end()
  }
}

function send(
  req: IncomingMessage,
  res: ServerResponse,
  request: NodeRequest,
  response: ApiResponse,
  logger: Logger,
): void {
  if (res.destroyed) return
  const body = response.body
  if (body === undefined || typeof body === 'string' || body instanceof Uint8Array) {
    const headers: Record<string, string | number> = response.headers
    if (response.status !== 304) {
      headers['content-length'] =
        body === undefined ? 0 : typeof body === 'string' ? Buffer.byteLength(body) : body.length
    }
    res.writeHead(response.status, headers)
    res.end(body)
  } else {
    res.writeHead(response.status, response.headers)
    res.flushHeaders()
    void pipeStream(res, body, logger)
  }
  // A body nobody read (an error before the handler got to it) is drained so keep-alive still works,
  // unless it stalls: then the connection is closed.
  if (!request.bodyRead && !req.complete) {
    const idle = setTimeout(() => req.destroy(), request.idleTimeoutMs)
    idle.unref()
    req.on('data', () => idle.refresh())
    req.once('close', () => clearTimeout(idle))
    req.resume()
  }
}

async function pipeStream(res: ServerResponse, body: AsyncIterable<string>, logger: Logger): Promise<void> {
  const iterator = body[Symbol.asyncIterator]()
  const stop = () => void iterator.return?.()
  res.once('close', stop)
  try {
    for (;;) {
      const { value, done } = await iterator.next()
      if (done || res.destroyed) break
      if (!res.write(value)) {
        await new Promise<void>((resolve) => {
          // A client that reads nothing for this long holds a chunk (up to watchQueueBytes) for
          // nothing: close it, it resumes from its last event id.
          const stuck = setTimeout(() => res.destroy(), STREAM_STALL_TIMEOUT_MS)
          const resume = () => {
            clearTimeout(stuck)
            res.off('drain', resume)
            res.off('close', resume)
            resolve()
          }
          res.on('drain', resume)
          res.on('close', resume)
        })
      }
    }
  } catch (error) {
    logger.warn({ err: error }, 'stream failed')
  } finally {
    res.off('close', stop)
    await iterator.return?.()
    if (!res.destroyed) res.end()
  }
}

import { Agent, type ClientRequest, request } from 'node:http'
import type { Socket } from 'node:net'

/**
 * One HTTP client of the lab: keep-alive requests and SSE watch streams to one daemon, with the bytes
 * of its own sockets counted (the figures of an `http-hub` client) and every request bounded in time.
 */

export interface HttpAnswer {
  status: number
  body: string
}

export interface WatchHandlers {
  onEvent(event: string, data: string, id: string | undefined): void
  onClose(reason: string): void
}

export interface WatchStream {
  close(): void
}

export class LabHttpClient {
  private readonly agent = new Agent({ keepAlive: true, maxSockets: 64 })
  private readonly sockets = new Set<Socket>()
  private readonly open = new Set<ClientRequest>()
  requests = 0
  events = 0
  baseUrl: string
  private headers: Record<string, string> = {}

  constructor(baseUrl: string) {
    this.baseUrl = baseUrl
  }

  /** The daemon's API token, for an API reached beyond loopback (it is created at the daemon's first start). */
  setToken(token: string): void {
    this.headers = { authorization: `Bearer ${token}` }
  }

  private baseline = { sent: 0, received: 0 }

  /** From now on, count from here (the write phase, not the set-up). */
  markBaseline(): void {
    this.baseline = { sent: 0, received: 0 }
    this.baseline = this.bytes()
  }

  /** Bytes written and read on this client's sockets since the baseline (HTTP headers and bodies, the SSE stream). */
  bytes(): { sent: number; received: number } {
    let sent = 0
    let received = 0
    for (const socket of this.sockets) {
      sent += socket.bytesWritten
      received += socket.bytesRead
    }
    return { sent: sent - this.baseline.sent, received: received - this.baseline.received }
  }

  private track(req: ClientRequest): void {
    this.open.add(req)
    req.once('socket', (socket) => this.sockets.add(socket))
    req.once('close', () => this.open.delete(req))
  }

  send(method: string, path: string, body?: string, timeoutMs = 5000): Promise<HttpAnswer> {
    this.requests++
    return new Promise((resolve, reject) => {
      const url = new URL(path, this.baseUrl)
      const req = request(url, {
        method,
        agent: this.agent,
        headers: {
          ...this.headers,
          ...(body === undefined
            ? {}
            : { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) }),
        },
        timeout: timeoutMs,
      })
      this.track(req)
      req.once('timeout', () => req.destroy(new Error(`${method} ${path}: no answer within ${timeoutMs} ms`)))
      req.once('error', reject)
      req.once('response', (response) => {
        let text = ''
        response.setEncoding('utf8')
        response.on('data', (chunk: string) => {
          if (text.length < 1_000_000) text += chunk
        })
        response.once('end', () => resolve({ status: response.statusCode ?? 0, body: text }))
        response.once('error', reject)
      })
      req.end(body)
    })
  }

  /** Opens an SSE stream; `onClose` is called once, however it ends. */
  watch(path: string, handlers: WatchHandlers, connectTimeoutMs = 5000): WatchStream {
    const url = new URL(path, this.baseUrl)
    let closed = false
    const finish = (reason: string) => {
      if (closed) return
      closed = true
      clearTimeout(connectTimer)
      handlers.onClose(reason)
    }
    const req = request(url, {
      method: 'GET',
      agent: this.agent,
      headers: { ...this.headers, accept: 'text/event-stream' },
    })
    this.track(req)
    const connectTimer = setTimeout(
      () => req.destroy(new Error('watch not answered in time')),
      connectTimeoutMs,
    )
    req.once('error', (error) => finish(error.message))
    req.once('close', () => finish('closed'))
    req.once('response', (response) => {
      clearTimeout(connectTimer)
      if (response.statusCode !== 200) {
        response.resume()
        req.destroy()
        finish(`status ${response.statusCode}`)
        return
      }
      let buffer = ''
      response.setEncoding('utf8')
      response.on('data', (chunk: string) => {
        buffer += chunk
        let end = buffer.indexOf('\n\n')
        while (end >= 0) {
          const block = buffer.slice(0, end)
          buffer = buffer.slice(end + 2)
          end = buffer.indexOf('\n\n')
          let event = 'message'
          let data = ''
          let id: string | undefined
          for (const line of block.split('\n')) {
            if (line.startsWith('event:')) event = line.slice(6).trim()
            else if (line.startsWith('data:')) data += line.slice(5).trimStart()
            else if (line.startsWith('id:')) id = line.slice(3).trim()
          }
          if (data === '' && id === undefined) continue
          this.events++
          handlers.onEvent(event, data, id)
        }
      })
      response.once('end', () => finish('ended'))
      response.once('error', (error) => finish(error.message))
    })
    req.end()
    return {
      close: () => {
        req.destroy()
        finish('closed by the lab')
      },
    }
  }

  close(): void {
    for (const req of this.open) req.destroy()
    this.agent.destroy()
  }
}

import { execFile } from 'node:child_process'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { promisify } from 'node:util'
import { afterEach, describe, expect, it } from 'vitest'
import { DaemonClient } from '../src/cli/client.ts'
import { CliError, EXIT } from '../src/cli/exit-codes.ts'

/** The CLI's HTTP client against real loopback servers that answer the way a daemon (or a proxy) may. */

const servers: Server[] = []

afterEach(async () => {
  for (const server of servers.splice(0)) {
    server.closeAllConnections()
    await new Promise((resolve) => server.close(resolve))
  }
})

async function serve(handler: (request: IncomingMessage, response: ServerResponse) => void): Promise<string> {
  const server = createServer(handler)
  servers.push(server)
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`
}

/** A loopback port nobody listens on: bound, then released. */
async function closedPort(): Promise<number> {
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  await new Promise((resolve) => server.close(resolve))
  return port
}

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise
  } catch (error) {
    return error
  }
  throw new Error('expected a rejection')
}

describe('DaemonClient', () => {
  it('says the daemon cannot be reached, with the errno code, when nothing listens', async () => {
    const url = `http://127.0.0.1:${await closedPort()}`
    const error = await rejection(new DaemonClient(url).request('/v1/status'))
    expect(error).toBeInstanceOf(CliError)
    expect((error as CliError).exitCode).toBe(EXIT.NO_DAEMON)
    expect((error as CliError).message).toBe(
      `cannot reach the daemon at ${url} (ECONNREFUSED); is \`hearsay up\` running?`,
    )
  })

  it('turns the daemon error shape into a CliError with its code and message', async () => {
    const url = await serve((_request, response) => {
      response.writeHead(409, { 'content-type': 'application/json' })
      response.end(JSON.stringify({ error: { code: 'PRECONDITION_FAILED', message: 'etag moved' } }))
    })
    const error = (await rejection(new DaemonClient(url).request('/v1/ns/a/kv/k'))) as CliError
    expect(error).toBeInstanceOf(CliError)
    expect(error.exitCode).toBe(EXIT.REJECTED)
    expect(error.code).toBe('PRECONDITION_FAILED')
    expect(error.message).toBe('etag moved')
  })

  it('keeps the HTTP status when an error body is not JSON (a proxy page)', async () => {
    const url = await serve((_request, response) => {
      response.writeHead(502, 'Bad Gateway', { 'content-type': 'text/html' })
      response.end('<html><body>upstream down</body></html>')
    })
    const error = (await rejection(new DaemonClient(url).request('/v1/status'))) as CliError
    expect(error).toBeInstanceOf(CliError)
    expect(error.exitCode).toBe(EXIT.FAILURE)
    expect(error.code).toBe('HTTP_502')
    expect(error.message).toBe('Bad Gateway')
  })

  it('maps a 404 to NOT_FOUND, or hands it back when accepted', async () => {
    const url = await serve((_request, response) => {
      response.writeHead(404, { 'content-type': 'application/json' })
      response.end('null')
    })
    const client = new DaemonClient(url)
    const error = (await rejection(client.request('/v1/ns/a/kv/missing'))) as CliError
    expect(error.exitCode).toBe(EXIT.NOT_FOUND)
    expect(error.code).toBe('HTTP_404')
    const accepted = await client.request('/v1/ns/a/kv/missing', { accept: [404] })
    expect(accepted.status).toBe(404)
    expect(accepted.ok).toBe(false)
    expect(await accepted.text()).toBe('null')
  })

  it('sends method, body with its length, headers and the bearer token; reads headers and bytes', async () => {
    const seen: Array<{ method?: string; headers: IncomingMessage['headers']; body: string }> = []
    const url = await serve((request, response) => {
      const chunks: Buffer[] = []
      request.on('data', (chunk: Buffer) => chunks.push(chunk))
      request.on('end', () => {
        seen.push({
          method: request.method,
          headers: request.headers,
          body: Buffer.concat(chunks).toString(),
        })
        response.writeHead(200, { 'content-type': 'text/plain', etag: '"e1"', 'x-hearsay-siblings': '2' })
        response.end('héllo')
      })
    })
    const client = new DaemonClient({ url, token: 'secret-token' })
    const response = await client.request('/v1/ns/a/kv/k', {
      method: 'PUT',
      body: 'wörld',
      headers: { 'content-type': 'text/plain', 'if-match': '"e0"' },
    })
    expect(response.status).toBe(200)
    expect(response.headers.get('Content-Type')).toBe('text/plain')
    expect(response.headers.get('etag')).toBe('"e1"')
    expect(response.headers.get('x-hearsay-siblings')).toBe('2')
    expect(response.headers.get('absent')).toBeNull()
    expect(Buffer.from(await response.bytes()).toString()).toBe('héllo')
    expect(seen).toHaveLength(1)
    expect(seen[0]?.method).toBe('PUT')
    expect(seen[0]?.body).toBe('wörld')
    expect(seen[0]?.headers['content-length']).toBe(String(Buffer.byteLength('wörld')))
    expect(seen[0]?.headers.authorization).toBe('Bearer secret-token')
    expect(seen[0]?.headers['if-match']).toBe('"e0"')
  })

  it('rejects with the abort reason, not a CliError, when the signal aborts before the answer', async () => {
    const url = await serve(() => {
      // Never answers: only the signal ends the request.
    })
    const controller = new AbortController()
    const pending = new DaemonClient(url).request('/v1/status', { signal: controller.signal })
    controller.abort()
    const error = (await rejection(pending)) as Error
    expect(error).not.toBeInstanceOf(CliError)
    expect(error.name).toBe('AbortError')

    const timedOut = (await rejection(
      new DaemonClient(url).request('/healthz', { signal: AbortSignal.timeout(50) }),
    )) as Error
    expect(timedOut.name).toBe('TimeoutError')
  })

  it('streams a body as it arrives and stops when the signal aborts mid-stream', async () => {
    const url = await serve((_request, response) => {
      response.writeHead(200, { 'content-type': 'text/event-stream' })
      response.write('event: ready\ndata: {}\n\n')
      // Keeps the stream open, as a watch does.
    })
    const controller = new AbortController()
    const response = await new DaemonClient(url).request('/v1/events', {
      signal: controller.signal,
      stream: true,
    })
    const received: string[] = []
    const error = await rejection(
      (async () => {
        for await (const chunk of response.body) {
          received.push(Buffer.from(chunk).toString())
          controller.abort()
        }
      })(),
    )
    expect(received).toEqual(['event: ready\ndata: {}\n\n'])
    expect(controller.signal.aborted).toBe(true)
    expect(error).not.toBeInstanceOf(CliError)
  })

  it('does not load fetch (undici) for a request', async () => {
    const url = await serve((_request, response) => {
      response.writeHead(200, { 'content-type': 'application/json' })
      response.end('{"ok":true}')
    })
    const script = `
      const { DaemonClient } = await import(${JSON.stringify(new URL('../src/cli/client.ts', import.meta.url).href)})
      const { body } = await new DaemonClient(${JSON.stringify(url)}).json('/healthz')
      console.log(JSON.stringify({ body, undici: process.moduleLoadList.some((name) => name.includes('undici')) }))
    `
    const { stdout } = await promisify(execFile)(process.execPath, ['--input-type=module', '-e', script], {
      timeout: 30_000,
    })
    expect(JSON.parse(stdout)).toEqual({ body: { ok: true }, undici: false })
  })
})

/**
 * The baseline of the e2e benchmark: the least a client-server relay does on node:http. A PUT of
 * /v1/ns/default/kv/<key> answers 200 and writes one SSE `change` event to every subscriber of
 * GET /v1/ns/default/watch. No storage, no CRDT, no authentication: the floor under any relay.
 * Run as its own process; prints its port on stdout.
 */
import { createServer, type ServerResponse } from 'node:http'

const PUT_PREFIX = '/v1/ns/default/kv/'
const WATCH_PATH = '/v1/ns/default/watch'
/** Bodies are ~68 bytes; anything this large is not the benchmark's. */
const MAX_BODY_BYTES = 64 * 1024

const subscribers = new Set<ServerResponse>()
let counter = 0

const server = createServer((request, response) => {
  const url = request.url ?? ''
  if (request.method === 'GET' && url.startsWith(WATCH_PATH)) {
    response.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store' })
    response.write('event: ready\ndata: {"namespace":"default"}\n\n')
    subscribers.add(response)
    request.once('close', () => subscribers.delete(response))
    return
  }
  if (request.method === 'PUT' && url.startsWith(PUT_PREFIX)) {
    const key = decodeURIComponent(url.slice(PUT_PREFIX.length))
    const chunks: Buffer[] = []
    let size = 0
    request.on('data', (chunk: Buffer) => {
      size += chunk.length
      if (size <= MAX_BODY_BYTES) chunks.push(chunk)
    })
    request.once('end', () => {
      if (size > MAX_BODY_BYTES) {
        response.writeHead(413).end()
        return
      }
      counter++
      const value = Buffer.concat(chunks).toString('utf8')
      const event = `event: change\ndata: {"namespace":"default","type":"register","key":${JSON.stringify(key)},"op":"put","value":${value},"counter":${counter}}\n\n`
      for (const subscriber of subscribers) subscriber.write(event)
      response.writeHead(200, { 'content-type': 'application/json' })
      response.end(`{"namespace":"default","key":${JSON.stringify(key)},"counter":${counter}}`)
    })
    return
  }
  response.writeHead(404).end()
})

server.keepAliveTimeout = 60_000
server.listen(0, '127.0.0.1', () => {
  const address = server.address()
  console.log(typeof address === 'object' && address !== null ? address.port : 0)
})

/**
 * The local HTTP API trusts nothing, against real daemon processes over real sockets: no value
 * (from a client or from a peer) breaks a route or the watch stream, no web page reaches the API
 * (DNS rebinding, cross-site requests), a token guards an API beyond loopback, and slow or stalled
 * clients cannot exhaust the daemon (watch queues bounded by bytes, stalled bodies timed out,
 * connections capped).
 */
import { randomBytes } from 'node:crypto'
import { readFileSync, statSync } from 'node:fs'
import { request as httpRequest } from 'node:http'
import { connect, type Socket } from 'node:net'
import { join } from 'node:path'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { afterAll, afterEach, describe, expect, it } from 'vitest'
import { CrdtDocument } from '../src/crdt/document.ts'
import { createEntrySigner, signEntry } from '../src/replica/signing.ts'
import {
  api,
  collectEvents,
  removeHomes,
  runCli,
  sharedSwarmKeyFile,
  startDaemon,
  stopAllDaemons,
  until,
} from './helpers/daemon.ts'
import { startTestPeer, type TestPeer } from './helpers/mesh-peers.ts'

/** In-process peers join the test daemons' private mesh. */
const meshKey = () => readFileSync(sharedSwarmKeyFile())

const peers: TestPeer[] = []
afterEach(async () => {
  for (const peer of peers.splice(0)) await peer.stop()
  await stopAllDaemons()
})
afterAll(() => removeHomes())

interface RawResponse {
  status: number
  headers: Record<string, string | string[] | undefined>
  text: string
  // biome-ignore lint/suspicious/noExplicitAny: inspected field by field
  json: any
}

/** A request with headers fetch will not let us set (Host), on a fresh connection. */
function raw(
  base: string,
  path: string,
  init: { method?: string; headers?: Record<string, string>; body?: string } = {},
): Promise<RawResponse> {
  const url = new URL(base)
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      {
        host: url.hostname,
        port: url.port,
        path,
        method: init.method ?? 'GET',
        headers: init.headers,
        agent: false,
        timeout: 10_000,
      },
      (res) => {
        let text = ''
        res.setEncoding('utf8')
        res.on('data', (chunk: string) => {
          text += chunk
          // A stream that was let in: enough to know it was.
          if (res.headers['content-type']?.includes('event-stream')) res.destroy()
        })
        const done = () => {
          let json: unknown
          try {
            json = JSON.parse(text)
          } catch {
            json = undefined
          }
          resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json })
        }
        res.once('end', done)
        res.once('close', done)
      },
    )
    req.once('timeout', () => req.destroy(new Error(`${path} timed out`)))
    req.once('error', reject)
    req.end(init.body)
  })
}

async function rssOf(url: string): Promise<number> {
  return (await api(url, '/v1/status')).json.process.rssBytes as number
}

const MiB = 1024 * 1024
const deepArray = (depth: number) => `${'['.repeat(depth)}${']'.repeat(depth)}`

describe('values the API cannot be broken by', () => {
  it('refuses a JSON value nested beyond the limit with a 400 naming it, and keeps serving', async () => {
    const daemon = await startDaemon()
    const res = await api(daemon.url, '/v1/ns/default/kv/deep', {
      method: 'PUT',
      headers: { 'content-type': 'application/json' },
      body: deepArray(30_000),
    })
    expect(res.status).toBe(400)
    expect(res.json.error.code).toBe('JSON_TOO_DEEP')
    expect(res.json.error.message).toContain('128')
    expect((await api(daemon.url, '/v1/ns/default/kv/deep')).status).toBe(404)
    // At the limit the value is taken and embedded as JSON.
    const ok = await api(daemon.url, '/v1/ns/default/kv/deep', {
      method: 'PUT',
      headers: { 'content-type': 'application/json' },
      body: deepArray(128),
    })
    expect(ok.status).toBe(200)
    const siblings = await api(daemon.url, '/v1/ns/default/kv/deep?siblings=1')
    expect(siblings.json.siblings[0].encoding).toBe('json')
    expect(JSON.stringify(siblings.json.siblings[0].value)).toBe(deepArray(128))
  })

  it('a deep JSON value from a peer reaches watchers as text, and every route still answers, also after a restart', async () => {
    let daemon = await startDaemon()
    const peer = await startTestPeer({ namespaces: ['default'], swarmKey: meshKey() })
    peers.push(peer)
    const before = await collectEvents(`${daemon.url}/v1/ns/default/watch`, {
      stop: (events) => events.some((e) => e.event === 'ready'),
    })
    const since = before.find((e) => e.event === 'ready')!.id!
    const dial = await api(daemon.url, '/v1/peers', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ address: peer.address }),
    })
    expect(dial.status).toBe(200)

    const deep = deepArray(30_000)
    const pretty = '{\n  "a": [1,\r\n 2]\n}'
    const events = await collectEvents(`${daemon.url}/v1/ns/default/watch`, {
      onOpen: async () => {
        // Written below the HTTP layer, as any peer may: values are opaque bytes to peers.
        const replica = peer.peer.namespace('default')
        await replica.put('deep', new TextEncoder().encode(deep), 'application/json')
        await replica.put('pretty', new TextEncoder().encode(pretty), 'application/json')
        await replica.put('bad', new Uint8Array([0xff, 0xfe]), 'application/json')
      },
      stop: (events) => events.filter((e) => e.event === 'change').length >= 3,
      timeoutMs: 20_000,
    })
    const byKey = Object.fromEntries(
      events.filter((e) => e.event === 'change').map((e) => [e.data.key, e.data]),
    )
    expect(byKey.deep).toMatchObject({ encoding: 'utf8', value: deep, contentType: 'application/json' })
    expect(byKey.pretty).toMatchObject({ encoding: 'json', value: { a: [1, 2] } })
    expect(byKey.bad).toMatchObject({ encoding: 'base64', value: '//4=' })

    const checkRoutes = async (url: string) => {
      const exact = await fetch(`${url}/v1/ns/default/kv/deep`)
      expect(exact.status).toBe(200)
      expect(await exact.text()).toBe(deep)
      const siblings = await api(url, '/v1/ns/default/kv/deep?siblings=1')
      expect(siblings.status).toBe(200)
      expect(siblings.json.siblings[0]).toMatchObject({ encoding: 'utf8', value: deep })
      const listing = await api(url, '/v1/ns/default/kv')
      expect(listing.status).toBe(200)
      expect(listing.json.items.map((item: { key: string }) => item.key)).toEqual(['bad', 'deep', 'pretty'])
      const replay = await collectEvents(`${url}/v1/ns/default/watch?since=${since}`, {
        stop: (events) => events.some((e) => e.event === 'ready'),
      })
      expect(
        replay
          .filter((e) => e.event === 'change')
          .map((e) => e.data.key)
          .sort(),
      ).toEqual(['bad', 'deep', 'pretty'])
      expect((await api(url, '/healthz')).status).toBe(200)
    }
    await checkRoutes(daemon.url)
    expect(daemon.child.exitCode).toBeNull()

    const home = daemon.home
    expect((await daemon.stop()).code).toBe(0)
    daemon = await startDaemon({ home })
    await checkRoutes(daemon.url)
  })
})

describe('content types from peers', () => {
  it('a content type no HTTP header may carry is served as application/octet-stream, in every route', async () => {
    const daemon = await startDaemon()
    const privateKey = await generateKeyPair('Ed25519')
    const peer = await startTestPeer({ namespaces: ['default'], swarmKey: meshKey(), privateKey })
    peers.push(peer)
    // A member may sign any content type (peers never interpret them): write one below every check,
    // under the peer's own id and signature.
    const signer = createEntrySigner(privateKey)
    const odd = new CrdtDocument({ replica: `${signer.peerId}~odd` }).put(
      'forged',
      new TextEncoder().encode('hello'),
      'text/plain\r\nset-cookie: x=1',
    )
    const signed = { ...odd.entry, signature: signEntry(signer, 'default', odd.entry).signature }
    await peer.peer.namespace('default').merge({ entries: [signed], context: odd.delta.context })
    const dial = await api(daemon.url, '/v1/peers', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ address: peer.address }),
    })
    expect(dial.status).toBe(200)
    await until(
      async () =>
        (await api(daemon.url, '/v1/ns/default/kv?values=0')).json.items.length === 1 ? true : undefined,
      {
        timeoutMs: 20_000,
        message: 'the forged entry reached the daemon by anti-entropy',
      },
    )
    const read = await fetch(`${daemon.url}/v1/ns/default/kv/forged`, { signal: AbortSignal.timeout(5_000) })
    expect(read.status).toBe(200)
    expect(read.headers.get('content-type')).toBe('application/octet-stream')
    expect(read.headers.get('set-cookie')).toBeNull()
    expect(await read.text()).toBe('hello')
    const siblings = await api(daemon.url, '/v1/ns/default/kv/forged?siblings=1')
    expect(siblings.json.siblings[0].contentType).toBe('text/plain\r\nset-cookie: x=1')
    expect((await api(daemon.url, '/healthz')).status).toBe(200)
  })
})

describe('who may use the API', () => {
  it('answers only loopback Host names (and configured ones): a rebound name gets 403 on every route', async () => {
    const daemon = await startDaemon({ args: ['--api-allowed-host', 'hearsay.test'] })
    const port = new URL(daemon.url).port
    const evil = { host: `evil.example:${port}` }
    const attempts: Array<[string, string, string?]> = [
      ['GET', '/v1/status'],
      ['GET', '/v1/ns/default/kv'],
      ['PUT', '/v1/ns/default/kv/k', 'x'],
      ['DELETE', '/v1/ns/default/kv/k'],
      [
        'POST',
        '/v1/peers',
        '{"address":"/ip4/127.0.0.1/tcp/9/p2p/12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN"}',
      ],
      ['GET', '/v1/ns/default/watch'],
    ]
    for (const [method, path, body] of attempts) {
      const res = await raw(daemon.url, path, {
        method,
        headers: { ...evil, 'content-type': 'application/json' },
        body,
      })
      expect(res.status, `${method} ${path}`).toBe(403)
      expect(res.json.error.code).toBe('FORBIDDEN_HOST')
    }
    expect((await api(daemon.url, '/v1/ns/default/kv/k')).status).toBe(404)
    for (const host of [
      `localhost:${port}`,
      'localhost',
      `127.0.0.1:${port}`,
      `127.1.2.3`,
      `[::1]:${port}`,
      `hearsay.test:${port}`,
    ]) {
      const res = await raw(daemon.url, '/v1/status', { headers: { host } })
      expect(res.status, host).toBe(200)
    }
  })

  it('refuses cross-site writes, form-like writes and cross-site reads of watch and status', async () => {
    const daemon = await startDaemon()
    const counter = '/v1/ns/default/counter/clicks'
    const form = { 'content-type': 'application/x-www-form-urlencoded' }
    const attempts: Record<string, string>[] = [
      { origin: 'http://evil.example', ...form },
      { origin: 'null', ...form },
      { origin: 'null' },
      { origin: 'http://evil.example', 'content-type': 'application/json' },
      // Its own origin, but a body any HTML form can send.
      { origin: daemon.url, 'content-type': 'text/plain' },
      { origin: daemon.url },
      { 'sec-fetch-site': 'cross-site', 'content-type': 'application/json' },
    ]
    for (const headers of attempts) {
      const res = await api(daemon.url, counter, { method: 'POST', headers, body: '' })
      expect(res.status, JSON.stringify(headers)).toBe(403)
      expect(res.json.error.code).toBe('FORBIDDEN_ORIGIN')
    }
    expect((await api(daemon.url, counter)).json.value).toBe(0)
    // The API's own origin with a JSON body, and a client with no Origin (CLI, curl), may write.
    const own = await api(daemon.url, counter, {
      method: 'POST',
      headers: { origin: daemon.url, 'content-type': 'application/json' },
      body: '{"by":2}',
    })
    expect(own.status).toBe(200)
    expect((await api(daemon.url, counter, { method: 'POST' })).json.value).toBe(3)

    for (const path of ['/v1/ns/default/watch', '/v1/status']) {
      const reads: Record<string, string>[] = [
        { origin: 'http://evil.example' },
        { origin: 'null' },
        { 'sec-fetch-site': 'cross-site' },
      ]
      for (const headers of reads) {
        const res = await raw(daemon.url, path, { headers })
        expect(res.status, `${path} ${JSON.stringify(headers)}`).toBe(403)
        expect(res.json.error.code).toBe('FORBIDDEN_ORIGIN')
      }
    }
    // Plain reads carry no CORS headers, so a page of another origin cannot read them anyway.
    const read = await api(daemon.url, counter, { headers: { origin: 'http://evil.example' } })
    expect(read.status).toBe(200)
    expect(read.headers.get('access-control-allow-origin')).toBeNull()
  })

  it('no GET creates a namespace, so none survives a restart', async () => {
    const daemon = await startDaemon()
    for (let i = 0; i < 20; i++) {
      const res = await raw(daemon.url, `/v1/ns/drive-by-${i}/watch`)
      expect(res.status).toBe(404)
      expect(res.json.error.code).toBe('NAMESPACE_NOT_FOUND')
    }
    for (const path of [
      '/v1/ns/drive-by-x',
      '/v1/ns/drive-by-x/kv',
      '/v1/ns/drive-by-x/counter/c',
      '/v1/ns/drive-by-x/set/s',
    ]) {
      expect((await api(daemon.url, path)).status, path).toBe(404)
    }
    const names = async (url: string) =>
      (await api(url, '/v1/ns')).json.namespaces.map((ns: { name: string }) => ns.name)
    expect(await names(daemon.url)).toEqual(['default'])
    await daemon.stop()
    const again = await startDaemon({ home: daemon.home })
    expect(await names(again.url)).toEqual(['default'])
  })

  it('beyond loopback every request needs the bearer token of api.token (mode 0600)', async () => {
    // Bound to all interfaces, reached over loopback only.
    const daemon = await startDaemon({ args: ['--api-host', '0.0.0.0'] })
    const url = `http://127.0.0.1:${new URL(daemon.url).port}`
    const tokenFile = join(daemon.home, 'api.token')
    expect(statSync(tokenFile).mode & 0o777).toBe(0o600)
    const { readFileSync } = await import('node:fs')
    const token = readFileSync(tokenFile, 'utf8').trim()
    expect(token.length).toBeGreaterThanOrEqual(40)

    const missing = await api(url, '/v1/status')
    expect(missing.status).toBe(401)
    expect(missing.json.error.code).toBe('UNAUTHORIZED')
    expect(missing.headers.get('www-authenticate')).toContain('Bearer')
    for (const presented of ['wrong', `${token}x`, token.slice(1)]) {
      const res = await api(url, '/v1/ns/default/kv/k', {
        method: 'PUT',
        headers: { authorization: `Bearer ${presented}` },
        body: 'x',
      })
      expect(res.status).toBe(401)
    }
    expect((await api(url, '/healthz')).status).toBe(200)
    const auth = { authorization: `Bearer ${token}` }
    expect((await api(url, '/v1/ns/default/kv/k', { method: 'PUT', headers: auth, body: 'x' })).status).toBe(
      200,
    )
    // The Host is not checked beyond loopback (the machine has many names); the token is.
    const named = await raw(url, '/v1/ns/default/kv/k', { headers: { ...auth, host: 'my-box.lan' } })
    expect(named.status).toBe(200)
    expect(named.text).toBe('x')
  })
})

describe('the CLI under these rules', () => {
  it('sends the data dir token to a daemon beyond loopback, and a given token to a given URL only', async () => {
    const daemon = await startDaemon({ args: ['--api-host', '0.0.0.0'] })
    const home = daemon.home
    const put = await runCli(['put', 'greeting', 'hi'], { home })
    expect(put.code, put.stderr).toBe(0)
    const get = await runCli(['get', 'greeting'], { home })
    expect(get.code, get.stderr).toBe(0)
    expect(get.stdout).toContain('hi')

    const url = `http://127.0.0.1:${new URL(daemon.url).port}`
    // A URL given by hand gets no token from the data dir...
    const bare = await runCli(['get', 'greeting', '--api', url], { home })
    expect(bare.code).not.toBe(0)
    expect(bare.stderr).toContain('api.token')
    // ...unless one is given by hand too.
    const { readFileSync } = await import('node:fs')
    const token = readFileSync(join(home, 'api.token'), 'utf8').trim()
    const flagged = await runCli(['get', 'greeting', '--api', url, '--token', token], { home })
    expect(flagged.code, flagged.stderr).toBe(0)
    const env = await runCli(['get', 'greeting'], {
      home,
      env: { HEARSAY_API: url, HEARSAY_API_TOKEN: token },
    })
    expect(env.code, env.stderr).toBe(0)
  })

  it('hearsay watch joins the namespace it watches (a GET of the stream never does)', async () => {
    const daemon = await startDaemon()
    const watch = runCli(['watch', '-n', 'fresh', '--count', '1', '--json'], { home: daemon.home })
    await until(async () => ((await api(daemon.url, '/v1/ns/fresh')).status === 200 ? true : undefined))
    await until(async () =>
      (await api(daemon.url, '/v1/status')).json.watchClients === 1 ? true : undefined,
    )
    expect((await api(daemon.url, '/v1/ns/fresh/kv/k', { method: 'PUT', body: 'v' })).status).toBe(200)
    const done = await watch
    expect(done.code, done.stderr).toBe(0)
    expect(JSON.parse(done.stdout.trim().split('\n').at(-1)!)).toMatchObject({
      event: 'change',
      data: { key: 'k' },
    })
  })
})

describe('clients that would exhaust the daemon', () => {
  /** A watch request on a socket that is then never read (until `resume`). */
  function stalledWatcher(url: string): Promise<Socket> {
    const { hostname, port } = new URL(url)
    return new Promise((resolve, reject) => {
      const socket = connect(Number(port), hostname, () => {
        socket.write(`GET /v1/ns/default/watch HTTP/1.1\r\nHost: ${hostname}:${port}\r\n\r\n`)
        // Read the headers and the ready event, then stop reading.
        socket.once('data', () => {
          socket.pause()
          resolve(socket)
        })
      })
      socket.once('error', reject)
    })
  }

  it('cuts a watcher off with overflow once its queue passes watchQueueBytes; memory stays bounded', async () => {
    const daemon = await startDaemon({ args: ['--watch-queue-bytes', String(4 * MiB)] })
    const watchers = await Promise.all(Array.from({ length: 10 }, () => stalledWatcher(daemon.url)))
    await until(async () =>
      (await api(daemon.url, '/v1/status')).json.watchClients === 10 ? true : undefined,
    )
    const rssBefore = await rssOf(daemon.url)
    for (let i = 0; i < 30; i++) {
      const res = await api(daemon.url, `/v1/ns/default/kv/big-${i}`, {
        method: 'PUT',
        body: randomBytes(MiB),
      })
      expect(res.status).toBe(200)
    }
    await until(
      async () => ((await api(daemon.url, '/v1/status')).json.watchClients === 0 ? true : undefined),
      {
        timeoutMs: 20_000,
        message: 'every stalled watcher cut off',
      },
    )
    const rssAfter = await rssOf(daemon.url)
    console.log(
      `watch queues: 10 stalled watchers, 30 PUTs of 1 MiB: RSS ${(rssBefore / MiB).toFixed(0)} -> ${(rssAfter / MiB).toFixed(0)} MiB`,
    )
    // 10 watchers × 30 MiB of events (40 MiB as base64) would be 400 MiB without the bound.
    expect(rssAfter - rssBefore).toBeLessThan(250 * MiB)

    // Each slow reader, once it reads, finds the stream ended by an overflow event.
    await Promise.all(
      watchers.map(
        (socket) =>
          new Promise<void>((resolve, reject) => {
            let tail = ''
            const timer = setTimeout(() => reject(new Error('no overflow event')), 20_000)
            socket.on('data', (chunk: Buffer) => {
              tail = (tail + chunk.toString('latin1')).slice(-4096)
              if (tail.includes('event: overflow')) {
                clearTimeout(timer)
                socket.destroy()
                resolve()
              }
            })
            socket.resume()
          }),
      ),
    )
    expect((await api(daemon.url, '/healthz')).status).toBe(200)
  })

  it('times out stalled request bodies (408), bounds the bytes they hold (503), and closes slow headers', async () => {
    const daemon = await startDaemon()
    const { hostname, port } = new URL(daemon.url)
    const rssBefore = await rssOf(daemon.url)
    const started = Date.now()
    const stalled = 200
    let busy = 0
    const closes = Array.from(
      { length: stalled },
      (_, i) =>
        new Promise<{ text: string; ms: number }>((resolve, reject) => {
          let text = ''
          const socket = connect(Number(port), hostname, () => {
            socket.write(
              `PUT /v1/ns/default/kv/stalled-${i} HTTP/1.1\r\nHost: ${hostname}:${port}\r\nTransfer-Encoding: chunked\r\n\r\n`,
            )
            const chunk = randomBytes(1_000_000)
            socket.write(`${chunk.length.toString(16)}\r\n`)
            socket.write(chunk)
            socket.write('\r\n')
            // ...and nothing more.
          })
          socket.setEncoding('latin1')
          socket.on('data', (data: string) => {
            text += data
            if (data.includes('SERVER_BUSY')) busy++
          })
          socket.once('close', () => resolve({ text, ms: Date.now() - started }))
          socket.once('error', (error: NodeJS.ErrnoException) =>
            // The daemon may close a refused upload before the client finished writing it.
            error.code === 'ECONNRESET' || error.code === 'EPIPE' ? undefined : reject(error),
          )
        }),
    )
    const slowHeaders = new Promise<number>((resolve) => {
      const socket = connect(Number(port), hostname, () =>
        socket.write('GET /v1/status HTTP/1.1\r\nHost: 127'),
      )
      socket.on('data', () => {})
      socket.once('close', () => resolve(Date.now() - started))
      socket.once('error', () => {})
    })
    // 64 MiB of bodies fit the budget: uploads beyond it are refused at once. (How many depends on
    // how fast the machine delivers them: a stalled body's budget comes back when it times out.)
    await until(() => (busy > 0 ? true : undefined), {
      timeoutMs: 20_000,
      message: 'an upload over the budget refused',
    })
    const rssStalled = await rssOf(daemon.url)
    const results = await Promise.all(closes)
    const headersClosedMs = await slowHeaders
    const rssAfter = await rssOf(daemon.url)
    const slowest = Math.max(...results.map((r) => r.ms))
    console.log(
      `stalled bodies: ${stalled} × 1 MB: ${busy} refused 503; RSS ${(rssBefore / MiB).toFixed(0)} -> ${(rssStalled / MiB).toFixed(0)} (stalled) -> ${(rssAfter / MiB).toFixed(0)} MiB; all closed after ${slowest} ms; slow headers closed after ${headersClosedMs} ms`,
    )
    let timedOut = 0
    for (const { text } of results) {
      if (text.includes('SERVER_BUSY')) {
        expect(text).toMatch(/^HTTP\/1\.1 503 /)
        expect(text.toLowerCase()).toContain('retry-after: 1')
      } else {
        expect(text).toMatch(/^HTTP\/1\.1 408 /)
        expect(text).toContain('REQUEST_TIMEOUT')
        timedOut++
      }
    }
    expect(timedOut).toBeGreaterThan(0)
    expect(rssStalled - rssBefore).toBeLessThan(160 * MiB)
    expect((await api(daemon.url, '/v1/ns/default/kv')).json.items).toEqual([])
    // The budget is given back: a full-size value goes through.
    const put = await api(daemon.url, '/v1/ns/default/kv/after', { method: 'PUT', body: randomBytes(MiB) })
    expect(put.status).toBe(200)
  })

  it('refuses connections over apiMaxConnections at once while the open ones keep working', async () => {
    const cap = 6
    const daemon = await startDaemon({ args: ['--api-max-connections', String(cap)] })
    const { hostname, port } = new URL(daemon.url)
    const watchers = await Promise.all(Array.from({ length: cap - 1 }, () => stalledWatcher(daemon.url)))
    for (const socket of watchers) socket.resume()
    // The last slot: one keep-alive connection for requests.
    const keepAlive = connect(Number(port), hostname)
    await new Promise((resolve) => keepAlive.once('connect', resolve))
    let answers = ''
    keepAlive.setEncoding('utf8').on('data', (data: string) => {
      answers += data
    })
    const send = (method: string, path: string, body = '') =>
      keepAlive.write(
        `${method} ${path} HTTP/1.1\r\nHost: ${hostname}:${port}\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
      )
    send('GET', '/healthz')
    await until(() => (answers.includes('"ok":true') ? true : undefined))

    // Over the cap: closed at once, without an answer.
    for (let i = 0; i < 3; i++) {
      const refused = await new Promise<{ bytes: number }>((resolve) => {
        let bytes = 0
        const socket = connect(Number(port), hostname, () =>
          socket.write(`GET /healthz HTTP/1.1\r\nHost: ${hostname}\r\n\r\n`),
        )
        socket.on('data', (data: Buffer) => {
          bytes += data.length
        })
        socket.once('close', () => resolve({ bytes }))
        socket.once('error', () => {})
      })
      expect(refused.bytes).toBe(0)
    }

    // The open connections still work: a write on the keep-alive one reaches every watcher.
    const seen = watchers.map((socket) => {
      let text = ''
      socket.on('data', (data: Buffer) => {
        text += data.toString('utf8')
      })
      return () => text
    })
    send('PUT', '/v1/ns/default/kv/still-here', 'yes')
    await until(() => (answers.includes('"key":"still-here"') ? true : undefined))
    await until(() => (seen.every((text) => text().includes('still-here')) ? true : undefined))
    for (const socket of [...watchers, keepAlive]) socket.destroy()
    // Slots free again once they close.
    await until(async () =>
      (await api(daemon.url, '/healthz').catch(() => undefined))?.status === 200 ? true : undefined,
    )
  })
})

/**
 * The HTTP API against a real daemon process: every route, every refusal the API promises, and that
 * the daemon keeps serving after each one. One daemon serves the whole file (starting one costs
 * most of a second).
 */
import { readFileSync } from 'node:fs'
import { connect } from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { encodeContext } from '../src/codec/delta.ts'
import { CausalContext } from '../src/crdt/context.ts'
import { encodeSince } from '../src/daemon/watch.ts'
import {
  api,
  collectEvents,
  type DaemonProcess,
  removeHomes,
  startDaemon,
  stopAllDaemons,
} from './helpers/daemon.ts'

let daemon: DaemonProcess
let url: string

beforeAll(async () => {
  daemon = await startDaemon()
  url = daemon.url
})

afterAll(async () => {
  await stopAllDaemons()
  removeHomes()
})

const kv = (key: string, ns = 'default') => `/v1/ns/${ns}/kv/${key}`
const json = (value: unknown) => ({
  headers: { 'content-type': 'application/json' },
  body: JSON.stringify(value),
})

describe('system routes', () => {
  it('GET /healthz answers ok', async () => {
    const res = await api(url, '/healthz')
    expect(res.status).toBe(200)
    expect(res.json).toEqual({ ok: true, peerId: daemon.peerId })
  })

  it('GET /v1/status shows the peer, its addresses, namespaces, store and uptime', async () => {
    const res = await api(url, '/v1/status')
    expect(res.status).toBe(200)
    expect(res.json.peerId).toBe(daemon.peerId)
    expect(res.json.api.url).toBe(url)
    expect(res.json.dataDir).toBe(daemon.home)
    expect(res.json.namespaces.map((ns: { name: string }) => ns.name)).toContain('default')
    expect(res.json.store.kind).toBe('sqlite')
    expect(res.json.uptimeMs).toBeGreaterThanOrEqual(0)
    expect(res.json.process.rssBytes).toBeGreaterThan(0)
    expect(res.json.mesh.attached).toBe(daemon.meshAttached)
    expect(res.json.mesh.addresses).toEqual(daemon.addresses)
  })

  it('GET /v1/openapi.json serves the document in docs/openapi.json', async () => {
    const res = await api(url, '/v1/openapi.json')
    expect(res.status).toBe(200)
    expect(res.json.openapi).toBe('3.1.0')
    const docs = JSON.parse(readFileSync(new URL('../docs/openapi.json', import.meta.url), 'utf8'))
    expect(res.json).toEqual(docs)
  })

  it('GET /metrics is Prometheus text with hearsay counters and gauges', async () => {
    await api(url, kv('metrics-probe'), { method: 'PUT', body: 'x' })
    const res = await api(url, '/metrics')
    expect(res.status).toBe(200)
    expect(res.headers.get('content-type')).toContain('text/plain')
    for (const name of [
      'hearsay_writes_total{namespace="default",op="put"}',
      'hearsay_http_requests_total',
      'hearsay_store_size_bytes',
      'hearsay_peers{state="connected"}',
      'hearsay_sync_rounds_total',
      'hearsay_protocol_bytes_total',
      'hearsay_key_changes_total',
      'hearsay_convergence_lag_seconds_bucket',
      'process_resident_memory_bytes',
    ]) {
      expect(res.text).toContain(name)
    }
  })

  it('GET /v1/peers lists peers; POST dials, refusing bad input', async () => {
    const list = await api(url, '/v1/peers')
    expect(list.status).toBe(200)
    expect(Array.isArray(list.json.peers)).toBe(true)

    const bad = await api(url, '/v1/peers', { method: 'POST', ...json({ address: 'not a multiaddr' }) })
    expect(bad.status).toBe(400)
    expect(bad.json.error.code).toBe('INVALID_ADDRESS')
    const missing = await api(url, '/v1/peers', { method: 'POST', ...json({}) })
    expect(missing.json.error.code).toBe('INVALID_BODY')
    const notJson = await api(url, '/v1/peers', {
      method: 'POST',
      headers: { 'content-type': 'text/plain' },
      body: 'x',
    })
    expect(notJson.status).toBe(415)
    expect(notJson.json.error.code).toBe('UNSUPPORTED_MEDIA_TYPE')
    if (daemon.meshAttached) {
      // Nobody listens on port 1: the dial fails fast with a clear error.
      const unreachable = await api(url, '/v1/peers', {
        method: 'POST',
        ...json({ address: '/ip4/127.0.0.1/tcp/1/p2p/12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA' }),
      })
      expect(unreachable.status).toBe(502)
      expect(unreachable.json.error.code).toBe('DIAL_FAILED')
    }
  })
})

describe('keys', () => {
  it('keeps bytes and Content-Type exactly, with an ETag and a sibling count', async () => {
    const bytes = new Uint8Array([0, 1, 2, 255, 254, 10, 13, 0])
    const put = await api(url, kv('blob'), {
      method: 'PUT',
      headers: { 'content-type': 'image/x-test' },
      body: bytes,
    })
    expect(put.status).toBe(200)
    expect(put.json).toMatchObject({ namespace: 'default', key: 'blob', etag: expect.any(String) })
    const res = await fetch(url + kv('blob'))
    expect(res.status).toBe(200)
    expect(res.headers.get('content-type')).toBe('image/x-test')
    expect(res.headers.get('etag')).toBe(`"${put.json.etag}"`)
    expect(res.headers.get('x-hearsay-siblings')).toBe('1')
    expect(new Uint8Array(await res.arrayBuffer())).toEqual(bytes)
  })

  it('stores JSON and text, defaulting to application/octet-stream', async () => {
    await api(url, kv('doc'), { method: 'PUT', ...json({ a: [1, 2] }) })
    const doc = await api(url, kv('doc'))
    expect(doc.headers.get('content-type')).toBe('application/json')
    expect(doc.json).toEqual({ a: [1, 2] })
    // (fetch labels a string body text/plain; bytes go without a Content-Type.)
    await api(url, kv('untyped'), { method: 'PUT', body: new TextEncoder().encode('raw') })
    const untyped = await fetch(url + kv('untyped'))
    expect(untyped.headers.get('content-type')).toBe('application/octet-stream')
  })

  it('takes keys with slashes, spaces and Unicode', async () => {
    const key = 'a/b c/ünï 🙂'
    const path = `/v1/ns/default/kv/${key.split('/').map(encodeURIComponent).join('/')}`
    expect((await api(url, path, { method: 'PUT', body: 'deep' })).status).toBe(200)
    expect((await api(url, path)).text).toBe('deep')
    const listed = await api(url, `/v1/ns/default/kv?prefix=${encodeURIComponent('a/b c/')}`)
    expect(listed.json.items.map((item: { key: string }) => item.key)).toEqual([key])
  })

  it('answers 304 to If-None-Match with the current ETag', async () => {
    const put = await api(url, kv('cached'), { method: 'PUT', body: 'v' })
    const res = await api(url, kv('cached'), { headers: { 'if-none-match': `"${put.json.etag}"` } })
    expect(res.status).toBe(304)
  })

  it('keeps concurrent writes as siblings, and If-Match resolves exactly those', async () => {
    const first = await api(url, kv('sib'), { method: 'PUT', ...json('v0') })
    // Two writers that both read v0: each supersedes only v0, so both stay.
    const a = await api(url, kv('sib'), {
      method: 'PUT',
      headers: { 'content-type': 'application/json', 'if-match': `"${first.json.etag}"` },
      body: '"A"',
    })
    const b = await api(url, kv('sib'), {
      method: 'PUT',
      headers: { 'content-type': 'application/json', 'if-match': first.json.etag },
      body: '"B"',
    })
    expect(a.status).toBe(200)
    expect(b.status).toBe(200)
    const plain = await api(url, kv('sib'))
    expect(plain.headers.get('x-hearsay-siblings')).toBe('2')
    const siblings = await api(url, `${kv('sib')}?siblings=1`)
    expect(siblings.status).toBe(200)
    expect(siblings.json.siblings.map((s: { value: string }) => s.value).sort()).toEqual(['A', 'B'])
    expect(siblings.json.siblings[0]).toMatchObject({
      contentType: 'application/json',
      encoding: 'json',
      replica: expect.any(String),
    })
    expect(siblings.json.siblings[siblings.json.winner].value).toBe(plain.json)
    // A write that saw both resolves them.
    const resolved = await api(url, kv('sib'), {
      method: 'PUT',
      headers: { 'content-type': 'application/json', 'if-match': `"${siblings.json.etag}"` },
      body: '"AB"',
    })
    expect(resolved.status).toBe(200)
    const after = await api(url, `${kv('sib')}?siblings=1`)
    expect(after.json.siblings.map((s: { value: string }) => s.value)).toEqual(['AB'])
  })

  it('deletes, then answers 404 KEY_NOT_FOUND; a delete with If-Match removes what it saw', async () => {
    await api(url, kv('gone'), { method: 'PUT', body: 'x' })
    const del = await api(url, kv('gone'), { method: 'DELETE' })
    expect(del.status).toBe(200)
    expect(del.json.deleted).toBe(true)
    const get = await api(url, kv('gone'))
    expect(get.status).toBe(404)
    expect(get.json.error.code).toBe('KEY_NOT_FOUND')
    expect((await api(url, kv('gone'), { method: 'DELETE' })).json.error.code).toBe('KEY_NOT_FOUND')

    const put = await api(url, kv('gone2'), { method: 'PUT', body: 'x' })
    const conditional = await api(url, kv('gone2'), {
      method: 'DELETE',
      headers: { 'if-match': `"${put.json.etag}"` },
    })
    expect(conditional.status).toBe(200)
    expect((await api(url, kv('gone2'))).status).toBe(404)
  })

  it('lists with prefix, limit and cursor, page after page', async () => {
    const keys = Array.from({ length: 25 }, (_, i) => `page/${String(i).padStart(2, '0')}`)
    await Promise.all(keys.map((key, i) => api(url, kv(key), { method: 'PUT', ...json({ i }) })))
    await api(url, kv('pagf'), { method: 'PUT', body: 'outside the prefix' })
    const seen: string[] = []
    let cursor: string | undefined
    let pages = 0
    do {
      const query = new URLSearchParams({
        prefix: 'page/',
        limit: '10',
        ...(cursor === undefined ? {} : { cursor }),
      })
      const res = await api(url, `/v1/ns/default/kv?${query}`)
      expect(res.status).toBe(200)
      seen.push(...res.json.items.map((item: { key: string }) => item.key))
      cursor = res.json.cursor
      pages++
    } while (cursor !== undefined)
    expect(pages).toBe(3)
    expect(seen).toEqual(keys)
    const withValues = await api(url, '/v1/ns/default/kv?prefix=page/00')
    expect(withValues.json.items[0]).toMatchObject({
      key: 'page/00',
      encoding: 'json',
      value: { i: 0 },
      siblings: 1,
    })
    const keysOnly = await api(url, '/v1/ns/default/kv?prefix=page/00&values=0')
    expect(keysOnly.json.items[0].value).toBeUndefined()
  })
})

describe('counters and sets', () => {
  it('increments, decrements, reads and resets a counter', async () => {
    const path = '/v1/ns/default/counter/hits'
    expect((await api(url, path, { method: 'POST' })).json.value).toBe(1)
    expect((await api(url, path, { method: 'POST', ...json({ by: 10 }) })).json.value).toBe(11)
    expect((await api(url, path, { method: 'POST', ...json({ by: -4 }) })).json.value).toBe(7)
    expect((await api(url, path)).json).toEqual({ namespace: 'default', key: 'hits', value: 7 })
    const reset = await api(url, path, { method: 'DELETE' })
    expect(reset.json).toMatchObject({ value: 0, reset: true })
    expect((await api(url, '/v1/ns/default/counter/never')).json.value).toBe(0)
  })

  it('refuses bad increments with clear codes', async () => {
    const path = '/v1/ns/default/counter/bad'
    const cases: Array<[Record<string, unknown>, number, string]> = [
      [json({ by: 1.5 }), 400, 'INVALID_NUMBER'],
      [json({ by: '2' }), 400, 'INVALID_NUMBER'],
      [json({ by: 2 ** 60 }), 400, 'INVALID_NUMBER'],
      [{ headers: { 'content-type': 'application/json' }, body: '{"by": ' }, 400, 'INVALID_JSON'],
      [json([1]), 400, 'INVALID_BODY'],
      [{ headers: { 'content-type': 'text/plain' }, body: 'by=1' }, 415, 'UNSUPPORTED_MEDIA_TYPE'],
      [json({ by: 1, pad: 'x'.repeat(70_000) }), 413, 'PAYLOAD_TOO_LARGE'],
    ]
    for (const [init, status, code] of cases) {
      const res = await api(url, path, { method: 'POST', ...init })
      expect([res.status, res.json?.error?.code]).toEqual([status, code])
    }
    expect((await api(url, path)).json.value).toBe(0)
  })

  it('adds and removes set members, add winning within one request order', async () => {
    const path = '/v1/ns/default/set/tags'
    const add = await api(url, path, { method: 'POST', ...json({ add: ['b', 'a', 'c'] }) })
    expect(add.json.members).toEqual(['a', 'b', 'c'])
    const remove = await api(url, path, { method: 'POST', ...json({ remove: 'b', add: 'd' }) })
    expect(remove.json).toMatchObject({ members: ['a', 'c', 'd'], removed: ['b'], added: ['d'] })
    expect((await api(url, path)).json.members).toEqual(['a', 'c', 'd'])
  })

  it('refuses bad set requests and writes nothing', async () => {
    const path = '/v1/ns/default/set/strict'
    expect((await api(url, path, { method: 'POST', ...json({}) })).json.error.code).toBe('INVALID_BODY')
    expect((await api(url, path, { method: 'POST', ...json({ add: [1] }) })).json.error.code).toBe(
      'INVALID_BODY',
    )
    const nul = await api(url, path, { method: 'POST', ...json({ add: ['ok', 'bad\u0000'] }) })
    expect([nul.status, nul.json.error.code]).toEqual([400, 'INVALID_KEY'])
    expect((await api(url, path)).json.members).toEqual([])
  })
})

describe('write acknowledgements', () => {
  it('?ack=N answers 202 with how many peers held the write when the timeout comes first', async () => {
    const res = await api(url, `${kv('acked')}?ack=3&timeout=150`, { method: 'PUT', body: 'x' })
    expect(res.status).toBe(202)
    expect(res.json.ack).toMatchObject({ requested: 3, replicated: 0, reached: false })
    expect(res.headers.get('x-hearsay-replicated')).toBe('0')
    // The write itself stands.
    expect((await api(url, kv('acked'))).text).toBe('x')
    const counter = await api(url, '/v1/ns/default/counter/acked?ack=1&timeout=50', { method: 'POST' })
    expect(counter.status).toBe(202)
  })

  it('refuses a bad ack parameter before writing anything', async () => {
    for (const query of ['ack=abc', 'ack=-1', 'ack=1000', 'ack=1&timeout=0', 'ack=1&timeout=x']) {
      const res = await api(url, `${kv('never-written')}?${query}`, { method: 'PUT', body: 'x' })
      expect([query, res.status, res.json.error.code]).toEqual([query, 400, 'INVALID_PARAMETER'])
    }
    expect((await api(url, kv('never-written'))).status).toBe(404)
  })
})

describe('namespaces', () => {
  it('joins with PUT (201, then 200), lists, and shows one', async () => {
    expect((await api(url, '/v1/ns/joined-ns', { method: 'PUT' })).status).toBe(201)
    expect((await api(url, '/v1/ns/joined-ns', { method: 'PUT' })).status).toBe(200)
    const one = await api(url, '/v1/ns/joined-ns')
    expect(one.json).toMatchObject({
      name: 'joined-ns',
      entries: 0,
      replicaId: expect.stringContaining(daemon.peerId),
    })
    const all = await api(url, '/v1/ns')
    expect(all.json.namespaces.map((ns: { name: string }) => ns.name)).toEqual(
      expect.arrayContaining(['default', 'joined-ns']),
    )
  })

  it('a write joins a namespace; a read of an unjoined one is 404 NAMESPACE_NOT_FOUND', async () => {
    const read = await api(url, kv('k', 'not-joined'))
    expect([read.status, read.json.error.code]).toEqual([404, 'NAMESPACE_NOT_FOUND'])
    for (const path of [
      '/v1/ns/not-joined/kv',
      '/v1/ns/not-joined/counter/c',
      '/v1/ns/not-joined/set/s',
      '/v1/ns/not-joined',
    ]) {
      expect((await api(url, path)).json.error.code).toBe('NAMESPACE_NOT_FOUND')
    }
    expect((await api(url, kv('k', 'written-ns'), { method: 'PUT', body: 'v' })).status).toBe(200)
    expect((await api(url, kv('k', 'written-ns'))).text).toBe('v')
  })
})

describe('bad input', () => {
  const cases: Array<[string, string, Record<string, unknown>, number, string]> = [
    ['unknown path', '/v2/nothing', {}, 404, 'NOT_FOUND'],
    ['unknown kind under a namespace', '/v1/ns/default/blob/x', {}, 404, 'NOT_FOUND'],
    ['invalid namespace (read)', '/v1/ns/bad%20ns/kv/k', {}, 400, 'INVALID_NAMESPACE'],
    [
      'invalid namespace (write)',
      '/v1/ns/.hidden/kv/k',
      { method: 'PUT', body: 'x' },
      400,
      'INVALID_NAMESPACE',
    ],
    ['empty key', '/v1/ns/default/kv/', { method: 'PUT', body: 'x' }, 400, 'INVALID_KEY'],
    ['key with NUL', '/v1/ns/default/kv/a%00b', { method: 'PUT', body: 'x' }, 400, 'INVALID_KEY'],
    [
      'key too long',
      `/v1/ns/default/kv/${'k'.repeat(1024)}`,
      { method: 'PUT', body: 'x' },
      400,
      'INVALID_KEY',
    ],
    ['malformed %-escape', '/v1/ns/default/kv/%E0%A4%A', {}, 400, 'INVALID_KEY'],
    ['lone surrogate key', '/v1/ns/default/kv/%ED%A0%80', { method: 'PUT', body: 'x' }, 400, 'INVALID_KEY'],
    [
      'malformed JSON value',
      '/v1/ns/default/kv/j',
      { method: 'PUT', headers: { 'content-type': 'application/json' }, body: '{nope' },
      400,
      'INVALID_JSON',
    ],
    [
      'JSON value nested deeper than the limit',
      '/v1/ns/default/kv/deep',
      {
        method: 'PUT',
        headers: { 'content-type': 'application/json' },
        body: `${'['.repeat(129)}${']'.repeat(129)}`,
      },
      400,
      'JSON_TOO_DEEP',
    ],
    [
      'JSON body nested deeper than the limit',
      '/v1/ns/default/counter/deep',
      {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: `{"by":${'['.repeat(30_000)}${']'.repeat(30_000)}}`,
      },
      400,
      'JSON_TOO_DEEP',
    ],
    [
      'content type too long',
      '/v1/ns/default/kv/ct',
      { method: 'PUT', headers: { 'content-type': `x/${'y'.repeat(200)}` }, body: 'x' },
      415,
      'INVALID_CONTENT_TYPE',
    ],
    [
      'value over 1 MiB',
      '/v1/ns/default/kv/big',
      { method: 'PUT', body: new Uint8Array(1024 * 1024 + 1) },
      413,
      'VALUE_TOO_LARGE',
    ],
    [
      'If-Match not a token',
      '/v1/ns/default/kv/m',
      { method: 'PUT', headers: { 'if-match': '"???"' }, body: 'x' },
      400,
      'INVALID_IF_MATCH',
    ],
    [
      'If-Match empty',
      '/v1/ns/default/kv/m',
      { method: 'PUT', headers: { 'if-match': '""' }, body: 'x' },
      400,
      'INVALID_IF_MATCH',
    ],
    [
      'If-Match that does not decode',
      '/v1/ns/default/kv/m',
      { method: 'PUT', headers: { 'if-match': '"AAAA"' }, body: 'x' },
      400,
      'INVALID_IF_MATCH',
    ],
    ['method not allowed', '/v1/status', { method: 'DELETE' }, 405, 'METHOD_NOT_ALLOWED'],
    ['bad limit', '/v1/ns/default/kv?limit=0', {}, 400, 'INVALID_PARAMETER'],
    ['bad siblings flag', '/v1/ns/default/kv/blob?siblings=maybe', {}, 400, 'INVALID_PARAMETER'],
    ['bad since token', '/v1/ns/default/watch?since=bogus', {}, 400, 'INVALID_SINCE'],
    ['since token that does not decode', '/v1/ns/default/watch?since=c1.AAAAAAAA', {}, 400, 'INVALID_SINCE'],
  ]
  for (const [name, path, init, status, code] of cases) {
    it(`${name}: ${status} ${code}`, async () => {
      const res = await api(url, path, init)
      expect(res.status).toBe(status)
      expect(res.headers.get('content-type')).toContain('application/json')
      expect(res.json).toEqual({ error: { code, message: expect.any(String) } })
      expect(res.json.error.message.length).toBeGreaterThan(5)
    })
  }

  it('405 names the allowed methods', async () => {
    const res = await api(url, '/v1/ns/default/kv/x', { method: 'POST' })
    expect(res.headers.get('allow')).toBe('GET, PUT, DELETE')
  })

  it('answers 400 to malformed HTTP, and keeps serving', async () => {
    const port = Number(new URL(url).port)
    const reply = await new Promise<string>((resolve, reject) => {
      const socket = connect(port, '127.0.0.1', () => socket.write('NOT HTTP AT ALL\r\n\r\n'))
      let data = ''
      socket.on('data', (chunk) => {
        data += chunk
      })
      socket.on('end', () => resolve(data))
      socket.on('error', reject)
    })
    expect(reply).toMatch(/^HTTP\/1\.1 400/)
    expect((await api(url, '/healthz')).status).toBe(200)
  })

  it('keeps serving after every refusal above', async () => {
    expect((await api(url, '/healthz')).status).toBe(200)
    expect((await api(url, kv('blob'))).status).toBe(200)
  })
})

describe('watch (Server-Sent Events)', () => {
  it('streams changes with resume ids, filtered by prefix', async () => {
    const events = await collectEvents(`${url}/v1/ns/default/watch?prefix=w/`, {
      onOpen: async () => {
        await api(url, kv('w/1'), { method: 'PUT', ...json({ n: 1 }) })
        await api(url, kv('elsewhere'), { method: 'PUT', body: 'ignored' })
        await api(url, kv('w/1'), { method: 'DELETE' })
        await api(url, '/v1/ns/default/counter/w/count', { method: 'POST' })
        await api(url, '/v1/ns/default/set/w/set', { method: 'POST', ...json({ add: 'x' }) })
      },
      stop: (events) => events.filter((e) => e.event === 'change').length >= 4,
    })
    expect(events[0].event).toBe('ready')
    expect(events[0].id).toMatch(/^c2\./)
    const changes = events.filter((e) => e.event === 'change')
    expect(changes.map((e) => [e.data.type, e.data.key, e.data.op])).toEqual([
      ['register', 'w/1', 'put'],
      ['register', 'w/1', 'delete'],
      ['counter', 'w/count', 'update'],
      ['set', 'w/set', 'add'],
    ])
    expect(changes[0].data).toMatchObject({
      origin: 'local',
      encoding: 'json',
      value: { n: 1 },
      contentType: 'application/json',
    })
    expect(changes[2].data.value).toBe(1)
    expect(changes[3].data.element).toBe('x')
    for (const change of changes) expect(change.id).toMatch(/^c2\./)
  })

  it('resumes from an event id (since= or Last-Event-ID), replaying what changed after it', async () => {
    const first = await collectEvents(`${url}/v1/ns/default/watch?prefix=r/`, {
      onOpen: () => api(url, kv('r/a'), { method: 'PUT', body: '1' }).then(() => {}),
      stop: (events) => events.some((e) => e.event === 'change'),
    })
    const token = first.find((e) => e.event === 'change')!.id!
    // Changes while nobody watches.
    await api(url, kv('r/b'), { method: 'PUT', body: '2' })
    await api(url, kv('r/a'), { method: 'DELETE' })
    await api(url, kv('unrelated'), { method: 'PUT', body: '3' })

    const replay = await collectEvents(`${url}/v1/ns/default/watch?prefix=r/&since=${token}`, {
      stop: (events) => events.some((e) => e.event === 'ready'),
    })
    const replayed = replay
      .filter((e) => e.event === 'change')
      .map((e) => [e.data.key, e.data.op, e.data.origin])
    expect(replayed.sort()).toEqual([
      ['r/a', 'delete', 'replay'],
      ['r/b', 'put', 'replay'],
    ])
    const ready = replay.find((e) => e.event === 'ready')!
    expect(ready.data).toMatchObject({ replayed: 2, reset: false })

    const viaHeader = await collectEvents(`${url}/v1/ns/default/watch?prefix=r/`, {
      headers: { 'last-event-id': token },
      stop: (events) => events.some((e) => e.event === 'ready'),
    })
    expect(viaHeader.filter((e) => e.event === 'change')).toHaveLength(2)

    // Resuming from the ready token replays nothing.
    const none = await collectEvents(`${url}/v1/ns/default/watch?prefix=r/&since=${ready.id}`, {
      stop: (events) => events.some((e) => e.event === 'ready'),
    })
    expect(none.map((e) => e.event)).toEqual(['ready'])
  })

  it('?format=compact sends the key, the value and only what differs from the common case', async () => {
    const events = await collectEvents(`${url}/v1/ns/default/watch?prefix=cf/&format=compact`, {
      onOpen: async () => {
        await api(url, kv('cf/json'), { method: 'PUT', ...json({ n: 1 }) })
        await api(url, kv('cf/text'), {
          method: 'PUT',
          headers: { 'content-type': 'text/plain' },
          body: 'hi',
        })
        await api(url, kv('cf/json'), { method: 'DELETE' })
        await api(url, '/v1/ns/default/counter/cf/count', { method: 'POST', ...json({ by: 2 }) })
        await api(url, '/v1/ns/default/set/cf/set', { method: 'POST', ...json({ add: 'x' }) })
      },
      stop: (events) => events.filter((e) => e.event === 'change').length >= 5,
    })
    expect(events[0].event).toBe('ready')
    const changes = events.filter((e) => e.event === 'change')
    expect(changes.map((e) => e.data)).toEqual([
      { key: 'cf/json', value: { n: 1 } },
      { key: 'cf/text', encoding: 'utf8', contentType: 'text/plain', value: 'hi' },
      { key: 'cf/json', op: 'delete' },
      { key: 'cf/count', type: 'counter', value: 2 },
      { key: 'cf/set', type: 'set', element: 'x' },
    ])
    // Each commit's last event still carries the resume token.
    for (const change of changes) expect(change.id).toMatch(/^c2\./)
    // A replay says so.
    const replay = await collectEvents(
      `${url}/v1/ns/default/watch?prefix=cf/&format=compact&since=${changes[1].id}`,
      { stop: (events) => events.some((e) => e.event === 'ready') },
    )
    expect(
      replay
        .filter((e) => e.event === 'change')
        .map((e) => e.data)
        .sort((x, y) => x.key.localeCompare(y.key)),
    ).toEqual([
      { key: 'cf/count', type: 'counter', value: 2, origin: 'replay' },
      { key: 'cf/json', op: 'delete', origin: 'replay' },
      { key: 'cf/set', type: 'set', element: 'x', origin: 'replay' },
    ])
    const refused = await api(url, '/v1/ns/default/watch?format=tiny')
    expect(refused.status).toBe(400)
    expect(refused.json.error.code).toBe('INVALID_PARAMETER')
  })

  it('still resumes from a c1 token (whole replica ids), and from a c2 token naming an unknown writer replays all', async () => {
    const first = await api(url, kv('old/a'), { method: 'PUT', body: '1' })
    await api(url, kv('old/b'), { method: 'PUT', body: '2' })
    const context = new CausalContext()
    context.addRange(first.json.replica, 1, first.json.counter)
    const c1 = `c1.${Buffer.from(encodeContext(context)).toString('base64url')}`
    const replay = await collectEvents(`${url}/v1/ns/default/watch?prefix=old/&since=${c1}`, {
      stop: (events) => events.some((e) => e.event === 'ready'),
    })
    expect(replay.filter((e) => e.event === 'change').map((e) => e.data.key)).toEqual(['old/b'])
    // A token of a writer this peer never saw: nothing it names is known, so everything is replayed.
    const stranger = new CausalContext()
    stranger.addRange('12D3KooWStrangerStrangerStrangerStrangerStranger~x', 1, 5)
    const all = await collectEvents(`${url}/v1/ns/default/watch?prefix=old/&since=${encodeSince(stranger)}`, {
      stop: (events) => events.some((e) => e.event === 'ready'),
    })
    expect(
      all
        .filter((e) => e.event === 'change')
        .map((e) => e.data.key)
        .sort(),
    ).toEqual(['old/a', 'old/b'])
  })

  it('a watch of an unjoined namespace is 404 and joins nothing; after PUT /v1/ns it streams', async () => {
    const refused = await api(url, '/v1/ns/watched-first/watch')
    expect(refused.status).toBe(404)
    expect(refused.json.error.code).toBe('NAMESPACE_NOT_FOUND')
    expect((await api(url, '/v1/ns/watched-first')).status).toBe(404)
    expect((await api(url, '/v1/ns/watched-first', { method: 'PUT' })).status).toBe(201)
    const events = await collectEvents(`${url}/v1/ns/watched-first/watch`, {
      stop: (events) => events.some((e) => e.event === 'ready'),
    })
    expect(events[0].data.namespace).toBe('watched-first')
  })
})

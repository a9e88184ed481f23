/**
 * The daemon's pieces in-process, without sockets: the HTTP app as a value (injected requests),
 * configuration precedence, the lock file, and the docs that must match the code.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pino } from 'pino'
import { afterAll, describe, expect, it } from 'vitest'
import { CausalContext } from '../src/crdt/context.ts'
import { type App, createApp } from '../src/daemon/app.ts'
import { loadConfig, SETTINGS } from '../src/daemon/config.ts'
import { DaemonStartError } from '../src/daemon/errors.ts'
import { type ApiResponse, type InjectOptions, injectRequest } from '../src/daemon/http.ts'
import { acquireLock, readLock } from '../src/daemon/lock.ts'
import { DaemonMetrics } from '../src/daemon/metrics.ts'
import { openApiDocument } from '../src/daemon/openapi.ts'
import { defaultDataDir } from '../src/daemon/paths.ts'
import { ReadCache } from '../src/daemon/read-cache.ts'
import { WatchHub } from '../src/daemon/watch.ts'
import { HearsayPeer } from '../src/peer/peer.ts'
import { Replica } from '../src/replica/replica.ts'
import { createMemoryStore } from '../src/store/memory.ts'
import { holdOpen } from './helpers/lock-holder.ts'

const dirs: string[] = []
const tempDir = () => {
  const dir = mkdtempSync(join(tmpdir(), 'hearsay-app-'))
  dirs.push(dir)
  return dir
}
afterAll(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true })
})

function appWithPeer(options: { requireIfMatch?: boolean } = {}): {
  app: App
  peer: HearsayPeer
  hub: WatchHub
} {
  const peer = new HearsayPeer({ store: createMemoryStore(), peerId: 'test-peer', namespaces: ['default'] })
  const metrics = new DaemonMetrics(peer)
  const hub = new WatchHub(peer, metrics, 60_000)
  const app = createApp({
    peer,
    metrics,
    hub,
    reads: new ReadCache(peer),
    logger: pino({ level: 'silent' }),
    info: () => ({
      version: 'test',
      url: 'http://test',
      dataDir: '/nowhere',
      meshName: 'm',
      mdns: false,
      bootstrap: [],
      topology: 'mesh',
      hubs: [],
      privateMesh: { swarmKey: false, allowPeers: 0 },
      startedAt: '',
    }),
    ...options,
  })
  return { app, peer, hub }
}

// biome-ignore lint/suspicious/noExplicitAny: responses are inspected field by field
async function call(app: App, options: InjectOptions): Promise<ApiResponse & { json?: any }> {
  const response = await app.handle(injectRequest(options))
  const body = response.body
  const text =
    typeof body === 'string' ? body : body instanceof Uint8Array ? Buffer.from(body).toString() : undefined
  let json: unknown
  try {
    json = text === undefined ? undefined : JSON.parse(text)
  } catch {
    json = undefined
  }
  return { ...response, json }
}

describe('the HTTP app without a socket', () => {
  it('writes and reads through injected requests', async () => {
    const { app } = appWithPeer()
    const put = await call(app, {
      method: 'PUT',
      url: '/v1/ns/default/kv/a',
      headers: { 'content-type': 'text/plain' },
      body: 'hello',
    })
    expect(put.status).toBe(200)
    const get = await call(app, { url: '/v1/ns/default/kv/a' })
    expect(get.status).toBe(200)
    expect(get.headers['content-type']).toBe('text/plain')
    expect(Buffer.from(get.body as Uint8Array).toString()).toBe('hello')
  })

  it('a cached read follows remote merges, local writes and deletes', async () => {
    const { app, peer } = appWithPeer()
    const text = async () => {
      const res = await call(app, { url: '/v1/ns/default/kv/k' })
      return res.status === 200 ? Buffer.from(res.body as Uint8Array).toString() : res.status
    }
    await call(app, { method: 'PUT', url: '/v1/ns/default/kv/k', body: 'local' })
    expect(await text()).toBe('local')
    // The peer runs without an identity key, so its entries carry a throwaway key's signatures.
    const other = Replica.open({ namespace: 'default', store: createMemoryStore(), verifier: () => true })
    await other.merge(peer.namespace('default').deltasSince(new CausalContext()))
    await other.put('k', new TextEncoder().encode('remote'), 'text/plain')
    await peer.namespace('default').merge(other.deltasSince(peer.namespace('default').context()))
    expect(await text()).toBe('remote')
    await call(app, { method: 'DELETE', url: '/v1/ns/default/kv/k' })
    expect(await text()).toBe(404)
  })

  it('answers 503 SHUTTING_DOWN once closed', async () => {
    const { app } = appWithPeer()
    app.close()
    const res = await call(app, { url: '/healthz' })
    expect([res.status, res.json.error.code]).toEqual([503, 'SHUTTING_DOWN'])
  })

  it('a peer without a mesh: no peers, dial is 503 MESH_UNAVAILABLE, ack waits answer 202 at once', async () => {
    const { app } = appWithPeer()
    expect((await call(app, { url: '/v1/peers' })).json).toEqual({ meshAttached: false, peers: [] })
    const dial = await call(app, {
      method: 'POST',
      url: '/v1/peers',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ address: '/ip4/127.0.0.1/tcp/7601' }),
    })
    expect([dial.status, dial.json.error.code]).toEqual([503, 'MESH_UNAVAILABLE'])
    const acked = await call(app, {
      method: 'PUT',
      url: '/v1/ns/default/kv/a?ack=1&timeout=60000',
      body: 'x',
    })
    expect(acked.status).toBe(202)
    expect(acked.json.ack).toMatchObject({ requested: 1, replicated: 0, reached: false })
    expect((await call(app, { url: '/v1/status' })).json.mesh).toMatchObject({
      attached: false,
      addresses: [],
    })
  })

  it('HEAD is answered like GET', async () => {
    const { app } = appWithPeer()
    expect((await call(app, { method: 'HEAD', url: '/healthz' })).status).toBe(200)
  })

  it('requireIfMatch: 428 for blind writes to existing keys, not for new keys', async () => {
    const { app } = appWithPeer({ requireIfMatch: true })
    const created = await call(app, { method: 'PUT', url: '/v1/ns/default/kv/k', body: 'v' })
    expect(created.status).toBe(200)
    expect((await call(app, { method: 'DELETE', url: '/v1/ns/default/kv/k' })).status).toBe(428)
    expect(
      (
        await call(app, {
          method: 'PUT',
          url: '/v1/ns/default/kv/k',
          headers: { 'if-match': '*' },
          body: 'w',
        })
      ).status,
    ).toBe(200)
  })

  it('a watch stream replays from a token, then carries live commits with ids only at commit ends', async () => {
    const { app, peer } = appWithPeer()
    const replica = peer.namespace('default')
    await replica.put('x/1', new TextEncoder().encode('1'), 'text/plain')
    const open = await app.handle(injectRequest({ url: '/v1/ns/default/watch?prefix=x/' }))
    const stream = open.body as AsyncIterableIterator<string>
    const ready = (await stream.next()).value as string
    const token = /^id: (.+)$/m.exec(ready)![1]
    // One commit with two changes: one id, on the last event.
    await Promise.all([
      replica.put('x/2', new Uint8Array(), 'text/plain'),
      replica.put('x/3', new Uint8Array(), 'text/plain'),
    ])
    const live = (await stream.next()).value as string
    expect(live.match(/^event: change$/gm)).toHaveLength(2)
    expect(live.match(/^id: /gm)).toHaveLength(1)
    expect(live.trimEnd().split('\n\n')[1]).toMatch(/^id: /)
    await stream.return!()

    const resumed = await app.handle(injectRequest({ url: `/v1/ns/default/watch?prefix=x/&since=${token}` }))
    const replay = (await (resumed.body as AsyncIterableIterator<string>).next()).value as string
    expect(replay.match(/"origin":"replay"/g)).toHaveLength(2)
    expect(replay).toContain('event: ready')
  })

  it('every route template is in the OpenAPI document', () => {
    const paths = Object.keys(openApiDocument().paths as object)
    for (const template of [
      '/healthz',
      '/metrics',
      '/v1/openapi.json',
      '/v1/status',
      '/v1/peers',
      '/v1/ns',
      '/v1/ns/{ns}',
      '/v1/ns/{ns}/kv',
      '/v1/ns/{ns}/kv/{key}',
      '/v1/ns/{ns}/counter/{key}',
      '/v1/ns/{ns}/set/{key}',
      '/v1/ns/{ns}/watch',
    ]) {
      expect(paths).toContain(template)
    }
  })

  it('docs/openapi.json is the generated document (regenerate: npm run docs:openapi)', () => {
    const docs = JSON.parse(readFileSync(new URL('../docs/openapi.json', import.meta.url), 'utf8'))
    expect(docs).toEqual(openApiDocument())
  })

  it('every error code and setting is documented', () => {
    const apiDoc = readFileSync(new URL('../docs/api.md', import.meta.url), 'utf8')
    const errors = readFileSync(new URL('../src/daemon/errors.ts', import.meta.url), 'utf8')
    const [apiCodes, startCodes] = errors.split('export type DaemonStartErrorCode')
    for (const [, code] of apiCodes.matchAll(/\| '([A-Z_]+)'/g)) expect(apiDoc).toContain(`\`${code}\``)
    const cliDoc = readFileSync(new URL('../docs/cli.md', import.meta.url), 'utf8')
    for (const [, code] of startCodes.matchAll(/\| '([A-Z_]+)'/g)) expect(cliDoc).toContain(`\`${code}\``)
    const configDoc = readFileSync(new URL('../docs/configuration.md', import.meta.url), 'utf8')
    for (const setting of SETTINGS) {
      expect(configDoc).toContain(`\`${setting.key}\``)
      expect(configDoc).toContain(`--${setting.flag}`)
      expect(configDoc).toContain(setting.env)
    }
  })
})

describe('configuration', () => {
  it('file < flags < environment, with typed parsing', () => {
    const dataDir = tempDir()
    writeFileSync(
      join(dataDir, 'config.json'),
      JSON.stringify({ apiPort: 1000, mdns: false, bootstrap: ['/ip4/1.2.3.4/tcp/1'] }),
    )
    const { config, sources } = loadConfig({
      dataDir,
      flags: { apiPort: '2000', listen: ['/ip4/127.0.0.1/tcp/0'] },
      env: { HEARSAY_API_PORT: '3000', HEARSAY_MDNS: 'yes', HEARSAY_NAMESPACES: 'a, b', HEARSAY_MESH: '' },
    })
    expect(config).toMatchObject({
      apiPort: 3000,
      mdns: true,
      namespaces: ['a', 'b'],
      bootstrap: ['/ip4/1.2.3.4/tcp/1'],
      listen: ['/ip4/127.0.0.1/tcp/0'],
      mesh: 'default',
    })
    expect(sources).toMatchObject({
      apiPort: 'env',
      mdns: 'env',
      bootstrap: 'file',
      listen: 'flag',
      mesh: 'default',
    })
  })

  it('refuses bad values naming where they came from', () => {
    const dataDir = tempDir()
    const attempt = (env: Record<string, string>) => () => loadConfig({ dataDir, env })
    expect(attempt({ HEARSAY_API_PORT: '70000' })).toThrow(/HEARSAY_API_PORT/)
    expect(attempt({ HEARSAY_MDNS: 'sometimes' })).toThrow(DaemonStartError)
    expect(attempt({ HEARSAY_SYNCHRONOUS: 'OFF' })).toThrow(/FULL, NORMAL/)
    expect(attempt({ HEARSAY_LISTEN: 'not-an-address' })).toThrow(/multiaddr/)
    expect(attempt({ HEARSAY_NAMESPACES: 'ok,bad name' })).toThrow(/bad name/)
    expect(attempt({ HEARSAY_ALLOW_PEERS: 'not-a-peer-id' })).toThrow(/not a peer id/)
    expect(attempt({ HEARSAY_API_MAX_CONNECTIONS: '0' })).toThrow(/apiMaxConnections/)
    expect(attempt({ HEARSAY_MESH_PEERS: '2' })).toThrow(/meshPeers/)
    expect(loadConfig({ dataDir, env: { HEARSAY_MESH_PEERS: '5' } }).config.meshPeers).toBe(5)
    expect(attempt({ HEARSAY_WATCH_QUEUE_BYTES: '1000' })).toThrow(/watchQueueBytes/)
    expect(attempt({ HEARSAY_WATCH_QUEUE_BYTES: '8MiB' })).toThrow(/HEARSAY_WATCH_QUEUE_BYTES/)
    expect(
      loadConfig({ dataDir, env: { HEARSAY_API_ALLOWED_HOSTS: 'a.test, b.test' } }).config.apiAllowedHosts,
    ).toEqual(['a.test', 'b.test'])
    writeFileSync(join(dataDir, 'config.json'), '[]')
    expect(attempt({})).toThrow(/JSON object/)
  })

  it('puts the data dir under the platform data path', () => {
    expect(defaultDataDir({ XDG_DATA_HOME: '/x', HOME: '/h' }, 'linux')).toBe('/x/hearsay')
    expect(defaultDataDir({ XDG_DATA_HOME: 'relative', HOME: '/h' }, 'linux')).toBe('/h/.local/share/hearsay')
    expect(defaultDataDir({ LOCALAPPDATA: 'C:\\L' }, 'win32')).toContain('hearsay')
  })
})

describe('lock file', () => {
  it('is exclusive while its process lives, taken over when it is dead', async () => {
    const path = join(tempDir(), 'daemon.lock')
    writeFileSync(path, JSON.stringify({ pid: 999_999_999, startedAt: '' }))
    expect(readLock(path).state).toBe('stale')
    const lock = acquireLock(path)
    lock.update({ url: 'http://127.0.0.1:1' })
    expect(JSON.parse(readFileSync(path, 'utf8'))).toMatchObject({
      pid: process.pid,
      url: 'http://127.0.0.1:1',
    })
    // A lock held by a live process that has it open (as a daemon does) is refused.
    const holder = await holdOpen(path)
    try {
      writeFileSync(path, JSON.stringify({ pid: holder.pid, startedAt: '' }))
      expect(() => acquireLock(path)).toThrow(/another hearsay daemon/)
      lock.release()
      // Released while naming another process: the file is left alone.
      expect(readLock(path).state).toBe('live')
    } finally {
      await holder.stop()
    }
  })
})

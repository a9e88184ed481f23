/**
 * Three daemons on loopback, joined by bootstrap (mDNS off): what the API shows of replication.
 * NEEDS THE MESH: every test here depends on attachMesh (src/peer/attach-mesh.ts) actually
 * connecting peers; with a stub that returns no mesh, they fail at the first convergence wait.
 */
import { copyFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  api,
  collectEvents,
  type DaemonProcess,
  removeHomes,
  runCli,
  startDaemon,
  stopAllDaemons,
  tempHome,
  until,
} from './helpers/daemon.ts'
import { expectCleanLog } from './helpers/log-check.ts'

let a: DaemonProcess
let b: DaemonProcess
let c: DaemonProcess

beforeAll(async () => {
  a = await startDaemon()
  if (!a.meshAttached || a.addresses.length === 0)
    throw new Error('needs the mesh: attachMesh returned no mesh')
  ;[b, c] = await Promise.all([
    startDaemon({ args: ['--bootstrap', a.addresses[0]] }),
    startDaemon({ args: ['--bootstrap', a.addresses[0]] }),
  ])
  await until(async () => ((await api(a.url, '/v1/status')).json.peers.connected >= 2 ? true : undefined), {
    message: 'A connected to B and C',
    timeoutMs: 15_000,
  })
})

afterAll(async () => {
  await stopAllDaemons()
  removeHomes()
})

const kv = (key: string) => `/v1/ns/default/kv/${key}`

async function valueOn(peer: DaemonProcess, key: string): Promise<string | undefined> {
  const res = await api(peer.url, kv(key))
  return res.status === 200 ? res.text : undefined
}

describe('replication seen through the API (needs the mesh)', () => {
  it('GET /v1/peers lists connected peers with addresses', async () => {
    const peers = (await api(a.url, '/v1/peers')).json.peers
    const ids = peers
      .filter((p: { connected: boolean }) => p.connected)
      .map((p: { peerId: string }) => p.peerId)
    expect(ids).toEqual(expect.arrayContaining([b.peerId, c.peerId]))
  })

  it('a write on one peer converges on the others, and so does its delete', async () => {
    await api(a.url, kv('shared'), { method: 'PUT', body: 'from A' })
    for (const peer of [b, c]) {
      expect(await until(() => valueOn(peer, 'shared'), { message: `converge on ${peer.peerId}` })).toBe(
        'from A',
      )
    }
    await api(a.url, kv('shared'), { method: 'DELETE' })
    for (const peer of [b, c]) {
      await until(async () => ((await api(peer.url, kv('shared'))).status === 404 ? true : undefined), {
        message: 'delete converges',
      })
    }
  })

  it('?ack=2 waits until two other peers hold the write (200)', async () => {
    const res = await api(a.url, `${kv('acked')}?ack=2&timeout=10000`, { method: 'PUT', body: 'held' })
    expect(res.status).toBe(200)
    expect(res.json.ack).toMatchObject({ requested: 2, reached: true })
    expect(res.json.ack.replicated).toBeGreaterThanOrEqual(2)
  })

  it('a watch on one peer delivers changes written on another (origin remote)', async () => {
    const events = await collectEvents(`${b.url}/v1/ns/default/watch?prefix=chat/`, {
      onOpen: () =>
        api(c.url, kv('chat/1'), {
          method: 'PUT',
          headers: { 'content-type': 'application/json' },
          body: '{"text":"hi"}',
        }).then(() => {}),
      stop: (events) => events.some((e) => e.event === 'change'),
    })
    const change = events.find((e) => e.event === 'change')!
    expect(change.data).toMatchObject({ key: 'chat/1', origin: 'remote', value: { text: 'hi' } })
  })

  it('concurrent writes on two peers become siblings everywhere; If-Match resolves them', async () => {
    const base = await api(a.url, `${kv('conflict')}?ack=2&timeout=10000`, { method: 'PUT', body: 'v0' })
    await until(() => valueOn(b, 'conflict'))
    await until(() => valueOn(c, 'conflict'))
    // Both writers saw only v0: neither write supersedes the other.
    await Promise.all([
      api(b.url, kv('conflict'), { method: 'PUT', headers: { 'if-match': base.json.etag }, body: 'from B' }),
      api(c.url, kv('conflict'), { method: 'PUT', headers: { 'if-match': base.json.etag }, body: 'from C' }),
    ])
    const siblings = await until(
      async () => {
        const res = await api(a.url, `${kv('conflict')}?siblings=1`)
        return res.json.siblings.length === 2 ? res.json : undefined
      },
      { message: 'both siblings on A' },
    )
    expect(siblings.siblings.map((s: { value: string }) => s.value).sort()).toEqual(['from B', 'from C'])
    await api(a.url, kv('conflict'), {
      method: 'PUT',
      headers: { 'if-match': siblings.etag },
      body: 'merged',
    })
    for (const peer of [b, c]) {
      await until(
        async () => {
          const res = await api(peer.url, `${kv('conflict')}?siblings=1`)
          return res.json.siblings.length === 1 && res.json.siblings[0].value === 'merged' ? true : undefined
        },
        { message: 'resolution converges' },
      )
    }
  })

  it('a watch sends a conflict event when a change leaves a key with siblings, and none when it resolves', async () => {
    const key = 'watched/conflict'
    const base = await api(a.url, `${kv(key)}?ack=2&timeout=10000`, { method: 'PUT', body: 'v0' })
    await until(() => valueOn(b, key))
    await until(() => valueOn(c, key))
    const events = await collectEvents(`${a.url}/v1/ns/default/watch?prefix=watched/`, {
      onOpen: async () => {
        // Both writers saw only v0: their writes become siblings on A.
        await Promise.all([
          api(b.url, kv(key), { method: 'PUT', headers: { 'if-match': base.json.etag }, body: 'from B' }),
          api(c.url, kv(key), { method: 'PUT', headers: { 'if-match': base.json.etag }, body: 'from C' }),
        ])
      },
      stop: (events) => events.some((e) => e.event === 'conflict'),
      timeoutMs: 20_000,
    })
    const conflicts = events.filter((e) => e.event === 'conflict')
    expect(conflicts).toHaveLength(1)
    expect(conflicts[0].data).toMatchObject({ key, op: 'put', siblings: 2, origin: 'remote' })
    // The conflict follows the change it describes, with the same data.
    const at = events.indexOf(conflicts[0])
    expect(events[at - 1].event).toBe('change')
    expect(events[at - 1].data).toEqual(conflicts[0].data)
    // Resolving it is a change, not a conflict.
    const read = await api(a.url, `${kv(key)}?siblings=1`)
    const after = await collectEvents(`${a.url}/v1/ns/default/watch?prefix=watched/&format=compact`, {
      onOpen: () =>
        api(a.url, kv(key), {
          method: 'PUT',
          headers: { 'if-match': read.json.etag, 'content-type': 'text/plain' },
          body: 'merged',
        }).then(() => {}),
      stop: (events) => events.some((e) => e.event === 'change'),
    })
    expect(after.filter((e) => e.event === 'change').map((e) => e.data)).toEqual([
      { key, encoding: 'utf8', contentType: 'text/plain', value: 'merged' },
    ])
    expect(after.some((e) => e.event === 'conflict')).toBe(false)
  })

  it('counters from every peer add up everywhere', async () => {
    await Promise.all(
      [a, b, c].map((peer) =>
        api(peer.url, '/v1/ns/default/counter/total', {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: '{"by":5}',
        }),
      ),
    )
    for (const peer of [a, b, c]) {
      await until(
        async () =>
          (await api(peer.url, '/v1/ns/default/counter/total')).json.value === 15 ? true : undefined,
        {
          message: 'counter converges to 15',
        },
      )
    }
  })

  it('POST /v1/peers dials a peer directly', async () => {
    const res = await api(b.url, '/v1/peers', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ address: c.addresses[0] }),
    })
    expect(res.status).toBe(200)
    expect(res.json.peerId).toBe(c.peerId)
  })

  it('metrics show merges, protocol bytes and convergence lag', async () => {
    const text = (await api(b.url, '/metrics')).text
    const value = (pattern: RegExp) => Number(text.match(pattern)?.[1] ?? 0)
    expect(value(/hearsay_key_changes_total\{namespace="default",origin="remote"\} (\d+)/)).toBeGreaterThan(0)
    expect(value(/hearsay_convergence_lag_seconds_count (\d+)/)).toBeGreaterThan(0)
    expect(value(/hearsay_peers\{state="connected"\} (\d+)/)).toBeGreaterThan(0)
    expect(text).toMatch(/^hearsay_unhandled_rejections_total 0$/m)
  })

  it('?ack on a peer with nobody connected waits for the timeout and answers 202', async () => {
    const alone = await startDaemon()
    const started = performance.now()
    const res = await api(alone.url, `${kv('lonely')}?ack=1&timeout=1500`, { method: 'PUT', body: 'x' })
    expect(res.status).toBe(202)
    expect(res.json.ack).toEqual({ requested: 1, replicated: 0, reached: false, timeoutMs: 1500 })
    expect(performance.now() - started).toBeGreaterThanOrEqual(1450)
    expectCleanLog(alone.stderr(), 'lone peer')
  })

  it('no daemon logged an error or an unhandled rejection', () => {
    for (const [name, daemon] of Object.entries({ a, b, c })) expectCleanLog(daemon.stderr(), name)
  })
})

describe('a private mesh (needs the mesh)', () => {
  it('peers sharing swarm.key replicate; status says the mesh is private', async () => {
    const homes = [tempHome(), tempHome()]
    expect((await runCli(['init', '--new-swarm-key'], { home: homes[0] })).code).toBe(0)
    copyFileSync(join(homes[0], 'swarm.key'), join(homes[1], 'swarm.key'))
    const first = await startDaemon({ home: homes[0] })
    const second = await startDaemon({ home: homes[1], args: ['--bootstrap', first.addresses[0]] })
    expect((await api(first.url, '/v1/status')).json.mesh.private).toEqual({ swarmKey: true, allowPeers: 0 })
    await api(first.url, kv('secret'), { method: 'PUT', body: 'only for us' })
    expect(await until(() => valueOn(second, 'secret'), { message: 'private mesh converges' })).toBe(
      'only for us',
    )
  })
})

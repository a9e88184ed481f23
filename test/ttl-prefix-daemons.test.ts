/**
 * Delete by prefix and expiring keys over three real daemons on loopback, one of them offline while
 * the prefix delete happens and while the expiring key reaches its deadline.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  api,
  collectEvents,
  type DaemonProcess,
  removeHomes,
  runCli,
  startDaemon,
  stopAllDaemons,
  until,
} from './helpers/daemon.ts'

let a: DaemonProcess
let b: DaemonProcess
let c: DaemonProcess

const kv = (key: string) => `/v1/ns/default/kv/${key}`

async function connected(peer: DaemonProcess, count: number, message: string): Promise<void> {
  await until(
    async () => ((await api(peer.url, '/v1/status')).json.peers.connected >= count ? true : undefined),
    {
      message,
      timeoutMs: 20_000,
    },
  )
}

async function status(peer: DaemonProcess, key: string): Promise<number> {
  return (await api(peer.url, kv(key))).status
}

async function waitStatus(
  peer: DaemonProcess,
  key: string,
  expected: number,
  message: string,
): Promise<void> {
  await until(async () => ((await status(peer, key)) === expected ? true : undefined), {
    message,
    timeoutMs: 20_000,
  })
}

beforeAll(async () => {
  a = await startDaemon()
  if (!a.meshAttached || a.addresses.length === 0)
    throw new Error('needs the mesh: attachMesh returned no mesh')
  ;[b, c] = await Promise.all([
    startDaemon({ args: ['--bootstrap', a.addresses[0]] }),
    startDaemon({ args: ['--bootstrap', a.addresses[0]] }),
  ])
  await connected(a, 2, 'A connected to B and C')
}, 60_000)

afterAll(async () => {
  await stopAllDaemons()
  removeHomes()
})

describe('bad input (nothing is written)', () => {
  it('refuses a prefix delete without a prefix unless all=1', async () => {
    for (const query of ['', '?prefix=', '?prefix=&all=0', '?prefix=x&all=1']) {
      const res = await api(a.url, `/v1/ns/default/kv${query}`, { method: 'DELETE' })
      expect(res.status, query).toBe(400)
      expect(res.json.error.code).toBe('INVALID_PARAMETER')
    }
  })

  it('refuses a ttl of 0, negative, without unit, under 1 s or over 30 days', async () => {
    for (const ttl of ['0s', '0', '-5s', '10', '500ms', '31d', '721h', '99999999999h', 'abc', '']) {
      const res = await api(a.url, `${kv('bad-ttl')}?ttl=${encodeURIComponent(ttl)}`, {
        method: 'PUT',
        body: 'v',
      })
      expect(res.status, ttl).toBe(400)
      expect(res.json.error.code).toBe('INVALID_PARAMETER')
    }
    expect(await status(a, 'bad-ttl')).toBe(404)
  })

  it('touch needs a ttl and an existing key', async () => {
    expect((await api(a.url, `${kv('absent')}/touch?ttl=1m`, { method: 'POST' })).status).toBe(404)
    await api(a.url, kv('touched'), { method: 'PUT', body: 'v' })
    const noTtl = await api(a.url, `${kv('touched')}/touch`, { method: 'POST' })
    expect(noTtl.status).toBe(400)
    expect(noTtl.json.error.code).toBe('INVALID_PARAMETER')
  })
})

describe('?ack when nothing was written', () => {
  it('a prefix that matches nothing and a set remove of an absent member answer 200, ack reached', async () => {
    const prefix = await api(a.url, '/v1/ns/default/kv?prefix=nothing-here/&ack=2', { method: 'DELETE' })
    expect(prefix.status).toBe(200)
    expect(prefix.json).toMatchObject({ deleted: 0, ack: { requested: 2, replicated: 0, reached: true } })
    const set = await api(a.url, '/v1/ns/default/set/tags?ack=2', {
      method: 'POST',
      body: JSON.stringify({ remove: ['absent'] }),
      headers: { 'content-type': 'application/json' },
    })
    expect(set.status).toBe(200)
    expect(set.json).toMatchObject({ removed: [], ack: { requested: 2, replicated: 0, reached: true } })
  })
})

describe('three peers, one offline during the operation', () => {
  it('the offline peer loses the deleted keys and the expired key when it comes back', async () => {
    for (const key of ['p/1', 'p/2', 'p/3', 'q/1']) await api(a.url, kv(key), { method: 'PUT', body: key })
    const lease = await api(a.url, `${kv('lease')}?ttl=8s`, { method: 'PUT', body: 'held' })
    expect(lease.status).toBe(200)
    const expiresAt = Date.parse(lease.json.expiresAt)
    expect(expiresAt - Date.parse(lease.json.writtenAt)).toBe(8_000)
    for (const peer of [b, c]) {
      await waitStatus(peer, 'p/3', 200, 'p/3 reaches every peer')
      await waitStatus(peer, 'lease', 200, 'the lease reaches every peer')
    }
    // B announces the expiry on its watch stream when its clock passes the deadline.
    const watched = collectEvents(`${b.url}/v1/ns/default/watch?prefix=lease`, {
      stop: (events) => events.some((e) => (e.data as { origin?: string })?.origin === 'expire'),
      timeoutMs: 30_000,
    })

    const cHome = c.home
    await c.stop()
    const deleted = await api(a.url, '/v1/ns/default/kv?prefix=p/&ack=1&timeout=10000', { method: 'DELETE' })
    expect(deleted.status).toBe(200)
    expect(deleted.json).toMatchObject({ prefix: 'p/', deleted: 3, ack: { reached: true } })
    for (const key of ['p/1', 'p/2', 'p/3']) {
      expect(await status(a, key)).toBe(404)
      await waitStatus(b, key, 404, `${key} deleted on B`)
    }
    expect(await status(b, 'q/1')).toBe(200)

    const events = await watched
    const expired = events.find((e) => (e.data as { origin?: string })?.origin === 'expire')
    expect(expired?.data).toMatchObject({ key: 'lease', op: 'delete', origin: 'expire' })
    expect(Date.now()).toBeGreaterThanOrEqual(expiresAt - 60_000)
    expect(await status(a, 'lease')).toBe(404)
    expect(await status(b, 'lease')).toBe(404)

    // C comes back from its data dir: the expiry survived the restart, anti-entropy brings the deletes.
    c = await startDaemon({ home: cHome, args: ['--bootstrap', a.addresses[0]] })
    expect(await status(c, 'lease')).toBe(404)
    for (const key of ['p/1', 'p/2', 'p/3'])
      await waitStatus(c, key, 404, `${key} deleted on C after it came back`)
    expect(await status(c, 'q/1')).toBe(200)
    const list = await api(c.url, '/v1/ns/default/kv?prefix=p/')
    expect(list.json.items).toEqual([])
  }, 120_000)

  it('touch renews a key with a new deadline', async () => {
    const first = await api(a.url, `${kv('renewed')}?ttl=1h`, { method: 'PUT', body: 'v' })
    const touched = await api(a.url, `${kv('renewed')}/touch?ttl=2h`, { method: 'POST' })
    expect(touched.status).toBe(200)
    expect(Date.parse(touched.json.expiresAt)).toBeGreaterThan(Date.parse(first.json.expiresAt))
    expect((await api(a.url, kv('renewed'))).text).toBe('v')
    await until(
      async () => {
        const sibling = await api(b.url, `${kv('renewed')}?siblings=1`)
        return sibling.status === 200 &&
          sibling.json.siblings.length === 1 &&
          sibling.json.siblings[0].counter === touched.json.counter
          ? true
          : undefined
      },
      { message: 'the touch reaches B', timeoutMs: 20_000 },
    )
  })
})

describe('CLI', () => {
  const cli = (args: string[], input?: string) => runCli(args, { home: a.home, input })

  it('put --ttl, touch, and del --prefix with a confirmation that shows the count', async () => {
    const put = await cli(['put', 'cli/1', 'one', '--ttl', '30s', '--json'])
    expect(put.code, put.stderr).toBe(0)
    expect(JSON.parse(put.stdout).expiresAt).toBeDefined()
    expect((await cli(['put', 'cli/2', 'two'])).code).toBe(0)
    expect((await cli(['put', 'x', 'y', '--ttl', '0s'])).code).not.toBe(0)
    const touch = await cli(['touch', 'cli/1', '--ttl', '1h'])
    expect(touch.code, touch.stderr).toBe(0)
    expect(touch.stdout).toContain('expires')

    const refused = await cli(['del', '--prefix', ''])
    expect(refused.code).not.toBe(0)
    expect(refused.stderr).toContain('--all')

    const declined = await cli(['del', '--prefix', 'cli/'], 'n\n')
    expect(declined.code).toBe(0)
    expect(declined.stderr).toContain('delete 2 key(s)')
    expect(await status(a, 'cli/2')).toBe(200)

    const confirmed = await cli(['del', '--prefix', 'cli/'], 'y\n')
    expect(confirmed.code, confirmed.stderr).toBe(0)
    expect(confirmed.stdout).toContain('deleted  2 key(s)')
    expect(await status(a, 'cli/1')).toBe(404)

    await cli(['put', 'cli/3', 'three'])
    const yes = await cli(['del', '--prefix', 'cli/', '--yes', '--json'])
    expect(JSON.parse(yes.stdout)).toMatchObject({ deleted: 1 })

    // --all (no prefix) deletes every key of the namespace.
    const all = await cli(['del', '--all', '--yes', '--json'])
    expect(all.code, all.stderr).toBe(0)
    expect(JSON.parse(all.stdout).deleted).toBeGreaterThan(0)
    expect((await api(a.url, '/v1/ns/default/kv')).json.items).toEqual([])
  }, 60_000)
})

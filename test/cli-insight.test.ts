/**
 * `hearsay conflicts`, `resolve`, `explain`, `status --peers` and `events` through the built CLI
 * against real daemon processes; the conflicts API's pagination.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  api,
  type DaemonProcess,
  removeHomes,
  runCli,
  startDaemon,
  stopAllDaemons,
  until,
} from './helpers/daemon.ts'

let a: DaemonProcess

const kv = (key: string) => `/v1/ns/default/kv/${key}`
const cli = (args: string[]) => runCli([...args, '--api', a.url], { home: a.home, timeoutMs: 30_000 })

async function put(key: string, value: string, ifMatch?: string): Promise<string> {
  const response = await api(a.url, kv(key), {
    method: 'PUT',
    headers: { 'content-type': 'text/plain', ...(ifMatch === undefined ? {} : { 'if-match': ifMatch }) },
    body: value,
  })
  expect(response.status).toBe(200)
  return response.headers.get('etag')!
}

/** Two writes made from the same read: neither saw the other, so both stay as siblings. */
async function conflict(key: string): Promise<void> {
  const read = await put(key, 'base')
  await put(key, 'left', read)
  await put(key, 'right', read)
}

beforeAll(async () => {
  a = await startDaemon()
  for (let i = 0; i < 5; i++) await conflict(`c${i}`)
  for (let i = 0; i < 5; i++) await put(`n${i}`, 'plain')
}, 60_000)

afterAll(async () => {
  await stopAllDaemons()
  removeHomes()
})

describe('GET /v1/ns/{ns}/conflicts', () => {
  it('lists keys with siblings a page at a time, in key order', async () => {
    const keys: string[] = []
    let cursor: string | null = null
    for (let page = 0; page < 10; page++) {
      const query: string = cursor === null ? '?limit=2' : `?limit=2&cursor=${encodeURIComponent(cursor)}`
      const response = await api(a.url, `/v1/ns/default/conflicts${query}`)
      expect(response.status).toBe(200)
      expect(response.json.conflicts.length).toBeLessThanOrEqual(2)
      for (const item of response.json.conflicts) {
        expect(item.siblings).toBe(2)
        expect(typeof item.etag).toBe('string')
        keys.push(item.key)
      }
      cursor = response.json.cursor
      if (cursor === null) break
    }
    expect(cursor).toBeNull()
    expect(keys).toEqual(['c0', 'c1', 'c2', 'c3', 'c4'])
    expect((await api(a.url, '/v1/ns/default/conflicts?prefix=n')).json.conflicts).toEqual([])
    expect((await api(a.url, '/v1/ns/default/conflicts?limit=0')).status).toBe(400)
    expect((await api(a.url, '/v1/ns/nowhere/conflicts')).status).toBe(404)
  })
})

describe('the CLI', () => {
  it('hearsay conflicts and explain show the siblings; resolve --pick and --value clear them', async () => {
    const listed = await cli(['conflicts', '--json'])
    expect(listed.code).toBe(0)
    expect(JSON.parse(listed.stdout).conflicts.map((c: { key: string }) => c.key)).toEqual([
      'c0',
      'c1',
      'c2',
      'c3',
      'c4',
    ])

    const explained = await cli(['explain', 'c0'])
    expect(explained.code).toBe(0)
    expect(explained.stdout).toContain('2 values were written concurrently')
    expect(explained.stdout).toContain('a read returns this one')
    expect(explained.stdout).toContain(`written by peer ${a.peerId}`)
    const json = JSON.parse((await cli(['explain', 'c0', '--json'])).stdout)
    expect(json.siblings.map((s: { value: string }) => s.value)).toEqual(['left', 'right'])

    const picked = await cli(['resolve', 'c0', '--pick', '1'])
    expect(picked.code).toBe(0)
    expect(picked.stdout).toContain('2 values were replaced by sibling 1')
    const c0 = await api(a.url, kv('c0'))
    expect(c0.text).toBe('left')
    expect(c0.headers.get('x-hearsay-siblings')).toBe('1')
    expect(c0.headers.get('content-type')).toBe('text/plain')

    expect((await cli(['resolve', 'c1', '--value', 'fresh'])).code).toBe(0)
    const c1 = await api(a.url, kv('c1'))
    expect(c1.text).toBe('fresh')
    expect(c1.headers.get('x-hearsay-siblings')).toBe('1')

    const after = JSON.parse((await cli(['conflicts', '--json'])).stdout)
    expect(after.conflicts.map((c: { key: string }) => c.key)).toEqual(['c2', 'c3', 'c4'])
    const plain = await cli(['conflicts', '--prefix', 'c2'])
    expect(plain.stdout).toMatch(/c2\s+2/)
  })

  it('refuses bad usage and unknown keys with the usual exit codes', async () => {
    expect((await cli(['resolve', 'c2'])).code).toBe(2)
    expect((await cli(['resolve', 'c2', '--pick', '3'])).code).toBe(2)
    expect((await cli(['resolve', 'c2', '--pick', '1', '--value', 'x'])).code).toBe(2)
    const missing = await cli(['explain', 'never-written'])
    expect(missing.code).toBe(4)
    expect(missing.stderr).toContain('no key "never-written"')
  })

  it('hearsay events prints a peer connecting, and status --peers shows it', async () => {
    const events = cli(['events', '--json', '--count', '1'])
    await until(
      async () =>
        (await api(a.url, '/metrics')).text.includes('hearsay_event_clients 1') ? true : undefined,
      { timeoutMs: 15_000, message: 'the events command is subscribed' },
    )
    const b = await startDaemon({ args: ['--bootstrap', a.addresses[0]] })
    const done = await events
    expect(done.code).toBe(0)
    const event = JSON.parse(done.stdout.trim())
    expect(event).toMatchObject({ type: 'peer-connected', peerId: b.peerId })

    await until(
      async () => {
        const status = await cli(['status', '--peers'])
        return status.code === 0 &&
          status.stdout.includes(b.peerId.slice(0, 8)) &&
          status.stdout.includes('connected')
          ? true
          : undefined
      },
      { timeoutMs: 30_000, message: 'status --peers lists b' },
    )
    const json = JSON.parse((await cli(['status', '--peers', '--json'])).stdout)
    expect(json.peers.map((p: { peerId: string }) => p.peerId)).toContain(b.peerId)
  }, 60_000)
})

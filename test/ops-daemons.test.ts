import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, afterEach, describe, expect, it } from 'vitest'
import { HearsayPeer } from '../src/peer/peer.ts'
import { restoreStoreFile, verifyStoreFile } from '../src/store/backup.ts'
import { openSqliteStore } from '../src/store/sqlite.ts'
import {
  type ApiResult,
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

/** Backup, restore, export, import and leave on real daemon processes and the real `hearsay` command. */

afterEach(async () => {
  await stopAllDaemons()
})
afterAll(() => removeHomes())

const kv = (ns: string, key: string) => `/v1/ns/${ns}/kv/${encodeURIComponent(key)}`
const putText = (url: string, ns: string, key: string, value: string) =>
  api(url, kv(ns, key), { method: 'PUT', headers: { 'content-type': 'text/plain' }, body: value })
const postJson = (url: string, path: string, body: unknown, method = 'POST') =>
  api(url, path, { method, headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })

describe('backup and restore', () => {
  it('backs up a daemon under write load; the backup holds every write acknowledged before it', async () => {
    const d = await startDaemon()
    const acked: string[] = []
    let stop = false
    // Four writers over HTTP, running the whole time.
    const writers = [0, 1, 2, 3].map(async (w) => {
      for (let i = 0; i < 50_000 && !stop; i++) {
        const res = await putText(d.url, 'app', `w${w}/${i}`, `${w}:${i}`)
        if (res.status === 200 || res.status === 201) acked.push(`w${w}/${i}`)
      }
    })
    await until(() => (acked.length >= 200 ? true : undefined), { timeoutMs: 30_000 })
    const before = [...acked]
    const file = join(tempHome(), 'app.backup.db')
    const cli = await runCli(['backup', file], { home: d.home, timeoutMs: 30_000 })
    const after = acked.length
    stop = true
    await Promise.all(writers)
    expect(cli.stderr).toBe('')
    expect(cli.code).toBe(0)
    expect(cli.stdout).toMatch(/backed up \d+ entries in \d namespace\(s\) to .*integrity ok/)
    expect(after).toBeGreaterThan(before.length)

    expect(verifyStoreFile(file).namespaces).toContain('app')
    const database = join(tempHome(), 'hearsay.db')
    restoreStoreFile({ file, database })
    const peer = new HearsayPeer({ store: openSqliteStore({ path: database }), peerId: 'reader' })
    try {
      const replica = peer.namespace('app')
      for (const key of before) {
        const [w, i] = key.slice(1).split('/')
        expect(Buffer.from(replica.get(key)!.winner.value).toString()).toBe(`${w}:${i}`)
      }
    } finally {
      await peer.stop()
    }
  })

  it('says clearly why a backup or a restore cannot be done', async () => {
    const d = await startDaemon()
    await putText(d.url, 'app', 'k', 'v')
    const dir = tempHome()
    const regularFile = join(dir, 'a-file')
    writeFileSync(regularFile, 'x')

    // The CLI cannot write its target: it says why, and where the daemon's copy is kept.
    const viaCli = await runCli(['backup', join(regularFile, 'b.db')], { home: d.home })
    expect(viaCli.code).toBe(5)
    expect(viaCli.stderr).toMatch(
      /BACKUP_FAILED: cannot write .*a-file\/b\.db: ENOTDIR.*the backup is kept at .*backups\/backup-/,
    )
    const exists = await runCli(['backup', regularFile], { home: d.home })
    expect(exists.code).toBe(5)
    expect(exists.stderr).toMatch(/BACKUP_EXISTS: .*a-file exists; pass --force/)
    expect(readFileSync(regularFile, 'utf8')).toBe('x')

    // The API writes only plain names inside the data dir's backups/.
    for (const name of ['../escape.db', '/etc/passwd', '.hidden', '']) {
      const refused = await postJson(d.url, '/v1/admin/backup', { name })
      expect(refused.status, name).toBe(400)
      expect(refused.json.error.code).toBe('INVALID_BODY')
    }
    const first = await postJson(d.url, '/v1/admin/backup', { name: 'ok.db' })
    expect(first.status).toBe(201)
    expect(first.json).toMatchObject({
      path: join(d.home, 'backups', 'ok.db'),
      integrity: 'ok',
      namespaces: expect.arrayContaining(['app']),
    })
    const again = await postJson(d.url, '/v1/admin/backup', { name: 'ok.db' })
    expect(again.status).toBe(409)
    expect(again.json.error.code).toBe('BACKUP_EXISTS')
    expect((await postJson(d.url, '/v1/admin/backup', { name: 'ok.db', overwrite: true })).status).toBe(201)

    const running = await runCli(['restore', first.json.path, '--force'], { home: d.home })
    expect(running.code).toBe(5)
    expect(running.stderr).toMatch(
      /DATA_DIR_LOCKED: the daemon for .* is running \(pid \d+\); stop it before restoring/,
    )
    expect((await api(d.url, kv('app', 'k'))).text).toBe('v')

    const notAStore = await runCli(['restore', regularFile], { home: tempHome() })
    expect(notAStore.code).toBe(1)
    expect(notAStore.stderr).toMatch(/STORE_CORRUPT: .*a-file is not a hearsay store/)

    // A backups dir that cannot be made: the API says why.
    const blocked = await startDaemon()
    writeFileSync(join(blocked.home, 'backups'), 'in the way')
    const unwritable = await postJson(blocked.url, '/v1/admin/backup', { name: 'b.db' })
    expect(unwritable.status).toBe(422)
    expect(unwritable.json.error.code).toBe('BACKUP_FAILED')
    expect(unwritable.json.error.message).toMatch(/cannot create .*backups: EEXIST/)
  })

  it('a peer restored from before a delete rejoins the mesh and converges to the delete', async () => {
    const a = await startDaemon()
    const b = await startDaemon({ args: ['--bootstrap', a.addresses[0]] })
    let c: DaemonProcess = await startDaemon({ args: ['--bootstrap', a.addresses[0]] })
    for (const d of [a, b, c]) expect((await api(d.url, '/v1/ns/app', { method: 'PUT' })).status).toBe(201)
    await putText(a.url, 'app', 'doomed', 'soon deleted')
    await putText(a.url, 'app', 'kept', 'stays')
    for (const d of [b, c]) {
      await until(async () => ((await api(d.url, kv('app', 'doomed'))).status === 200 ? true : undefined), {
        timeoutMs: 30_000,
        message: 'the write reaches every peer',
      })
    }
    const file = join(tempHome(), 'c-before-delete.db')
    expect((await runCli(['backup', file], { home: c.home })).code).toBe(0)
    const oldReplica = (await api(c.url, '/v1/ns/app')).json.replicaId
    await api(c.url, kv('app', 'written-by-c'), { method: 'PUT', body: 'c1' })

    expect((await api(a.url, kv('app', 'doomed'), { method: 'DELETE' })).status).toBe(200)
    await putText(a.url, 'app', 'after', 'written after the backup')
    for (const d of [b, c]) {
      await until(async () => ((await api(d.url, kv('app', 'doomed'))).status === 404 ? true : undefined), {
        timeoutMs: 30_000,
        message: 'the delete reaches every peer',
      })
    }

    const home = c.home
    const cPeerId = c.peerId
    await c.stop('SIGTERM')
    // A forgets C while it is away (refused until A has noticed it left); it returns a member again.
    const forgotten = await until(
      async () => {
        const run = await runCli(['peers', 'forget', cPeerId], { home: a.home })
        return run.code === 0 ? run : undefined
      },
      { timeoutMs: 30_000, message: 'A forgets the departed peer' },
    )
    expect(forgotten.stdout).toBe(`forgot ${cPeerId}\n`)
    const listed = async () =>
      (await api(a.url, '/v1/peers')).json.peers.map((p: { peerId: string }) => p.peerId)
    expect(await listed()).not.toContain(cPeerId)
    const restored = await runCli(['restore', file, '--force'], { home })
    expect(restored.stderr).toBe('')
    expect(restored.code).toBe(0)
    expect(restored.stdout).toMatch(/restored \d+ entries in \d namespace\(s\)/)
    c = await startDaemon({ home, args: ['--bootstrap', a.addresses[0]] })

    const digests = async () =>
      Promise.all([a, b, c].map(async (d) => (await api(d.url, '/v1/ns/app')).json.digest as string))
    await until(async () => ((await digests()).every((x, _, all) => x === all[0]) ? true : undefined), {
      timeoutMs: 60_000,
      message: 'the restored peer converges',
    })
    for (const d of [a, b, c]) {
      expect((await api(d.url, kv('app', 'doomed'))).status).toBe(404)
      expect((await api(d.url, kv('app', 'after'))).text).toBe('written after the backup')
      // Its own write from after the backup came back from the others (old incarnation, kept).
      expect((await api(d.url, kv('app', 'written-by-c'))).text).toBe('c1')
    }
    expect(await listed()).toContain(cPeerId)
    const newReplica = (await api(c.url, '/v1/ns/app')).json.replicaId
    expect(newReplica).not.toBe(oldReplica)
    const write = await api(c.url, kv('app', 'after-restore'), { method: 'PUT', body: 'c2' })
    expect(write.json.replica).toBe(newReplica)
    await until(
      async () => ((await api(a.url, kv('app', 'after-restore'))).text === 'c2' ? true : undefined),
      {
        timeoutMs: 30_000,
      },
    )

    // Forget refuses connected and unknown peers.
    const connected = await api(a.url, `/v1/peers/${b.peerId}`, { method: 'DELETE' })
    expect(connected.status).toBe(409)
    expect(connected.json.error.code).toBe('PEER_CONNECTED')
    const unknown = await api(a.url, '/v1/peers/12D3KooWNotAPeerAtAll', { method: 'DELETE' })
    expect(unknown.json.error.code).toBe('PEER_NOT_FOUND')
  }, 180_000)
})

describe('export and import', () => {
  async function fill(url: string): Promise<void> {
    await api(url, kv('app', 'json'), {
      method: 'PUT',
      headers: { 'content-type': 'application/json' },
      body: '{"a":[1,2,{"b":null}]}',
    })
    await putText(url, 'app', 'text/with slash', 'héllo\nworld')
    await api(url, kv('app', 'bin'), {
      method: 'PUT',
      headers: { 'content-type': 'application/octet-stream' },
      body: new Uint8Array([0, 255, 1, 254]),
    })
    const first = await putText(url, 'app', 'sib', 'v0')
    for (const value of ['A', 'B']) {
      await api(url, kv('app', 'sib'), {
        method: 'PUT',
        headers: { 'content-type': 'text/plain', 'if-match': `"${first.json.etag}"` },
        body: value,
      })
    }
    await postJson(url, '/v1/ns/app/counter/visits', { by: 5 })
    await postJson(url, '/v1/ns/app/counter/visits', { by: -2 })
    await postJson(url, '/v1/ns/app/set/tags', { add: ['a', 'b', 'c'] })
    await postJson(url, '/v1/ns/app/set/tags', { remove: ['b'] })
    await putText(url, 'other', 'k', 'in another namespace')
  }

  /** What an import can reproduce: everything but ETags, write times and siblings. */
  function comparable(jsonl: string) {
    return jsonl
      .trim()
      .split('\n')
      .map((line) => {
        const { etag, writtenAt, siblings, ...rest } = JSON.parse(line)
        return rest
      })
  }

  it('round-trips registers, counters and sets, and importing twice changes nothing', async () => {
    const source = await startDaemon()
    await fill(source.url)
    const file = join(tempHome(), 'export.jsonl')
    const exported = await runCli(['export', '--out', file], { home: source.home })
    expect(exported.code).toBe(0)
    const text = readFileSync(file, 'utf8')
    const lines = text
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line))
    expect(lines.map((l) => `${l.namespace}/${l.type}/${l.key}`)).toEqual([
      'app/register/bin',
      'app/register/json',
      'app/register/sib',
      'app/register/text/with slash',
      'app/counter/visits',
      'app/set/tags',
      'other/register/k',
    ])
    const sib = lines.find((l) => l.key === 'sib')
    expect(sib.siblings.map((s: { value: string }) => s.value).sort()).toEqual(['A', 'B'])
    expect(lines.find((l) => l.key === 'json')).toMatchObject({
      encoding: 'json',
      value: { a: [1, 2, { b: null }] },
    })
    expect(lines.find((l) => l.key === 'bin')).toMatchObject({ encoding: 'base64', value: 'AP8B/g==' })
    expect(lines.find((l) => l.type === 'counter').value).toBe(3)
    expect(lines.find((l) => l.type === 'set').members).toEqual(['a', 'c'])

    const filtered = await runCli(['export', '--namespace', 'app', '--prefix', 's'], { home: source.home })
    expect(comparable(filtered.stdout).map((l) => l.key)).toEqual(['sib'])

    const target = await startDaemon()
    const imported = await runCli(['import', file], { home: target.home })
    expect(imported.stderr).toMatch(/line 7: 7 imported, 0 failed/)
    expect(imported.code).toBe(0)
    const again = await runCli(['import', file], { home: target.home })
    expect(again.code).toBe(0)
    const back = await runCli(['export'], { home: target.home })
    expect(comparable(back.stdout)).toEqual(comparable(text))
    expect((await api(target.url, kv('app', 'bin'))).headers.get('content-type')).toBe(
      'application/octet-stream',
    )
  })

  it('reports malformed lines by number, imports the rest, exits non-zero; resumes from a line', async () => {
    const d = await startDaemon()
    const ok = (key: string) =>
      JSON.stringify({ type: 'register', key, contentType: 'text/plain', encoding: 'utf8', value: key })
    const input = [
      ok('one'),
      'this is not json',
      ok('three'),
      '{"type":"register","key":""}',
      '{"type":"counter","key":"c","value":1.5}',
      '',
      '{"type":"set","key":"s","members":["x",2]}',
      ok('eight'),
    ].join('\n')
    const file = join(tempHome(), 'input.jsonl')
    writeFileSync(file, input)
    const run = await runCli(['import', file, '-n', 'imp'], { home: d.home })
    expect(run.code).toBe(5)
    expect(run.stderr).toMatch(/^line 2: not JSON/m)
    expect(run.stderr).toMatch(/^line 4: "key" must be a non-empty string/m)
    expect(run.stderr).toMatch(/^line 5: a counter "value" must be a safe integer/m)
    expect(run.stderr).toMatch(/^line 7: a set needs "members"/m)
    expect(run.stderr).toMatch(/line 8: 3 imported, 4 failed/)
    for (const key of ['one', 'three', 'eight']) expect((await api(d.url, kv('imp', key))).text).toBe(key)

    // The saved state says every line was done: --resume has nothing left to do.
    const resumed = await runCli(['import', file, '-n', 'imp', '--resume'], { home: d.home })
    expect(resumed.stderr).toMatch(/line 8: 0 imported, 0 failed, 8 skipped/)
    expect(resumed.code).toBe(0)

    const fromStdin = await runCli(['import', '-', '-n', 'imp2', '--from-line', '3'], { home: d.home, input })
    expect(fromStdin.stderr).not.toMatch(/line 2:/)
    expect(fromStdin.code).toBe(5)
    expect((await api(d.url, kv('imp2', 'one'))).status).toBe(404)
    expect((await api(d.url, kv('imp2', 'eight'))).text).toBe('eight')
  })
})

describe('leaving a namespace', () => {
  it('needs confirmation, drops the data, and stays left after a restart', async () => {
    let d = await startDaemon()
    await putText(d.url, 'keep', 'k', 'v')
    for (let i = 0; i < 20; i++) await putText(d.url, 'gone', `k${i}`, 'x')
    await putText(d.url, 'gone2', 'k', 'x')
    await putText(d.url, 'gone', 'cached', 'read me')
    expect((await api(d.url, kv('gone', 'cached'))).text).toBe('read me')

    const unconfirmed = await api(d.url, '/v1/ns/gone?confirm=keep', { method: 'DELETE' })
    expect(unconfirmed.status).toBe(400)
    expect(unconfirmed.json.error.code).toBe('CONFIRMATION_REQUIRED')
    // A watcher of the namespace is told, and its stream ends.
    let left: ApiResult | undefined
    const events = await collectEvents(`${d.url}/v1/ns/gone/watch`, {
      stop: (seen) => seen.some((event) => event.event === 'left'),
      onOpen: async () => {
        left = await api(d.url, '/v1/ns/gone?confirm=gone', { method: 'DELETE' })
      },
      timeoutMs: 20_000,
    })
    expect(events.at(-1)).toMatchObject({ event: 'left', data: { namespace: 'gone' } })
    if (left === undefined) throw new Error('the leave request did not run')
    expect(left.status).toBe(200)
    expect(left.json).toMatchObject({ namespace: 'gone', left: true, entriesDropped: 21 })
    expect((await api(d.url, '/v1/ns/gone')).json.error.code).toBe('NAMESPACE_NOT_FOUND')
    expect((await api(d.url, kv('gone', 'cached'))).status).toBe(404)

    const noYes = await runCli(['ns', 'leave', 'gone2'], { home: d.home })
    expect(noYes.code).toBe(2)
    expect(noYes.stderr).toMatch(/pass --yes/)
    const yes = await runCli(['ns', 'leave', 'gone2', '--yes'], { home: d.home })
    expect(yes.code).toBe(0)
    expect(yes.stdout).toMatch(/left gone2; deleted 1 local entries/)

    const home = d.home
    await d.stop('SIGTERM')
    d = await startDaemon({ home })
    const names = (await api(d.url, '/v1/ns')).json.namespaces.map((n: { name: string }) => n.name)
    expect(names).toContain('keep')
    expect(names).not.toContain('gone')
    expect(names).not.toContain('gone2')
    expect((await api(d.url, kv('keep', 'k'))).text).toBe('v')
    // Writing joins it again, empty.
    await putText(d.url, 'gone', 'fresh', 'y')
    expect((await api(d.url, '/v1/ns/gone')).json.entries).toBe(1)
  })
})

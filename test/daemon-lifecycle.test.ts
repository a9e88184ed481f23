/**
 * The daemon as a process: one per data dir (lock file), a taken port, config precedence, identity,
 * that nothing acknowledged is lost on SIGTERM or SIGKILL, a data dir only its owner can read, and
 * a full disk.
 */
import { spawnSync } from 'node:child_process'
import {
  chmodSync,
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs'
import { createServer, type Server } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import {
  api,
  giveSharedKey,
  removeHomes,
  runCli,
  runDaemonExpectingFailure,
  startDaemon,
  stopAllDaemons,
  tempHome,
  until,
} from './helpers/daemon.ts'

afterEach(async () => {
  await stopAllDaemons()
  removeHomes()
})

describe('one daemon per data dir', () => {
  it('a second daemon on the same data dir exits 7 naming the first, which keeps serving', async () => {
    const first = await startDaemon()
    const lock = JSON.parse(readFileSync(join(first.home, 'daemon.lock'), 'utf8'))
    expect(lock).toMatchObject({ pid: first.pid, url: first.url, peerId: first.peerId })

    const second = await runDaemonExpectingFailure({ home: first.home })
    expect(second.code).toBe(7)
    expect(second.stderr).toContain('LOCKED')
    expect(second.stderr).toContain(`pid ${first.pid}`)
    expect((await api(first.url, '/healthz')).status).toBe(200)
  })

  it('a port in use exits 7 with PORT_IN_USE', async () => {
    const blocker: Server = createServer()
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve))
    const port = (blocker.address() as { port: number }).port
    try {
      const result = await runDaemonExpectingFailure({ args: ['--api-port', String(port)] })
      expect(result.code).toBe(7)
      expect(result.stderr).toContain('PORT_IN_USE')
      expect(result.stderr).toContain(String(port))
    } finally {
      blocker.close()
    }
  })

  it('a p2p port in use exits 7 with MESH_FAILED in one line (needs the mesh)', async () => {
    const first = await startDaemon()
    const taken = first.addresses[0].replace(/\/p2p\/.*$/, '')
    const result = await runDaemonExpectingFailure({ args: ['--listen', taken] })
    expect(result.code).toBe(7)
    expect(result.stderr).toContain(`MESH_FAILED: p2p address ${taken} is in use`)
  })

  it('a bad config.json exits 7 with CONFIG_INVALID and the file named', async () => {
    const home = tempHome()
    writeFileSync(join(home, 'config.json'), '{"apiPort": "seven"}')
    const result = await runDaemonExpectingFailure({ home })
    expect(result.code).toBe(7)
    expect(result.stderr).toContain('CONFIG_INVALID')
    expect(result.stderr).toContain('config.json')
    writeFileSync(join(home, 'config.json'), '{"apiPortt": 1}')
    expect((await runDaemonExpectingFailure({ home })).stderr).toContain('unknown setting "apiPortt"')
    writeFileSync(join(home, 'config.json'), '{}')
    const noKey = await runDaemonExpectingFailure({ home, args: ['--swarm-key', join(home, 'missing.key')] })
    expect([noKey.code, noKey.stderr.includes('CONFIG_INVALID')]).toEqual([7, true])
  })
})

describe('configuration', () => {
  it('takes config.json, then flags, then HEARSAY_* variables, strongest last', async () => {
    const home = tempHome()
    writeFileSync(
      join(home, 'config.json'),
      JSON.stringify({ mesh: 'from-file', namespaces: ['from-file'], synchronous: 'NORMAL' }),
    )
    const daemon = await startDaemon({
      home,
      args: ['--mesh', 'from-flag', '--namespace', 'from-flag'],
      env: { HEARSAY_MESH: 'from-env' },
    })
    const status = (await api(daemon.url, '/v1/status')).json
    expect(status.mesh.name).toBe('from-env')
    expect(status.namespaces.map((ns: { name: string }) => ns.name)).toEqual(['from-flag'])
  })

  it('creates the identity key with mode 0600 and keeps the peer id across restarts', async () => {
    const daemon = await startDaemon()
    const key = statSync(join(daemon.home, 'peer.key'))
    expect(key.mode & 0o777).toBe(0o600)
    await daemon.stop()
    const again = await startDaemon({ home: daemon.home })
    expect(again.peerId).toBe(daemon.peerId)
  })

  it('--require-if-match refuses blind overwrites of existing keys with 428', async () => {
    const daemon = await startDaemon({ args: ['--require-if-match'] })
    const created = await api(daemon.url, '/v1/ns/default/kv/k', { method: 'PUT', body: 'v1' })
    expect(created.status).toBe(200)
    const blind = await api(daemon.url, '/v1/ns/default/kv/k', { method: 'PUT', body: 'v2' })
    expect([blind.status, blind.json.error.code]).toEqual([428, 'PRECONDITION_REQUIRED'])
    const informed = await api(daemon.url, '/v1/ns/default/kv/k', {
      method: 'PUT',
      headers: { 'if-match': `"${created.json.etag}"` },
      body: 'v2',
    })
    expect(informed.status).toBe(200)
  })
})

/**
 * Many writes in flight at once (16 writers) until `signal`. `acked` holds the keys whose write was
 * acknowledged, as the answers arrive, so a test can wait on what the client holds (the server may
 * have committed writes whose answers a kill then loses).
 */
function writeUntilStopped(
  url: string,
  prefix: string,
  signal: AbortSignal,
): { acked: string[]; done: Promise<void> } {
  const acked: string[] = []
  let next = 0
  const worker = async () => {
    while (!signal.aborted) {
      const key = `${prefix}/${next++}`
      try {
        const res = await fetch(`${url}/v1/ns/default/kv/${key}`, { method: 'PUT', body: key, signal })
        if (res.status === 200) acked.push(key)
        else return
      } catch {
        return
      }
    }
  }
  return { acked, done: Promise.all(Array.from({ length: 16 }, worker)).then(() => {}) }
}

describe('durability', () => {
  it('SIGTERM stops cleanly (exit 0, lock removed); a restart has every acknowledged write', async () => {
    const daemon = await startDaemon()
    const controller = new AbortController()
    const writing = writeUntilStopped(daemon.url, 'term', controller.signal)
    await until(() => (writing.acked.length > 100 ? true : undefined), { message: '100 writes answered' })
    const exit = await daemon.stop('SIGTERM')
    controller.abort()
    await writing.done
    const acked = writing.acked
    expect(exit.code).toBe(0)
    expect(existsSync(join(daemon.home, 'daemon.lock'))).toBe(false)
    expect(daemon.stderr()).not.toContain('"level":50')

    const again = await startDaemon({ home: daemon.home })
    const missing = await missingKeys(again.url, acked)
    expect(acked.length).toBeGreaterThan(100)
    expect(missing).toEqual([])
  })

  it('SIGKILL mid-write loses nothing acknowledged; the stale lock is taken over', async () => {
    const daemon = await startDaemon()
    const controller = new AbortController()
    const writing = writeUntilStopped(daemon.url, 'kill', controller.signal)
    // Counted where the answers arrive: the server may commit writes whose answers the kill loses.
    await until(() => (writing.acked.length > 200 ? true : undefined), { message: '200 writes answered' })
    const exit = await daemon.stop('SIGKILL')
    controller.abort()
    await writing.done
    const acked = writing.acked
    expect(exit.signal).toBe('SIGKILL')
    expect(existsSync(join(daemon.home, 'daemon.lock'))).toBe(true)

    const again = await startDaemon({ home: daemon.home })
    expect(acked.length).toBeGreaterThan(200)
    expect(await missingKeys(again.url, acked)).toEqual([])
  })
})

describe('a data dir nobody else can read', () => {
  it('a data dir made 0755 with 0644 files is tightened at start; new files start private', async () => {
    const first = await startDaemon()
    await api(first.url, '/v1/ns/default/kv/k', { method: 'PUT', body: 'v' })
    await first.stop()
    // As older versions left it: world-readable data dir and files.
    chmodSync(first.home, 0o755)
    for (const name of readdirSync(first.home)) chmodSync(join(first.home, name), 0o644)
    // Key files were always made 0600 (and one readable by others is refused: below).
    chmodSync(join(first.home, 'swarm.key'), 0o600)
    chmodSync(join(first.home, 'peer.key'), 0o600)
    const again = await startDaemon({ home: first.home })
    await api(again.url, '/v1/ns/default/kv/k2', { method: 'PUT', body: 'v' })
    expect(statSync(again.home).mode & 0o777).toBe(0o700)
    const modes = Object.fromEntries(
      readdirSync(again.home).map((name) => [name, statSync(join(again.home, name)).mode & 0o777]),
    )
    expect(Object.keys(modes)).toEqual(
      expect.arrayContaining(['hearsay.db', 'hearsay.db-wal', 'daemon.lock']),
    )
    for (const [name, mode] of Object.entries(modes)) expect([name, mode]).toEqual([name, 0o600])
  })

  it('a swarm.key that others can read stops the start in one line naming the chmod fix', async () => {
    const home = tempHome()
    giveSharedKey(home)
    const key = join(home, 'swarm.key')
    chmodSync(key, 0o640)
    const result = await runDaemonExpectingFailure({ home })
    expect(result.code).toBe(7)
    expect(result.stderr.trim().split('\n')).toHaveLength(1)
    expect(result.stderr).toContain(
      `swarm key ${key} can be read by others (mode 0640); run: chmod 600 ${key}`,
    )
    expect(existsSync(join(home, 'daemon.lock'))).toBe(false)
  })

  it('a lock naming a live process that does not hold it (pid 1) is taken over', async () => {
    const home = tempHome()
    writeFileSync(
      join(home, 'daemon.lock'),
      JSON.stringify({ pid: 1, url: 'http://127.0.0.1:9', startedAt: '2020-01-01T00:00:00.000Z' }),
    )
    const daemon = await startDaemon({ home })
    const lock = JSON.parse(readFileSync(join(home, 'daemon.lock'), 'utf8'))
    expect(lock).toMatchObject({ pid: daemon.pid, url: daemon.url })
    // The running daemon's own lock is still respected.
    const second = await runDaemonExpectingFailure({ home })
    expect(second.code).toBe(7)
    expect(second.stderr).toContain(`pid ${daemon.pid}`)
  })
})

const isRoot = process.getuid?.() === 0
if (!isRoot) console.warn('[daemon-lifecycle] SKIPPED the full-disk test: mounting a tmpfs needs root')

describe('a full disk', () => {
  const mounts: string[] = []
  afterEach(() => {
    for (const dir of mounts.splice(0)) {
      spawnSync('umount', [dir])
      rmSync(dir, { recursive: true, force: true })
    }
  })

  /** A 64 KiB tmpfs this test mounts, filled but for `freeKiB`. */
  function smallDisk(freeKiB: number): string {
    const dir = mkdtempSync(join(tmpdir(), 'hearsay-full-'))
    const mount = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=64k', 'tmpfs', dir], { encoding: 'utf8' })
    if (mount.status !== 0) throw new Error(`mount failed: ${mount.stderr}`)
    mounts.push(dir)
    writeFileSync(join(dir, 'filler'), Buffer.alloc((64 - freeKiB) * 1024))
    return dir
  }

  it.skipIf(!isRoot)('exits 7 with one line and leaves no lock, wherever the space runs out', async () => {
    // No space at all (the lock cannot be written), then room for the keys but not the store.
    for (const freeKiB of [0, 12]) {
      const home = join(smallDisk(freeKiB), 'home')
      const result = await runDaemonExpectingFailure({ home })
      expect(result.code, `${freeKiB} KiB free: ${result.stderr}`).toBe(7)
      // Log lines (JSON) aside, one line says what happened; no stack trace.
      const said = result.stderr.split('\n').filter((line) => line !== '' && !line.startsWith('{'))
      expect(said, result.stderr).toHaveLength(1)
      expect(said[0]).toMatch(/^hearsay up: .*(no space left|disk is full|ENOSPC)/)
      expect(existsSync(join(home, 'daemon.lock'))).toBe(false)
    }
    // init writes the data dir too: one line and exit 7 there as well.
    for (const freeKiB of [0, 4]) {
      const home = join(smallDisk(freeKiB), 'home')
      const result = await runCli(['init', '--api-port', '7700'], { home })
      expect(result.code, `${freeKiB} KiB free: ${result.stderr}`).toBe(7)
      expect(result.stderr.trim().split('\n'), result.stderr).toHaveLength(1)
      expect(result.stderr).toMatch(/no space left|ENOSPC/)
    }
  })
})

async function missingKeys(url: string, keys: string[]): Promise<string[]> {
  const present = new Set<string>()
  let cursor: string | undefined
  do {
    const query = new URLSearchParams({
      values: '0',
      limit: '1000',
      ...(cursor === undefined ? {} : { cursor }),
    })
    const page = (await api(url, `/v1/ns/default/kv?${query}`)).json
    for (const item of page.items) present.add(item.key)
    cursor = page.cursor
  } while (cursor !== undefined)
  return keys.filter((key) => !present.has(key))
}

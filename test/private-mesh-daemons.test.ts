/**
 * Private by default, with real `hearsay` processes: daemons holding one mesh key connect and
 * replicate; a daemon with another key, or an open one, cannot connect to them; `invite` → `join` →
 * `up` brings a new peer in; bad tickets are refused with a clear error; `up` on a data dir with no key
 * makes one and says so.
 */
import { spawn } from 'node:child_process'
import { existsSync, readFileSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import {
  api,
  CLI,
  cleanEnv,
  type DaemonProcess,
  removeHomes,
  runCli,
  startDaemon,
  stopAllDaemons,
  tempHome,
  until,
} from './helpers/daemon.ts'

afterAll(async () => {
  await stopAllDaemons()
  removeHomes()
})

const put = (daemon: DaemonProcess, key: string, value: string) =>
  api(daemon.url, `/v1/ns/default/kv/${key}`, { method: 'PUT', body: value })
const read = async (daemon: DaemonProcess, key: string) => {
  const result = await api(daemon.url, `/v1/ns/default/kv/${key}`)
  return result.status === 200 ? result.text : undefined
}
const connected = async (daemon: DaemonProcess): Promise<string[]> =>
  ((await api(daemon.url, '/v1/peers')).json.peers as Array<{ peerId: string; connected: boolean }>)
    .filter((peer) => peer.connected)
    .map((peer) => peer.peerId)

/** Runs `hearsay up` for its human banner (no --json), then stops it; returns the banner. */
async function banner(home: string, args: string[] = []): Promise<string> {
  const child = spawn(
    process.execPath,
    [CLI, 'up', '--api-port', '0', '--listen', '/ip4/127.0.0.1/tcp/0', '--no-mdns', ...args],
    { env: cleanEnv({ HEARSAY_HOME: home, HEARSAY_LOG_LEVEL: 'warn' }), stdio: ['ignore', 'pipe', 'pipe'] },
  )
  let stdout = ''
  let stderr = ''
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
    stdout += chunk
  })
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
    stderr += chunk
  })
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)))
  try {
    await until(() => (stdout.includes('Stop with Ctrl-C.') ? true : undefined), {
      timeoutMs: 20_000,
      message: `banner of hearsay up (stderr: ${stderr})`,
    })
  } finally {
    child.kill('SIGTERM')
    await exited
  }
  return stdout
}

describe('private by default', () => {
  it('daemons with one key replicate; one with another key, or an open one, cannot connect', async () => {
    // The helper gives both the same key, as `hearsay join` would.
    const a = await startDaemon()
    const b = await startDaemon({ args: ['--bootstrap', a.addresses[0]] })
    expect(a.meshKey).toMatchObject({ private: true, created: false })
    await put(a, 'shared', 'for key holders')
    expect(await until(() => read(b, 'shared'), { message: 'b reads a write of a' })).toBe('for key holders')

    const stranger = await startDaemon({ meshKey: 'none' })
    const open = await startDaemon({ args: ['--open'] })
    expect(stranger.meshKey).toMatchObject({ private: true, created: true })
    expect(open.meshKey).toEqual({ private: false })
    expect((await api(open.url, '/v1/status')).json.mesh.private).toEqual({ swarmKey: false, allowPeers: 0 })
    for (const outsider of [stranger, open]) {
      const dial = await api(outsider.url, '/v1/peers', {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ address: a.addresses[0] }),
      })
      expect(dial.status, `dial from ${outsider.meshKey.private ? 'another key' : 'an open mesh'}`).toBe(502)
      expect(dial.json.error.code).toBe('DIAL_FAILED')
      expect(await connected(outsider)).toEqual([])
      expect(await read(outsider, 'shared')).toBeUndefined()
    }
    expect(await connected(a)).toEqual([b.peerId])
  })

  it('invite → join → up: the new peer replicates with the inviter', async () => {
    const inviter = await startDaemon({ meshKey: 'none' })
    expect(inviter.meshKey.created).toBe(true)
    const invite = await runCli(['invite'], { home: inviter.home })
    expect(invite.code, invite.stderr).toBe(0)
    const ticket = invite.stdout.trim()
    expect(ticket).toMatch(/^hsy1[a-z2-7]+$/)
    expect(ticket.length).toBeLessThan(400)

    const home = tempHome()
    const join_ = await runCli(['join', ticket, '--json'], { home })
    expect(join_.code, join_.stderr).toBe(0)
    expect(JSON.parse(join_.stdout)).toMatchObject({
      peerId: inviter.peerId,
      bootstrap: inviter.addresses,
      keyReplaced: false,
      daemonRunning: false,
    })
    expect(readFileSync(join(home, 'swarm.key'))).toEqual(readFileSync(join(inviter.home, 'swarm.key')))
    expect(statSync(join(home, 'swarm.key')).mode & 0o777).toBe(0o600)
    expect(JSON.parse(readFileSync(join(home, 'config.json'), 'utf8')).bootstrap).toEqual(inviter.addresses)
    // Joining again with the same ticket changes nothing.
    expect((await runCli(['join', ticket], { home })).code).toBe(0)
    expect(JSON.parse(readFileSync(join(home, 'config.json'), 'utf8')).bootstrap).toEqual(inviter.addresses)

    const joiner = await startDaemon({ home, meshKey: 'none' })
    expect(joiner.meshKey).toMatchObject({ private: true, created: false })
    await put(inviter, 'welcome', 'in')
    expect(await until(() => read(joiner, 'welcome'), { message: 'the joiner reads the inviter' })).toBe('in')
    await put(joiner, 'hello', 'back')
    expect(await until(() => read(inviter, 'hello'), { message: 'the inviter reads the joiner' })).toBe(
      'back',
    )

    // A data dir of another mesh keeps its key unless --force.
    const other = tempHome()
    expect((await runCli(['init', '--json'], { home: other })).code).toBe(0)
    const ownKey = readFileSync(join(other, 'swarm.key'))
    const refused = await runCli(['join', ticket], { home: other })
    expect(refused.code).toBe(5)
    expect(refused.stderr).toContain('OTHER_MESH')
    expect(refused.stderr).toContain('--force')
    expect(readFileSync(join(other, 'swarm.key'))).toEqual(ownKey)
    const forced = await runCli(['join', ticket, '--force', '--json'], { home: other })
    expect(forced.code, forced.stderr).toBe(0)
    expect(JSON.parse(forced.stdout).keyReplaced).toBe(true)
    expect(readFileSync(join(other, 'swarm.key'))).toEqual(readFileSync(join(inviter.home, 'swarm.key')))
  })

  it("a hub's ticket makes the joiner its client", async () => {
    const hub = await startDaemon({ command: 'hub', meshKey: 'none' })
    const ticket = (await runCli(['invite'], { home: hub.home })).stdout.trim()
    const home = tempHome()
    const joined = await runCli(['join', ticket, '--json'], { home })
    expect(joined.code, joined.stderr).toBe(0)
    expect(JSON.parse(readFileSync(join(home, 'config.json'), 'utf8'))).toEqual({ hub: hub.addresses })
    const client = await startDaemon({ home, meshKey: 'none' })
    expect(client.topology).toBe('hub-client')
    await put(client, 'via-hub', 'yes')
    expect(await until(() => read(hub, 'via-hub'), { message: 'the hub reads its client' })).toBe('yes')
  })

  it('bad tickets get a clear error and change nothing', async () => {
    const inviter = await startDaemon()
    const ticket = (await runCli(['invite'], { home: inviter.home })).stdout.trim()
    const home = tempHome()
    const flipped = ticket.slice(0, 20) + (ticket[20] === 'a' ? 'b' : 'a') + ticket.slice(21)
    const cases: Array<[string, string]> = [
      [ticket.slice(0, Math.floor(ticket.length / 2)), 'mistyped or truncated'],
      [ticket.slice(0, 12), 'truncated'],
      [flipped, 'mistyped or truncated'],
      [`hsy9${ticket.slice(4)}`, 'version 9'],
      [`${ticket.slice(0, 30)}!${ticket.slice(31)}`, 'not part of a ticket'],
      [`x${'a'.repeat(80)}`, 'not a hearsay invite ticket'],
    ]
    for (const [bad, why] of cases) {
      const result = await runCli(['join', bad], { home })
      expect(result.code, bad).toBe(2)
      expect(result.stderr).toContain('INVALID_TICKET')
      expect(result.stderr).toContain(why)
      expect(result.stderr.trim().split('\n')).toHaveLength(1)
    }
    expect(existsSync(join(home, 'swarm.key'))).toBe(false)
    expect(existsSync(join(home, 'config.json'))).toBe(false)
  })

  it('an open daemon has no ticket to give; status tells open from private', async () => {
    const open = await startDaemon({ args: ['--open'] })
    const invite = await runCli(['invite'], { home: open.home })
    expect(invite.code).toBe(5)
    expect(invite.stderr).toContain('open mesh')
    expect((await runCli(['status'], { home: open.home })).stdout).toContain(
      'OPEN: anyone on the network can join',
    )
    const closed = await startDaemon()
    expect((await runCli(['status'], { home: closed.home })).stdout).toContain('private: mesh key')
  })

  it('up with no key makes a new private mesh and says so; --open says anyone can join', async () => {
    const home = tempHome()
    const first = await banner(home)
    expect(first).toContain('a new private mesh')
    expect(first).toContain(`only peers holding ${join(home, 'swarm.key')} can connect`)
    expect(first).toContain('join <ticket>')
    expect(statSync(join(home, 'swarm.key')).mode & 0o777).toBe(0o600)
    const key = readFileSync(join(home, 'swarm.key'))
    // The second start keeps the key and no longer calls the mesh new.
    const second = await banner(home)
    expect(second).not.toContain('a new private mesh')
    expect(readFileSync(join(home, 'swarm.key'))).toEqual(key)

    const openHome = tempHome()
    const open = await banner(openHome, ['--open'])
    expect(open).toContain('OPEN mesh: anyone on the network can join')
    expect(existsSync(join(openHome, 'swarm.key'))).toBe(false)
    // --open next to a key would silently drop the privacy of a mesh: refused.
    const refused = await runCli(['up', '--open', '--api-port', '0', '--no-mdns'], { home })
    expect(refused.code).toBe(7)
    expect(refused.stderr).toContain('holds the key of a private mesh')
  })
})

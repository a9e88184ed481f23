/**
 * The built `hearsay` command (dist/cli/main.js, package.json `bin`), run as a real process against
 * a real daemon found through its data dir.
 */
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  type DaemonProcess,
  removeHomes,
  runCli,
  startDaemon,
  stopAllDaemons,
  tempHome,
} from './helpers/daemon.ts'

let daemon: DaemonProcess
const cli = (args: string[], options: { input?: string | Uint8Array; env?: Record<string, string> } = {}) =>
  runCli(args, { home: daemon.home, ...options })

beforeAll(async () => {
  daemon = await startDaemon()
})

afterAll(async () => {
  await stopAllDaemons()
  removeHomes()
})

// Tests use distinct keys on the shared daemon, so they run concurrently (each CLI call is a process).
describe.concurrent('data commands', () => {
  it('put, get, ls, del round-trip, with exit codes', async () => {
    expect((await cli(['put', 'greeting', 'hello'])).code).toBe(0)
    const get = await cli(['get', 'greeting'])
    expect([get.code, get.stdout]).toEqual([0, 'hello'])
    const json = await cli(['get', 'greeting', '--json'])
    expect(JSON.parse(json.stdout)).toMatchObject({
      key: 'greeting',
      value: 'hello',
      encoding: 'utf8',
      contentType: 'text/plain; charset=utf-8',
    })
    const ls = await cli(['ls'])
    expect(ls.stdout).toContain('greeting\t"hello"')
    expect((await cli(['del', 'greeting'])).code).toBe(0)
    const missing = await cli(['get', 'greeting'])
    expect(missing.code).toBe(4)
    expect(missing.stderr).toContain('KEY_NOT_FOUND')
    expect((await cli(['del', 'greeting'])).code).toBe(4)
  })

  it('puts JSON (checked), stdin and files; gets bytes back unchanged', async () => {
    const typed = await cli(['put', 'cfg', '{"mode":"eco"}', '--type', 'json'])
    expect(typed.code).toBe(0)
    expect(JSON.parse((await cli(['get', 'cfg'])).stdout)).toEqual({ mode: 'eco' })
    expect(JSON.parse((await cli(['get', 'cfg', '--json'])).stdout)).toMatchObject({
      encoding: 'json',
      value: { mode: 'eco' },
    })
    const bad = await cli(['put', 'cfg', '{nope', '-t', 'json'])
    expect(bad.code).toBe(5)
    expect(bad.stderr).toContain('INVALID_JSON')

    const piped = await cli(['put', 'piped', '-n', 'files'], { input: 'from stdin' })
    expect(piped.code).toBe(0)
    expect((await cli(['get', 'piped', '--ns', 'files'])).stdout).toBe('from stdin')

    const path = join(daemon.home, 'blob.bin')
    const bytes = Buffer.from([0, 159, 146, 150, 255, 10])
    writeFileSync(path, bytes)
    expect((await cli(['put', 'blob', '--file', path])).code).toBe(0)
    const raw = await runCliBytes(['get', 'blob'])
    expect(raw.equals(bytes)).toBe(true)
    const described = JSON.parse((await cli(['get', 'blob', '--json'])).stdout)
    expect(described).toMatchObject({
      contentType: 'application/octet-stream',
      encoding: 'base64',
      value: bytes.toString('base64'),
    })
  })

  it('shows siblings and resolves them with --if-match', async () => {
    const first = JSON.parse((await cli(['put', 'doc', 'v0', '--json'])).stdout)
    await cli(['put', 'doc', 'A', '--if-match', first.etag])
    await cli(['put', 'doc', 'B', '--if-match', first.etag])
    const siblings = await cli(['get', 'doc', '--siblings'])
    expect(siblings.stdout).toContain('[1/2]')
    expect(siblings.stdout).toContain('[2/2]')
    const plain = await cli(['get', 'doc'])
    expect(plain.stderr).toContain('2 concurrent values')
    const etag = JSON.parse((await cli(['get', 'doc', '--siblings', '--json'])).stdout).etag
    await cli(['put', 'doc', 'AB', '--if-match', etag])
    const resolved = await cli(['get', 'doc'])
    expect([resolved.stdout, resolved.stderr]).toEqual(['AB', ''])
  })

  it('lists page by page, or everything with --all', async () => {
    await Promise.all(
      Array.from({ length: 12 }, (_, i) => cli(['put', `list/${String(i).padStart(2, '0')}`, String(i)])),
    )
    const page = await cli(['ls', 'list/', '--limit', '5'])
    expect(page.stdout.trim().split('\n')).toHaveLength(5)
    expect(page.stderr).toContain('--cursor')
    const all = await cli(['ls', 'list/', '--limit', '5', '--all', '--keys-only'])
    expect(all.stdout.trim().split('\n')).toEqual(
      Array.from({ length: 12 }, (_, i) => `list/${String(i).padStart(2, '0')}`),
    )
    const last = JSON.parse((await cli(['ls', 'list/0', '--json'])).stdout)
    expect(last.items.map((item: { key: string }) => item.key)).toHaveLength(10)
    expect(last.cursor).toBeUndefined()
    // --json pages carry the cursor that --cursor takes for the next page.
    const keys: string[] = []
    let cursor: string | undefined
    for (let page = 0; page < 5; page++) {
      const args = [
        'ls',
        'list/',
        '--json',
        '--limit',
        '5',
        ...(cursor === undefined ? [] : ['--cursor', cursor]),
      ]
      const body = JSON.parse((await cli(args)).stdout)
      keys.push(...body.items.map((item: { key: string }) => item.key))
      cursor = body.cursor
      if (cursor === undefined) break
    }
    expect(keys).toEqual(Array.from({ length: 12 }, (_, i) => `list/${String(i).padStart(2, '0')}`))
  })

  it('stdin text stays text; --type takes a shorthand or a MIME type, nothing else', async () => {
    expect((await cli(['put', 'note', '-n', 'typed'], { input: 'héllo\n' })).code).toBe(0)
    expect(JSON.parse((await cli(['get', 'note', '-n', 'typed', '--json'])).stdout)).toMatchObject({
      contentType: 'text/plain; charset=utf-8',
      encoding: 'utf8',
      value: 'héllo\n',
    })
    expect((await cli(['put', 'raw', '-n', 'typed'], { input: Buffer.from([0xff, 0xfe, 0]) })).code).toBe(0)
    expect(JSON.parse((await cli(['get', 'raw', '-n', 'typed', '--json'])).stdout).contentType).toBe(
      'application/octet-stream',
    )
    const mime = await cli(['put', 'pic', 'x', '-n', 'typed', '--type', 'image/png'])
    expect(mime.code).toBe(0)
    expect(JSON.parse((await cli(['get', 'pic', '-n', 'typed', '--json'])).stdout).contentType).toBe(
      'image/png',
    )
    for (const bad of ['jsn', 'image', 'a/b/c', 'text/plain; charset']) {
      const result = await cli(['put', 'pic', 'y', '-n', 'typed', '--type', bad, '--json'])
      expect(result.code).toBe(2)
      expect(JSON.parse(result.stderr).error.code).toBe('USAGE')
      expect(JSON.parse(result.stderr).error.message).toContain('MIME type')
    }
    expect((await cli(['get', 'pic', '-n', 'typed'])).stdout).toBe('x')
  })

  it('--api takes host:port without http://', async () => {
    const port = new URL(daemon.url).port
    for (const api of [`localhost:${port}`, `127.0.0.1:${port}/`, daemon.url]) {
      const status = await runCli(['status', '--json', '--api', api])
      expect(status.code).toBe(0)
      expect(JSON.parse(status.stdout).peerId).toBe(daemon.peerId)
    }
    const bad = await runCli(['status', '--api', 'ftp://localhost:1'])
    expect(bad.code).toBe(2)
    expect(bad.stderr).toContain('http://')
  })

  it('counts with incr (negative too) and counter, and resets', async () => {
    expect((await cli(['incr', 'visits'])).stdout.trim()).toBe('1')
    expect((await cli(['incr', 'visits', '5'])).stdout.trim()).toBe('6')
    expect((await cli(['incr', 'visits', '-2'])).stdout.trim()).toBe('4')
    expect((await cli(['counter', 'visits'])).stdout.trim()).toBe('4')
    expect((await cli(['counter', 'visits', '--reset'])).stdout.trim()).toBe('0')
    const bad = await cli(['incr', 'visits', 'lots'])
    expect(bad.code).toBe(2)
  })

  it('adds, removes and lists set members', async () => {
    expect((await cli(['sadd', 'team', 'ann', 'bob', 'cy'])).stdout.trim().split('\n')).toEqual([
      'ann',
      'bob',
      'cy',
    ])
    expect((await cli(['srem', 'team', 'bob'])).stdout.trim().split('\n')).toEqual(['ann', 'cy'])
    expect(JSON.parse((await cli(['smembers', 'team', '--json'])).stdout).members).toEqual(['ann', 'cy'])
  })

  it('watch prints changes, stops after --count, and resumes with --since', async () => {
    const watching = cli(['watch', 'feed/', '--count', '2', '--json'])
    // The watch is open once its ready event is out; writes after that are live changes.
    await waitForWatchers(1)
    await cli(['put', 'feed/1', 'one'])
    await cli(['put', 'feed/2', 'two'])
    const result = await watching
    expect(result.code).toBe(0)
    const events = result.stdout
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line))
    expect(events.map((e) => e.event)).toEqual(['ready', 'change', 'change'])
    expect(events[1].data).toMatchObject({ key: 'feed/1', value: 'one', op: 'put' })
    const token = events[1].id

    const replay = await cli(['watch', 'feed/', '--since', token, '--count', '1'])
    expect(replay.code).toBe(0)
    expect(replay.stdout).toContain('put   feed/2 = "two"  (replay)')
  })

  it('ack that cannot be met exits 6, having written the value', async () => {
    const result = await cli(['put', 'acked', 'x', '--ack', '2', '--timeout', '100'])
    expect(result.code).toBe(6)
    expect(result.stderr).toContain('only 0 of 2')
    expect((await cli(['get', 'acked'])).stdout).toBe('x')
  })
})

async function runCliBytes(args: string[]): Promise<Buffer> {
  const { spawn } = await import('node:child_process')
  const { BUILT_CLI, cleanEnv } = await import('./helpers/daemon.ts')
  const child = spawn(process.execPath, [BUILT_CLI, ...args], {
    env: cleanEnv({ HEARSAY_HOME: daemon.home }),
  })
  const chunks: Buffer[] = []
  child.stdout.on('data', (chunk: Buffer) => chunks.push(chunk))
  await new Promise((resolve) => child.once('close', resolve))
  return Buffer.concat(chunks)
}

async function waitForWatchers(count: number): Promise<void> {
  const { until, api } = await import('./helpers/daemon.ts')
  await until(
    async () => ((await api(daemon.url, '/v1/status')).json.watchClients >= count ? true : undefined),
    {
      message: 'watch stream open',
    },
  )
}

describe.concurrent('peer commands', () => {
  it('status shows the peer id, the API and the namespaces', async () => {
    const status = await cli(['status'])
    expect(status.code).toBe(0)
    expect(status.stdout).toContain(daemon.peerId)
    expect(status.stdout).toContain(daemon.url)
    expect(status.stdout).toMatch(/NAMESPACE\s+ENTRIES/)
    expect(JSON.parse((await cli(['status', '--json'])).stdout).peerId).toBe(daemon.peerId)
  })

  it('peers lists (none yet); connect refuses a bad address; join joins', async () => {
    const peers = await cli(['peers', '--json'])
    expect(JSON.parse(peers.stdout).peers).toEqual([])
    const bad = await cli(['connect', 'nonsense'])
    expect(bad.code).toBe(5)
    expect(bad.stderr).toContain('INVALID_ADDRESS')
    expect((await cli(['join', 'extra'])).stdout.trim()).toBe('joined extra')
    expect((await cli(['join', 'extra'])).stdout.trim()).toBe('already in extra')
  })

  it('hub takes the settings of up; a hub client list contradicts it (exit 7)', async () => {
    const help = await runCli(['hub', '--help'])
    expect(help.code).toBe(0)
    expect(help.stdout).toContain('--listen')
    expect(help.stdout).toContain('up --hub')
    const contradiction = await runCli(['hub', '--api-port', '0', '--hub', daemon.addresses[0]])
    expect(contradiction.code).toBe(7)
    expect(contradiction.stderr).toMatch(/CONFIG_INVALID: hub \(--hub\) lists hubs/)
  })
})

describe.concurrent('without a daemon, and usage', () => {
  it('client commands exit 3 with a hint when no daemon runs for the data dir', async () => {
    const home = tempHome()
    const result = await runCli(['get', 'x'], { home })
    expect(result.code).toBe(3)
    expect(result.stderr).toContain('hearsay up')
    const json = await runCli(['status', '--json'], { home })
    expect(JSON.parse(json.stderr)).toMatchObject({ error: { code: 'NO_DAEMON' } })
  })

  it('a stale lock (crashed daemon) and a dead API URL exit 3 too', async () => {
    const home = tempHome()
    writeFileSync(
      join(home, 'daemon.lock'),
      JSON.stringify({ pid: 999_999_999, url: 'http://127.0.0.1:9', startedAt: '' }),
    )
    expect((await runCli(['status'], { home })).stderr).toContain('not running any more')
    const dead = await runCli(['status', '--api', 'http://127.0.0.1:9'], { home })
    expect(dead.code).toBe(3)
    expect(dead.stderr).toContain('cannot reach the daemon')
  })

  it('unknown commands, unknown options and missing arguments exit 2', async () => {
    expect((await runCli(['frobnicate'])).code).toBe(2)
    const option = await runCli(['get', 'x', '--bogus'])
    expect(option.code).toBe(2)
    expect(option.stderr).toContain('--bogus')
    expect((await cli(['get'])).code).toBe(2)
    expect((await runCli([])).code).toBe(2)
  })

  it('says "did you mean" for typos, and usage errors honour --json with a code', async () => {
    const command = await runCli(['stauts'])
    expect([command.code, command.stderr]).toEqual([2, expect.stringContaining('did you mean "status"?')])
    const option = await runCli(['ls', '--limt', '3'])
    expect([option.code, option.stderr]).toEqual([2, expect.stringContaining('did you mean --limit?')])
    const json = await runCli(['put', 'k', 'v', '--tpye', 'json', '--json'])
    expect(json.code).toBe(2)
    expect(JSON.parse(json.stderr)).toEqual({
      error: { code: 'UNKNOWN_OPTION', message: 'unknown option --tpye; did you mean --type?' },
    })
    const early = await runCli(['--api', 'localhost:7600', 'status'])
    expect([early.code, early.stderr]).toEqual([
      2,
      expect.stringContaining('options go after the command: hearsay status --api localhost:7600'),
    ])
    const unknown = JSON.parse((await runCli(['frobnicate', '--json'])).stderr)
    expect(unknown.error.code).toBe('UNKNOWN_COMMAND')
    const missing = await runCli(['get', '--json'], { home: tempHome() })
    expect(JSON.parse(missing.stderr)).toEqual({ error: { code: 'USAGE', message: 'missing key' } })
  })

  it('every help text fits 80 columns and lists openapi, doctor and completion', async () => {
    const main = await runCli(['--help'])
    for (const name of ['openapi', 'doctor', 'completion']) expect(main.stdout).toContain(`  ${name} `)
    const names = [...main.stdout.matchAll(/^ {2}([a-z]+) /gm)].map((match) => match[1])
    expect(names.length).toBeGreaterThan(15)
    const helps = await Promise.all(names.map((name) => runCli([name, '--help'])))
    for (const text of [main.stdout, ...helps.map((help) => help.stdout)]) {
      const wide = text.split('\n').filter((line) => line.length > 80)
      expect(wide).toEqual([])
    }
  })

  it('completion prints bash, zsh and fish scripts from the command table', async () => {
    const { spawnSync } = await import('node:child_process')
    const bash = await runCli(['completion', 'bash'])
    expect(bash.code).toBe(0)
    expect(bash.stdout).toContain('complete -F _hearsay hearsay')
    // Real bash completes "sta" to status and "ls --li" to --limit.
    const script = `${bash.stdout}
COMP_WORDS=(hearsay sta); COMP_CWORD=1; _hearsay; echo "\${COMPREPLY[@]}"
COMP_WORDS=(hearsay ls --li); COMP_CWORD=2; _hearsay; echo "\${COMPREPLY[@]}"`
    const ran = spawnSync('bash', ['-c', script], { encoding: 'utf8', timeout: 10_000 })
    expect(ran.stdout.split('\n').slice(0, 2)).toEqual(['status', '--limit'])
    const zsh = await runCli(['completion', 'zsh'])
    expect(zsh.stdout).toMatch(/^#compdef hearsay/)
    expect(zsh.stdout).toContain("'doctor:check Node, data dir")
    const fish = await runCli(['completion', 'fish'])
    expect(fish.stdout).toContain("complete -c hearsay -n '__fish_seen_subcommand_from put' -l type -s t -r")
    const bad = await runCli(['completion', 'powershell'])
    expect([bad.code, bad.stderr]).toEqual([2, expect.stringContaining('bash, zsh, fish')])
  })

  it('a placeholder peer id in --hub is CONFIG_INVALID naming --hub, not a mesh failure', async () => {
    const result = await runCli(['up', '--api-port', '0', '--hub', '/ip4/127.0.0.1/tcp/7601/p2p/12D3KooW…'])
    expect(result.code).toBe(7)
    expect(result.stderr).toMatch(/CONFIG_INVALID: --hub: .*12D3KooW…" .*peer id/)
  })

  it('--help for the program and for every command', async () => {
    const [main, up, put, version] = await Promise.all([
      runCli(['--help']),
      runCli(['up', '--help']),
      runCli(['help', 'put']),
      runCli(['--version']),
    ])
    expect(main.code).toBe(0)
    for (const name of [
      'init',
      'up',
      'put',
      'get',
      'del',
      'ls',
      'watch',
      'incr',
      'sadd',
      'srem',
      'smembers',
      'peers',
      'connect',
      'invite',
      'join',
      'status',
      'hub',
    ]) {
      expect(main.stdout).toContain(`  ${name} `)
    }
    expect(main.stdout).toContain('Exit codes')
    expect(up.stdout).toContain('--api-port')
    expect(up.stdout).toContain('--[no-]mdns')
    expect(up.stdout).toContain('--open')
    expect(put.stdout).toContain('--if-match')
    expect(version.stdout.trim()).toBe(JSON.parse(readFileSync('package.json', 'utf8')).version)
  })

  it('init creates the data dir, a 0600 identity, a 0600 mesh key and config.json from flags', async () => {
    const home = join(tempHome(), 'nested', 'home')
    const result = await runCli(['init', '--api-port', '7711', '--no-mdns', '--mesh', 'lab', '--json'], {
      home,
    })
    expect(result.code).toBe(0)
    const out = JSON.parse(result.stdout)
    expect(out).toMatchObject({ dataDir: home, identityCreated: true, configWritten: true })
    expect(statSync(join(home, 'peer.key')).mode & 0o777).toBe(0o600)
    expect(JSON.parse(readFileSync(join(home, 'config.json'), 'utf8'))).toEqual({
      apiPort: 7711,
      mdns: false,
      mesh: 'lab',
    })
    expect(out).toMatchObject({ open: false, swarmKeyFile: join(home, 'swarm.key'), swarmKeyCreated: true })
    expect(statSync(out.swarmKeyFile).mode & 0o777).toBe(0o600)
    const key = readFileSync(out.swarmKeyFile, 'utf8')
    expect(key).toMatch(/^\/key\/swarm\/psk\/1\.0\.0\/\n\/base16\/\n[0-9a-f]{64}$/)
    const again = JSON.parse((await runCli(['init', '--json'], { home })).stdout)
    expect(again).toMatchObject({
      peerId: out.peerId,
      identityCreated: false,
      configWritten: false,
      swarmKeyCreated: false,
    })
    expect(readFileSync(out.swarmKeyFile, 'utf8')).toBe(key)
    // --new-swarm-key insists on a new key: refused while one exists.
    expect((await runCli(['init', '--new-swarm-key'], { home })).code).toBe(7)
    // An open mesh gets no key.
    const openHome = join(tempHome(), 'open')
    const open = JSON.parse((await runCli(['init', '--open', '--json'], { home: openHome })).stdout)
    expect(open.open).toBe(true)
    expect(open.swarmKeyFile).toBeUndefined()
    expect(existsSync(join(openHome, 'swarm.key'))).toBe(false)
    const bad = await runCli(['init', '--api-port', 'x'], { home })
    expect(bad.code).toBe(7)
    expect(existsSync(join(home, 'config.json'))).toBe(true)
  })
})

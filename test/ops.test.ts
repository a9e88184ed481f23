/**
 * Operating hearsay: the installed command (bin/hearsay.cjs) on the system's Node and on the pinned
 * one, `hearsay doctor`, and what the daemon says about peers that come and go.
 */
import { spawnSync } from 'node:child_process'
import { chmodSync, copyFileSync, existsSync, mkdirSync, readFileSync } from 'node:fs'
import { createServer, type Server } from 'node:net'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import {
  cleanEnv,
  giveSharedKey,
  removeHomes,
  runCli,
  startDaemon,
  stopAllDaemons,
  tempHome,
  until,
} from './helpers/daemon.ts'
import { LAUNCHER, launchUp } from './helpers/launcher.ts'

const PINNED = process.execPath
const MINIMUM = '22.16.0'

/** A system Node older than the minimum, if this machine has one (the case the launcher exists for). */
function oldSystemNode(): string | undefined {
  for (const candidate of ['/usr/bin/node', '/usr/local/bin/node']) {
    if (!existsSync(candidate)) continue
    const version = spawnSync(candidate, ['-p', 'process.versions.node'], { encoding: 'utf8' }).stdout.trim()
    const [major, minor] = version.split('.').map(Number)
    if (major < 22 || (major === 22 && minor < 16)) return candidate
  }
  return undefined
}

afterAll(async () => {
  await stopAllDaemons()
  removeHomes()
})

function launch(node: string, args: string[], home: string, launcher = LAUNCHER) {
  return spawnSync(node, [launcher, ...args], {
    encoding: 'utf8',
    env: cleanEnv({ HEARSAY_HOME: home }),
    timeout: 30_000,
  })
}

/** `hearsay up` through the launcher until its ready line, then SIGTERM; resolves with its exit. */
async function upAndStop(
  node: string,
  args = ['--listen', '/ip4/127.0.0.1/tcp/0', '--no-mdns'],
  home = tempHome(),
): Promise<{ ready: Record<string, unknown>; code: number | null; stderr: string }> {
  const { child, ready, stderr, exited } = await launchUp(node, args, { HEARSAY_HOME: home })
  try {
    const status = await fetch(`${ready.url}/healthz`)
    expect(status.status).toBe(200)
    child.kill('SIGTERM')
    return { ready, code: await exited, stderr: stderr() }
  } finally {
    if (child.exitCode === null) child.kill('SIGKILL')
  }
}

describe('the installed command', () => {
  it('package.json runs the launcher, ships it, and states the real minimum Node', () => {
    const manifest = JSON.parse(readFileSync('package.json', 'utf8'))
    expect(manifest.bin.hearsay).toBe('bin/hearsay.cjs')
    expect(manifest.files).toContain('bin')
    expect(manifest.engines.node).toBe(`>=${MINIMUM}`)
    expect(readFileSync(LAUNCHER, 'utf8')).toContain(`const MINIMUM = [${MINIMUM.split('.').join(', ')}]`)
  })

  it('runs --version and up on the pinned Node, with no experimental warning', async () => {
    const version = launch(PINNED, ['--version'], tempHome())
    expect([version.status, version.stdout.trim(), version.stderr]).toEqual([0, '0.1.0', ''])
    const run = await upAndStop(PINNED)
    expect(run.code).toBe(0)
    expect(run.stderr).not.toContain('ExperimentalWarning')
  }, 60_000)

  it('on an old system Node, re-executes under the pinned Node (or says why it cannot check)', async () => {
    const old = oldSystemNode()
    if (old === undefined) {
      console.log(
        'no Node older than 22.16 on this machine: the re-exec path is checked by the next test only',
      )
      expect(oldSystemNode()).toBeUndefined()
      return
    }
    const version = launch(old, ['--version'], tempHome())
    expect([version.status, version.stdout.trim(), version.stderr]).toEqual([0, '0.1.0', ''])
    const run = await upAndStop(old)
    expect(run.ready.pid).not.toBe(undefined)
    expect(run.code).toBe(0)
    expect(run.stderr).not.toContain('ExperimentalWarning')
    expect(run.stderr).not.toContain('node:sqlite')
  }, 60_000)

  it('with an old Node and no pinned one, stops with one line naming the version', () => {
    const old = oldSystemNode()
    // A package root with the launcher alone: no node_modules/node to fall back on.
    const root = tempHome('hearsay-launcher-')
    mkdirSync(join(root, 'bin'))
    copyFileSync(LAUNCHER, join(root, 'bin', 'hearsay.cjs'))
    chmodSync(join(root, 'bin', 'hearsay.cjs'), 0o755)
    // Without an old Node here, the pinned one stands in, told it is a re-exec that found none.
    const result = old
      ? launch(old, ['up'], tempHome(), join(root, 'bin', 'hearsay.cjs'))
      : spawnSync(PINNED, [join(root, 'bin', 'hearsay.cjs'), '--version'], { encoding: 'utf8' })
    if (old === undefined) {
      // Recent enough: it gets as far as loading dist, which this root lacks, and says so in one line.
      expect(result.status).toBe(1)
      expect(result.stderr).toMatch(/^hearsay: cannot load .*npm run build/)
      return
    }
    expect(result.status).toBe(1)
    expect(result.stdout).toBe('')
    expect(result.stderr.trim().split('\n')).toEqual([
      expect.stringMatching(
        /^hearsay: needs Node\.js 22\.16\.0 or newer \(this is v\d+\.\d+\.\d+\); install Node 22/,
      ),
    ])
  })
})

function occupyPort(): Promise<{ server: Server; port: number }> {
  return new Promise((resolve) => {
    const server = createServer()
    server.listen(0, '127.0.0.1', () => {
      const address = server.address()
      resolve({ server, port: typeof address === 'object' && address !== null ? address.port : 0 })
    })
  })
}

describe('hearsay doctor', () => {
  it('without a daemon: ok for a fresh owner-only data dir, warns no daemon, fails a taken port', async () => {
    const home = tempHome()
    const free = await runCli(['doctor', '--json', '--api-port', '0', '--listen', '/ip4/127.0.0.1/tcp/0'], {
      home,
    })
    expect(free.code).toBe(0)
    const report = JSON.parse(free.stdout)
    expect(report.ok).toBe(true)
    const byName = Object.fromEntries(report.checks.map((c: { name: string }) => [c.name, c]))
    expect(byName.node.status).toBe('ok')
    expect(byName['data dir'].status).toBe('ok')
    expect(byName.lock.status).toBe('ok')
    expect(byName.api).toMatchObject({ status: 'warn', fix: expect.stringContaining('hearsay up') })

    chmodSync(home, 0o755)
    const { server, port } = await occupyPort()
    try {
      const taken = await runCli(['doctor', '--api-port', String(port), '--listen', '/ip4/127.0.0.1/tcp/0'], {
        home,
      })
      expect(taken.code).toBe(1)
      expect(taken.stdout).toMatch(/^warn\s+data dir\s+.*chmod 700/m)
      expect(taken.stdout).toMatch(
        new RegExp(`^fail\\s+API port\\s+127\\.0\\.0\\.1:${port} is in use.*--api-port`, 'm'),
      )
    } finally {
      server.close()
    }
  })

  it('with a daemon: the lock is held by it, the API answers, and no peers is a warning', async () => {
    const daemon = await startDaemon()
    const result = await runCli(['doctor', '--json'], { home: daemon.home })
    expect(result.code).toBe(0)
    const checks = JSON.parse(result.stdout).checks as Array<{
      name: string
      status: string
      message: string
    }>
    expect(checks.find((c) => c.name === 'lock')).toMatchObject({
      status: 'ok',
      message: expect.stringContaining(String(daemon.pid)),
    })
    expect(checks.find((c) => c.name === 'api')?.status).toBe('ok')
    expect(checks.find((c) => c.name === 'peers')).toMatchObject({
      status: 'warn',
      message: 'none connected (0 known)',
    })
    const stray = await runCli(['doctor', 'now'], { home: daemon.home })
    expect(stray.code).toBe(2)
  })
})

describe('peers coming and going', () => {
  it('the daemon logs connects and disconnects; peers shows where a peer that dialled in comes from', async () => {
    const env = { HEARSAY_LOG_LEVEL: 'info' }
    const [a, b] = await Promise.all([startDaemon({ env }), startDaemon({ env })])
    const dial = await runCli(['connect', b.addresses[0], '--json'], { home: a.home })
    expect(dial.code).toBe(0)
    // b was dialled: it knows a only by the connection.
    const listed = await until(async () => {
      const peers = JSON.parse((await runCli(['peers', '--json'], { home: b.home })).stdout).peers
      return peers.find((p: { peerId: string }) => p.peerId === a.peerId)
    })
    expect(listed.addresses[0]).toMatch(/^\/ip4\/127\.0\.0\.1\/tcp\/\d+/)
    const table = await runCli(['peers'], { home: b.home })
    expect(table.stdout).toContain(listed.addresses[0])
    await until(() => (b.stderr().includes('"msg":"peer connected"') ? true : undefined), {
      message: 'b logs the connect',
    })
    expect(b.stderr()).toContain(a.peerId)
    await a.stop()
    await until(() => (b.stderr().includes('"msg":"peer disconnected"') ? true : undefined), {
      message: 'b logs the disconnect',
    })
  }, 60_000)
})

describe('hub clients', () => {
  it('take a free p2p port by default, so they run next to a peer listening on the default one', async () => {
    const hub = await startDaemon({ command: 'hub' })
    const home = tempHome()
    giveSharedKey(home)
    const run = await upAndStop(PINNED, ['--hub', hub.addresses[0], '--loopback-testing'], home)
    expect(run.code).toBe(0)
    expect(run.ready.topology).toBe('hub-client')
    const ports = (run.ready.addresses as string[]).map((address) =>
      Number(/\/tcp\/(\d+)/.exec(address)?.[1]),
    )
    expect(ports.length).toBeGreaterThan(0)
    for (const port of ports) expect(port).not.toBe(7601)
  }, 60_000)
})

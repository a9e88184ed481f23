/**
 * Starts hearsay peers on this machine for the examples: each peer is a real daemon process
 * (`hearsay up`), with its own data dir under the system temp dir, its API on a free loopback port,
 * mDNS off, and the first peer as everyone's bootstrap. The first peer makes a new private mesh; the
 * others get its key. Everything here is plain HTTP against the peers' APIs, as an application would.
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { copyFileSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

const CLI = new URL('../../src/cli/main.ts', import.meta.url).pathname

export interface Peer {
  name: string
  url: string
  peerId: string
  addresses: string[]
  meshAttached: boolean
  home: string
  process: ChildProcess
}

export interface LocalMesh {
  peers: Peer[]
  stop(): Promise<void>
}

/** Starts one daemon per name; the later ones bootstrap from the first. */
export async function startLocalMesh(
  names: string[],
  options: { keepData?: boolean } = {},
): Promise<LocalMesh> {
  const peers: Peer[] = []
  const stop = async () => {
    await Promise.all(peers.map((peer) => stopPeer(peer)))
    if (!options.keepData) for (const peer of peers) rmSync(peer.home, { recursive: true, force: true })
  }
  // Ctrl-C or a crash of the example must not leave daemons behind.
  const onSignal = () => {
    void stop().finally(() => process.exit(130))
  }
  process.once('SIGINT', onSignal)
  process.once('SIGTERM', onSignal)
  try {
    // The first peer makes a new private mesh; the others get its key, as `hearsay join` would give them.
    const first = await startPeer(names[0], [])
    peers.push(first)
    const bootstrap = first.addresses.slice(0, 1).flatMap((address) => ['--bootstrap', address])
    const meshKey = join(first.home, 'swarm.key')
    const rest = await Promise.allSettled(names.slice(1).map((name) => startPeer(name, bootstrap, meshKey)))
    for (const result of rest) if (result.status === 'fulfilled') peers.push(result.value)
    const failure = rest.find((result) => result.status === 'rejected')
    if (failure !== undefined) throw failure.reason
    if (first.meshAttached) {
      // Everyone dials the first peer at start; wait for those connections so the example's first
      // write is not racing them.
      await eventually(
        'peers connected',
        async () => {
          const status = await call(first, 'GET', '/v1/status')
          return status.peers.connected >= peers.length - 1 ? true : undefined
        },
        15_000,
      )
    }
  } catch (error) {
    await stop()
    throw error
  }
  return { peers, stop }
}

function startPeer(name: string, extraArgs: string[], meshKey?: string): Promise<Peer> {
  const home = mkdtempSync(join(tmpdir(), `hearsay-example-${name}-`))
  if (meshKey !== undefined) copyFileSync(meshKey, join(home, 'swarm.key'))
  const child = spawn(
    process.execPath,
    [
      CLI,
      'up',
      '--json',
      '--api-port',
      '0',
      '--listen',
      '/ip4/127.0.0.1/tcp/0',
      '--no-mdns',
      '--loopback-testing',
      ...extraArgs,
    ],
    {
      env: { ...process.env, HEARSAY_HOME: home, HEARSAY_LOG_LEVEL: 'warn' },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  )
  let stdout = ''
  let stderr = ''
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
    stderr += chunk
  })
  return new Promise((resolve, reject) => {
    const fail = (message: string) => {
      rmSync(home, { recursive: true, force: true })
      reject(new Error(message))
    }
    const timer = setTimeout(() => {
      child.kill('SIGKILL')
      fail(`peer ${name} did not start within 30 s:\n${stderr}`)
    }, 30_000)
    child.once('exit', (code) => {
      clearTimeout(timer)
      fail(`peer ${name} exited (${code}) before it was ready:\n${stderr}`)
    })
    child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
      stdout += chunk
      const line = stdout.split('\n').find((candidate) => candidate.includes('"event":"ready"'))
      if (line === undefined) return
      clearTimeout(timer)
      child.removeAllListeners('exit')
      const ready = JSON.parse(line)
      resolve({
        name,
        url: ready.url,
        peerId: ready.peerId,
        addresses: ready.addresses,
        meshAttached: ready.meshAttached,
        home,
        process: child,
      })
    })
  })
}

/** SIGTERM (a graceful stop: the daemon flushes and leaves the mesh), SIGKILL if it hangs. */
function stopPeer(peer: Peer): Promise<void> {
  const child = peer.process
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve()
  return new Promise((resolve) => {
    const force = setTimeout(() => child.kill('SIGKILL'), 5_000)
    child.once('exit', () => {
      clearTimeout(force)
      resolve()
    })
    child.kill('SIGTERM')
  })
}

/** One JSON request to a peer's API; throws with the API's error code on failure. */
// biome-ignore lint/suspicious/noExplicitAny: examples read response fields directly
export async function call(peer: Peer, method: string, path: string, body?: unknown): Promise<any> {
  const response = await fetch(peer.url + path, {
    method,
    headers: body === undefined ? {} : { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  })
  const text = await response.text()
  const json = text === '' ? undefined : JSON.parse(text)
  if (!response.ok)
    throw new Error(
      `${method} ${path} on ${peer.name}: ${json?.error?.code ?? response.status}: ${json?.error?.message ?? text}`,
    )
  return json
}

/** Reads a key as JSON, or undefined if it does not exist (yet) on that peer. */
export async function read(peer: Peer, path: string): Promise<unknown> {
  const response = await fetch(peer.url + path)
  if (response.status === 404) {
    await response.body?.cancel()
    return undefined
  }
  return response.json()
}

export class NotConverged extends Error {
  override readonly name = 'NotConverged'
}

/**
 * Polls `probe` until it returns a value (not undefined) or the deadline passes. Convergence takes a
 * few milliseconds on loopback; the deadline is generous for a busy machine.
 */
export async function eventually<T>(
  what: string,
  probe: () => Promise<T | undefined>,
  timeoutMs = 10_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const value = await probe().catch(() => undefined)
    if (value !== undefined) return value
    if (Date.now() > deadline) throw new NotConverged(`${what}: not reached within ${timeoutMs / 1000} s`)
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}

/** Explains a failure the way a user needs it: with the likely cause when peers never met. */
export function explain(error: unknown, mesh: LocalMesh | undefined): string {
  const lines = [`✗ ${(error as Error).message}`]
  if (error instanceof NotConverged && mesh !== undefined) {
    if (mesh.peers.some((peer) => !peer.meshAttached || peer.addresses.length === 0)) {
      lines.push('  The peers run without a mesh (attachMesh returned none), so they cannot replicate.')
    } else {
      lines.push(
        '  The peers started but did not converge in time: check `hearsay peers` and the daemon logs.',
      )
    }
  }
  return lines.join('\n')
}

/** Runs an example: starts the mesh, runs `body`, stops everything, exits non-zero on failure. */
export async function runExample(names: string[], body: (mesh: LocalMesh) => Promise<void>): Promise<void> {
  let mesh: LocalMesh | undefined
  let failed = false
  try {
    mesh = await startLocalMesh(names)
    await body(mesh)
  } catch (error) {
    failed = true
    console.error(explain(error, mesh))
  } finally {
    await mesh?.stop()
  }
  process.exit(failed ? 1 : 0)
}

export function elapsed(since: number): string {
  return `${Math.round(performance.now() - since)} ms`
}

/**
 * Processes of the e2e benchmark: `hearsay up` / `hearsay hub` started with the real CLI, the relay
 * baseline, and what the kernel says about them (/proc CPU and memory, `ss` TCP byte counters).
 * Every child and temp dir is tracked so one call (also on Ctrl-C and on failure) removes them all.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { cleanEnv, parseSs, cpuMs as processCpuMs, type SocketBytes } from '../src/lab/processes.ts'

export type { SocketBytes }

export const CLI = new URL('../src/cli/main.ts', import.meta.url).pathname
export const BUILT_CLI = new URL('../dist/cli/main.js', import.meta.url).pathname

const RELAY = new URL('./relay.ts', import.meta.url).pathname

const children = new Set<ChildProcess>()
const dirs = new Set<string>()

export function tempDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix))
  dirs.add(dir)
  return dir
}

/** SIGKILLs every tracked child and removes every temp dir; synchronous, so it also runs on 'exit'. */
export function killAllNow(): void {
  for (const child of children)
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
  children.clear()
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true })
  dirs.clear()
}

/** Cleans up on Ctrl-C, SIGTERM and any exit, however the run ends. */
export function installCleanup(): void {
  process.once('exit', killAllNow)
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      console.error(`\n${signal}: stopping every benchmark process`)
      killAllNow()
      process.exit(130)
    })
  }
}

/**
 * Stops the whole run (every process it started) once it has run `budgetMs`: every bench is bounded.
 * Returns the timer, to clear when the run ends in time.
 */
export function installWatchdog(name: string, budgetMs: number): NodeJS.Timeout {
  const watchdog = setTimeout(() => {
    console.error(`${name}: over its ${budgetMs / 60_000} min budget; stopping`)
    killAllNow()
    process.exit(1)
  }, budgetMs)
  watchdog.unref()
  return watchdog
}

/** A swarm key (libp2p pnet format) shared by the daemons of one cluster: a private mesh of their own. */
export function writeSwarmKey(dir: string): string {
  const path = join(dir, 'swarm.key')
  writeFileSync(path, `/key/swarm/psk/1.0.0/\n/base16/\n${randomBytes(32).toString('hex')}`, { mode: 0o600 })
  return path
}

/** A free loopback TCP port (so the API URL is known before the daemon prints it). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const address = server.address()
      const port = typeof address === 'object' && address !== null ? address.port : 0
      server.close(() => resolve(port))
    })
  })
}

export interface Daemon {
  name: string
  home: string
  url: string
  pid: number
  peerId: string
  /** The libp2p listen address (with /p2p/<id>). */
  address: string
  p2pPort: number
  child: ChildProcess
  /** performance.now() at spawn, at the first 200 from /healthz, and at the ready line. */
  spawnedAt: number
  healthyAt: number
  readyAt: number
  stop(): Promise<void>
}

export interface DaemonOptions {
  name: string
  command: 'up' | 'hub'
  home: string
  swarmKey: string
  args?: string[]
  /** Options for node itself, before the CLI path (e.g. --cpu-prof). */
  nodeArgs?: string[]
  /** The program node runs (default: the CLI's sources); e.g. the installed launcher bin/hearsay.cjs. */
  entry?: string
  /** Extra environment for the daemon. */
  env?: Record<string, string>
  timeoutMs?: number
}

/**
 * `hearsay up|hub` through the CLI entry, as a user starts it (default log level, SQLite store), on
 * loopback with mDNS off and per-IP limits relaxed for many peers on 127.0.0.1. The API port is
 * chosen here so /healthz can be polled from the moment of spawn.
 */
export async function startDaemon(options: DaemonOptions): Promise<Daemon> {
  const apiPort = await freePort()
  const url = `http://127.0.0.1:${apiPort}`
  const args = [
    ...(options.nodeArgs ?? []),
    options.entry ?? CLI,
    options.command,
    '--json',
    '--api-port',
    String(apiPort),
    '--listen',
    '/ip4/127.0.0.1/tcp/0',
    '--no-mdns',
    '--loopback-testing',
    '--swarm-key',
    options.swarmKey,
    ...(options.args ?? []),
  ]
  const spawnedAt = performance.now()
  const child = spawn(process.execPath, args, {
    env: cleanEnv({ ...options.env, HEARSAY_HOME: options.home }),
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  children.add(child)
  let stdout = ''
  let stderr = ''
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
    // Only the ready line matters; keep the buffer bounded.
    if (stdout.length < 64_000) stdout += chunk
  })
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
    stderr = (stderr + chunk).slice(-8000)
  })
  const exited = new Promise<void>((resolve) => {
    child.once('exit', () => {
      children.delete(child)
      resolve()
    })
  })
  const timeoutMs = options.timeoutMs ?? 60_000
  const deadline = Date.now() + timeoutMs
  let healthyAt = Number.NaN
  let ready: { pid: number; peerId: string; addresses: string[] } | undefined
  let readyAt = Number.NaN
  while (Date.now() < deadline && (ready === undefined || Number.isNaN(healthyAt))) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(
        `${options.name} exited before ready (${child.exitCode ?? child.signalCode}):\n${stderr}`,
      )
    }
    if (ready === undefined) {
      const line = stdout.split('\n').find((candidate) => candidate.includes('"event":"ready"'))
      if (line !== undefined) {
        ready = JSON.parse(line)
        readyAt = performance.now()
      }
    }
    if (Number.isNaN(healthyAt) && (await healthy(url))) healthyAt = performance.now()
    await pause(5)
  }
  if (ready === undefined || Number.isNaN(healthyAt)) {
    child.kill('SIGKILL')
    throw new Error(`${options.name} not ready within ${timeoutMs} ms:\n${stderr}`)
  }
  const address = ready.addresses[0] ?? ''
  const port = /\/tcp\/(\d+)/.exec(address)?.[1]
  return {
    name: options.name,
    home: options.home,
    url,
    pid: ready.pid,
    peerId: ready.peerId,
    address,
    p2pPort: port === undefined ? 0 : Number(port),
    child,
    spawnedAt,
    healthyAt,
    readyAt,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM')
        const timer = setTimeout(() => child.kill('SIGKILL'), 10_000)
        await exited
        clearTimeout(timer)
      }
    },
  }
}

async function healthy(url: string): Promise<boolean> {
  try {
    const response = await fetch(`${url}/healthz`, { signal: AbortSignal.timeout(1000) })
    await response.arrayBuffer()
    return response.status === 200
  } catch {
    return false
  }
}

export function pause(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms))
}

export interface Relay {
  url: string
  pid: number
  stop(): Promise<void>
}

/** The baseline relay (bench/relay.ts) in its own process. */
export async function startRelay(): Promise<Relay> {
  const child = spawn(process.execPath, [RELAY], { stdio: ['ignore', 'pipe', 'inherit'] })
  children.add(child)
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('relay did not start within 30 s')), 30_000)
    child.stdout!.setEncoding('utf8').once('data', (line: string) => {
      clearTimeout(timer)
      resolve(Number(line.trim()))
    })
  })
  return {
    url: `http://127.0.0.1:${port}`,
    pid: child.pid!,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
      await exited
      children.delete(child)
    },
  }
}

// ---- what the kernel says --------------------------------------------------------------------------

/** utime + stime of a process so far, in ms (/proc/<pid>/stat; 10 ms resolution). Throws once it is gone. */
export function cpuMs(pid: number): number {
  const ms = processCpuMs(pid)
  if (ms === undefined) throw new Error(`process ${pid} is gone: no CPU figure`)
  return ms
}

/** VmHWM (peak) or VmRSS of a process, MiB. */
export function memoryMiB(pid: number, field: 'VmHWM' | 'VmRSS'): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8')
  const match = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)
  return match === null ? Number.NaN : Number(match[1]) / 1024
}

/** Every established TCP socket with its owning pid and byte counters (payload, after encryption), keyed by "local>peer" port. */
export function sampleSockets(): Map<string, SocketBytes> {
  const text = execFileSync('ss', ['-tinpH', 'state', 'established'], {
    encoding: 'utf8',
    maxBuffer: 64 * 1024 * 1024,
  })
  return new Map(parseSs(text).map((socket) => [`${socket.localPort}>${socket.peerPort}`, socket]))
}

/**
 * Bytes a daemon received and sent over its libp2p connections between two samples: its sockets whose
 * local or peer port is a libp2p listen port of the cluster (not the HTTP API). Sockets opened in
 * between count in full; sockets closed in between are lost (the figure is then a lower bound).
 */
export function p2pBytesBetween(
  before: Map<string, SocketBytes>,
  after: Map<string, SocketBytes>,
  pid: number,
  p2pPorts: Set<number>,
): { received: number; sent: number } {
  let received = 0
  let sent = 0
  for (const [key, socket] of after) {
    if (socket.pid !== pid || !(p2pPorts.has(socket.localPort) || p2pPorts.has(socket.peerPort))) continue
    const earlier = before.get(key)
    received += socket.received - (earlier?.pid === pid ? earlier.received : 0)
    sent += socket.sent - (earlier?.pid === pid ? earlier.sent : 0)
  }
  return { received, sent }
}

/**
 * Real daemon processes for tests: `hearsay up` (or `hearsay hub`) started through the CLI entry, on
 * port 0, with its data dir under os.tmpdir(). Every process started here is tracked; call
 * `stopAllDaemons()` in afterEach/afterAll. Waits poll with deadlines, never sleep.
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { newSwarmKeyFile } from '../../src/mesh/swarm-key.ts'
import { eventually } from './eventually.ts'

export const CLI = new URL('../../src/cli/main.ts', import.meta.url).pathname
/**
 * The built `hearsay` binary (package.json `bin`), which client-command tests run. `npm test` builds
 * it first (`pretest`), so it is never stale.
 */
export const BUILT_CLI = new URL('../../dist/cli/main.js', import.meta.url).pathname

const children = new Set<ChildProcess>()
const homes = new Set<string>()

export function tempHome(prefix = 'hearsay-test-'): string {
  const home = mkdtempSync(join(tmpdir(), prefix))
  homes.add(home)
  return home
}

let sharedKey: string | undefined

/**
 * One mesh key for every daemon this test process starts, so the daemons a test means to connect
 * are in one private mesh, as peers joined with `hearsay invite`/`join` would be.
 */
export function sharedSwarmKeyFile(): string {
  if (sharedKey === undefined || !existsSync(sharedKey)) {
    sharedKey = join(tempHome('hearsay-test-key-'), 'swarm.key')
    writeFileSync(sharedKey, newSwarmKeyFile(), { mode: 0o600 })
  }
  return sharedKey
}

/** Puts the shared mesh key in a data dir that has none yet. */
export function giveSharedKey(home: string): void {
  const path = join(home, 'swarm.key')
  if (existsSync(path)) return
  mkdirSync(home, { recursive: true, mode: 0o700 })
  copyFileSync(sharedSwarmKeyFile(), path)
}

/** The environment of a child: no HEARSAY_* leaking in from the developer's shell. */
export function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {}
  for (const [name, value] of Object.entries(process.env)) if (!name.startsWith('HEARSAY_')) env[name] = value
  return { ...env, ...extra }
}

export interface Exit {
  code: number | null
  signal: NodeJS.Signals | null
}

export interface DaemonProcess {
  url: string
  pid: number
  peerId: string
  addresses: string[]
  meshAttached: boolean
  topology: 'mesh' | 'hub' | 'hub-client'
  /** The mesh key the daemon uses (`private: false`: an open mesh) and whether it made it at this start. */
  meshKey: { private: boolean; file?: string; created?: boolean }
  home: string
  child: ChildProcess
  exited: Promise<Exit>
  stdout(): string
  stderr(): string
  /** Sends a signal and waits for the exit. */
  stop(signal?: NodeJS.Signals): Promise<Exit>
}

export interface StartOptions {
  /** `up` (default) or `hub`: the same daemon, run as a hub for client peers. */
  command?: 'up' | 'hub'
  home?: string
  args?: string[]
  env?: Record<string, string>
  /** Default: loopback p2p on a free port, mDNS off, loopback limits relaxed. */
  mesh?: boolean
  /**
   * `shared` (default): the data dir gets this test process's shared mesh key unless it has a key
   * already; `none`: nothing is added (the daemon makes its own key, or runs open with --open, which
   * implies `none`).
   */
  meshKey?: 'shared' | 'none'
  timeoutMs?: number
}

/** Spawns `hearsay up` (or `hub`); rejects (with its stderr) if it exits or takes longer than the deadline. */
export function startDaemon(options: StartOptions = {}): Promise<DaemonProcess> {
  const home = options.home ?? tempHome()
  const keyChosen = options.args?.some((arg) => arg === '--open' || arg === '--swarm-key') === true
  if ((options.meshKey ?? 'shared') === 'shared' && !keyChosen) giveSharedKey(home)
  const args = [
    CLI,
    options.command ?? 'up',
    '--json',
    '--api-port',
    '0',
    '--listen',
    '/ip4/127.0.0.1/tcp/0',
    '--no-mdns',
    '--loopback-testing',
  ]
  const child = spawn(process.execPath, [...args, ...(options.args ?? [])], {
    env: cleanEnv({
      HEARSAY_HOME: home,
      HEARSAY_LOG_LEVEL: process.env.TEST_DAEMON_LOG_LEVEL ?? 'warn',
      ...options.env,
    }),
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  children.add(child)
  let stdout = ''
  let stderr = ''
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
    stdout += chunk
  })
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
    stderr += chunk
  })
  const exited = new Promise<Exit>((resolve) => {
    child.once('exit', (code, signal) => {
      children.delete(child)
      resolve({ code, signal })
    })
  })
  const timeoutMs = options.timeoutMs ?? 20_000
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL')
      reject(new Error(`daemon not ready within ${timeoutMs} ms; stderr:\n${stderr}`))
    }, timeoutMs)
    const onData = () => {
      const line = stdout.split('\n').find((candidate) => candidate.includes('"event":"ready"'))
      if (line === undefined) return
      clearTimeout(timer)
      child.stdout!.off('data', onData)
      const ready = JSON.parse(line)
      resolve({
        url: ready.url,
        pid: ready.pid,
        peerId: ready.peerId,
        addresses: ready.addresses,
        meshAttached: ready.meshAttached,
        topology: ready.topology,
        meshKey: ready.meshKey,
        home,
        child,
        exited,
        stdout: () => stdout,
        stderr: () => stderr,
        async stop(signal = 'SIGTERM') {
          if (child.exitCode === null && child.signalCode === null) child.kill(signal)
          return exited
        },
      })
    }
    child.stdout!.on('data', onData)
    void exited.then((exit) => {
      clearTimeout(timer)
      reject(new Error(`daemon exited before ready (${exit.code ?? exit.signal}); stderr:\n${stderr}`))
    })
  })
}

/** Runs `hearsay up` expecting it to fail; resolves with its exit and output. */
export function runDaemonExpectingFailure(
  options: StartOptions = {},
): Promise<Exit & { stderr: string; stdout: string }> {
  return runCli(
    ['up', '--api-port', '0', '--listen', '/ip4/127.0.0.1/tcp/0', '--no-mdns', ...(options.args ?? [])],
    {
      // Never the user's real data dir.
      home: options.home ?? tempHome(),
      env: options.env,
      timeoutMs: options.timeoutMs ?? 20_000,
    },
  )
}

export interface CliResult extends Exit {
  stdout: string
  stderr: string
}

/** Runs the real `hearsay` entry with HEARSAY_HOME set; kills it at the deadline. */
export function runCli(
  args: string[],
  options: {
    home?: string
    env?: Record<string, string>
    input?: string | Uint8Array
    timeoutMs?: number
  } = {},
): Promise<CliResult> {
  if (!existsSync(BUILT_CLI)) throw new Error(`${BUILT_CLI} is missing: run npm run build (npm test does)`)
  const child = spawn(process.execPath, [BUILT_CLI, ...args], {
    // Never the user's real data dir.
    env: cleanEnv({ HEARSAY_HOME: options.home ?? tempHome(), ...options.env }),
    stdio: [options.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
  })
  children.add(child)
  if (options.input !== undefined) child.stdin!.end(options.input)
  let stdout = ''
  let stderr = ''
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
    stdout += chunk
  })
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
    stderr += chunk
  })
  const timeoutMs = options.timeoutMs ?? 15_000
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL')
      reject(new Error(`hearsay ${args.join(' ')} did not finish within ${timeoutMs} ms; stderr:\n${stderr}`))
    }, timeoutMs)
    child.once('close', (code, signal) => {
      clearTimeout(timer)
      children.delete(child)
      resolve({ code, signal, stdout, stderr })
    })
  })
}

/** Kills every process these helpers started and removes their data dirs. */
export async function stopAllDaemons(): Promise<void> {
  const waits = [...children].map(
    (child) =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null) return resolve()
        child.once('exit', () => resolve())
        child.kill('SIGKILL')
      }),
  )
  await Promise.all(waits)
  children.clear()
}

export function removeHomes(): void {
  for (const home of homes) rmSync(home, { recursive: true, force: true })
  homes.clear()
  sharedKey = undefined
}

/** Polls `probe` until it returns something other than undefined, or fails at the deadline. */
export async function until<T>(
  probe: () => T | undefined | Promise<T | undefined>,
  options: { timeoutMs?: number; intervalMs?: number; message?: string } = {},
): Promise<T> {
  let value: T | undefined
  await eventually(
    async () => {
      value = await probe()
      return value !== undefined
    },
    { timeout: options.timeoutMs ?? 10_000, interval: options.intervalMs ?? 25, message: options.message },
  )
  return value as T
}

export interface ApiResult {
  status: number
  headers: Headers
  text: string
  // biome-ignore lint/suspicious/noExplicitAny: test responses are inspected field by field
  json: any
}

/** One HTTP request to a daemon; the body is read and, when JSON, parsed. */
export async function api(
  url: string,
  path: string,
  init: { method?: string; headers?: Record<string, string>; body?: string | Uint8Array } = {},
): Promise<ApiResult> {
  const response = await fetch(url + path, init)
  const text = await response.text()
  let json: unknown
  try {
    json = text === '' ? undefined : JSON.parse(text)
  } catch {
    json = undefined
  }
  return { status: response.status, headers: response.headers, text, json }
}

/** Reads Server-Sent Events from a watch URL until `stop` says so; returns them. */
export async function collectEvents(
  url: string,
  options: {
    headers?: Record<string, string>
    stop: (events: SseEvent[]) => boolean
    timeoutMs?: number
    onOpen?: () => void | Promise<void>
  },
): Promise<SseEvent[]> {
  const controller = new AbortController()
  const timer = setTimeout(() => controller.abort(), options.timeoutMs ?? 10_000)
  const events: SseEvent[] = []
  try {
    const response = await fetch(url, { headers: options.headers, signal: controller.signal })
    if (response.status !== 200)
      throw new Error(`watch answered ${response.status}: ${await response.text()}`)
    const decoder = new TextDecoder()
    let buffer = ''
    let opened = false
    for await (const chunk of response.body!) {
      buffer += decoder.decode(chunk, { stream: true })
      let end = buffer.indexOf('\n\n')
      while (end >= 0) {
        const block = buffer.slice(0, end)
        buffer = buffer.slice(end + 2)
        end = buffer.indexOf('\n\n')
        const event: SseEvent = { event: 'message', data: undefined }
        let any = false
        for (const line of block.split('\n')) {
          if (line.startsWith('id: ')) event.id = line.slice(4)
          else if (line.startsWith('event: ')) event.event = line.slice(7)
          else if (line.startsWith('data: ')) {
            event.data = JSON.parse(line.slice(6))
            any = true
          }
        }
        if (!any) continue
        events.push(event)
        if (event.event === 'ready' && !opened) {
          opened = true
          await options.onOpen?.()
        }
        if (options.stop(events)) return events
      }
    }
    return events
  } catch (error) {
    if (controller.signal.aborted) {
      throw new Error(
        `watch timed out with ${events.length} events: ${JSON.stringify(events.map((e) => e.event))}`,
      )
    }
    throw error
  } finally {
    clearTimeout(timer)
    controller.abort()
  }
}

export interface SseEvent {
  event: string
  id?: string
  // biome-ignore lint/suspicious/noExplicitAny: event payloads are inspected field by field
  data: any
}

import { type ChildProcess, spawn } from 'node:child_process'
import { appendFileSync, mkdirSync } from 'node:fs'
import { join } from 'node:path'
import { loadOrCreateIdentity } from '../../src/mesh/identity.ts'

/**
 * The run's daemons: real `hearsay up` processes, each inside its peer namespace (`ip netns exec`),
 * with its own data dir, listening for peers on the namespace's veth address and serving its HTTP API
 * on the namespace's loopback. A relay process per namespace (relay.ts) makes the API reachable from
 * the runner through a Unix socket. Daemons are stopped with signals and restarted on the same data
 * dir; an exit nobody asked for is recorded as a crash.
 */

const CLI = new URL('../../src/cli/main.ts', import.meta.url).pathname
const RELAY = new URL('./relay.ts', import.meta.url).pathname
export const API_PORT = 7700
export const P2P_PORT = 7601
export const NAMESPACE = 'chaos'

export interface DaemonExit {
  peer: number
  epoch: number
  at: number
  code: number | null
  signal: NodeJS.Signals | null
  /** The runner sent a signal to it (an injected fault or the final stop). */
  expected: boolean
  signalSent?: NodeJS.Signals
}

export interface LogLine {
  peer: number
  level: number
  msg: string
  line: string
}

export interface PeerSpec {
  namespace: string
  address: string
  dataDir: string
  socketPath: string
  logPath: string
  peerId: string
}

interface Running {
  child: ChildProcess
  epoch: number
  signalSent?: NodeJS.Signals
  exited: Promise<void>
}

export interface DaemonSetOptions {
  runDir: string
  namespaces: string[]
  addressOf(peer: number): string
  swarmKeyFile: string
  /** ms since the run started, for exit times. */
  clock(): number
  startTimeoutMs?: number
}

export class DaemonSet {
  readonly specs: PeerSpec[] = []
  readonly exits: DaemonExit[] = []
  readonly errorLines: LogLine[] = []
  /** Starts that did not reach ready within the start timeout (the runner killed them). */
  readonly slowStarts: Array<{ peer: number; epoch: number; at: number }> = []
  private readonly running = new Map<number, Running>()
  private readonly relays: ChildProcess[] = []
  private readonly epochs: number[] = []
  private readonly options: DaemonSetOptions

  private constructor(options: DaemonSetOptions) {
    this.options = options
  }

  /** Makes each peer's data dir and identity (so every bootstrap address is known) and its API relay. */
  static async prepare(options: DaemonSetOptions): Promise<DaemonSet> {
    const set = new DaemonSet(options)
    for (const [peer, namespace] of options.namespaces.entries()) {
      const dataDir = join(options.runDir, `p${peer}`)
      mkdirSync(dataDir, { recursive: true, mode: 0o700 })
      const identity = await loadOrCreateIdentity({ dataDir })
      set.specs.push({
        namespace,
        address: options.addressOf(peer),
        dataDir,
        socketPath: join(options.runDir, `p${peer}.sock`),
        logPath: join(options.runDir, `p${peer}.log`),
        peerId: identity.peerId.toString(),
      })
      set.epochs.push(0)
    }
    await Promise.all(set.specs.map((spec) => set.startRelay(spec)))
    return set
  }

  private startRelay(spec: PeerSpec): Promise<void> {
    const child = spawn(
      'ip',
      [
        'netns',
        'exec',
        spec.namespace,
        process.execPath,
        '--no-warnings',
        RELAY,
        spec.socketPath,
        String(API_PORT),
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    )
    this.relays.push(child)
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`relay in ${spec.namespace} not ready`)), 20_000)
      child.stdout!.setEncoding('utf8').once('data', () => {
        clearTimeout(timer)
        resolve()
      })
      child.once('exit', (code) => {
        clearTimeout(timer)
        reject(new Error(`relay in ${spec.namespace} exited (${code})`))
      })
    })
  }

  epoch(peer: number): number {
    return this.epochs[peer]!
  }

  isUp(peer: number): boolean {
    return this.running.has(peer)
  }

  /** The exit time of a daemon incarnation, once it has exited. */
  exitTime(peer: number, epoch: number): number | undefined {
    return this.exits.find((exit) => exit.peer === peer && exit.epoch === epoch)?.at
  }

  /** Starts (or restarts, on the same data dir) a peer's daemon and waits for its ready line. */
  async start(peer: number): Promise<void> {
    if (this.running.has(peer)) return
    const spec = this.specs[peer]!
    const bootstrap = this.specs
      .filter((_, other) => other !== peer)
      .flatMap((other) => ['--bootstrap', `/ip4/${other.address}/tcp/${P2P_PORT}/p2p/${other.peerId}`])
    const args = [
      'netns',
      'exec',
      spec.namespace,
      process.execPath,
      '--no-warnings',
      CLI,
      'up',
      '--json',
      '--api-host',
      '127.0.0.1',
      '--api-port',
      String(API_PORT),
      '--listen',
      `/ip4/${spec.address}/tcp/${P2P_PORT}`,
      '--no-mdns',
      '--namespace',
      NAMESPACE,
      '--swarm-key',
      this.options.swarmKeyFile,
      '--log-format',
      'json',
      '--log-level',
      'warn',
      ...bootstrap,
    ]
    const epoch = ++this.epochs[peer]!
    const child = spawn('ip', args, {
      env: { ...cleanEnv(), HEARSAY_HOME: spec.dataDir },
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    const running: Running = { child, epoch, exited: Promise.resolve() }
    running.exited = new Promise((resolve) => {
      child.once('exit', (code, signal) => {
        this.running.delete(peer)
        this.exits.push({
          peer,
          epoch,
          at: this.options.clock(),
          code,
          signal,
          expected: running.signalSent !== undefined,
          signalSent: running.signalSent,
        })
        resolve()
      })
    })
    this.collectLog(peer, epoch, child)
    let stdout = ''
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        // The runner's own kill: slow, not crashed (the machine may be loaded); reported apart.
        running.signalSent = 'SIGKILL'
        this.slowStarts.push({ peer, epoch, at: this.options.clock() })
        child.kill('SIGKILL')
        reject(new Error(`peer ${peer} not ready within ${this.options.startTimeoutMs ?? 60_000} ms`))
      }, this.options.startTimeoutMs ?? 60_000)
      child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
        stdout += chunk
        if (stdout.includes('"event":"ready"')) {
          clearTimeout(timer)
          resolve()
        }
      })
      child.once('exit', (code, signal) => {
        clearTimeout(timer)
        reject(new Error(`peer ${peer} exited before ready (${code ?? signal}); see ${spec.logPath}`))
      })
    })
    this.running.set(peer, running)
  }

  /** Sends a signal and waits for the exit. */
  async stop(peer: number, signal: NodeJS.Signals): Promise<void> {
    const running = this.running.get(peer)
    if (running === undefined) return
    running.signalSent = signal
    running.child.kill(signal)
    const killLater = setTimeout(() => running.child.kill('SIGKILL'), 30_000)
    await running.exited
    clearTimeout(killLater)
  }

  /** Kills every daemon and relay at once, without waiting (for the runner's exit handler). */
  killAllNow(): void {
    for (const running of this.running.values()) {
      running.signalSent = 'SIGKILL'
      running.child.kill('SIGKILL')
    }
    for (const relay of this.relays) {
      if (relay.exitCode === null && relay.signalCode === null) relay.kill('SIGKILL')
    }
  }

  /** Every daemon and relay, killed; waits for their exits. */
  async killAll(): Promise<void> {
    await Promise.all([...this.running.keys()].map((peer) => this.stop(peer, 'SIGKILL')))
    for (const relay of this.relays) {
      if (relay.exitCode === null && relay.signalCode === null) relay.kill('SIGKILL')
    }
  }

  private collectLog(peer: number, epoch: number, child: ChildProcess): void {
    const spec = this.specs[peer]!
    appendFileSync(spec.logPath, `--- epoch ${epoch} at ${this.options.clock()} ms\n`)
    let pending = ''
    child.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
      appendFileSync(spec.logPath, chunk)
      pending += chunk
      const lines = pending.split('\n')
      pending = lines.pop()!
      for (const line of lines) this.inspectLine(peer, line)
    })
  }

  private inspectLine(peer: number, line: string): void {
    if (line.trim() === '') return
    let record: { level?: unknown; msg?: unknown }
    try {
      record = JSON.parse(line)
    } catch {
      // Not a log record (a Node warning or a stack trace printed by the runtime): an error of its own kind.
      this.errorLines.push({ peer, level: 50, msg: line.slice(0, 200), line })
      return
    }
    if (typeof record.level === 'number' && record.level >= 50) {
      this.errorLines.push({ peer, level: record.level, msg: String(record.msg ?? ''), line })
    }
  }
}

/** The environment of a daemon: no HEARSAY_* leaking in from the developer's shell. */
function cleanEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {}
  for (const [name, value] of Object.entries(process.env)) if (!name.startsWith('HEARSAY_')) env[name] = value
  return env
}

import { type ChildProcess, execFileSync, spawn } from 'node:child_process'
import { appendFileSync, readFileSync } from 'node:fs'
import { createServer } from 'node:net'

/**
 * The lab's daemons as processes: `hearsay up` / `hearsay hub` started through the CLI entry, each in
 * its own process group (so a kill reaches whatever it spawned), and what the kernel says about them
 * (/proc CPU and memory, `ss` TCP byte counters). Every child is tracked in one set, so one synchronous
 * call, also from an exit or signal handler, kills them all.
 */

const CLI = new URL('../cli/main.ts', import.meta.url).pathname

const children = new Set<ChildProcess>()
const cleanups = new Set<() => Promise<void> | void>()

function killGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return
  try {
    process.kill(-child.pid, signal)
  } catch {
    try {
      child.kill(signal)
    } catch {
      // already gone
    }
  }
}

/** SIGKILLs every daemon the lab started (synchronous: safe in an 'exit' handler). */
export function killAllDaemonsNow(): void {
  for (const child of children) killGroup(child, 'SIGKILL')
  children.clear()
}

/** Registers an async cleanup (a network teardown) that a signal handler runs before exiting. */
export function onCleanup(cleanup: () => Promise<void> | void): () => void {
  cleanups.add(cleanup)
  return () => cleanups.delete(cleanup)
}

let installed = false
/** Ctrl-C, SIGTERM and any exit: every daemon killed, every registered cleanup run (bounded to 5 s). */
export function installLabCleanup(log: (line: string) => void): void {
  if (installed) return
  installed = true
  process.once('exit', killAllDaemonsNow)
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      log(`\n${signal}: stopping every lab process and network`)
      killAllDaemonsNow()
      const pending = [...cleanups].map(async (cleanup) => {
        try {
          await cleanup()
        } catch {
          // best effort on the way out
        }
      })
      const timer = setTimeout(() => process.exit(130), 5000)
      void Promise.all(pending).then(() => {
        clearTimeout(timer)
        process.exit(130)
      })
    })
  }
}

function portIsFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer()
    server.once('error', () => resolve(false))
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)))
  })
}

const handedOut = new Set<number>()

/**
 * A free loopback TCP port below the kernel's ephemeral range (32768+), so the outgoing connections
 * of the lab's own daemons cannot take it between this check and the daemon's listen (a port asked of
 * the kernel with port 0 is an ephemeral one, and a mesh of 16 daemons opens hundreds of those).
 */
export async function freePort(): Promise<number> {
  for (let attempt = 0; attempt < 200; attempt++) {
    const port = 20_000 + Math.floor(Math.random() * 12_000)
    if (handedOut.has(port)) continue
    if (await portIsFree(port)) {
      handedOut.add(port)
      return port
    }
  }
  throw new Error('no free TCP port found between 20000 and 32000')
}

/** The environment of a daemon: no HEARSAY_* leaking in from the user's shell. */
export function cleanEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {}
  for (const [name, value] of Object.entries(process.env)) if (!name.startsWith('HEARSAY_')) env[name] = value
  return { ...env, ...extra }
}

export interface DaemonSpec {
  /** Peer index (the hub: n). */
  index: number
  command: 'up' | 'hub'
  home: string
  apiPort: number
  /** Arguments after `up`/`hub`. */
  args: string[]
  /** What goes before the node command (e.g. `ip netns exec …`); [] on loopback. */
  prefix: string[]
  logPath: string
}

export interface DaemonExit {
  epoch: number
  code: number | null
  signal: NodeJS.Signals | null
  /** The lab stopped it (a leave, a hub kill, the end of the run). */
  expected: boolean
  logTail: string
}

/** One daemon across its incarnations (a leave/join or a hub kill/restart starts it again on the same data dir). */
export class LabDaemon {
  readonly spec: DaemonSpec
  readonly pids: number[] = []
  readonly exits: DaemonExit[] = []
  epoch = 0
  private child: ChildProcess | undefined
  private stopping = false
  private exited: Promise<void> = Promise.resolve()
  private tail = ''
  /** Called when an incarnation exits without the lab asking. */
  onCrash: (exit: DaemonExit) => void = () => {}

  constructor(spec: DaemonSpec) {
    this.spec = spec
  }

  get pid(): number | undefined {
    return this.child?.pid
  }

  get running(): boolean {
    return this.child !== undefined
  }

  logTail(): string {
    return this.tail.slice(-2000)
  }

  /** Starts an incarnation and waits for its ready line (or its exit, or the timeout). */
  async start(timeoutMs: number): Promise<void> {
    if (this.child !== undefined) return
    const epoch = ++this.epoch
    const spec = this.spec
    const command = [
      ...spec.prefix,
      process.execPath,
      '--no-warnings',
      CLI,
      spec.command,
      '--json',
      '--api-port',
      String(spec.apiPort),
      ...spec.args,
    ]
    appendFileSync(spec.logPath, `--- start ${epoch} at ${new Date().toISOString()}\n`)
    const child = spawn(command[0]!, command.slice(1), {
      env: cleanEnv({ HEARSAY_HOME: spec.home }),
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    })
    children.add(child)
    this.child = child
    this.stopping = false
    let stdout = ''
    child.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
      appendFileSync(spec.logPath, chunk)
      this.tail = (this.tail + chunk).slice(-8000)
    })
    this.exited = new Promise((resolve) => {
      child.once('exit', (code, signal) => {
        children.delete(child)
        if (this.child === child) this.child = undefined
        const exit: DaemonExit = { epoch, code, signal, expected: this.stopping, logTail: this.logTail() }
        this.exits.push(exit)
        appendFileSync(
          spec.logPath,
          `--- exit ${epoch}: ${code ?? signal}${exit.expected ? '' : ' (unexpected)'}\n`,
        )
        if (!exit.expected) this.onCrash(exit)
        resolve()
      })
    })
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.stopping = true
        killGroup(child, 'SIGKILL')
        reject(new Error(`peer ${spec.index} not ready within ${timeoutMs} ms; log tail:\n${this.logTail()}`))
      }, timeoutMs)
      child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
        if (stdout.length < 64_000) stdout += chunk
        if (stdout.includes('"event":"ready"')) {
          clearTimeout(timer)
          resolve()
        }
      })
      child.once('exit', (code, signal) => {
        clearTimeout(timer)
        reject(
          new Error(
            `peer ${spec.index} exited before ready (${code ?? signal}); log tail:\n${this.logTail()}`,
          ),
        )
      })
    })
    const line = stdout.split('\n').find((candidate) => candidate.includes('"event":"ready"'))
    const ready = JSON.parse(line!) as { pid?: number }
    this.pids.push(ready.pid ?? child.pid!)
  }

  /** Stops the running incarnation with a signal (SIGKILL after `graceMs`) and waits for the exit. */
  async stop(signal: NodeJS.Signals, graceMs = 10_000): Promise<void> {
    const child = this.child
    if (child === undefined) return
    this.stopping = true
    killGroup(child, signal)
    const timer = setTimeout(() => killGroup(child, 'SIGKILL'), graceMs)
    await this.exited
    clearTimeout(timer)
  }
}

// ---- what the kernel says --------------------------------------------------------------------------

let clockTicks: number | undefined
function ticksPerSecond(): number {
  if (clockTicks === undefined) {
    try {
      clockTicks = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100
    } catch {
      clockTicks = 100
    }
  }
  return clockTicks
}

/** utime + stime of a process so far, ms (/proc/<pid>/stat fields 14 and 15); undefined once it is gone. */
export function cpuMs(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / ticksPerSecond()
  } catch {
    return undefined
  }
}

/** Peak resident memory of a process (VmHWM), bytes; undefined once it is gone. */
export function peakRssBytes(pid: number): number | undefined {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8')
    const match = /^VmHWM:\s+(\d+) kB/m.exec(status)
    return match === null ? undefined : Number(match[1]) * 1024
  } catch {
    return undefined
  }
}

export interface SocketBytes {
  pid: number
  localPort: number
  peerPort: number
  received: number
  sent: number
}

/** Parses `ss -tinpH state established`: one head line (ports, pid) and one info line (byte counters) per socket. */
export function parseSs(text: string): SocketBytes[] {
  const sockets: SocketBytes[] = []
  const lines = text.split('\n')
  for (let i = 0; i < lines.length - 1; i++) {
    const head = /^\s*\d+\s+\d+\s+\S+:(\d+)\s+\S+:(\d+)\s+users:\(\("[^"]*",pid=(\d+)/.exec(lines[i]!)
    if (head === null) continue
    const info = lines[i + 1]!
    const received = /bytes_received:(\d+)/.exec(info)
    const acked = /bytes_acked:(\d+)/.exec(info)
    sockets.push({
      localPort: Number(head[1]),
      peerPort: Number(head[2]),
      pid: Number(head[3]),
      received: received === null ? 0 : Number(received[1]),
      // bytes_acked counts one extra for the SYN.
      sent: acked === null ? 0 : Math.max(0, Number(acked[1]) - 1),
    })
  }
  return sockets
}

/**
 * The kernel's byte counters of every TCP socket of the lab's daemons, kept across samples: a socket's
 * last sample still counts after it closes (so the figures are a lower bound by at most one sample
 * period of a socket's life).
 */
export class SocketLedger {
  private readonly sockets = new Map<string, SocketBytes>()
  private readonly baseline = new Map<string, SocketBytes>()

  /** From now on, count only what the sockets open now carry from here (the write phase, not the set-up). */
  markBaseline(): void {
    this.baseline.clear()
    for (const [id, socket] of this.sockets) this.baseline.set(id, { ...socket })
  }

  /** One `ss` per distinct command prefix (one per network namespace; one in all on loopback). */
  sample(prefixes: string[][]): void {
    const seen = new Set<string>()
    for (const prefix of prefixes) {
      const key = prefix.join(' ')
      if (seen.has(key)) continue
      seen.add(key)
      const command = [...prefix, 'ss', '-tinpH', 'state', 'established']
      let text: string
      try {
        text = execFileSync(command[0]!, command.slice(1), {
          encoding: 'utf8',
          maxBuffer: 64 * 1024 * 1024,
          timeout: 5000,
        })
      } catch {
        continue
      }
      for (const socket of parseSs(text)) {
        const id = `${prefix.join(' ')}|${socket.pid}|${socket.localPort}|${socket.peerPort}`
        const before = this.sockets.get(id)
        if (before === undefined || socket.sent + socket.received >= before.sent + before.received)
          this.sockets.set(id, socket)
      }
    }
  }

  /** Bytes of the given processes' sockets, leaving out those on the excluded local ports (their HTTP API). */
  bytesOf(
    pids: readonly number[],
    excludeLocalPorts: ReadonlySet<number>,
  ): { sent: number; received: number } {
    let sent = 0
    let received = 0
    for (const [id, socket] of this.sockets) {
      if (!pids.includes(socket.pid) || excludeLocalPorts.has(socket.localPort)) continue
      const before = this.baseline.get(id)
      sent += socket.sent - (before?.sent ?? 0)
      received += socket.received - (before?.received ?? 0)
    }
    return { sent, received }
  }
}

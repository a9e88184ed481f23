/** Spawns and drives bench/peer-process.ts children (shared by the multi-process test and benchmarks). */
import { type ChildProcess, spawn } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { newSwarmKeyFile } from '../src/mesh/swarm-key.ts'

const SCRIPT = new URL('./peer-process.ts', import.meta.url).pathname

let meshKeyFile: string | undefined

/** The mesh key every peer process of this run shares; removed when this process exits. */
export function sharedMeshKey(): string {
  if (meshKeyFile === undefined) {
    const dir = mkdtempSync(join(tmpdir(), 'hearsay-proc-key-'))
    meshKeyFile = join(dir, 'swarm.key')
    writeFileSync(meshKeyFile, newSwarmKeyFile(), { mode: 0o600 })
    process.once('exit', () => rmSync(dir, { recursive: true, force: true }))
  }
  return meshKeyFile
}

export interface PeerEvent {
  event: string
  [key: string]: unknown
}

export class PeerProcess {
  readonly child: ChildProcess
  readonly dir: string
  address = ''
  peerId = ''
  private nextId = 1
  private readonly waiting = new Map<number, (event: PeerEvent) => void>()
  private readonly listeners: Array<(event: PeerEvent) => void> = []
  stderr = ''

  private constructor(child: ChildProcess, dir: string) {
    this.child = child
    this.dir = dir
    createInterface({ input: child.stdout! }).on('line', (line) => {
      let event: PeerEvent
      try {
        event = JSON.parse(line)
      } catch {
        return
      }
      if (event.event === 'reply' && typeof event.id === 'number') {
        this.waiting.get(event.id)?.(event)
        this.waiting.delete(event.id)
      }
      for (const listener of this.listeners) listener(event)
    })
    child.stderr!.on('data', (chunk) => {
      this.stderr = (this.stderr + chunk).slice(-4000)
    })
  }

  /**
   * Starts a peer process and resolves once it listens. Every peer started here is in one private
   * mesh (a key made once per process), as a mesh of `hearsay up` peers is by default; pass
   * HEARSAY_SWARM_KEY_FILE in `env` for another key, or '' for an open mesh.
   */
  static async start(bootstrap: string[] = [], env: Record<string, string> = {}): Promise<PeerProcess> {
    const dir = mkdtempSync(join(tmpdir(), 'hearsay-proc-'))
    const child = spawn(process.execPath, ['--no-warnings', SCRIPT, dir, ...bootstrap], {
      stdio: ['pipe', 'pipe', 'pipe'],
      env: { ...process.env, HEARSAY_SWARM_KEY_FILE: sharedMeshKey(), ...env },
    })
    const peer = new PeerProcess(child, dir)
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`peer did not start: ${peer.stderr}`)), 30_000)
      peer.on((event) => {
        if (event.event === 'ready') {
          peer.address = String(event.address)
          peer.peerId = String(event.peerId)
          clearTimeout(timer)
          resolve()
        }
      })
      child.on('exit', (code) => reject(new Error(`peer exited (${code}): ${peer.stderr}`)))
    })
    return peer
  }

  on(listener: (event: PeerEvent) => void): void {
    this.listeners.push(listener)
  }

  request(command: Record<string, unknown>, timeoutMs = 60_000): Promise<PeerEvent> {
    const id = this.nextId++
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`no reply to ${command.cmd}: ${this.stderr}`)),
        timeoutMs,
      )
      this.waiting.set(id, (event) => {
        clearTimeout(timer)
        resolve(event)
      })
      this.child.stdin!.write(`${JSON.stringify({ ...command, id })}\n`)
    })
  }

  async stop(): Promise<void> {
    if (this.child.exitCode === null) {
      const exited = new Promise((resolve) => this.child.once('exit', resolve))
      await this.request({ cmd: 'stop' }, 10_000).catch(() => {})
      const timer = setTimeout(() => this.child.kill('SIGKILL'), 5000)
      await exited
      clearTimeout(timer)
    }
    rmSync(this.dir, { recursive: true, force: true })
  }
}

/**
 * mDNS: peers inside a network namespace the test creates (lo up, multicast on) find each other
 * with no bootstrap list. Each peer is a real hearsay peer in its own OS process
 * (bench/peer-process.ts with HEARSAY_MDNS=1: SQLite store, default listen 0.0.0.0, mDNS on), started with
 * `ip netns exec`, so its multicast only ever sees the namespace's loopback: nothing reaches the host's
 * interfaces. Skipped, with a line saying why, where `ip netns` is unavailable (not root, no iproute2).
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { newSwarmKeyFile } from '../src/mesh/swarm-key.ts'
import { eventually } from './helpers/mesh-peers.ts'

const FIXTURE = new URL('../bench/peer-process.ts', import.meta.url).pathname
/** Loopback up with multicast on, and multicast routed to it (there is no other interface). */
const SETUP = [
  ['link', 'set', 'dev', 'lo', 'up', 'multicast', 'on'],
  ['route', 'add', '224.0.0.0/4', 'dev', 'lo'],
]

function ip(args: string[]): { ok: boolean; error: string } {
  const run = spawnSync('ip', args, { encoding: 'utf8', timeout: 10_000 })
  const error = run.error?.message ?? run.stderr?.trim() ?? ''
  return { ok: run.status === 0, error: error || `exit ${run.status}` }
}

/** Creates a namespace and sets up its loopback; on any failure deletes it and says why. */
function createNamespace(name: string): string | undefined {
  const add = ip(['netns', 'add', name])
  if (!add.ok) return `\`ip netns add\` failed: ${add.error}`
  for (const args of SETUP) {
    const step = ip(['-n', name, ...args])
    if (!step.ok) {
      ip(['netns', 'delete', name])
      return `\`ip -n ${name} ${args.join(' ')}\` failed: ${step.error}`
    }
  }
  return undefined
}

// Probe with a throwaway namespace, so skipIf knows at collection time; the real one is made in beforeAll.
const probe = `hearsay-probe-${randomBytes(4).toString('hex')}`
const whyNot = createNamespace(probe)
if (whyNot === undefined) ip(['netns', 'delete', probe])
const canNetns = whyNot === undefined
if (!canNetns) console.warn(`[mesh-mdns] SKIPPED: network namespaces are unavailable here (${whyNot})`)

class NamespacedPeer {
  readonly child: ChildProcess
  readonly dir: string
  peerId = ''
  address = ''
  readonly events: Array<{ event: string; [key: string]: unknown }> = []
  stderr = ''
  private nextId = 1
  private readonly waiting = new Map<number, (reply: Record<string, unknown>) => void>()

  /** `swarmKeyFile`: the mesh key (a private mesh); none: an open mesh. */
  constructor(namespace: string, meshName: string, swarmKeyFile = '') {
    this.dir = mkdtempSync(join(tmpdir(), 'hearsay-mdns-'))
    this.child = spawn(
      'ip',
      ['netns', 'exec', namespace, process.execPath, '--no-warnings', FIXTURE, this.dir],
      {
        stdio: ['pipe', 'pipe', 'pipe'],
        env: {
          ...process.env,
          HEARSAY_MESH: meshName,
          HEARSAY_MDNS: '1',
          HEARSAY_SWARM_KEY_FILE: swarmKeyFile,
        },
      },
    )
    createInterface({ input: this.child.stdout! }).on('line', (line) => {
      let event: { event: string; id?: number; [key: string]: unknown }
      try {
        event = JSON.parse(line)
      } catch {
        return
      }
      this.events.push(event)
      if (event.event === 'ready') {
        this.peerId = String(event.peerId)
        this.address = String(event.address)
      }
      if (event.event === 'reply' && typeof event.id === 'number') {
        this.waiting.get(event.id)?.(event)
        this.waiting.delete(event.id)
      }
    })
    this.child.stderr!.on('data', (chunk) => {
      this.stderr = (this.stderr + chunk).slice(-4000)
    })
  }

  async ready(timeoutMs: number): Promise<void> {
    await eventually(() => this.peerId !== '' || this.child.exitCode !== null, {
      timeout: timeoutMs,
      message: () => `peer start (exit ${this.child.exitCode}): ${this.stderr}`,
    })
    if (this.peerId === '')
      throw new Error(`peer did not start (exit ${this.child.exitCode}): ${this.stderr}`)
  }

  request(command: Record<string, unknown>, timeoutMs = 5000): Promise<Record<string, unknown>> {
    const id = this.nextId++
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`no reply to ${command.cmd}: ${this.stderr}`)),
        timeoutMs,
      )
      this.waiting.set(id, (reply) => {
        clearTimeout(timer)
        resolve(reply)
      })
      this.child.stdin!.write(`${JSON.stringify({ ...command, id })}\n`)
    })
  }

  async peers(): Promise<string[]> {
    return (await this.request({ cmd: 'peers' })).peers as string[]
  }

  async stop(): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null) {
      const exited = new Promise((resolve) => this.child.once('exit', resolve))
      await this.request({ cmd: 'stop' }, 5000).catch(() => {})
      const timer = setTimeout(() => this.child.kill('SIGKILL'), 3000)
      await exited
      clearTimeout(timer)
    }
    rmSync(this.dir, { recursive: true, force: true })
  }
}

describe('mDNS inside a network namespace', () => {
  const namespace = `hearsay-test-${randomBytes(4).toString('hex')}`
  let created = false
  const peers: NamespacedPeer[] = []
  const cleanup = () => {
    if (created) ip(['netns', 'delete', namespace])
    created = false
  }

  beforeAll(() => {
    if (!canNetns) return
    const failed = createNamespace(namespace)
    if (failed !== undefined) throw new Error(failed)
    created = true
    // Should the runner die before afterAll, still leave no namespace behind.
    process.once('exit', cleanup)
  })

  afterAll(async () => {
    try {
      await Promise.allSettled(peers.map((p) => p.stop()))
    } finally {
      cleanup()
      process.removeListener('exit', cleanup)
    }
  })

  it.skipIf(!canNetns)(
    'two peers with no bootstrap list find each other and replicate; another mesh stays apart',
    async () => {
      const started = Date.now()
      const a = new NamespacedPeer(namespace, 'home')
      const b = new NamespacedPeer(namespace, 'home')
      const c = new NamespacedPeer(namespace, 'office')
      peers.push(a, b, c)
      await Promise.all([a.ready(15_000), b.ready(15_000), c.ready(15_000)])
      const readyAt = Date.now()

      await eventually(
        async () => (await a.peers()).includes(b.peerId) && (await b.peers()).includes(a.peerId),
        {
          timeout: 10_000,
          message: () => `a and b connected; a: ${a.stderr} b: ${b.stderr}`,
        },
      )
      const connectedAt = Date.now()
      // Found by mDNS: nothing else could have told them (no bootstrap list; peer exchange needs a link).
      const discovered = a.events.find((e) => e.event === 'discovered' && e.peerId === b.peerId)
      expect(discovered, 'a discovered b through mDNS').toBeDefined()
      expect(discovered?.addresses).toEqual(
        expect.arrayContaining([expect.stringMatching(/^\/ip4\/127\.0\.0\.1\/tcp\//)]),
      )

      await a.request({ cmd: 'put', key: 'lan', value: 'found over mDNS' })
      await eventually(
        async () => (await b.request({ cmd: 'get', key: 'lan' })).value === 'found over mDNS',
        {
          timeout: 10_000,
          message: 'a write on a is read on b',
        },
      )
      const replicatedAt = Date.now()

      // The peer of mesh 'office' neither found nor was found by the 'home' peers.
      expect(await c.peers()).toEqual([])
      expect(c.events.some((e) => e.event === 'discovered')).toBe(false)
      expect(await a.peers()).not.toContain(c.peerId)
      console.info(
        `[mesh-mdns] namespace ${namespace}: processes ready in ${readyAt - started} ms, ` +
          `connected ${connectedAt - readyAt} ms later, write replicated ${replicatedAt - connectedAt} ms later`,
      )
    },
    30_000,
  )

  it.skipIf(!canNetns)(
    'key holders find each other by mDNS and replicate; a peer without the key is refused, and not redialled in a hot loop',
    async () => {
      const keyDir = mkdtempSync(join(tmpdir(), 'hearsay-mdns-key-'))
      const key = join(keyDir, 'swarm.key')
      const otherKey = join(keyDir, 'other.key')
      writeFileSync(key, newSwarmKeyFile(), { mode: 0o600 })
      writeFileSync(otherKey, newSwarmKeyFile(), { mode: 0o600 })
      try {
        // Mesh 'lab', so the peers of the other test in this namespace stay apart.
        const a = new NamespacedPeer(namespace, 'lab', key)
        const b = new NamespacedPeer(namespace, 'lab', key)
        const outsider = new NamespacedPeer(namespace, 'lab', otherKey)
        peers.push(a, b, outsider)
        await Promise.all([a.ready(15_000), b.ready(15_000), outsider.ready(15_000)])

        await eventually(
          async () => (await a.peers()).includes(b.peerId) && (await b.peers()).includes(a.peerId),
          {
            timeout: 10_000,
            message: () => `a and b connected; a: ${a.stderr} b: ${b.stderr}`,
          },
        )
        await a.request({ cmd: 'put', key: 'private', value: 'key holders only' })
        expect(
          await eventually(
            async () => (await b.request({ cmd: 'get', key: 'private' })).value === 'key holders only',
            10_000,
          ),
        ).toBe(true)

        // mDNS tells a about the outsider (same mesh name), but the pnet handshake never completes
        // (each dial ends at the dial timeout), every time.
        const failures = () =>
          a.events.filter((e) => e.event === 'dial-failed' && e.peerId === outsider.peerId)
        await eventually(() => failures().length >= 3, {
          timeout: 40_000,
          message: () => `three failed dials of the outsider by a; so far: ${JSON.stringify(failures())}`,
        })
        expect(await a.peers()).not.toContain(outsider.peerId)
        expect(await outsider.peers()).toEqual([])
        expect((await outsider.request({ cmd: 'get', key: 'private' })).value ?? null).toBeNull()
        // A hot loop would fail dials back to back; the dial timeout, backoff and mDNS interval space them.
        const times = failures().map((e) => Number(e.at))
        const spanMs = times[2] - times[0]
        expect(spanMs).toBeGreaterThan(2_000)
        console.info(
          `[mesh-mdns] a peer without the key: ${times.length} failed dials by a key holder over ${Math.round(
            times[times.length - 1] - times[0],
          )} ms (${String(failures()[0]?.error).slice(0, 80)})`,
        )
      } finally {
        rmSync(keyDir, { recursive: true, force: true })
      }
    },
    80_000,
  )
})

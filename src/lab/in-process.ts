/**
 * The lab in one process, for large N: every peer is a real HearsayPeer with the real mesh stack
 * (noise, yamux, gossipsub, anti-entropy, membership) over libp2p's in-memory transport, with the
 * transport's injectable delay and loss, and a memory store. What it measures and what it does not
 * is in docs/lab-reports.md; each result also carries its caveats in `notes`.
 *
 * Peers are numbered 0..n-1 (in the hub shapes these are the clients); the hub is peer n, as in the
 * process runner, so partition groups name it the same way.
 */
import { performance } from 'node:perf_hooks'
import { generateKeyPair } from '@libp2p/crypto/keys'
import type { PrivateKey } from '@libp2p/interface'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import type { Delta } from '../crdt/causal-map.ts'
import { meshTopic } from '../mesh/topics.ts'
import { attachMesh, type HearsayMesh, type MeshOptions } from '../peer/attach-mesh.ts'
import { HearsayPeer } from '../peer/peer.ts'
import type { ChangeEvent, Replica } from '../replica/replica.ts'
import { createMemoryStore } from '../store/memory.ts'
import { seededRandom } from '../transport/lossy-memory.ts'
import type {
  LabProgress,
  LabShape,
  LatencySummary,
  PeerFigures,
  RunResult,
  Scenario,
  TimelineEvent,
  TimelineSample,
} from './types.ts'

const NAMESPACE = 'lab'
const MESH_NAME = 'lab'
const SAMPLE_EVERY_MS = 250
const TICK_MS = 5
/** Each mesh peer dials its two ring neighbours and this many random others. */
const RANDOM_CHORDS = 2
/** Peers started at once (key generation and node start are the heavy part). */
const START_BATCH = 10
/** The longest the peers may take to connect before the run gives up (plus 0.5 s a peer). */
const READY_TIMEOUT_MS = 30_000
const CONVERGENCE_POLL_MS = 50
const DIAL_TIMEOUT_MS = 10_000
/** A peer still without a neighbour dials its links again this often while the run waits. */
const REDIAL_WAITING_MS = 5_000
/** An event this late is reported: the figures around it are distorted. */
const LATE_EVENT_MS = 1000
const MAX_LAGGARDS_NOTED = 5
/** Quiet: QUIET_ROUNDS timer probes in a row late by less than QUIET_LAG_MS. */
const QUIET_PROBE_MS = 100
const QUIET_LAG_MS = 40
const QUIET_ROUNDS = 3
const QUIET_TIMEOUT_MS = 20_000

// ---- pure parts --------------------------------------------------------------------------------

/** Who peer i bootstraps to in the mesh shape: its ring neighbours and a few seeded random chords. */
export function meshNeighbours(n: number, seed: number, chords = RANDOM_CHORDS): number[][] {
  const random = seededRandom(seed)
  return Array.from({ length: n }, (_, i) => {
    const chosen = new Set<number>()
    if (n > 1) chosen.add((i + 1) % n)
    if (n > 2) chosen.add((i - 1 + n) % n)
    const wanted = Math.min(n - 1, chosen.size + chords)
    for (let tries = 0; chosen.size < wanted && tries < 10 * n; tries++) {
      const j = Math.floor(random() * n)
      if (j !== i) chosen.add(j)
    }
    return [...chosen]
  })
}

/** The group of every peer under a partition; -1 for a peer no group names, which reaches every peer. */
export function partitionGroups(groups: number[][], peers: number): number[] {
  const groupOf = new Array<number>(peers).fill(-1)
  groups.forEach((group, g) => {
    for (const peer of group) if (peer >= 0 && peer < peers) groupOf[peer] = g
  })
  return groupOf
}

/** Whether a partition (from partitionGroups) cuts the link between peers a and b. */
export function partitioned(groupOf: number[] | undefined, a: number, b: number): boolean {
  if (groupOf === undefined) return false
  return groupOf[a] !== -1 && groupOf[b] !== -1 && groupOf[a] !== groupOf[b]
}

/**
 * Latency figures from the times to visible of the writes that became visible everywhere, over
 * `acknowledged` writes in all: the CDF stays below 1 when some never did.
 */
export function summarizeLatencies(
  latencies: number[],
  acknowledged: number,
  maxPoints = 200,
): LatencySummary {
  const sorted = [...latencies].sort((a, b) => a - b)
  const at = (q: number) =>
    sorted.length === 0 ? 0 : sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]
  const cdf: [number, number][] = []
  const total = Math.max(acknowledged, sorted.length)
  const step = Math.max(1, Math.ceil(sorted.length / maxPoints))
  for (let i = step - 1; i < sorted.length; i += step) cdf.push([round(sorted[i]), (i + 1) / total])
  if (sorted.length > 0 && cdf.at(-1)?.[1] !== sorted.length / total)
    cdf.push([round(sorted[sorted.length - 1]), sorted.length / total])
  return {
    count: sorted.length,
    p50: round(at(0.5)),
    p90: round(at(0.9)),
    p99: round(at(0.99)),
    max: round(sorted.at(-1) ?? 0),
    cdf: cdf.slice(-maxPoints),
  }
}

function round(ms: number): number {
  return Math.round(ms * 100) / 100
}

/** Fraction of the digests equal to the most common one (1 with none). */
export function equalFraction(digests: string[]): number {
  if (digests.length === 0) return 1
  const counts = new Map<string, number>()
  for (const d of digests) counts.set(d, (counts.get(d) ?? 0) + 1)
  return Math.max(...counts.values()) / digests.length
}

// ---- the run -----------------------------------------------------------------------------------

interface TrackedWrite {
  ackAt: number
  replica: string
  counter: number
  /** Peers that were live when it was acknowledged and have not seen it yet. */
  need: Set<number>
  lastSeenAt: number
  latency?: number
  /** Key and value bytes (what an http-hub watch event carries, framing aside). */
  bytes: number
}

interface Operation {
  t: number
  kind: 'write' | 'read'
  ok: boolean
}

interface LabPeer {
  index: number
  role: PeerFigures['role']
  privateKey: PrivateKey
  peerId: string
  listen: string
  address: string
  peer: HearsayPeer
  replica: Replica
  mesh?: HearsayMesh
  /** The mesh's listeners on the replica, removed when the mesh stops (it is started again later). */
  meshListeners: ((delta: Delta) => void)[]
  up: boolean
  bytesSent: number
  bytesReceived: number
}

let runCounter = 0

/** Runs one shape with n peers inside this process. */
export async function runInProcess(
  scenario: Scenario,
  shape: LabShape,
  n: number,
  progress: LabProgress,
): Promise<RunResult> {
  if (!Number.isSafeInteger(n) || n < 2) throw new RangeError(`n must be an integer of at least 2, got ${n}`)
  const run = new InProcessRun(scenario, shape, n, progress)
  try {
    await run.start()
    return await run.execute()
  } finally {
    await run.stop()
  }
}

class InProcessRun {
  private readonly id = `${process.pid}-${++runCounter}-${Date.now().toString(36)}`
  private readonly random: () => number
  private readonly peers: LabPeer[] = []
  private hub: LabPeer | undefined
  private hubUp = true
  /** Group of each peer (hub at index n) while a partition holds. */
  private partition: number[] | undefined
  private readonly writes: TrackedWrite[] = []
  private readonly pendingAt: Set<TrackedWrite>[] = []
  private readonly operations: Operation[] = []
  private readonly inFlight = new Set<Promise<unknown>>()
  private readonly convergence: RunResult['convergence'] = []
  private readonly waitingConvergence: {
    index: number
    atMs: number
    writes: TrackedWrite[]
    done: Set<number>
  }[] = []
  private readonly timeline: TimelineSample[] = []
  private readonly notes: string[] = []
  private readonly firedEvents: NonNullable<RunResult['firedEvents']> = []
  private writesIssued = 0
  private writesAccepted = 0
  private writesRefused = 0
  private readsServed = 0
  private readsFailed = 0
  private completed = 0
  private t0 = 0
  private peakRss = 0
  private readonly dirty = new Set<number>()
  private checkScheduled = false
  private readonly http: boolean
  private stopped = false

  private readonly scenario: Scenario
  private readonly shape: LabShape
  private readonly n: number
  private readonly progress: LabProgress

  constructor(scenario: Scenario, shape: LabShape, n: number, progress: LabProgress) {
    this.scenario = scenario
    this.shape = shape
    this.n = n
    this.progress = progress
    this.random = seededRandom(scenario.seed)
    this.http = shape === 'http-hub'
  }

  private now(): number {
    return performance.now() - this.t0
  }

  private get link() {
    return this.scenario.link
  }

  // ---- peers ----

  private async makePeer(index: number, role: LabPeer['role']): Promise<LabPeer> {
    const privateKey = await generateKeyPair('Ed25519')
    const peerId = peerIdFromPrivateKey(privateKey).toString()
    const peer = new HearsayPeer({ store: createMemoryStore(), peerId, privateKey, namespaces: [NAMESPACE] })
    const listen = `/memory/lab-${this.id}-${role === 'hub' ? 'hub' : index}`
    const labPeer: LabPeer = {
      index,
      role,
      privateKey,
      peerId,
      listen,
      address: `${listen}/p2p/${peerId}`,
      peer,
      replica: peer.namespace(NAMESPACE),
      meshListeners: [],
      up: false,
      bytesSent: 0,
      bytesReceived: 0,
    }
    if (role !== 'hub') {
      this.pendingAt[index] = new Set()
      peer.on('change', (_event: ChangeEvent) => this.markDirty(index))
    }
    return labPeer
  }

  private meshOptions(p: LabPeer): MeshOptions {
    const link = this.link
    const options: MeshOptions = {
      privateKey: p.privateKey,
      meshName: MESH_NAME,
      listen: [p.listen],
      transport: {
        kind: 'memory',
        latencyMs: link?.delayMs ?? 0,
        loss:
          link !== undefined && link.lossPercent > 0
            ? { rate: link.lossPercent / 100, seed: this.scenario.seed + p.index + 1 }
            : undefined,
      },
      mdns: false,
      loopbackTesting: true,
    }
    if (p.role === 'hub') return { ...options, isHub: true }
    if (p.role === 'client') return { ...options, hub: [this.hub!.address] }
    return options
  }

  private neighbours: number[][] = []

  /** Starts (or starts again) a peer's mesh, on the store and replica it keeps. */
  private async startMesh(p: LabPeer): Promise<void> {
    const before = new Set(p.replica.listeners('delta'))
    const mesh = await attachMesh(p.peer, this.meshOptions(p))
    p.meshListeners = p.replica.listeners('delta').filter((l) => !before.has(l)) as LabPeer['meshListeners']
    p.mesh = mesh
    this.countBytes(p, mesh)
    p.up = true
    if (this.partition !== undefined) await this.applyPartition(p)
    await this.dialNeighbours(p)
  }

  /**
   * Dials the links of a peer that are down: a mesh peer's ring neighbours and chords, a client's hub.
   * (libp2p's bootstrap discovery skips /memory addresses, so in one process the lab dials them; from
   * then on the peers' own connector redials and peer exchange finds more.)
   */
  private async dialNeighbours(p: LabPeer): Promise<void> {
    const mesh = p.mesh
    if (mesh === undefined || p.role === 'hub') return
    const targets = p.role === 'client' ? [this.hub!] : this.neighbours[p.index].map((j) => this.peers[j])
    const connected = new Set(mesh.node.peers().map((id) => id.toString()))
    await Promise.allSettled(
      targets
        .filter((q) => q.mesh !== undefined && !connected.has(q.peerId) && !this.cut(p, q))
        .map((q) => mesh.dial(q.address, AbortSignal.timeout(DIAL_TIMEOUT_MS))),
    )
  }

  /** Whether a partition holds between two peers. */
  private cut(p: LabPeer, q: LabPeer): boolean {
    return partitioned(this.partition, p.index, q.index)
  }

  private async stopMesh(p: LabPeer): Promise<void> {
    p.up = false
    const mesh = p.mesh
    p.mesh = undefined
    if (mesh === undefined) return
    await mesh.stop()
    for (const listener of p.meshListeners) p.replica.off('delta', listener)
    p.meshListeners = []
  }

  /**
   * Counts the bytes a peer's connections carry, as libp2p's in-memory connections hand them over
   * (noise-encrypted yamux frames: gossip, anti-entropy, identify, ping), from when each opens.
   */
  private countBytes(p: LabPeer, mesh: HearsayMesh): void {
    const seen = new WeakSet<object>()
    const wrap = (connection: unknown) => {
      const maConn = (connection as { maConn?: Record<string, unknown> }).maConn
      if (maConn === undefined || seen.has(maConn)) return
      seen.add(maConn)
      const send = maConn.sendData as ((data: { byteLength: number }) => unknown) | undefined
      const receive = maConn.onData as ((data: { byteLength: number }) => unknown) | undefined
      if (typeof send !== 'function' || typeof receive !== 'function') return
      maConn.sendData = (data: { byteLength: number }) => {
        p.bytesSent += data.byteLength
        return send.call(maConn, data)
      }
      maConn.onData = (data: { byteLength: number }) => {
        p.bytesReceived += data.byteLength
        return receive.call(maConn, data)
      }
    }
    const libp2p = mesh.node.libp2p
    libp2p.addEventListener('connection:open', (event) => wrap(event.detail))
    for (const connection of libp2p.getConnections()) wrap(connection)
  }

  private live(): LabPeer[] {
    return this.peers.filter((p) => p.up)
  }

  /** Whether peer i can reach the hub (http-hub: the hub is up and no partition is between them). */
  private reachesHub(i: number): boolean {
    if (!this.hubUp) return false
    return !partitioned(this.partition, i, this.n)
  }

  async start(): Promise<void> {
    const lateJoiners = new Set(
      this.scenario.timeline
        .flatMap((e) => (e.kind === 'late-join' ? e.peers : []))
        .filter((i) => i < this.n),
    )
    const peerRole: LabPeer['role'] = this.shape === 'mesh' ? 'peer' : 'client'
    if (this.shape !== 'mesh') this.hub = await this.makePeer(this.n, 'hub')
    for (let i = 0; i < this.n; i++) this.peers.push(await this.makePeer(i, peerRole))
    this.neighbours = meshNeighbours(this.n, this.scenario.seed)
    this.progress(`${this.shape} n=${this.n}: starting ${this.n + (this.hub ? 1 : 0)} peers in this process`)
    if (this.http) {
      // The hub's replica serves the clients directly: no client runs a mesh.
      this.hub!.up = true
      for (const p of this.peers) p.up = !lateJoiners.has(p.index)
      this.hub!.peer.on('change', () => this.markDirty(-1))
      return
    }
    if (this.hub !== undefined) await this.startMesh(this.hub)
    const first = this.peers.filter((p) => !lateJoiners.has(p.index))
    const phase = (what: string) => this.progress(`${this.shape} n=${this.n}: ${what}`)
    for (let i = 0; i < first.length; i += START_BATCH) {
      await Promise.all(first.slice(i, i + START_BATCH).map((p) => this.startMesh(p)))
      phase(`${Math.min(first.length, i + START_BATCH)}/${first.length} peers started`)
    }
    // Peers started before their neighbours could not reach them yet.
    for (let i = 0; i < first.length; i += START_BATCH) {
      await Promise.all(first.slice(i, i + START_BATCH).map((p) => this.dialNeighbours(p)))
      phase(`${Math.min(first.length, i + START_BATCH)}/${first.length} peers dialled their neighbours`)
    }
    await this.waitUntilConnected()
    phase('every peer has a neighbour on the topic; waiting for the process to settle')
    await this.waitUntilQuiet()
  }

  /**
   * Connecting peers handshake, identify and sync for a while, and a write waits behind that work (a
   * few hundred ms at first). The run starts once the event loop answers timers promptly again.
   */
  private async waitUntilQuiet(): Promise<void> {
    const timeoutMs = Math.min(QUIET_TIMEOUT_MS, 2_000 + 100 * this.n)
    const deadline = performance.now() + timeoutMs
    let calm = 0
    while (calm < QUIET_ROUNDS && performance.now() < deadline) {
      const before = performance.now()
      await sleep(QUIET_PROBE_MS)
      const lag = performance.now() - before - QUIET_PROBE_MS
      calm = lag < QUIET_LAG_MS ? calm + 1 : 0
    }
    if (calm < QUIET_ROUNDS)
      this.notes.push(
        `The process was still busy (timers ${QUIET_LAG_MS} ms late or more) ${timeoutMs / 1000} s after the peers connected, when the run began.`,
      )
  }

  /** Every live peer has a neighbour on the namespace's topic (or the run gives up). */
  private async waitUntilConnected(): Promise<void> {
    const topic = meshTopic(MESH_NAME, NAMESPACE)
    const timeoutMs = READY_TIMEOUT_MS + 500 * this.n
    const deadline = performance.now() + timeoutMs
    const waiting = () => this.live().filter((p) => (p.mesh?.node.topicPeers(topic).length ?? 0) === 0)
    let redialAt = performance.now() + REDIAL_WAITING_MS
    while (waiting().length > 0) {
      if (performance.now() > deadline)
        throw new Error(
          `${this.shape} n=${this.n}: ${waiting().length} peers had no neighbour after ${timeoutMs / 1000} s`,
        )
      // On a busy machine a peer's first dials may all time out: dial its links again.
      if (performance.now() > redialAt) {
        await Promise.all(waiting().map((p) => this.dialNeighbours(p)))
        redialAt = performance.now() + REDIAL_WAITING_MS
      }
      await sleep(50)
    }
  }

  // ---- visibility ----

  private markDirty(index: number): void {
    this.dirty.add(index)
    if (this.checkScheduled) return
    this.checkScheduled = true
    setImmediate(() => {
      this.checkScheduled = false
      const indexes = [...this.dirty]
      this.dirty.clear()
      for (const i of indexes) this.checkPeer(i)
    })
  }

  /** Marks what peer i now holds (i = -1: the http hub, whose changes reach every client's watch). */
  private checkPeer(i: number): void {
    if (this.stopped) return
    if (i === -1) {
      // What the hub holds now reaches each client's watch one link delay later.
      const delay = this.link?.delayMs ?? 0
      const at = this.now() + delay
      const context = this.hub!.replica.context()
      const deliveries: [number, TrackedWrite[]][] = []
      for (const p of this.peers) {
        if (!p.up || !this.reachesHub(p.index)) continue
        const held = [...this.pendingAt[p.index]].filter((w) => context.has(w.replica, w.counter))
        if (held.length > 0) deliveries.push([p.index, held])
      }
      if (deliveries.length === 0) return
      later(delay, () => {
        if (this.stopped) return
        for (const [index, held] of deliveries) {
          if (!this.peers[index].up) continue
          for (const w of held) {
            if (!this.pendingAt[index].has(w)) continue
            this.hub!.bytesSent += w.bytes
            this.peers[index].bytesReceived += w.bytes
            this.seen(index, w, at)
          }
        }
      })
      return
    }
    const p = this.peers[i]
    if (!p.up || this.http) return
    this.checkHeld(i, p.replica, this.now())
  }

  private checkHeld(i: number, replica: Replica, at: number): void {
    const pending = this.pendingAt[i]
    if (pending.size === 0) return
    const context = replica.context()
    for (const write of pending) if (context.has(write.replica, write.counter)) this.seen(i, write, at)
  }

  private seen(i: number, write: TrackedWrite, at: number): void {
    this.pendingAt[i].delete(write)
    write.need.delete(i)
    write.lastSeenAt = Math.max(write.lastSeenAt, at)
    if (write.need.size === 0) this.complete(write)
  }

  private complete(write: TrackedWrite): void {
    if (write.latency !== undefined) return
    write.latency = Math.max(0, write.lastSeenAt - write.ackAt)
    this.completed++
  }

  /** A peer that went down is no longer waited for. */
  private forget(i: number): void {
    for (const write of this.pendingAt[i]) {
      write.need.delete(i)
      if (write.need.size === 0) this.complete(write)
    }
    this.pendingAt[i].clear()
  }

  // ---- workload ----

  private issueWrite(seq: number): void {
    const w = this.scenario.workload
    const writer = seq % Math.max(1, Math.min(w.writers, this.n))
    const p = this.peers[writer]
    const t = this.now()
    this.writesIssued++
    const up = this.http ? p.up && this.reachesHub(writer) : p.up
    if (!up) {
      this.writesRefused++
      this.operations.push({ t, kind: 'write', ok: false })
      return
    }
    const key = `k${seq % Math.max(1, w.keys)}`
    const value = labValue(seq, w.valueBytes)
    const replica = this.http ? this.hub!.replica : p.replica
    const delay = this.http ? (this.link?.delayMs ?? 0) : 0
    if (this.http) {
      // The request and its response each cross the client's link.
      p.bytesSent += key.length + value.length
      this.hub!.bytesReceived += key.length + value.length
    }
    const write = (async () => {
      if (delay > 0) await sleep(delay)
      const ack = await replica.put(key, value, 'application/octet-stream')
      if (delay > 0) await sleep(delay)
      return ack
    })()
    const tracked = write.then(
      (ack) => {
        this.writesAccepted++
        const ackAt = this.now()
        this.operations.push({ t: ackAt, kind: 'write', ok: true })
        const need = new Set(this.peers.filter((q) => q.up && q.index !== writer).map((q) => q.index))
        const entry: TrackedWrite = {
          ackAt,
          replica: ack.replica,
          counter: ack.counter,
          need,
          lastSeenAt: ackAt,
          bytes: key.length + value.length,
        }
        this.writes.push(entry)
        if (need.size === 0) this.complete(entry)
        for (const i of need) this.pendingAt[i].add(entry)
        for (const i of need) this.markDirty(this.http ? -1 : i)
      },
      () => {
        this.writesRefused++
        this.operations.push({ t: this.now(), kind: 'write', ok: false })
      },
    )
    this.inFlight.add(tracked)
    void tracked.finally(() => this.inFlight.delete(tracked))
  }

  private issueRead(seq: number): void {
    const w = this.scenario.workload
    const i = Math.floor(this.random() * this.n)
    const p = this.peers[i]
    const ok = this.http ? p.up && this.reachesHub(i) : p.up
    if (ok) (this.http ? this.hub!.replica : p.replica).get(`k${seq % Math.max(1, w.keys)}`)
    if (ok) this.readsServed++
    else this.readsFailed++
    this.operations.push({ t: this.now(), kind: 'read', ok })
  }

  // ---- timeline events ----

  private async fire(event: TimelineEvent, index: number): Promise<void> {
    const late = this.now() - event.atMs
    this.firedEvents.push({ kind: event.kind, atMs: event.atMs, firedAtMs: Math.round(this.now()) })
    this.progress(`${this.shape} n=${this.n}: ${event.kind} at ${Math.round(this.now())} ms`)
    if (late > LATE_EVENT_MS)
      this.notes.push(
        `${event.kind} (at ${event.atMs} ms) ran ${(late / 1000).toFixed(1)} s late: the process was too busy to keep the timeline.`,
      )
    switch (event.kind) {
      case 'leave':
        for (const i of event.peers.filter((i) => i < this.n)) {
          const p = this.peers[i]
          if (!p.up) continue
          if (this.http) p.up = false
          else await this.stopMesh(p)
          this.forget(i)
        }
        break
      case 'join':
      case 'late-join':
        for (const i of event.peers.filter((i) => i < this.n)) {
          const p = this.peers[i]
          if (p.up) continue
          if (this.http) p.up = true
          else await this.startMesh(p)
        }
        this.awaitConvergence(event, index)
        break
      case 'partition':
        this.partition = partitionGroups(event.groups, this.n + 1)
        if (!this.http) await this.applyPartitionToAll()
        break
      case 'heal': {
        const groups = this.partition
        this.partition = undefined
        if (groups !== undefined && !this.http) await this.heal()
        this.awaitConvergence(event, index)
        break
      }
      case 'kill-hub':
        if (this.shape === 'mesh') break
        this.hubUp = false
        if (!this.http) await this.stopMesh(this.hub!)
        break
      case 'restart-hub':
        if (this.shape === 'mesh') {
          this.awaitConvergence(event, index)
          break
        }
        if (!this.http && !this.hubUp) await this.startMesh(this.hub!)
        this.hubUp = true
        this.awaitConvergence(event, index)
        if (this.http) this.markDirty(-1)
        break
    }
  }

  private allMeshPeers(): LabPeer[] {
    return [...this.peers, ...(this.hub === undefined ? [] : [this.hub])].filter((p) => p.mesh !== undefined)
  }

  /** Blocks, in both directions, every peer of another group than p's. */
  private async applyPartition(p: LabPeer): Promise<void> {
    const groups = this.partition
    if (groups === undefined || p.mesh === undefined) return
    for (const q of this.allMeshPeers()) {
      if (q === p || !partitioned(groups, q.index, p.index)) continue
      await Promise.all([p.mesh.block(q.peerId), q.mesh!.block(p.peerId)])
    }
  }

  private async applyPartitionToAll(): Promise<void> {
    const groups = this.partition!
    const meshPeers = this.allMeshPeers()
    for (const [k, p] of meshPeers.entries())
      for (const q of meshPeers.slice(k + 1))
        if (partitioned(groups, q.index, p.index))
          await Promise.all([p.mesh!.block(q.peerId), q.mesh!.block(p.peerId)])
  }

  /**
   * Lifts every block and dials again the links the partition cut (block() closed them and made the
   * connector forget them, where a real network would have let its redials through once healed).
   */
  private async heal(): Promise<void> {
    const meshPeers = this.allMeshPeers()
    for (const p of meshPeers) for (const q of meshPeers) if (p !== q) p.mesh!.unblock(q.peerId)
    await Promise.all(meshPeers.map((p) => this.dialNeighbours(p)))
  }

  /** Waits (in the background of the run) until every live peer holds every write accepted so far. */
  private awaitConvergence(event: TimelineEvent, index: number): void {
    this.convergence[index] = { event: event.kind, atMs: event.atMs, convergedAfterMs: null }
    this.waitingConvergence.push({ index, atMs: this.now(), writes: [...this.writes], done: new Set() })
  }

  private pollConvergence(): void {
    for (const waiting of [...this.waitingConvergence]) {
      const live = this.peers.filter((p) => p.up)
      for (const p of live) {
        if (waiting.done.has(p.index)) continue
        const context = (this.http ? this.hub! : p).replica.context()
        if (waiting.writes.every((w) => context.has(w.replica, w.counter))) waiting.done.add(p.index)
      }
      if (live.every((p) => waiting.done.has(p.index))) {
        this.convergence[waiting.index].convergedAfterMs = round(this.now() - waiting.atMs)
        this.waitingConvergence.splice(this.waitingConvergence.indexOf(waiting), 1)
      }
    }
  }

  // ---- sampling ----

  private sample(): void {
    for (const p of this.peers) if (p.up) this.checkPeer(p.index)
    if (this.http) this.checkPeer(-1)
    const digests = this.http
      ? this.peers.filter((p) => p.up && this.reachesHub(p.index)).map(() => this.hub!.replica.digest())
      : this.live().map((p) => p.replica.digest())
    this.timeline.push({
      tMs: Math.round(this.now()),
      writesIssued: this.writesIssued,
      writesAccepted: this.writesAccepted,
      visibleFraction: this.writesAccepted === 0 ? 1 : this.completed / this.writesAccepted,
      peersEqualFraction: equalFraction(digests),
    })
    this.peakRss = Math.max(this.peakRss, process.memoryUsage.rss())
  }

  async execute(): Promise<RunResult> {
    const { workload, timeline } = this.scenario
    const events = timeline
      .map((event, index) => ({ event, index }))
      .sort((a, b) => a.event.atMs - b.event.atMs)
    const lastEventMs = events.at(-1)?.event.atMs ?? 0
    const writePhaseMs = workload.durationMs
    const endOfEvents = Math.max(writePhaseMs, lastEventMs)
    // The settle time counts from when the workload and the events are really done: a busy process
    // may reach them late, and must not lose its settle time to that.
    let settleFrom: number | undefined
    const absoluteEnd = 2 * (endOfEvents + this.scenario.settleMs) + 60_000
    const operationsPerSecond =
      workload.ratePerSecond / Math.max(0.01, 1 - Math.min(0.99, Math.max(0, workload.readFraction)))
    const cpuStart = process.cpuUsage()
    this.t0 = performance.now()
    let operations = 0
    let writeSeq = 0
    let readSeq = 0
    let nextEvent = 0
    let nextSample = 0
    let nextPoll = 0
    let lastProgress = -1
    let eventChain: Promise<unknown> = Promise.resolve()
    let eventsRunning = 0
    for (let ticks = 0; ticks < Math.ceil(absoluteEnd / TICK_MS) + 1000; ticks++) {
      const t = this.now()
      // Events run one after another, beside the workload (a partition of 100 peers takes a while).
      while (nextEvent < events.length && events[nextEvent].event.atMs <= t) {
        const { event, index } = events[nextEvent++]
        eventsRunning++
        eventChain = eventChain
          .then(() => this.fire(event, index))
          .catch((error: unknown) =>
            this.notes.push(`${event.kind} at ${event.atMs} ms failed: ${String(error)}`),
          )
          .finally(() => eventsRunning--)
      }
      {
        // Open loop: operations due while the process was busy go out late, not never.
        const due = Math.floor((operationsPerSecond * Math.min(t, writePhaseMs)) / 1000)
        for (; operations < due; operations++) {
          if (this.random() < workload.readFraction) this.issueRead(readSeq++)
          else this.issueWrite(writeSeq++)
        }
      }
      if (t >= nextPoll) {
        this.pollConvergence()
        nextPoll = t + CONVERGENCE_POLL_MS
      }
      if (t >= nextSample) {
        this.sample()
        nextSample = (Math.floor(t / SAMPLE_EVERY_MS) + 1) * SAMPLE_EVERY_MS
        const second = Math.floor(t / 1000)
        if (second !== lastProgress) {
          lastProgress = second
          const last = this.timeline.at(-1)!
          this.progress(
            `${this.shape} n=${this.n} ${(t / 1000).toFixed(1)} s: ${this.writesAccepted}/${this.writesIssued} writes accepted, ` +
              `${Math.round(last.visibleFraction * 100)} % visible everywhere, ${Math.round(last.peersEqualFraction * 100)} % peers equal`,
          )
        }
      }
      if (
        settleFrom === undefined &&
        t >= endOfEvents &&
        nextEvent >= events.length &&
        eventsRunning === 0 &&
        this.inFlight.size === 0
      )
        settleFrom = t
      const settled =
        settleFrom !== undefined &&
        this.completed >= this.writes.length &&
        this.waitingConvergence.length === 0
      if (
        settled ||
        (settleFrom !== undefined && t >= settleFrom + this.scenario.settleMs) ||
        t >= absoluteEnd
      )
        break
      await sleep(TICK_MS)
    }
    await Promise.race([Promise.allSettled([...this.inFlight, eventChain]), sleep(5000)])
    this.pollConvergence()
    this.sample()
    const durationMs = Math.round(this.now())
    const cpu = process.cpuUsage(cpuStart)
    const cpuMs = (cpu.user + cpu.system) / 1000
    return this.result(durationMs, cpuMs)
  }

  private result(durationMs: number, cpuMs: number): RunResult {
    const { visibleBoundMs } = this.scenario
    const latencies = this.writes.flatMap((w) => (w.latency === undefined ? [] : [w.latency]))
    const lost = this.writes.filter((w) => w.latency === undefined).length
    const late = latencies.filter((ms) => ms > visibleBoundMs).length
    const everyone = [...this.peers, ...(this.hub === undefined ? [] : [this.hub])]
    const cpuShare = cpuMs / everyone.length
    const rssShare = this.peakRss / everyone.length
    const peers: PeerFigures[] = everyone.map((p) => ({
      index: p.role === 'hub' ? -1 : p.index,
      role: p.role,
      bytesSent: p.bytesSent,
      bytesReceived: p.bytesReceived,
      cpuMs: round(cpuShare),
      rssBytes: Math.round(rssShare),
    }))
    this.noteCaveats()
    this.noteLaggards()
    return {
      shape: this.shape,
      n: this.n,
      mode: 'in-process',
      transport: 'memory',
      emulation: this.link === undefined ? 'none' : 'memory',
      latency: summarizeLatencies(latencies, this.writesAccepted),
      writes: {
        attempted: this.writesIssued,
        acknowledged: this.writesAccepted,
        refused: this.writesRefused,
        lost,
        notSeenWithinBound: lost + late,
      },
      reads: {
        attempted: this.readsServed + this.readsFailed,
        served: this.readsServed,
        failed: this.readsFailed,
      },
      peers,
      convergence: this.convergence.filter((c) => c !== undefined),
      availability: this.availability(durationMs),
      timeline: this.timeline,
      durationMs,
      crashes: [],
      firedEvents: this.firedEvents,
      notes: this.notes,
      process: { cpuMs: round(cpuMs), rssBytes: this.peakRss },
    }
  }

  /** The fault windows (hub down, partition) and what peers could do in them. */
  private availability(durationMs: number): RunResult['availability'] {
    const events = [...this.scenario.timeline].sort((a, b) => a.atMs - b.atMs)
    const windows: { event: TimelineEvent['kind']; fromMs: number; toMs: number }[] = []
    for (const [start, end] of [
      ['kill-hub', 'restart-hub'],
      ['partition', 'heal'],
    ] as const) {
      for (const from of events.filter((e) => e.kind === start)) {
        const to = events.find((e) => e.kind === end && e.atMs >= from.atMs)
        windows.push({ event: start, fromMs: from.atMs, toMs: to?.atMs ?? durationMs })
      }
    }
    return windows.map((w) => {
      const inside = this.operations.filter((o) => o.t >= w.fromMs && o.t < w.toMs)
      const count = (kind: Operation['kind'], ok: boolean) =>
        inside.filter((o) => o.kind === kind && o.ok === ok).length
      return {
        ...w,
        writesAccepted: count('write', true),
        writesRefused: count('write', false),
        readsServed: count('read', true),
        readsFailed: count('read', false),
      }
    })
  }

  /** Names the peers that still missed writes at the end, with their connections: where to look. */
  private noteLaggards(): void {
    const laggards = this.peers.filter((p) => p.up && this.pendingAt[p.index].size > 0)
    for (const p of laggards.slice(0, MAX_LAGGARDS_NOTED))
      this.notes.push(
        `At the end peer ${p.index} still missed ${this.pendingAt[p.index].size} writes` +
          (p.mesh === undefined ? '.' : `, with ${p.mesh.node.peers().length} connected peers.`),
      )
    if (laggards.length > MAX_LAGGARDS_NOTED)
      this.notes.push(`${laggards.length - MAX_LAGGARDS_NOTED} more peers still missed writes at the end.`)
  }

  private noteCaveats(): void {
    const notes = this.notes
    notes.push(
      'CPU and RSS per peer are the whole process divided by the number of peers (peers share one process); see `process`.',
    )
    if (this.http)
      notes.push(
        "http-hub in one process: clients use the hub's replica directly (no HTTP server); writes and watch events wait one link delay each way; bytes are keys and values only, without HTTP or SSE framing.",
      )
    else
      notes.push(
        'Bytes are what the in-memory connections carried (encrypted yamux frames) from when each opened; connection handshakes are not counted.',
      )
    if (this.shape === 'mesh' && this.scenario.timeline.some((e) => e.kind === 'kill-hub'))
      notes.push('The mesh has no hub: kill-hub and restart-hub change nothing in it.')
    const link = this.link
    if (link !== undefined) {
      if (!this.http)
        notes.push(
          `Links: the in-memory transport delays each buffer by ${link.delayMs} ms in turn (a queue per connection, not a delay line).`,
        )
      if (link.jitterMs > 0) notes.push(`Jitter (${link.jitterMs} ms) is not emulated in one process.`)
      if (link.rateKbit !== undefined)
        notes.push(`The rate limit (${link.rateKbit} kbit/s) is not emulated in one process.`)
      if (link.lossPercent > 0 && !this.http)
        notes.push(
          `Loss: each buffer is lost with probability ${link.lossPercent} %, and a lost buffer resets its connection (the stack above expects a reliable stream).`,
        )
      if (link.lossPercent > 0 && this.http)
        notes.push('Loss is not emulated for the http-hub shape in one process.')
    }
  }

  async stop(): Promise<void> {
    this.stopped = true
    const everyone = [...this.peers, ...(this.hub === undefined ? [] : [this.hub])]
    await Promise.allSettled(everyone.map((p) => p.peer.stop()))
  }
}

/** A value of exactly `bytes` bytes that names its write. */
function labValue(seq: number, bytes: number): Uint8Array {
  const value = new Uint8Array(Math.max(1, bytes)).fill(0x2e)
  const label = new TextEncoder().encode(`w${seq}:`)
  value.set(label.subarray(0, value.length))
  return value
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms))
}

function later(ms: number, fn: () => void): void {
  if (ms <= 0) fn()
  else setTimeout(fn, ms)
}

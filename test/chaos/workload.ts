import { call, DaemonDownError, type HttpAnswer } from './client.ts'
import { NAMESPACE } from './daemons.ts'
import type { Dot, OpKind, OpRecord } from './history.ts'
import type { Random } from './random.ts'

/**
 * The client side of a chaos run: a few workers issuing puts, deletes, counter increments and set
 * adds/removes to random live daemons, some with `?ack=N&timeout=T`, recording every outcome.
 *
 * Keys are few, so writes conflict. Set elements e0-e3 of each set are each written only through one
 * peer, one operation at a time (the checker can then hold them to a total order); e4-e7 go to any
 * peer concurrently (add-wins).
 */

export const KV_KEYS = Array.from({ length: 8 }, (_, i) => `k${i}`)
export const COUNTER_KEYS = ['c0', 'c1', 'c2']
export const SET_KEYS = ['s0', 's1']
export const OWNED_ELEMENTS = ['e0', 'e1', 'e2', 'e3']
export const SHARED_ELEMENTS = ['e4', 'e5', 'e6', 'e7']

/** What the workload needs of the daemons. */
export interface WorkloadTarget {
  peers: number
  socketPath(peer: number): string
  isUp(peer: number): boolean
  epoch(peer: number): number
  exitTime(peer: number, epoch: number): number | undefined
}

export interface WorkloadOptions {
  random: Random
  target: WorkloadTarget
  /** ms since the run started. */
  clock(): number
  workers?: number
  /** Pause between one worker's operations, ms (keeps the load modest on a small machine). */
  paceMs?: number
}

export class Workload {
  readonly history: OpRecord[] = []
  private stopped = false
  private nextId = 1
  private readonly busyElements = new Set<string>()
  /** The daemon incarnation each request went to. */
  private readonly epochs = new Map<number, number>()
  private workers: Promise<void>[] = []
  private readonly options: WorkloadOptions

  constructor(options: WorkloadOptions) {
    this.options = options
  }

  start(): void {
    const count = this.options.workers ?? 3
    this.workers = Array.from({ length: count }, () => this.work())
  }

  /** Stops issuing operations and waits for those in flight (each is bounded by its timeout). */
  async stop(): Promise<void> {
    this.stopped = true
    await Promise.all(this.workers)
    // A request cut off by its daemon's exit had taken effect, or never would, by the time of that exit.
    for (const op of this.history) {
      if (op.outcome !== 'unknown' || op.settledBy !== undefined) continue
      const epoch = this.epochs.get(op.id)
      const exit = epoch === undefined ? undefined : this.options.target.exitTime(op.peer, epoch)
      if (exit !== undefined && exit >= op.start) op.settledBy = exit
    }
  }

  private async work(): Promise<void> {
    const { random } = this.options
    while (!this.stopped) {
      const up = [...Array(this.options.target.peers).keys()].filter((peer) => this.options.target.isUp(peer))
      if (up.length > 0) {
        const roll = random.next()
        if (roll < 0.35) await this.put(random.pick(up))
        else if (roll < 0.45) await this.remove(random.pick(up))
        else if (roll < 0.65) await this.increment(random.pick(up))
        else await this.setOperation(up)
      }
      await new Promise((resolve) => setTimeout(resolve, this.options.paceMs ?? 40))
    }
  }

  private ackOption(): { peers: number; timeoutMs: number } | undefined {
    const { random, target } = this.options
    if (target.peers < 2 || !random.chance(0.25)) return undefined
    return { peers: random.int(1, Math.min(2, target.peers - 1)), timeoutMs: random.int(300, 3_000) }
  }

  private newOp(kind: OpKind, peer: number, key: string, fields: Partial<OpRecord> = {}): OpRecord {
    const op: OpRecord = {
      id: this.nextId++,
      kind,
      peer,
      key,
      start: this.options.clock(),
      outcome: 'unknown',
      ...fields,
    }
    this.history.push(op)
    return op
  }

  /** Runs one request for `op` and records its outcome; returns the answer when there was one. */
  private async send(
    op: OpRecord,
    method: string,
    path: string,
    body?: string,
    contentType?: string,
  ): Promise<HttpAnswer | undefined> {
    const { target, clock } = this.options
    const epoch = target.epoch(op.peer)
    this.epochs.set(op.id, epoch)
    const query = op.ack === undefined ? '' : `?ack=${op.ack.peers}&timeout=${op.ack.timeoutMs}`
    op.start = clock()
    try {
      const answer = await call(target.socketPath(op.peer), method, path + query, {
        body,
        contentType,
        timeoutMs: (op.ack?.timeoutMs ?? 0) + 10_000,
      })
      op.end = clock()
      op.status = answer.status
      op.outcome = answer.status >= 200 && answer.status < 300 ? 'ok' : 'failed'
      if (op.outcome === 'failed') op.error = answer.json?.error?.code ?? answer.text.slice(0, 100)
      const etag = answer.headers.etag
      if (op.outcome === 'ok' && typeof etag === 'string') op.etag = etag.replace(/^"|"$/g, '')
      const ack = answer.json?.ack
      if (ack !== undefined) {
        op.ackReplicated = ack.replicated
        op.ackReached = ack.reached
      }
      return answer
    } catch (error) {
      if (error instanceof DaemonDownError) {
        op.end = clock()
        op.outcome = 'failed'
        op.error = 'daemon down'
        return undefined
      }
      op.outcome = 'unknown'
      op.error = (error as Error).message
      return undefined
    }
  }

  /** The live sibling dots of a key at a peer, or undefined when they could not be read. */
  private async siblings(peer: number, key: string): Promise<{ dots: Dot[]; epoch: number } | undefined> {
    const { target } = this.options
    const epoch = target.epoch(peer)
    try {
      const answer = await call(target.socketPath(peer), 'GET', `/v1/ns/${NAMESPACE}/kv/${key}?siblings=1`, {
        timeoutMs: 5_000,
      })
      if (answer.status === 404) return { dots: [], epoch }
      if (answer.status !== 200) return undefined
      return {
        dots: (answer.json.siblings as Array<{ replica: string; counter: number }>).map((s) => ({
          replica: s.replica,
          counter: s.counter,
        })),
        epoch,
      }
    } catch {
      return undefined
    }
  }

  private recordWrite(op: OpRecord, answer: HttpAnswer | undefined): void {
    if (answer === undefined || op.outcome !== 'ok') return
    const body = answer.json
    if (typeof body?.replica === 'string' && typeof body?.counter === 'number') {
      op.dot = { replica: body.replica, counter: body.counter }
    }
    if (typeof body?.writtenAt === 'string') op.wall = Date.parse(body.writtenAt)
  }

  private async put(peer: number): Promise<void> {
    const { random, target } = this.options
    const key = random.pick(KV_KEYS)
    const observed = random.chance(0.5) ? await this.siblings(peer, key) : undefined
    const op = this.newOp('put', peer, key, { ack: this.ackOption() })
    op.value = `v${op.id}`
    const answer = await this.send(op, 'PUT', `/v1/ns/${NAMESPACE}/kv/${key}`, op.value, 'text/plain')
    this.recordWrite(op, answer)
    if (op.outcome === 'ok' && observed !== undefined && observed.epoch === target.epoch(peer)) {
      op.observedBefore = observed.dots
    }
  }

  private async remove(peer: number): Promise<void> {
    const { random, target } = this.options
    const key = random.pick(KV_KEYS)
    const observed = await this.siblings(peer, key)
    const op = this.newOp('delete', peer, key, { ack: this.ackOption() })
    const answer = await this.send(op, 'DELETE', `/v1/ns/${NAMESPACE}/kv/${key}`)
    this.recordWrite(op, answer)
    if (op.outcome === 'ok' && observed !== undefined && observed.epoch === target.epoch(peer)) {
      op.observedBefore = observed.dots
    }
  }

  private async increment(peer: number): Promise<void> {
    const { random } = this.options
    const key = random.pick(COUNTER_KEYS)
    const by = random.chance(0.1) ? -random.int(1, 3) : random.int(1, 5)
    const op = this.newOp('incr', peer, key, { by, ack: this.ackOption() })
    const answer = await this.send(op, 'POST', `/v1/ns/${NAMESPACE}/counter/${key}`, JSON.stringify({ by }))
    this.recordWrite(op, answer)
  }

  private async setOperation(up: number[]): Promise<void> {
    const { random, target } = this.options
    const key = random.pick(SET_KEYS)
    const owned = random.chance(0.5)
    const element = random.pick(owned ? OWNED_ELEMENTS : SHARED_ELEMENTS)
    const lock = `${key}/${element}`
    let peer: number
    if (owned) {
      peer = (SET_KEYS.indexOf(key) * OWNED_ELEMENTS.length + OWNED_ELEMENTS.indexOf(element)) % target.peers
      // The owner is down, or another worker is on this element: try something else next turn.
      if (!up.includes(peer) || this.busyElements.has(lock)) return
      this.busyElements.add(lock)
    } else peer = random.pick(up)
    try {
      const kind: OpKind = random.chance(0.6) ? 'set-add' : 'set-remove'
      const op = this.newOp(kind, peer, key, { value: element, ack: this.ackOption() })
      const body = JSON.stringify(kind === 'set-add' ? { add: [element] } : { remove: [element] })
      await this.send(op, 'POST', `/v1/ns/${NAMESPACE}/set/${key}`, body)
    } finally {
      if (owned) this.busyElements.delete(lock)
    }
  }
}

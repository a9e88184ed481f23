/**
 * Runs a workload against real daemons and records its history (model.ts) for the checker.
 *
 * Daemons: real `hearsay up` processes (test/helpers/daemon.ts) on loopback, one data dir each, all
 * bootstrapping from each other. Sessions: several clients per daemon, each bound to its daemon for
 * the whole run, one request at a time, on a few shared keys so that sessions on different daemons
 * write concurrently.
 *
 * Faults, from a seeded schedule:
 * - restart: SIGTERM, then `hearsay up` again on the same data dir;
 * - partition: the daemon is restarted with a mesh key of its own and no bootstrap, so no other
 *   daemon can connect to it (the private mesh handshake fails) and it keeps serving its sessions
 *   alone; the heal restarts it with the shared key and every other daemon as bootstrap.
 * A daemon's sessions pause while it restarts (they wait for it, as a client of a local daemon
 * would), so every request gets an answer; a request that still gets none is recorded as unknown.
 */
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { decodeToken } from '../../src/codec/stored.ts'
import { newSwarmKeyFile } from '../../src/mesh/swarm-key.ts'
import { type Random, seededRandom } from '../chaos/random.ts'
import { type DaemonProcess, startDaemon, tempHome, until } from '../helpers/daemon.ts'
import type { Dot, DotSet, FinalState, History, Op, ReadOp } from './model.ts'

export const NAMESPACE = 'history'
const REGISTER_KEYS = ['k0', 'k1', 'k2', 'k3']
const COUNTER_KEYS = ['c0', 'c1']
const SET_KEYS = ['s0']
const ELEMENTS = ['e0', 'e1', 'e2', 'e3']
const REQUEST_TIMEOUT_MS = 10_000

export interface RunOptions {
  seed: number
  durationMs: number
  daemons?: number
  sessionsPerDaemon?: number
  /** Progress lines (faults, heal); silent by default. */
  log?: (line: string) => void
}

export interface RunFigures {
  operations: number
  byKind: Record<string, number>
  unknown: number
  failed: number
  partitions: number
  restarts: number
  convergedInMs: number
}

export interface RunResult {
  history: History
  figures: RunFigures
}

interface LastRead {
  id: number
  etag: string
}

interface Slot {
  index: number
  home: string
  process: DaemonProcess
  isolated: boolean
  /** Resolved while the daemon serves; replaced by a pending promise while it restarts. */
  gate: Promise<void>
  inFlight: number
  drained?: () => void
}

export async function runHistory(options: RunOptions): Promise<RunResult> {
  const random = seededRandom(options.seed)
  const log = options.log ?? (() => {})
  const count = options.daemons ?? 3
  const started = performance.now()
  const now = () => Math.round((performance.now() - started) * 1000) / 1000
  const ops: Op[] = []
  let nextId = 1
  const figures = { partitions: 0, restarts: 0 }

  const slots: Slot[] = []
  for (let index = 0; index < count; index++) {
    const home = tempHome('hearsay-history-')
    const process = await startDaemon({ home, args: [...namespaceArgs(), ...bootstrapArgs(slots)] })
    slots.push({ index, home, process, isolated: false, gate: Promise.resolve(), inFlight: 0 })
  }
  await waitConnected(slots, count - 1)

  const isolatedKey = join(tempHome('hearsay-history-key-'), 'swarm.key')
  writeFileSync(isolatedKey, newSwarmKeyFile(), { mode: 0o600 })

  async function restart(slot: Slot, isolate: boolean): Promise<void> {
    let open!: () => void
    slot.gate = new Promise((resolve) => {
      open = resolve
    })
    if (slot.inFlight > 0) await new Promise<void>((resolve) => (slot.drained = resolve))
    slot.drained = undefined
    await slot.process.stop('SIGTERM')
    const others = slots.filter((other) => other !== slot && !other.isolated)
    const args = isolate
      ? [...namespaceArgs(), '--swarm-key', isolatedKey]
      : [...namespaceArgs(), ...bootstrapArgs(others)]
    slot.process = await startDaemon({ home: slot.home, args })
    slot.isolated = isolate
    open()
  }

  // The sessions.
  const deadline = performance.now() + options.durationMs
  const sessions: Promise<void>[] = []
  let sessionId = 0
  for (const slot of slots) {
    for (let i = 0; i < (options.sessionsPerDaemon ?? 2); i++) {
      const session = ++sessionId
      const sessionRandom = seededRandom(options.seed * 1000 + session)
      sessions.push(runSession(session, slot, sessionRandom))
    }
  }

  async function runSession(session: number, slot: Slot, r: Random): Promise<void> {
    /** The session's last read of each key: its op id and ETag, for If-Match. */
    const lastRead = new Map<string, LastRead>()
    // Bounded by the deadline; each request by its own timeout.
    while (performance.now() < deadline) {
      // A restart may begin while this session waited: wait again until the gate it passed is current.
      for (let gate = slot.gate; ; gate = slot.gate) {
        await gate
        if (gate === slot.gate) break
      }
      if (performance.now() >= deadline) break
      slot.inFlight++
      try {
        await oneOperation(session, slot, r, lastRead)
      } finally {
        slot.inFlight--
        if (slot.inFlight === 0) slot.drained?.()
      }
    }
  }

  async function oneOperation(session: number, slot: Slot, r: Random, lastRead: Map<string, LastRead>) {
    const base = { id: nextId++, session, daemon: slot.index, start: now(), outcome: 'unknown' as const }
    const url = slot.process.url
    const choice = r.next()
    const key = r.pick(REGISTER_KEYS)
    if (choice < 0.4) {
      const op: ReadOp = { ...base, kind: 'read', key, siblings: [] }
      ops.push(op)
      const answer = await request(url, 'GET', `/kv/${key}?siblings=1`)
      settle(op, answer, [200, 404])
      if (answer?.status === 200) {
        op.siblings = answer.json.siblings.map((s: { replica: string; counter: number; value: string }) => ({
          dot: { replica: s.replica, counter: s.counter },
          value: s.value,
        }))
        lastRead.set(key, { id: op.id, etag: answer.json.etag })
      }
    } else if (choice < 0.7 || (choice < 0.75 && !lastRead.has(key))) {
      const useIfMatch = r.chance(0.4) ? lastRead.get(key) : undefined
      const value = `s${session}-${base.id}`
      const op: Op = { ...base, kind: 'put', key, value, ifMatch: useIfMatch?.id }
      ops.push(op)
      const headers: Record<string, string> = { 'content-type': 'application/json' }
      if (useIfMatch) headers['if-match'] = `"${useIfMatch.etag}"`
      const answer = await request(url, 'PUT', `/kv/${key}`, JSON.stringify(value), headers)
      settle(op, answer, [200])
      if (op.outcome === 'ok') Object.assign(op, writeFacts(answer!.json))
    } else if (choice < 0.75) {
      const op: Op = { ...base, kind: 'delete', key }
      ops.push(op)
      const answer = await request(url, 'DELETE', `/kv/${key}`)
      settle(op, answer, [200])
      if (answer?.status === 404) op.outcome = 'failed'
      if (op.outcome === 'ok') Object.assign(op, writeFacts(answer!.json))
    } else if (choice < 0.88) {
      const by = r.int(-3, 9) || 1
      const counter = r.pick(COUNTER_KEYS)
      const op: Op = { ...base, kind: 'incr', key: counter, by }
      ops.push(op)
      const answer = await request(url, 'POST', `/counter/${counter}`, JSON.stringify({ by }), {
        'content-type': 'application/json',
      })
      settle(op, answer, [200])
    } else {
      const kind = r.chance(0.6) ? 'set-add' : 'set-remove'
      const element = r.pick(ELEMENTS)
      const set = r.pick(SET_KEYS)
      const op: Op = { ...base, kind, key: set, element }
      ops.push(op)
      const body = JSON.stringify(kind === 'set-add' ? { add: element } : { remove: element })
      const answer = await request(url, 'POST', `/set/${set}`, body, { 'content-type': 'application/json' })
      settle(op, answer, [200])
    }
  }

  function settle(op: Op, answer: Answer | undefined, okStatuses: number[]) {
    if (answer === undefined) return
    op.end = now()
    op.outcome = okStatuses.includes(answer.status) ? 'ok' : 'failed'
  }

  // The faults: one every few seconds, at most one daemon isolated at a time.
  const faultEvery = Math.min(10_000, Math.max(3_000, options.durationMs / 5))
  while (performance.now() + faultEvery / 2 < deadline) {
    await sleepUntil(Math.min(deadline, performance.now() + faultEvery * (0.5 + random.next())))
    if (performance.now() >= deadline) break
    const isolated = slots.find((slot) => slot.isolated)
    if (isolated !== undefined) {
      log(`${now().toFixed(0)} ms: heal daemon ${isolated.index}`)
      await restart(isolated, false)
    } else if (random.chance(0.5)) {
      const slot = random.pick(slots)
      log(`${now().toFixed(0)} ms: partition daemon ${slot.index} from the others`)
      figures.partitions++
      await restart(slot, true)
    } else {
      const slot = random.pick(slots)
      log(`${now().toFixed(0)} ms: restart daemon ${slot.index}`)
      figures.restarts++
      await restart(slot, false)
    }
  }
  await Promise.all(sessions)

  // Heal everything, then wait for one digest everywhere.
  for (const slot of slots) if (slot.isolated) await restart(slot, false)
  const healedAt = performance.now()
  await waitConnected(slots, 1)
  await until(
    async () => {
      const digests = await Promise.all(slots.map((slot) => namespaceDigest(slot.process.url)))
      return digests.every((digest) => digest === digests[0]) ? true : undefined
    },
    { timeoutMs: 60_000, intervalMs: 100, message: 'every daemon holds one digest after the heal' },
  )
  const convergedInMs = Math.round(performance.now() - healedAt)
  log(`converged ${convergedInMs} ms after the heal`)
  const finals = await Promise.all(slots.map((slot) => finalState(slot)))

  const byKind: Record<string, number> = {}
  for (const op of ops) byKind[op.kind] = (byKind[op.kind] ?? 0) + 1
  return {
    history: { ops, finals },
    figures: {
      operations: ops.length,
      byKind,
      unknown: ops.filter((op) => op.outcome === 'unknown').length,
      failed: ops.filter((op) => op.outcome === 'failed').length,
      ...figures,
      convergedInMs,
    },
  }
}

function namespaceArgs(): string[] {
  return ['--namespace', NAMESPACE]
}

function bootstrapArgs(slots: readonly Slot[]): string[] {
  return slots.flatMap((slot) =>
    slot.process.addresses.slice(0, 1).flatMap((address) => ['--bootstrap', address]),
  )
}

async function waitConnected(slots: readonly Slot[], atLeast: number): Promise<void> {
  await until(
    async () => {
      const counts = await Promise.all(
        slots.map(
          async (slot) => (await request(slot.process.url, 'GET', '', undefined, {}, '/v1/status'))?.json,
        ),
      )
      return counts.every((status) => status?.peers?.connected >= atLeast) ? true : undefined
    },
    { timeoutMs: 30_000, intervalMs: 100, message: `every daemon connected to ${atLeast} other(s)` },
  )
}

async function namespaceDigest(url: string): Promise<string | undefined> {
  return (await request(url, 'GET', ''))?.json?.digest
}

async function finalState(slot: Slot): Promise<FinalState> {
  const url = slot.process.url
  const registers: FinalState['registers'] = {}
  for (const key of REGISTER_KEYS) {
    const answer = await request(url, 'GET', `/kv/${key}?siblings=1`)
    registers[key] =
      answer?.status === 200
        ? answer.json.siblings.map((s: { replica: string; counter: number; value: string }) => ({
            dot: { replica: s.replica, counter: s.counter },
            value: s.value,
          }))
        : []
  }
  const counters: FinalState['counters'] = {}
  for (const key of COUNTER_KEYS)
    counters[key] = (await request(url, 'GET', `/counter/${key}`))?.json?.value ?? 0
  const sets: FinalState['sets'] = {}
  for (const key of SET_KEYS) sets[key] = (await request(url, 'GET', `/set/${key}`))?.json?.members ?? []
  // The digest last: reads above must not race a change that the digest would then not match.
  return { daemon: slot.index, digest: (await namespaceDigest(url)) ?? '', registers, counters, sets }
}

/** A write's dot and what it superseded, from its answer and ETag (its own dot left out). */
export function writeFacts(body: { etag: string; replica: string; counter: number }): {
  dot: Dot
  covers: DotSet
} {
  const dot = { replica: body.replica, counter: body.counter }
  const covers: DotSet = {}
  for (const [replica, flat] of decodeToken(body.etag).covers.entries()) {
    const pairs: Array<[number, number]> = []
    for (let i = 0; i + 1 < flat.length; i += 2) pairs.push([flat[i]!, flat[i + 1]!])
    covers[replica] = pairs
  }
  return { dot, covers: withoutDot(covers, dot) }
}

function withoutDot(set: DotSet, dot: Dot): DotSet {
  const ranges = set[dot.replica]
  if (ranges === undefined) return set
  const out: Array<[number, number]> = []
  for (const [lo, hi] of ranges) {
    if (dot.counter < lo || dot.counter > hi) out.push([lo, hi])
    else {
      if (lo < dot.counter) out.push([lo, dot.counter - 1])
      if (dot.counter < hi) out.push([dot.counter + 1, hi])
    }
  }
  return { ...set, [dot.replica]: out }
}

interface Answer {
  status: number
  // biome-ignore lint/suspicious/noExplicitAny: answers are read field by field
  json: any
}

/** One request to the namespace's API; undefined when no answer came (timeout, connection lost). */
async function request(
  url: string,
  method: string,
  path: string,
  body?: string,
  headers: Record<string, string> = {},
  fullPath = `/v1/ns/${NAMESPACE}${path}`,
): Promise<Answer | undefined> {
  try {
    const response = await fetch(url + fullPath, {
      method,
      headers,
      body,
      signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
    })
    const text = await response.text()
    return { status: response.status, json: text === '' ? undefined : JSON.parse(text) }
  } catch {
    return undefined
  }
}

function sleepUntil(at: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, Math.max(0, at - performance.now())))
}

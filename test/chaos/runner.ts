import { rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { generateSwarmKey } from '../../src/mesh/node.ts'
import { checkAll } from './checker.ts'
import { call } from './client.ts'
import { DaemonSet, NAMESPACE } from './daemons.ts'
import type { OpRecord, PeerSnapshot, SiblingView, Violation } from './history.ts'
import { createNetwork, makeRunDir, type Network, removeLeftovers, whyNoNamespaces } from './netns.ts'
import { seededRandom } from './random.ts'
import { describeEvent, type FaultEvent, faultSchedule } from './schedule.ts'
import { COUNTER_KEYS, KV_KEYS, SET_KEYS, Workload } from './workload.ts'

/**
 * One chaos run: network, daemons, the seeded fault schedule under a workload, a final heal, the wait
 * for convergence, the final reads and the checker. Everything it creates is torn down at the end,
 * on an error, and on SIGINT/SIGTERM of the runner.
 */

export interface ChaosOptions {
  peers: number
  durationS: number
  seed: number
  /** How long after the final heal peers may take to agree (reads and digests). */
  convergeTimeoutS: number
  workers?: number
  /** Keep the run dir (data dirs, logs) even when there is no violation. */
  keep?: boolean
  log?: (line: string) => void
}

export interface ChaosFigures {
  ops: Record<string, Record<string, number>>
  faults: Record<string, number>
  ackWrites: number
  ackReached: number
  ackNotReached: number
  /** `?ack` answers that came more than 1 s after the requested timeout. */
  lateAckAnswers: number
  maxAckOverrunMs: number
  unexpectedExits: number
  errorLogLines: number
  errorLogMessages: string[]
  meshFormedMs?: number
  healToEqualVersionVectorsMs?: number
  healToEqualDigestsMs?: number
  healToEqualReadsMs?: number
  finalEntries?: number
}

export interface ChaosResult {
  seed: number
  options: ChaosOptions
  violations: Violation[]
  figures: ChaosFigures
  schedule: FaultEvent[]
  runDir: string
  summary: string
}

export class ChaosUnavailableError extends Error {
  override name = 'ChaosUnavailableError'
}

const cleanups = new Set<() => Promise<void>>()

/** Tears down every run in progress (for the runner's signal handlers). */
export async function cleanUpAll(): Promise<void> {
  await Promise.all([...cleanups].map((cleanup) => cleanup()))
}

export async function runChaos(options: ChaosOptions): Promise<ChaosResult> {
  const log = options.log ?? ((line: string) => process.stderr.write(`${line}\n`))
  const why = whyNoNamespaces()
  if (why !== undefined) {
    throw new ChaosUnavailableError(
      `the chaos run needs network namespaces it creates itself, and ${why}; run it as root on Linux with iproute2, iptables and tc`,
    )
  }
  const leftovers = removeLeftovers()
  if (leftovers.length > 0)
    log(`removed ${leftovers.length} namespace(s) left by an earlier run: ${leftovers.join(' ')}`)

  const started = performance.now()
  const clock = () => Math.round(performance.now() - started)
  const random = seededRandom(options.seed)
  const schedule = faultSchedule(random, { peers: options.peers, durationMs: options.durationS * 1000 })
  const runDir = makeRunDir()
  const swarmKeyFile = join(runDir, 'swarm.key')
  writeFileSync(swarmKeyFile, generateSwarmKey(), { mode: 0o600 })
  log(
    `chaos: seed ${options.seed}, ${options.peers} peers, ${options.durationS} s of faults, run dir ${runDir}`,
  )

  let network: Network | undefined
  let daemons: DaemonSet | undefined
  let workload: Workload | undefined
  let keepDir = options.keep === true
  const cleanup = async () => {
    await workload?.stop().catch(() => undefined)
    await daemons?.killAll()
    network?.teardown()
    network = undefined
    if (!keepDir) rmSync(runDir, { recursive: true, force: true })
  }
  cleanups.add(cleanup)
  // Whatever ends the runner (an uncaught error included), no daemon or namespace outlives it.
  const onExit = () => {
    daemons?.killAllNow()
    network?.teardown()
  }
  process.once('exit', onExit)
  try {
    network = createNetwork(options.peers)
    const net = network
    daemons = await DaemonSet.prepare({
      runDir,
      namespaces: net.peerNamespaces,
      addressOf: net.addressOf,
      swarmKeyFile,
      clock,
    })
    const set = daemons
    await Promise.all(set.specs.map((_, peer) => set.start(peer)))
    log(`chaos: ${options.peers} daemons ready at ${clock()} ms`)
    const status = (peer: number) =>
      call(set.specs[peer]!.socketPath, 'GET', '/v1/status', { timeoutMs: 5_000 }).then(
        (answer) => answer.json,
      )
    const meshFormed = await pollUntil(60_000, async () => {
      const all = await Promise.all(set.specs.map((_, peer) => status(peer)))
      return all.every((s) => s.peers.connected >= Math.min(2, options.peers - 1)) ? true : undefined
    })
    const meshFormedMs = meshFormed === undefined ? undefined : clock()
    log(`chaos: mesh ${meshFormed ? 'formed' : 'NOT formed (continuing)'} at ${clock()} ms`)

    workload = new Workload({
      random: seededRandom(options.seed ^ 0x5eed),
      clock,
      workers: options.workers,
      target: {
        peers: options.peers,
        socketPath: (peer) => set.specs[peer]!.socketPath,
        isUp: (peer) => set.isUp(peer),
        epoch: (peer) => set.epoch(peer),
        exitTime: (peer, epoch) => set.exitTime(peer, epoch),
      },
    })
    workload.start()
    const faultCounts: Record<string, number> = {}
    const restarts = new Map<number, Promise<void>>()
    const restart = (peer: number) => {
      if (restarts.has(peer) || set.isUp(peer)) return
      const done = set
        .start(peer)
        .catch((error: Error) => log(`chaos: restart of peer ${peer} failed: ${error.message}`))
        .finally(() => restarts.delete(peer))
      restarts.set(peer, done)
    }
    const faultsStart = performance.now()
    // The schedule's times count from here; operation times from the start of the run.
    const faultsStartMs = clock()
    const actions = timeline(schedule, net, set, restart)
    for (const action of actions) {
      const wait = action.at - (performance.now() - faultsStart)
      if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait))
      if (action.fault !== undefined) {
        faultCounts[action.fault.kind] = (faultCounts[action.fault.kind] ?? 0) + 1
        log(`chaos: +${Math.round(action.at / 1000)} s ${describeEvent(action.fault)}`)
      }
      await action.run().catch((error: Error) => log(`chaos: fault action failed: ${error.message}`))
    }
    const remaining = options.durationS * 1000 - (performance.now() - faultsStart)
    if (remaining > 0) await new Promise((resolve) => setTimeout(resolve, remaining))

    await workload.stop()
    await net.healAll()
    await Promise.all(restarts.values())
    await Promise.all(set.specs.map((_, peer) => (set.isUp(peer) ? undefined : set.start(peer))))
    const healAt = clock()
    log(`chaos: healed at ${healAt} ms; ${workload.history.length} operations; waiting for convergence`)

    let vvEqualAt: number | undefined
    let digestEqualAt: number | undefined
    let readsEqualAt: number | undefined
    let snapshots: PeerSnapshot[] = []
    await pollUntil(
      options.convergeTimeoutS * 1000,
      async () => {
        const all = await Promise.all(set.specs.map((_, peer) => status(peer)))
        const ns = all.map((s) => s.namespaces.find((n: { name: string }) => n.name === NAMESPACE))
        const vectors = ns.map((n) => JSON.stringify(sortedEntries(n?.versionVector ?? {})))
        const digests = ns.map((n) => n?.digest)
        if (vvEqualAt === undefined && vectors.every((v) => v === vectors[0])) vvEqualAt = clock()
        if (digestEqualAt === undefined && digests.every((d) => d === digests[0])) digestEqualAt = clock()
        if (readsEqualAt === undefined) {
          snapshots = await Promise.all(set.specs.map((_, peer) => snapshot(set, peer, ns[peer])))
          const reads = snapshots.map((s) => JSON.stringify([s.kv, s.counters, s.sets]))
          if (reads.every((r) => r === reads[0])) readsEqualAt = clock()
        }
        return vvEqualAt !== undefined && digestEqualAt !== undefined && readsEqualAt !== undefined
          ? true
          : undefined
      },
      500,
    )
    const finalStatus = await Promise.all(set.specs.map((_, peer) => status(peer)))
    snapshots = await Promise.all(
      set.specs.map((_, peer) =>
        snapshot(
          set,
          peer,
          finalStatus[peer].namespaces.find((n: { name: string }) => n.name === NAMESPACE),
        ),
      ),
    )
    for (let peer = 0; peer < options.peers; peer++) await set.stop(peer, 'SIGTERM')

    const history = workload.history
    const violations = checkAll(history, snapshots)
    const figures = figuresOf(history, faultCounts, set)
    figures.meshFormedMs = meshFormedMs
    figures.healToEqualVersionVectorsMs = vvEqualAt === undefined ? undefined : vvEqualAt - healAt
    figures.healToEqualDigestsMs = digestEqualAt === undefined ? undefined : digestEqualAt - healAt
    figures.healToEqualReadsMs = readsEqualAt === undefined ? undefined : readsEqualAt - healAt
    figures.finalEntries = finalStatus[0]?.namespaces.find(
      (n: { name: string }) => n.name === NAMESPACE,
    )?.entries
    for (const exit of set.exits) {
      if (!exit.expected) {
        violations.push({
          rule: 'crash',
          detail: `peer ${exit.peer} (run ${exit.epoch}) exited on its own at ${exit.at} ms with ${exit.code ?? exit.signal}`,
          hard: true,
        })
      } else if (exit.signalSent === 'SIGTERM' && exit.code !== 0) {
        violations.push({
          rule: 'crash',
          detail: `peer ${exit.peer} (run ${exit.epoch}) stopped with ${exit.code ?? exit.signal} on SIGTERM instead of 0`,
          hard: true,
        })
      }
    }
    if (readsEqualAt === undefined || digestEqualAt === undefined || vvEqualAt === undefined) {
      violations.push({
        rule: 'no-convergence',
        detail: `within ${options.convergeTimeoutS} s of the heal: reads ${readsEqualAt ? 'equal' : 'differ'}, digests ${digestEqualAt ? 'equal' : 'differ'}, version vectors ${vvEqualAt ? 'equal' : 'differ'}`,
        hard: true,
      })
    }
    for (const slow of set.slowStarts) {
      violations.push({
        rule: 'slow-start',
        detail: `peer ${slow.peer} (run ${slow.epoch}) was not ready within the start timeout; killed at ${slow.at} ms and started again later`,
        hard: false,
      })
    }
    for (const message of figures.errorLogMessages) {
      violations.push({ rule: 'error-log', detail: message, hard: false })
    }
    if (violations.length > 0) keepDir = true
    const result: ChaosResult = {
      seed: options.seed,
      options,
      violations,
      figures,
      schedule,
      runDir,
      summary: '',
    }
    result.summary = summarize(result, history)
    if (keepDir)
      writeFileSync(
        join(runDir, 'history.json'),
        JSON.stringify({ faultsStartMs, schedule, history, snapshots }, null, 1),
      )
    return result
  } finally {
    await cleanup()
    cleanups.delete(cleanup)
    process.off('exit', onExit)
  }
}

interface Action {
  at: number
  fault?: FaultEvent
  run(): Promise<void>
}

/** The schedule as timed actions: each fault, and its end (heal or restart). */
function timeline(
  schedule: FaultEvent[],
  net: Network,
  set: DaemonSet,
  restart: (peer: number) => void,
): Action[] {
  const actions: Action[] = []
  for (const fault of schedule) {
    switch (fault.kind) {
      case 'partition':
        actions.push({ at: fault.at, fault, run: () => net.partition(fault.groups, fault.mode) })
        actions.push({ at: fault.at + fault.durationMs, run: () => net.healPartitions() })
        break
      case 'loss':
        actions.push({ at: fault.at, fault, run: () => net.setLoss(fault.peer, fault.probability) })
        actions.push({ at: fault.at + fault.durationMs, run: () => net.clearLoss(fault.peer) })
        break
      case 'rate':
        actions.push({ at: fault.at, fault, run: () => net.setRate(fault.peer, fault.kbit) })
        actions.push({ at: fault.at + fault.durationMs, run: () => net.clearRate(fault.peer) })
        break
      case 'kill':
        // Not awaited: the next fault is due while the daemon shuts down.
        actions.push({
          at: fault.at,
          fault,
          run: async () => {
            void set.stop(fault.peer, fault.signal)
          },
        })
        actions.push({ at: fault.at + fault.downMs, run: async () => restart(fault.peer) })
        break
    }
  }
  // Stable: a heal due at the same time as the next fault comes first.
  return actions.sort((a, b) => a.at - b.at)
}

async function snapshot(
  set: DaemonSet,
  peer: number,
  namespace: { digest: string; versionVector: Record<string, number> } | undefined,
): Promise<PeerSnapshot> {
  const socket = set.specs[peer]!.socketPath
  const get = (path: string) => call(socket, 'GET', `/v1/ns/${NAMESPACE}${path}`, { timeoutMs: 5_000 })
  const kv: Record<string, SiblingView[]> = {}
  for (const key of KV_KEYS) {
    const answer = await get(`/kv/${key}?siblings=1`)
    if (answer.status === 404) continue
    if (answer.status !== 200) throw new Error(`peer ${peer} read of ${key} answered ${answer.status}`)
    kv[key] = (answer.json.siblings as Array<SiblingView & { value: unknown }>)
      .map((s) => ({ replica: s.replica, counter: s.counter, wall: s.wall, value: String(s.value) }))
      .sort((a, b) => a.replica.localeCompare(b.replica) || a.counter - b.counter)
  }
  const counters: Record<string, number> = {}
  for (const key of COUNTER_KEYS) counters[key] = (await get(`/counter/${key}`)).json?.value ?? 0
  const sets: Record<string, string[]> = {}
  for (const key of SET_KEYS) sets[key] = [...((await get(`/set/${key}`)).json?.members ?? [])].sort()
  return {
    peer,
    kv,
    counters,
    sets,
    digest: namespace?.digest ?? '',
    versionVector: namespace?.versionVector ?? {},
  }
}

function sortedEntries(vector: Record<string, number>): [string, number][] {
  return Object.entries(vector).sort(([a], [b]) => a.localeCompare(b))
}

/** Polls until `probe` returns a value or the deadline passes (then undefined); errors count as not yet. */
async function pollUntil<T>(
  timeoutMs: number,
  probe: () => Promise<T | undefined>,
  intervalMs = 250,
): Promise<T | undefined> {
  const deadline = performance.now() + timeoutMs
  for (;;) {
    try {
      const value = await probe()
      if (value !== undefined) return value
    } catch {
      // Not reachable yet: try again until the deadline.
    }
    if (performance.now() > deadline) return undefined
    await new Promise((resolve) => setTimeout(resolve, intervalMs))
  }
}

function figuresOf(
  history: readonly OpRecord[],
  faults: Record<string, number>,
  set: DaemonSet,
): ChaosFigures {
  const ops: Record<string, Record<string, number>> = {}
  let ackWrites = 0
  let ackReached = 0
  let ackNotReached = 0
  let lateAckAnswers = 0
  let maxAckOverrunMs = 0
  for (const op of history) {
    ops[op.kind] ??= { ok: 0, failed: 0, unknown: 0 }
    ops[op.kind]![op.outcome]!++
    if (op.ack === undefined || op.outcome !== 'ok') continue
    ackWrites++
    if (op.ackReached) ackReached++
    else ackNotReached++
    const overrun = (op.end ?? op.start) - op.start - op.ack.timeoutMs
    if (overrun > 1_000) lateAckAnswers++
    maxAckOverrunMs = Math.max(maxAckOverrunMs, overrun)
  }
  const messages = new Map<string, number>()
  for (const line of set.errorLines) {
    const name = `peer ${line.peer}: ${line.msg}`
    messages.set(name, (messages.get(name) ?? 0) + 1)
  }
  return {
    ops,
    faults,
    ackWrites,
    ackReached,
    ackNotReached,
    lateAckAnswers,
    maxAckOverrunMs,
    unexpectedExits: set.exits.filter((exit) => !exit.expected).length,
    errorLogLines: set.errorLines.length,
    errorLogMessages: [...messages].map(([msg, count]) => `${msg} (×${count})`),
  }
}

function summarize(result: ChaosResult, history: readonly OpRecord[]): string {
  const { figures: f, options } = result
  const ms = (value: number | undefined) => (value === undefined ? 'never' : `${value} ms`)
  const rows: [string, string][] = [
    ['seed', String(result.seed)],
    ['peers / faults duration', `${options.peers} / ${options.durationS} s`],
    [
      'faults injected',
      Object.entries(f.faults)
        .map(([k, n]) => `${k} ${n}`)
        .join(', ') || 'none',
    ],
    ['operations', String(history.length)],
    ...Object.entries(f.ops).map(([kind, c]): [string, string] => [
      `  ${kind}`,
      `ok ${c.ok}, failed ${c.failed}, unknown ${c.unknown}`,
    ]),
    ['?ack writes answered', `${f.ackWrites} (reached ${f.ackReached}, 202 not reached ${f.ackNotReached})`],
    [
      '?ack answers > 1 s after timeout',
      `${f.lateAckAnswers} (max overrun ${Math.max(0, f.maxAckOverrunMs)} ms)`,
    ],
    ['mesh formed at', ms(f.meshFormedMs)],
    ['heal → equal version vectors', ms(f.healToEqualVersionVectorsMs)],
    ['heal → equal digests', ms(f.healToEqualDigestsMs)],
    ['heal → equal reads', ms(f.healToEqualReadsMs)],
    ['entries at the end', String(f.finalEntries ?? '?')],
    ['unexpected exits', String(f.unexpectedExits)],
    ['error-level log lines', String(f.errorLogLines)],
    ['violations (hard)', `${result.violations.length} (${result.violations.filter((v) => v.hard).length})`],
  ]
  const width = Math.max(...rows.map(([name]) => name.length))
  const lines = rows.map(([name, value]) => `${name.padEnd(width)}  ${value}`)
  for (const violation of result.violations) {
    lines.push(`${violation.hard ? 'HARD' : 'soft'} ${violation.rule}: ${violation.detail}`)
  }
  if (result.violations.length > 0)
    lines.push(`replay with --seed ${result.seed}; run dir kept: ${result.runDir}`)
  return lines.join('\n')
}

import { randomBytes } from 'node:crypto'
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { DEFAULT_TARGET_CONNECTIONS } from '../mesh/constants.ts'
import { loadOrCreateIdentity } from '../mesh/identity.ts'
import { type HttpAnswer, LabHttpClient, type WatchStream } from './http.ts'
import { createLabNetwork } from './links.ts'
import {
  availability,
  buildTimeline,
  caughtUpAfter,
  type DigestSample,
  digestsEqualAfter,
  faultWindows,
  gossipMessages,
  isLive,
  type Liveness,
  lostWrites,
  peersEqualFraction,
  type ReadRecord,
  summarizeLatency,
  VisibilityLog,
  type WriteRecord,
  writeLatency,
} from './measure.ts'
import { cpuMs, freePort, LabDaemon, onCleanup, peakRssBytes, SocketLedger } from './processes.ts'
import type { LabEnvironment } from './scenario.ts'
import { networkGroups, planShape } from './shapes.ts'
import type {
  LabNetwork,
  LabProgress,
  LabShape,
  PeerFigures,
  RunResult,
  Scenario,
  TimelineEvent,
} from './types.ts'
import { labValue, parseKey, parseValue, planOperations } from './workload.ts'

/**
 * Runs one shape with n peers as daemon processes: starts them (through the link network when the
 * scenario has link conditions or partitions), warms the topology up, issues the planned writes and
 * reads on time, plays the timeline, watches every peer over SSE, samples digests every 250 ms and
 * CPU/memory/socket bytes every second, waits for the writes to settle, and stops everything however
 * the run ends. The figures come from measure.ts.
 */

export const LAB_NAMESPACE = 'lab'
const SAMPLE_MS = 250
const START_TIMEOUT_MS = 60_000
const WARMUP_TIMEOUT_MS = 30_000
const REQUEST_TIMEOUT_MS = 5000
const MAX_IN_FLIGHT = 512
/** A timeline event (a daemon start, a partition) that takes longer than this is reported as failed. */
const EVENT_TIMEOUT_MS = 90_000

export interface ProcessRunInit {
  scenario: Scenario
  shape: LabShape
  n: number
  progress: LabProgress
  /** The daemons' data dirs (removed at the end). */
  workDir: string
  /** The daemons' logs (kept). */
  logDir: string
  env: LabEnvironment
}

function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no result within ${ms / 1000} s`)), ms)
  })
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer))
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, Math.max(0, ms)))

function needsNetwork(scenario: Scenario, shape: LabShape): boolean {
  if (scenario.link !== undefined) return true
  // http-hub partitions cut clients off in the lab itself (they are HTTP clients of this process).
  return shape !== 'http-hub' && scenario.timeline.some((event) => event.kind === 'partition')
}

/**
 * The link of a run. The HTTP hub's clients are in the lab's process, so their links go through the
 * loopback proxy, which makes delay and jitter but not loss or rate (those need the kernel, in a
 * namespace the clients are not in): they are left out of that shape, and the run says so.
 */
function httpLink(scenario: Scenario, shape: LabShape, progress: LabProgress): Scenario['link'] {
  const link = scenario.link
  if (shape !== 'http-hub' || link === undefined) return link
  if (link.lossPercent === 0 && link.rateKbit === undefined) return link
  progress(
    'http-hub: its clients run in the lab process, off the namespaces: delay and jitter only, no loss or rate limit',
  )
  const { rateKbit: _rate, ...rest } = link
  return { ...rest, lossPercent: 0 }
}

/** Every lab key a peer holds now with the sequence number of its value (pages of 1000, bounded). */
async function storedSequences(client: LabHttpClient): Promise<Map<string, number>> {
  const stored = new Map<string, number>()
  let cursor: string | undefined
  for (let page = 0; page < 100; page++) {
    const query = `prefix=w&limit=1000${cursor === undefined ? '' : `&cursor=${encodeURIComponent(cursor)}`}`
    let body: { items?: Array<{ key: string; value?: unknown }>; cursor?: string }
    try {
      const answer = await client.send('GET', `/v1/ns/${LAB_NAMESPACE}/kv?${query}`, undefined, 10_000)
      if (answer.status !== 200) break
      body = JSON.parse(answer.body)
    } catch {
      break
    }
    for (const item of body.items ?? []) {
      const value = parseValue(item.value)
      if (value !== undefined) stored.set(item.key, value.seq)
    }
    cursor = body.cursor
    if (cursor === undefined) break
  }
  return stored
}

export async function runProcesses(init: ProcessRunInit): Promise<RunResult> {
  const { scenario, shape, n, progress } = init
  const plan = planShape(shape, n)
  const ops = planOperations(scenario.workload, scenario.seed)
  const lateJoiners = new Set(
    scenario.timeline.flatMap((event) => (event.kind === 'late-join' ? event.peers : [])),
  )
  mkdirSync(init.workDir, { recursive: true })
  mkdirSync(init.logDir, { recursive: true })
  const swarmKey = join(init.workDir, 'swarm.key')
  writeFileSync(swarmKey, `/key/swarm/psk/1.0.0/\n/base16/\n${randomBytes(32).toString('hex')}`, {
    mode: 0o600,
  })

  let network: LabNetwork | undefined
  let forgetNetwork = () => {}
  const daemons = new Map<number, LabDaemon>()
  const clients: LabHttpClient[] = []
  /** The lab's own clients of each daemon (metrics, connection checks), apart from the peers'. */
  const helperClients: LabHttpClient[] = []
  const watches: Array<WatchStream | undefined> = new Array(n).fill(undefined)
  let finished = false

  const cleanup = async () => {
    finished = true
    for (const watch of watches) watch?.close()
    for (const client of [...clients, ...helperClients]) client.close()
    await Promise.all([...daemons.values()].map((daemon) => daemon.stop('SIGTERM', 5000)))
    if (network !== undefined) {
      try {
        await withTimeout(network.teardown(), 60_000, 'tearing the link network down')
      } catch (error) {
        progress(`network teardown failed: ${(error as Error).message}`)
      }
    }
    forgetNetwork()
    for (const daemon of daemons.values()) rmSync(daemon.spec.home, { recursive: true, force: true })
  }

  try {
    if (needsNetwork(scenario, shape)) {
      network = await withTimeout(
        createLabNetwork({
          peers: plan.networkPeers,
          link: httpLink(scenario, shape, progress),
          seed: scenario.seed,
          // The HTTP hub's clients live in this process, outside any namespace: their links are the
          // loopback proxy's, one per client.
          namespaces: plan.peersAreDaemons && init.env.isRoot && init.env.hasIp,
        }),
        120_000,
        'building the link network',
      )
      const made = network
      forgetNetwork = onCleanup(() => made.teardown())
    }

    // Identities first, so every daemon's dial address is known before any starts.
    const loopbackDial = new Map<number, string>()
    const peerIds = new Map<number, string>()
    const urls = new Map<number, string>()
    const inNamespaces = network !== undefined && network.commandPrefix(plan.daemons[0]!).length > 0
    /** The address `dialer` dials `target` at (on the loopback proxy each pair has its own, so it can partition). */
    const dialOf = (target: number, dialer: number): string =>
      network === undefined
        ? loopbackDial.get(target)!
        : network.dialAddress(target, peerIds.get(target)!, dialer)
    for (const index of plan.daemons) {
      const home = join(init.workDir, `d${index}`)
      mkdirSync(home, { recursive: true, mode: 0o700 })
      const { peerId } = await loadOrCreateIdentity({ dataDir: home })
      const apiPort = await freePort()
      let listen: string
      if (network === undefined) {
        // A hub client is never dialled: any port will do (and none can be taken from it).
        const clientOfHub = shape === 'hub' && index !== plan.hub
        listen = `/ip4/127.0.0.1/tcp/${clientOfHub ? 0 : await freePort()}`
        loopbackDial.set(index, `${listen}/p2p/${peerId.toString()}`)
        urls.set(index, `http://127.0.0.1:${apiPort}`)
      } else {
        listen = network.listenAddress(index)
        urls.set(index, await network.apiUrl(index, apiPort))
      }
      peerIds.set(index, peerId.toString())
      daemons.set(
        index,
        new LabDaemon({
          index,
          command: plan.command(index),
          home,
          apiPort,
          prefix: network?.commandPrefix(index) ?? [],
          logPath: join(init.logDir, `${index === plan.hub ? 'hub' : `peer${index}`}.log`),
          args: [
            '--listen',
            listen,
            '--no-mdns',
            '--loopback-testing',
            '--swarm-key',
            swarmKey,
            '--namespace',
            LAB_NAMESPACE,
            '--log-format',
            'json',
            '--log-level',
            'warn',
          ],
        }),
      )
    }
    for (const index of plan.daemons) {
      const daemon = daemons.get(index)!
      daemon.spec.args.push(...plan.topologyArgs(index, dialOf))
      // The HTTP hub's clients reach its API through the link: in namespaces it listens on the peer's address.
      if (!plan.peersAreDaemons && inNamespaces) daemon.spec.args.push('--api-host', '0.0.0.0')
    }

    // ---- the run's record ----------------------------------------------------------------------
    const writeCount = ops.filter((op) => op.kind === 'write').length
    const log = new VisibilityLog(n, writeCount)
    const writes: WriteRecord[] = []
    const reads: ReadRecord[] = []
    const samples: DigestSample[] = []
    const liveness: Liveness = Array.from({ length: n }, () => [])
    const eventFailures: string[] = []
    const happened: Array<{ kind: TimelineEvent['kind']; atMs: number; effectiveMs: number }> = []
    const crashes: RunResult['crashes'] = []
    const lastId: Array<string | undefined> = new Array(n).fill(undefined)
    const watchReady: boolean[] = new Array(n).fill(false)
    const warmupSeen: Array<Set<string>> = Array.from({ length: n }, () => new Set())
    const cutOff = new Set<number>() // http-hub clients on the far side of a partition
    // http-hub clients that left (or have not joined yet): they live in this process, so leaving is theirs to make.
    const departed = new Set<number>(plan.peersAreDaemons ? [] : lateJoiners)
    let baseToken: string | undefined
    let t0 = performance.now()
    let started = false
    const now = () => performance.now() - t0
    const openLive = (peer: number) => {
      const intervals = liveness[peer]!
      const last = intervals[intervals.length - 1]
      if (last === undefined || Number.isFinite(last[1]))
        intervals.push([started ? now() : 0, Number.POSITIVE_INFINITY])
    }
    const closeLive = (peer: number) => {
      const last = liveness[peer]![liveness[peer]!.length - 1]
      if (last !== undefined && !Number.isFinite(last[1])) last[1] = started ? now() : 0
    }

    for (const daemon of daemons.values()) {
      daemon.onCrash = (exit) => {
        crashes.push({
          index: daemon.spec.index === plan.hub ? -1 : daemon.spec.index,
          code: exit.code,
          signal: exit.signal,
          logTail: exit.logTail,
        })
        progress(
          `${shape} n=${n}: daemon ${daemon.spec.index} exited unexpectedly (${exit.code ?? exit.signal})`,
        )
        if (plan.peersAreDaemons && daemon.spec.index !== plan.hub) closeLive(daemon.spec.index)
      }
    }

    const peerServing = (peer: number): boolean => {
      if (cutOff.has(peer) || departed.has(peer)) return false
      return daemons.get(plan.daemonOf(peer))!.running
    }

    /** After a daemon's start: its API token to its clients (ignored on a loopback bind; needed beyond it). */
    const authorize = (index: number) => {
      const file = join(daemons.get(index)!.spec.home, 'api.token')
      if (!existsSync(file)) return
      const token = readFileSync(file, 'utf8').trim()
      for (let peer = 0; peer < n; peer++) if (plan.daemonOf(peer) === index) clients[peer]!.setToken(token)
    }
    const start = async (index: number) => {
      await daemons.get(index)!.start(START_TIMEOUT_MS)
      authorize(index)
    }

    const openWatch = (peer: number) => {
      if (finished || watches[peer] !== undefined || !peerServing(peer)) return
      const since = lastId[peer] ?? baseToken
      const path = `/v1/ns/${LAB_NAMESPACE}/watch${since === undefined ? '' : `?since=${encodeURIComponent(since)}`}`
      watches[peer] = clients[peer]!.watch(path, {
        onEvent(event, data, id) {
          const at = now()
          if (id !== undefined) lastId[peer] = id
          if (event === 'ready') {
            watchReady[peer] = true
            baseToken ??= id
          }
          if (event !== 'change') return
          let change: { key?: string; value?: unknown }
          try {
            change = JSON.parse(data)
          } catch {
            return
          }
          if (typeof change.key !== 'string') return
          if (change.key.startsWith('_warmup/')) {
            warmupSeen[peer]!.add(change.key)
            return
          }
          const key = parseKey(change.key)
          const value = parseValue(change.value)
          if (key === undefined || value === undefined || value.writer !== key.writer) return
          log.observe(peer, change.key, value.seq, at)
        },
        onClose(reason) {
          watches[peer] = undefined
          watchReady[peer] = false
          if (!finished && peerServing(peer))
            progress(`${shape} n=${n}: the watch of peer ${peer} ended (${reason}); reopening`)
          // A stream that ends while its daemon should serve is reopened (resuming from the last id).
          if (!finished && peerServing(peer)) setTimeout(() => openWatch(peer), SAMPLE_MS).unref()
        },
      })
    }
    const closeWatch = (peer: number) => {
      const watch = watches[peer]
      watches[peer] = undefined
      watch?.close()
    }

    for (let peer = 0; peer < n; peer++) {
      const index = plan.daemonOf(peer)
      let url = urls.get(index)!
      if (!plan.peersAreDaemons && network?.serviceAddress !== undefined) {
        // Each HTTP client reaches the hub through a link of its own (its delay, its loss).
        const { host, port } = await network.serviceAddress(index, daemons.get(index)!.spec.apiPort, peer)
        url = `http://${host.includes(':') ? `[${host}]` : host}:${port}`
      }
      clients.push(new LabHttpClient(url))
    }

    // ---- start -------------------------------------------------------------------------------
    const setupStart = performance.now()
    progress(`${shape} n=${n}: starting ${plan.daemons.length} daemon${plan.daemons.length === 1 ? '' : 's'}`)
    if (plan.hub !== undefined) await start(plan.hub)
    const initial = plan.peersAreDaemons
      ? plan.daemons.filter((d) => d !== plan.hub && !lateJoiners.has(d))
      : []
    for (let i = 0; i < initial.length; i += 4) {
      await Promise.all(initial.slice(i, i + 4).map(start))
    }
    for (let peer = 0; peer < n; peer++) {
      if (plan.peersAreDaemons ? daemons.get(peer)!.running : !lateJoiners.has(peer)) openLive(peer)
      openWatch(peer)
    }

    progress(
      `${shape} n=${n}: daemons up after ${((performance.now() - setupStart) / 1000).toFixed(1)} s; warming up`,
    )
    // ---- warm up: every running peer connected and showing a first write of every writer --------
    const warmDeadline = Date.now() + WARMUP_TIMEOUT_MS
    const running = () =>
      Array.from({ length: n }, (_, peer) => peer).filter(
        (peer) => peerServing(peer) && !lateJoiners.has(peer),
      )
    // Connected first: a write made before its peer has anyone to gossip to waits for anti-entropy.
    const expectedConnections = (index: number): number => {
      const up = plan.daemons.filter((other) => other !== index && daemons.get(other)!.running)
      // A mesh peer keeps DEFAULT_TARGET_CONNECTIONS neighbours or more, not everyone.
      if (shape === 'mesh') return Math.min(up.length, DEFAULT_TARGET_CONNECTIONS)
      return index === plan.hub ? up.length : 1
    }
    const connected = async (index: number): Promise<boolean> => {
      const client =
        clients.find((_, peer) => plan.daemonOf(peer) === index) ?? new LabHttpClient(urls.get(index)!)
      try {
        const answer = await client.send('GET', '/v1/peers', undefined, 2000)
        const body = JSON.parse(answer.body) as { peers?: Array<{ connected?: boolean }> }
        return (
          (body.peers ?? []).filter((peer) => peer.connected === true).length >= expectedConnections(index)
        )
      } catch {
        return false
      } finally {
        if (!clients.includes(client)) client.close()
      }
    }
    const toCheck = plan.peersAreDaemons ? plan.daemons.filter((index) => daemons.get(index)!.running) : []
    while (Date.now() < warmDeadline) {
      const states = await Promise.all(toCheck.map(connected))
      if (states.every(Boolean)) break
      await sleep(100)
    }
    // Every watch open (its ready event seen) before the probes, or a probe could overtake a watch request.
    while (Date.now() < warmDeadline && !running().every((peer) => watchReady[peer])) await sleep(50)
    const probes: string[] = []
    for (const peer of running()) {
      const key = `_warmup/${peer}`
      probes.push(key)
      await clients[peer]!.send(
        'PUT',
        `/v1/ns/${LAB_NAMESPACE}/kv/${key}`,
        '{"warmup":true}',
        REQUEST_TIMEOUT_MS,
      ).catch(() => undefined)
    }
    while (Date.now() < warmDeadline) {
      if (
        running().every(
          (peer) => probes.every((key) => warmupSeen[peer]!.has(key)) && watches[peer] !== undefined,
        ) &&
        baseToken !== undefined
      )
        break
      await sleep(50)
    }
    if (!running().every((peer) => probes.every((key) => warmupSeen[peer]!.has(key)))) {
      progress(`${shape} n=${n}: warm-up incomplete after ${WARMUP_TIMEOUT_MS / 1000} s; running anyway`)
    }

    progress(`${shape} n=${n}: warm-up done after ${((performance.now() - setupStart) / 1000).toFixed(1)} s`)
    // ---- the write phase ---------------------------------------------------------------------
    t0 = performance.now()
    started = true
    for (const intervals of liveness) for (const interval of intervals) interval[0] = 0
    const daemonPrefixes = () => [...daemons.values()].map((daemon) => daemon.spec.prefix)
    const ledger = new SocketLedger()
    // Bytes count from here: connection set-up, warm-up and the watches' opening are not the workload's.
    if (plan.peersAreDaemons) {
      ledger.sample(daemonPrefixes())
      ledger.markBaseline()
    } else for (const client of clients) client.markBaseline()
    const cpuByPid = new Map<number, number>()
    const cpuBaseline = new Map<number, number>()
    const startedBefore = new Set([...daemons.values()].flatMap((daemon) => daemon.pids))
    const rssByPid = new Map<number, number>()
    const sampleProcesses = () => {
      for (const daemon of daemons.values()) {
        const pid = daemon.pids[daemon.pids.length - 1]
        if (pid === undefined || !daemon.running) continue
        const cpu = cpuMs(pid)
        if (cpu !== undefined) {
          cpuByPid.set(pid, cpu)
          // Daemons up before the write phase count from its start; a restart counts in full.
          if (!cpuBaseline.has(pid)) cpuBaseline.set(pid, startedBefore.has(pid) ? cpu : 0)
        }
        const rss = peakRssBytes(pid)
        if (rss !== undefined) rssByPid.set(pid, Math.max(rss, rssByPid.get(pid) ?? 0))
      }
      if (plan.peersAreDaemons) ledger.sample(daemonPrefixes())
    }

    // Gossip batches per daemon incarnation (pid), from /metrics every 2 s and at the end.
    const messagesByPid = new Map<number, { published: number; received: number }>()
    const sampleMessages = async () => {
      await Promise.all(
        [...daemons.values()].map(async (daemon) => {
          const pid = daemon.pids[daemon.pids.length - 1]
          if (pid === undefined || !daemon.running) return
          const client = metricsClients.get(daemon.spec.index)!
          try {
            const answer = await client.send('GET', '/metrics', undefined, 2000)
            if (answer.status === 200) messagesByPid.set(pid, gossipMessages(answer.body))
          } catch {
            // down or slow: the last sample stands
          }
        }),
      )
    }
    const metricsClients = new Map<number, LabHttpClient>()
    for (const index of plan.daemons) {
      const client = new LabHttpClient(urls.get(index)!)
      const file = join(daemons.get(index)!.spec.home, 'api.token')
      if (existsSync(file)) client.setToken(readFileSync(file, 'utf8').trim())
      metricsClients.set(index, client)
      helperClients.push(client)
    }

    // The first refusal of a run is shown: a run where every write fails should say why.
    let refusalShown = false
    const refuse = (record: WriteRecord, why: string) => {
      record.refused = true
      if (refusalShown) return
      refusalShown = true
      progress(`${shape} n=${n}: a write to peer ${record.writer} was refused: ${why}`)
    }
    let inFlight = 0
    const pending = new Set<Promise<void>>()
    const track = (promise: Promise<void>) => {
      pending.add(promise)
      void promise.finally(() => pending.delete(promise))
    }
    const issue = (op: (typeof ops)[number]) => {
      const peer = op.writer
      if (op.kind === 'read') {
        const record: ReadRecord = { peer, atMs: now(), served: false }
        reads.push(record)
        if (!peerServing(peer)) return
        inFlight++
        track(
          clients[peer]!.send('GET', `/v1/ns/${LAB_NAMESPACE}/kv/${op.key}`, undefined, REQUEST_TIMEOUT_MS)
            .then((answer: HttpAnswer) => {
              record.served = answer.status === 200 || answer.status === 404
            })
            .catch(() => {})
            .finally(() => inFlight--),
        )
        return
      }
      const record: WriteRecord = {
        id: writes.length,
        writer: peer,
        key: op.key,
        seq: op.seq,
        issuedMs: now(),
        refused: false,
      }
      writes.push(record)
      log.add(record)
      if (!peerServing(peer) || inFlight >= MAX_IN_FLIGHT) {
        record.refused = true
        return
      }
      inFlight++
      track(
        clients[peer]!.send(
          'PUT',
          `/v1/ns/${LAB_NAMESPACE}/kv/${op.key}`,
          labValue(peer, op.seq, scenario.workload.valueBytes),
          REQUEST_TIMEOUT_MS,
        )
          .then((answer) => {
            if (answer.status === 200 || answer.status === 201) record.ackMs = now()
            else refuse(record, `HTTP ${answer.status} ${answer.body.slice(0, 200)}`)
          })
          .catch((error: Error) => refuse(record, error.message))
          .finally(() => inFlight--),
      )
    }

    const playEvent = async (event: TimelineEvent) => {
      switch (event.kind) {
        case 'leave':
          for (const peer of event.peers) {
            closeLive(peer)
            closeWatch(peer)
            if (!plan.peersAreDaemons) departed.add(peer)
          }
          if (plan.peersAreDaemons)
            await Promise.all(event.peers.map((peer) => daemons.get(peer)!.stop('SIGTERM')))
          return
        case 'join':
        case 'late-join':
          if (!plan.peersAreDaemons) {
            for (const peer of event.peers) {
              departed.delete(peer)
              openLive(peer)
              openWatch(peer)
            }
            return
          }
          await Promise.all(event.peers.map(start))
          for (const peer of event.peers) {
            openLive(peer)
            openWatch(peer)
          }
          return
        case 'partition':
          if (network !== undefined) await network.partition(networkGroups(plan, event.groups))
          else {
            for (const group of event.groups.slice(1)) for (const peer of group) cutOff.add(peer)
            for (const peer of cutOff) closeWatch(peer)
          }
          return
        case 'heal':
          if (network !== undefined) await network.heal()
          else {
            const healed = [...cutOff]
            cutOff.clear()
            for (const peer of healed) openWatch(peer)
          }
          return
        case 'kill-hub':
          if (plan.hub !== undefined) await daemons.get(plan.hub)!.stop('SIGKILL')
          return
        case 'restart-hub':
          if (plan.hub !== undefined) {
            await start(plan.hub)
            if (!plan.peersAreDaemons) for (let peer = 0; peer < n; peer++) openWatch(peer)
          }
          return
      }
    }

    const durationMs = scenario.workload.durationMs
    const timelineDone = (async () => {
      for (const event of scenario.timeline) {
        await sleep(event.atMs - now())
        if (finished) return
        try {
          await withTimeout(playEvent(event), EVENT_TIMEOUT_MS, `${event.kind} at ${event.atMs} ms`)
        } catch (error) {
          // A peer that does not come back is reported (crashes, its log) and the run goes on without it.
          progress(`${shape} n=${n}: ${event.kind} failed: ${(error as Error).message.split('\n')[0]}`)
          eventFailures.push(`${event.kind} at ${event.atMs} ms: ${(error as Error).message}`)
          continue
        }
        happened.push({ kind: event.kind, atMs: event.atMs, effectiveMs: now() })
        progress(
          `${shape} n=${n}: ${event.kind} at ${(event.atMs / 1000).toFixed(1)} s (took effect at ${(now() / 1000).toFixed(1)} s)`,
        )
      }
    })()

    let sampling = true
    const sampler = (async () => {
      let tick = 0
      while (sampling) {
        const at = now()
        const digests: Array<string | undefined> = new Array(n).fill(undefined)
        if (plan.peersAreDaemons) {
          await Promise.all(
            Array.from({ length: n }, async (_, peer) => {
              if (!daemons.get(peer)!.running) return
              try {
                const answer = await clients[peer]!.send('GET', `/v1/ns/${LAB_NAMESPACE}`, undefined, 1000)
                if (answer.status === 200)
                  digests[peer] = (JSON.parse(answer.body) as { digest?: string }).digest
              } catch {
                // down or slow: no digest this time
              }
            }),
          )
        } else if (daemons.get(plan.hub!)!.running) {
          try {
            const answer = await clients[0]!.send('GET', `/v1/ns/${LAB_NAMESPACE}`, undefined, 1000)
            const digest =
              answer.status === 200 ? (JSON.parse(answer.body) as { digest?: string }).digest : undefined
            for (let peer = 0; peer < n; peer++) if (peerServing(peer)) digests[peer] = digest
          } catch {
            // the hub is down
          }
        }
        samples.push({ tMs: at, digests })
        if (tick % 8 === 0 && plan.peersAreDaemons) await sampleMessages()
        if (tick % 4 === 0) {
          sampleProcesses()
          const acked = writes.filter((w) => w.ackMs !== undefined)
          const everywhere = acked.filter((w) =>
            liveness.every((_, p) => !isLive(liveness, p, now()) || !Number.isNaN(log.seen[p]![w.id]!)),
          ).length
          const up = Array.from({ length: n }, (_, p) => p).filter((p) => isLive(liveness, p, now())).length
          progress(
            `${shape} n=${n}  ${(now() / 1000).toFixed(1)}/${(durationMs / 1000).toFixed(0)} s  writes ${writes.length}/${writeCount}  acked ${acked.length}  visible everywhere ${acked.length === 0 ? 100 : Math.round((everywhere / acked.length) * 100)}%  peers up ${up}/${n}`,
          )
        }
        tick++
        await sleep(SAMPLE_MS - (now() - at))
      }
    })()

    for (const op of ops) {
      await sleep(op.atMs - now())
      issue(op)
    }
    await sleep(durationMs - now())
    await timelineDone
    await Promise.all([...pending])
    const writeEnd = now()

    // ---- settle: until every acknowledged write is visible on every live peer, or the bound ----
    const writerPeer = (writer: number) => writer
    const settleDeadline = writeEnd + scenario.settleMs
    while (now() < settleDeadline) {
      if (lostWrites(writes, log.seen, liveness, now(), writerPeer).length === 0) break
      await sleep(100)
    }
    // A few digest samples after the last write arrived, so "digests equal" is seen once all is quiet.
    const quietDeadline = Math.min(settleDeadline, now() + 3000)
    const equalSamples = () =>
      samples.filter((sample) => sample.tMs > writeEnd && peersEqualFraction(sample.digests) === 1).length
    while (now() < quietDeadline && equalSamples() < 2) await sleep(SAMPLE_MS)
    sampling = false
    await sampler
    sampleProcesses()
    if (plan.peersAreDaemons) await sampleMessages()
    const endMs = now()

    // ---- lost is about the data: a write a peer's watch never showed is looked up in its store ----
    const held = log.seen.map((times) => Float64Array.from(times))
    const suspects = lostWrites(writes, log.seen, liveness, endMs, writerPeer)
    const peersToRead = Array.from({ length: n }, (_, peer) => peer).filter(
      (peer) =>
        isLive(liveness, peer, endMs) && suspects.some((write) => Number.isNaN(held[peer]![write.id]!)),
    )
    for (const peer of peersToRead) {
      const stored = await storedSequences(clients[peer]!)
      for (const write of suspects) {
        if (Number.isNaN(held[peer]![write.id]!) && (stored.get(write.key) ?? 0) >= write.seq)
          held[peer]![write.id] = endMs
      }
    }
    if (peersToRead.length > 0) {
      progress(
        `${shape} n=${n}: the watches of ${peersToRead.length} peer(s) missed writes; their stores were read to tell lost from unseen`,
      )
    }

    // ---- figures -------------------------------------------------------------------------------
    const acked = writes.filter((write) => write.ackMs !== undefined)
    const latencies: number[] = []
    let notSeenWithinBound = 0
    for (const write of acked) {
      const latency = writeLatency(write, log.seen, liveness, endMs)
      if (latency !== undefined) latencies.push(latency)
      if (latency === undefined || latency > scenario.visibleBoundMs) notSeenWithinBound++
    }
    const peers: PeerFigures[] = []
    const pidsOf = (daemon: LabDaemon) => daemon.pids
    const cpuOf = (daemon: LabDaemon) =>
      pidsOf(daemon).reduce((total, pid) => total + (cpuByPid.get(pid) ?? 0) - (cpuBaseline.get(pid) ?? 0), 0)
    const rssOf = (daemon: LabDaemon) => Math.max(0, ...pidsOf(daemon).map((pid) => rssByPid.get(pid) ?? 0))
    if (plan.peersAreDaemons) {
      for (const index of plan.daemons) {
        const daemon = daemons.get(index)!
        const bytes = ledger.bytesOf(pidsOf(daemon), new Set([daemon.spec.apiPort]))
        peers.push({
          index: index === plan.hub ? -1 : index,
          role: index === plan.hub ? 'hub' : shape === 'hub' ? 'client' : 'peer',
          bytesSent: bytes.sent,
          bytesReceived: bytes.received,
          messagesSent: daemon.pids.reduce(
            (total, pid) => total + (messagesByPid.get(pid)?.published ?? 0),
            0,
          ),
          messagesReceived: daemon.pids.reduce(
            (total, pid) => total + (messagesByPid.get(pid)?.received ?? 0),
            0,
          ),
          cpuMs: Math.round(cpuOf(daemon)),
          rssBytes: rssOf(daemon),
          bytesSource: 'tcp-socket',
        })
      }
    } else {
      let hubSent = 0
      let hubReceived = 0
      for (let peer = 0; peer < n; peer++) {
        const bytes = clients[peer]!.bytes()
        hubSent += bytes.received
        hubReceived += bytes.sent
        peers.push({
          index: peer,
          role: 'client',
          bytesSent: bytes.sent,
          bytesReceived: bytes.received,
          messagesSent: clients[peer]!.requests,
          messagesReceived: clients[peer]!.events,
          cpuMs: 0,
          rssBytes: 0,
          bytesSource: 'http-socket',
        })
      }
      const hub = daemons.get(plan.hub!)!
      peers.unshift({
        index: -1,
        role: 'hub',
        bytesSent: hubSent,
        bytesReceived: hubReceived,
        cpuMs: Math.round(cpuOf(hub)),
        rssBytes: rssOf(hub),
        bytesSource: 'http-socket',
      })
    }

    const effective = happened.map((event) => ({ kind: event.kind, atMs: event.effectiveMs }))
    const convergence: RunResult['convergence'] = []
    for (const event of happened) {
      const counts =
        event.kind === 'heal' ||
        event.kind === 'join' ||
        event.kind === 'late-join' ||
        (event.kind === 'restart-hub' && plan.hub !== undefined)
      if (!counts) continue
      convergence.push({
        event: event.kind,
        atMs: Math.round(event.atMs),
        effectiveAtMs: Math.round(event.effectiveMs),
        convergedAfterMs: caughtUpAfter(event.effectiveMs, writes, log.seen, liveness, endMs, writerPeer),
        digestsEqualAfterMs: digestsEqualAfter(samples, event.effectiveMs),
      })
    }

    return {
      shape,
      n,
      mode: 'processes',
      transport: 'tcp',
      emulation: network?.emulation ?? 'none',
      latency: summarizeLatency(latencies, acked.length),
      writes: {
        attempted: writes.length,
        acknowledged: acked.length,
        refused: writes.filter((write) => write.ackMs === undefined).length,
        lost: lostWrites(writes, held, liveness, endMs, writerPeer).length,
        notSeenWithinBound,
      },
      reads: {
        attempted: reads.length,
        served: reads.filter((read) => read.served).length,
        failed: reads.filter((read) => !read.served).length,
      },
      peers,
      convergence,
      availability: availability(faultWindows(effective, endMs), writes, reads, writerPeer),
      timeline: buildTimeline(writes, log.seen, liveness, samples, endMs, SAMPLE_MS),
      durationMs: Math.round(endMs),
      crashes,
      unseenByPeer: log.seen.map((times) => acked.filter((write) => Number.isNaN(times[write.id]!)).length),
      ...(eventFailures.length > 0 ? { failedEvents: eventFailures } : {}),
    }
  } finally {
    await cleanup()
  }
}

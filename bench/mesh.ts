/**
 * Mesh benchmarks: convergence latency and sustainable write rate with peers as OS processes (P2P
 * mesh, and the hub shape as the client-server baseline in the same run), catch-up efficiency of
 * anti-entropy, and gossip amplification.
 */
import { encodeDelta } from '../src/codec/index.ts'
import { CrdtDocument } from '../src/crdt/index.ts'
import { decodeSyncFrame, encodeSyncFrame } from '../src/sync/frames.ts'
import { SyncSession } from '../src/sync/session.ts'
import { formatNumber, percentile, printTable, type Row } from './harness.ts'
import { PeerProcess } from './processes.ts'

const te = new TextEncoder()

interface Cluster {
  peers: PeerProcess[]
  writer: PeerProcess
  receivers: PeerProcess[]
  stop(): Promise<void>
}

export async function startCluster(count: number, shape: 'mesh' | 'hub'): Promise<Cluster> {
  const first = await PeerProcess.start([], { HEARSAY_ROLE: shape === 'hub' ? 'hub' : 'mesh' })
  const peers = [first]
  const rest = await Promise.all(
    Array.from({ length: count - 1 }, () =>
      PeerProcess.start([first.address], { HEARSAY_ROLE: shape === 'hub' ? 'client' : 'mesh' }),
    ),
  )
  peers.push(...rest)
  // The writer is never the hub: in the hub shape every write goes client → hub → clients.
  const writer = peers[1]
  const receivers = peers.filter((p) => p !== writer)
  // Wait until everyone sees the others (peer exchange in the mesh shape) and gossip is wired.
  const deadline = Date.now() + 30_000
  for (;;) {
    const probe = `probe/${Date.now()}`
    await writer.request({ cmd: 'put', key: probe, value: 'x' })
    const seen = await Promise.all(receivers.map((p) => waitForValue(p, probe, 3000)))
    if (seen.every(Boolean) || Date.now() > deadline) break
  }
  return {
    peers,
    writer,
    receivers,
    stop: async () => void (await Promise.allSettled(peers.map((p) => p.stop()))),
  }
}

async function waitForValue(peer: PeerProcess, key: string, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    if ((await peer.request({ cmd: 'get', key })).value !== null) return true
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
  return false
}

interface LatencyResult {
  p50: number
  p99: number
  max: number
  delivered: number
  expected: number
  /** Per receiver p99 lag (ms). */
  worstReceiverP99: number
}

/** Writes at `rate` for `durationMs` and measures ack → visible on the last receiver. */
export async function measureLatency(
  cluster: Cluster,
  rate: number,
  durationMs: number,
  prefix: string,
): Promise<LatencyResult> {
  const acked = new Map<string, number>()
  const seen = new Map<string, number[]>()
  for (const receiver of cluster.receivers) await receiver.request({ cmd: 'watch', prefix })
  const collect = async () => {
    for (const peer of cluster.peers) {
      const reply = await peer.request({ cmd: 'observations' })
      for (const [key, at] of reply.acked as Array<[string, number]>) acked.set(key, at)
      if (peer === cluster.writer) continue
      for (const [key, at] of reply.seen as Array<[string, number]>) {
        const list = seen.get(key) ?? []
        list.push(at)
        seen.set(key, list)
      }
    }
  }
  await cluster.writer.request({ cmd: 'write-rate', prefix, rate, durationMs }, durationMs + 120_000)
  const expected = Math.floor((rate * durationMs) / 1000)
  // Let stragglers arrive (bounded).
  const deadline = Date.now() + 15_000
  for (;;) {
    await collect()
    let complete = 0
    for (const list of seen.values()) if (list.length === cluster.receivers.length) complete++
    if (complete >= expected || Date.now() > deadline) break
    await new Promise((resolve) => setTimeout(resolve, 200))
  }
  const lags: number[] = []
  let delivered = 0
  for (const [key, at] of acked) {
    const list = seen.get(key)
    if (list === undefined || list.length < cluster.receivers.length) continue
    delivered++
    lags.push(Math.max(0, Math.max(...list) - at))
  }
  lags.sort((a, b) => a - b)
  // Per-receiver lag is approximated by the distribution of all sightings.
  const all: number[] = []
  for (const [key, list] of seen) {
    const at = acked.get(key)
    if (at !== undefined) for (const t of list) all.push(Math.max(0, t - at))
  }
  all.sort((a, b) => a - b)
  return {
    p50: percentile(lags, 50),
    p99: percentile(lags, 99),
    max: lags[lags.length - 1] ?? Number.NaN,
    delivered,
    expected,
    worstReceiverP99: percentile(all, 99),
  }
}

async function latencyRows(): Promise<Row[]> {
  const rows: Row[] = []
  const results: Record<string, LatencyResult> = {}
  for (const shape of ['mesh', 'hub'] as const) {
    const cluster = await startCluster(8, shape)
    try {
      results[shape] = await measureLatency(cluster, 200, 20_000, `lat-${shape}/`)
    } finally {
      await cluster.stop()
    }
  }
  const mesh = results.mesh
  const hub = results.hub
  rows.push({
    name: '8 processes, 200 writes/s for 20 s: p50 ack → visible on the last peer (ms)',
    hearsay: mesh.p50.toFixed(1),
    baseline: hub.p50.toFixed(1),
    ratio: (mesh.p50 / hub.p50).toFixed(2),
    goal: '',
    met: undefined,
  })
  rows.push({
    name: 'same, p99 (ms)',
    hearsay: mesh.p99.toFixed(1),
    baseline: hub.p99.toFixed(1),
    ratio: (mesh.p99 / hub.p99).toFixed(2),
    goal: 'mesh p99 ≤ 50 ms',
    met: mesh.p99 <= 50,
  })
  rows.push({
    name: 'writes delivered to every peer',
    hearsay: `${mesh.delivered}/${mesh.expected}`,
    baseline: `${hub.delivered}/${hub.expected}`,
    ratio: '',
    goal: 'all',
    met: mesh.delivered === mesh.expected,
  })
  return rows
}

async function throughputRows(): Promise<Row[]> {
  const cluster = await startCluster(8, 'mesh')
  let best = 0
  const tried: string[] = []
  try {
    for (const rate of [1000, 2500, 5000, 7500, 10_000, 15_000]) {
      const result = await measureLatency(cluster, rate, 4000, `tp${rate}/`)
      const ok = result.delivered === result.expected && result.worstReceiverP99 < 1000
      tried.push(`${rate}/s: p99 ${result.worstReceiverP99.toFixed(0)} ms${ok ? '' : ' ✗'}`)
      if (!ok) break
      best = rate
    }
  } finally {
    await cluster.stop()
  }
  console.log(`\nthroughput ramp (8 processes, mesh): ${tried.join('; ')}`)
  return [
    {
      name: 'highest write rate with every peer lag p99 < 1 s (writes/s)',
      hearsay: formatNumber(best),
      baseline: '',
      ratio: '',
      goal: '≥ 5,000/s',
      met: best >= 5000,
    },
  ]
}

/** Drives a session in memory and counts the frame bytes and round trips. */
function catchUp(
  behind: CrdtDocument,
  ahead: CrdtDocument,
): { bytes: number; roundTrips: number; received: number } {
  const initiator = new SyncSession({ role: 'initiator', namespace: 'ns', state: behind })
  const responder = new SyncSession({ role: 'responder', namespace: 'ns', state: ahead })
  let bytes = 0
  let roundTrips = 0
  let toResponder = initiator.open().map(encodeSyncFrame)
  while (toResponder.length > 0) {
    roundTrips++
    const toInitiator: Uint8Array[] = []
    for (const frame of toResponder) {
      bytes += frame.length + 4
      const step = responder.receive(decodeSyncFrame(frame))
      if (step.merge) ahead.merge(step.merge.delta, step.merge.options)
      toInitiator.push(...step.send.map(encodeSyncFrame))
    }
    toResponder = []
    for (const frame of toInitiator) {
      bytes += frame.length + 4
      const step = initiator.receive(decodeSyncFrame(frame))
      if (step.merge) behind.merge(step.merge.delta, step.merge.options)
      toResponder.push(...step.send.map(encodeSyncFrame))
    }
  }
  return { bytes, roundTrips, received: initiator.stats.entriesReceived }
}

function catchUpRows(): Row[] {
  const M = 100_000
  const K = 1_000
  const writerId = '12D3KooWBenchmarkWriterPeerIdOfTypicalLengthAbcdef~abcdefgh'
  const ahead = new CrdtDocument({ replica: writerId })
  for (let i = 0; i < M - K; i++) ahead.put(`key/${i}`, te.encode(`{"v":${i}}`), 'application/json')
  const behind = new CrdtDocument({ replica: '12D3KooWBenchmarkReaderPeerIdOfTypicalLengthAbcdef~zyxwvuts' })
  behind.merge(ahead.snapshot())
  let missingBytes = 0
  for (let i = M - K; i < M; i++) {
    missingBytes += encodeDelta(
      ahead.put(`key/${i}`, te.encode(`{"v":${i}}`), 'application/json').delta,
    ).length
  }
  const result = catchUp(behind, ahead)
  if (behind.digest() !== ahead.digest() || result.received !== K)
    throw new Error('catch-up did not converge')
  const idle = catchUp(behind, ahead)
  return [
    {
      name: `catch-up of K=${formatNumber(K)} missing of M=${formatNumber(M)}: wire bytes / encoded missing deltas`,
      hearsay: `${formatNumber(result.bytes)} B`,
      baseline: `${formatNumber(missingBytes)} B`,
      ratio: (result.bytes / missingBytes).toFixed(2),
      goal: '≤ 1.5',
      met: result.bytes / missingBytes <= 1.5,
    },
    {
      name: 'same, round trips',
      hearsay: String(result.roundTrips),
      baseline: '',
      ratio: '',
      goal: '≤ 3',
      met: result.roundTrips <= 3,
    },
    {
      name: 'nothing missing: bytes exchanged for one namespace',
      hearsay: formatNumber(idle.bytes),
      baseline: '',
      ratio: '',
      goal: '≤ 1,024',
      met: idle.bytes <= 1024,
    },
  ]
}

async function amplificationRows(): Promise<Row[]> {
  const rows: Row[] = []
  const writes = 2000
  // Encoded size of one such write as a single delta, the unit the ratio is measured in.
  const sample = new CrdtDocument({ replica: '12D3KooWBenchmarkWriterPeerIdOfTypicalLengthAbcdef~abcdefgh' })
  const deltaBytes = encodeDelta(
    sample.put('amp/1000', te.encode('{"i":1000}'), 'application/json').delta,
  ).length
  for (const count of [8, 16]) {
    const cluster = await startCluster(count, 'mesh')
    try {
      const before = await Promise.all(cluster.receivers.map((p) => p.request({ cmd: 'io' })))
      const result = await measureLatency(cluster, 200, (writes / 200) * 1000, `amp${count}/`)
      const after = await Promise.all(cluster.receivers.map((p) => p.request({ cmd: 'io' })))
      const perPeer =
        after.reduce((sum, a, i) => sum + (Number(a.rchar) - Number(before[i].rchar)), 0) /
        cluster.receivers.length
      const perWrite = perPeer / result.expected
      rows.push({
        name: `${count} peers: bytes received per peer per write (all traffic) / encoded delta`,
        hearsay: `${perWrite.toFixed(0)} B`,
        baseline: `${deltaBytes} B`,
        ratio: (perWrite / deltaBytes).toFixed(2),
        goal: '',
        met: undefined,
      })
    } finally {
      await cluster.stop()
    }
  }
  return rows
}

export async function main(): Promise<void> {
  console.log(`\n## Mesh (Node ${process.version}, ${new Date().toISOString()})`)
  printTable('Anti-entropy catch-up (in memory, frames as sent on the wire)', 'missing deltas', catchUpRows())
  printTable(
    'Convergence latency, P2P mesh vs hub (client-server) in the same run',
    'hub',
    await latencyRows(),
  )
  printTable('Throughput', '', await throughputRows())
  printTable('Gossip amplification', 'one delta', await amplificationRows())
}

import type { LatencySummary, RunResult, TimelineEvent, TimelineSample } from './types.ts'

/**
 * The lab's figures from what a run recorded: pure functions of the writes, the first time each
 * peer's watch showed each write, when each peer was up, and the digest samples. No clock, no I/O:
 * every runner (processes or in-process) records the same things and gets the same figures.
 */

export interface WriteRecord {
  id: number
  writer: number
  key: string
  seq: number
  /** When the write call was made, ms since the start of the write phase. */
  issuedMs: number
  /** When the acknowledgment came back; undefined if it never did. */
  ackMs?: number
  /** Refused: an error answer, a connection refused or a timeout. */
  refused: boolean
}

export interface ReadRecord {
  peer: number
  atMs: number
  served: boolean
}

/** Per peer, the intervals [from, to) it was up; `to` is Infinity while it still is. */
export type Liveness = Array<Array<[number, number]>>

/** `seen[peer][writeId]`: first time the peer's watch showed the write (or a later write that supersedes it), else NaN. */
export type SeenTimes = Float64Array[]

export interface DigestSample {
  tMs: number
  /** Per peer: its namespace digest, or undefined when it is down or did not answer. */
  digests: Array<string | undefined>
}

export function isLive(liveness: Liveness, peer: number, t: number): boolean {
  return (liveness[peer] ?? []).some(([from, to]) => from <= t && t < to)
}

/** Was the peer up over the whole of [from, to]? */
function liveThroughout(liveness: Liveness, peer: number, from: number, to: number): boolean {
  return (liveness[peer] ?? []).some(([start, end]) => start <= from && to < end)
}

/** Nearest-rank percentile of an ascending list; NaN for an empty one. */
export function percentile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return Number.NaN
  const rank = Math.ceil((q / 100) * sorted.length)
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1]!
}

/**
 * Latency figures over the visible writes, and the CDF against all `total` writes (so a write never
 * seen keeps the curve below 1). At most `maxPoints` points, always the last one.
 */
export function summarizeLatency(
  latencies: readonly number[],
  total: number,
  maxPoints = 200,
): LatencySummary {
  const sorted = [...latencies].sort((a, b) => a - b)
  const denominator = Math.max(total, sorted.length)
  const cdf: [number, number][] = []
  if (sorted.length > 0) {
    const step = Math.max(1, Math.ceil(sorted.length / maxPoints))
    for (let i = step - 1; i < sorted.length; i += step) cdf.push([round(sorted[i]!), (i + 1) / denominator])
    const last = sorted.length - 1
    if (cdf.length === 0 || cdf[cdf.length - 1]![1] !== (last + 1) / denominator) {
      if (cdf.length >= maxPoints) cdf.pop()
      cdf.push([round(sorted[last]!), (last + 1) / denominator])
    }
  }
  return {
    count: sorted.length,
    p50: round(percentile(sorted, 50)),
    p90: round(percentile(sorted, 90)),
    p99: round(percentile(sorted, 99)),
    max: round(sorted.length === 0 ? Number.NaN : sorted[sorted.length - 1]!),
    cdf,
  }
}

function round(ms: number): number {
  return Number.isNaN(ms) ? ms : Math.round(ms * 100) / 100
}

/**
 * Time to visible of one write: the max over the peers that were up when it was made of (first time
 * the peer showed it − write call). A peer that went down before showing it is left out (it had no
 * chance); a peer up all along that never showed it makes the write not visible (undefined).
 */
export function writeLatency(
  write: WriteRecord,
  seen: SeenTimes,
  liveness: Liveness,
  endMs: number,
): number | undefined {
  let latest = 0
  for (let peer = 0; peer < seen.length; peer++) {
    if (!isLive(liveness, peer, write.issuedMs)) continue
    const at = seen[peer]![write.id]!
    if (Number.isNaN(at)) {
      if (liveThroughout(liveness, peer, write.issuedMs, endMs)) return undefined
      continue
    }
    latest = Math.max(latest, at - write.issuedMs)
  }
  return latest
}

/** Acknowledged writes that some peer up at the end never showed (the writer up at the end: else the write waits on it). */
export function lostWrites(
  writes: readonly WriteRecord[],
  seen: SeenTimes,
  liveness: Liveness,
  endMs: number,
  writerPeer: (writer: number) => number,
): WriteRecord[] {
  return writes.filter((write) => {
    if (write.ackMs === undefined) return false
    if (!isLive(liveness, writerPeer(write.writer), endMs)) return false
    for (let peer = 0; peer < seen.length; peer++) {
      if (isLive(liveness, peer, endMs) && Number.isNaN(seen[peer]![write.id]!)) return true
    }
    return false
  })
}

/** Fraction of live peers whose digest is the most common one; NaN when nobody answered. */
export function peersEqualFraction(digests: ReadonlyArray<string | undefined>): number {
  const counts = new Map<string, number>()
  let answered = 0
  for (const digest of digests) {
    if (digest === undefined) continue
    answered++
    counts.set(digest, (counts.get(digest) ?? 0) + 1)
  }
  if (answered === 0) return Number.NaN
  return Math.max(...counts.values()) / answered
}

/** The timeline every `stepMs`: writes issued and accepted so far, and how many of them every live peer shows. */
export function buildTimeline(
  writes: readonly WriteRecord[],
  seen: SeenTimes,
  liveness: Liveness,
  samples: readonly DigestSample[],
  endMs: number,
  stepMs = 250,
): TimelineSample[] {
  const timeline: TimelineSample[] = []
  let sampleIndex = 0
  for (let t = 0; t <= endMs + 1e-9; t += stepMs) {
    let issued = 0
    let accepted = 0
    let visible = 0
    const live: number[] = []
    for (let peer = 0; peer < seen.length; peer++) if (isLive(liveness, peer, t)) live.push(peer)
    for (const write of writes) {
      if (write.issuedMs > t) continue
      issued++
      if (write.ackMs === undefined || write.ackMs > t) continue
      accepted++
      if (live.every((peer) => seen[peer]![write.id]! <= t)) visible++
    }
    while (sampleIndex + 1 < samples.length && samples[sampleIndex + 1]!.tMs <= t) sampleIndex++
    const sample = samples[sampleIndex]
    const equal =
      sample !== undefined && sample.tMs <= t + stepMs ? peersEqualFraction(sample.digests) : Number.NaN
    timeline.push({
      tMs: Math.round(t),
      writesIssued: issued,
      writesAccepted: accepted,
      visibleFraction: accepted === 0 ? 1 : visible / accepted,
      peersEqualFraction: Number.isNaN(equal) ? 0 : equal,
    })
  }
  return timeline
}

/**
 * How long after `fromMs` every live peer showed every write acknowledged before `fromMs` (writes of a
 * writer down at the end excepted: nobody can have them); null if not by `endMs`.
 */
export function caughtUpAfter(
  fromMs: number,
  writes: readonly WriteRecord[],
  seen: SeenTimes,
  liveness: Liveness,
  endMs: number,
  writerPeer: (writer: number) => number,
): number | null {
  const relevant = writes.filter(
    (write) =>
      write.ackMs !== undefined && write.ackMs <= fromMs && isLive(liveness, writerPeer(write.writer), endMs),
  )
  const caughtUp = seen.map((times) => {
    let latest = fromMs
    for (const write of relevant) {
      const at = times[write.id]!
      latest = Number.isNaN(at) ? Number.POSITIVE_INFINITY : Math.max(latest, at)
      if (latest === Number.POSITIVE_INFINITY) break
    }
    return latest
  })
  const candidates = new Set<number>([fromMs])
  for (const at of caughtUp) if (Number.isFinite(at) && at >= fromMs) candidates.add(at)
  for (const intervals of liveness) {
    for (const [from, to] of intervals) {
      if (from >= fromMs) candidates.add(from)
      if (Number.isFinite(to) && to >= fromMs) candidates.add(to)
    }
  }
  for (const t of [...candidates].sort((a, b) => a - b)) {
    if (t > endMs) break
    let done = true
    for (let peer = 0; peer < seen.length && done; peer++) {
      if (isLive(liveness, peer, t) && caughtUp[peer]! > t) done = false
    }
    if (done) return Math.round((t - fromMs) * 100) / 100
  }
  return null
}

/** The first digest sample at or after `fromMs` where every peer that answered has one digest; null if none. */
export function digestsEqualAfter(samples: readonly DigestSample[], fromMs: number): number | null {
  for (const sample of samples) {
    if (sample.tMs < fromMs) continue
    if (peersEqualFraction(sample.digests) === 1) return Math.round(sample.tMs - fromMs)
  }
  return null
}

/** A fault that holds for a while: the hub down, or a partition. */
export interface FaultWindow {
  event: TimelineEvent['kind']
  fromMs: number
  toMs: number
}

/** Fault windows from the events as they happened (`atMs` = when each took effect). */
export function faultWindows(
  events: ReadonlyArray<{ kind: TimelineEvent['kind']; atMs: number }>,
  endMs: number,
): FaultWindow[] {
  const windows: FaultWindow[] = []
  let open: FaultWindow | undefined
  let openPartition: FaultWindow | undefined
  for (const event of events) {
    if (event.kind === 'kill-hub') open = { event: 'kill-hub', fromMs: event.atMs, toMs: endMs }
    if (event.kind === 'restart-hub' && open !== undefined) {
      windows.push({ ...open, toMs: event.atMs })
      open = undefined
    }
    if (event.kind === 'partition') openPartition = { event: 'partition', fromMs: event.atMs, toMs: endMs }
    if (event.kind === 'heal' && openPartition !== undefined) {
      windows.push({ ...openPartition, toMs: event.atMs })
      openPartition = undefined
    }
  }
  if (open !== undefined) windows.push(open)
  if (openPartition !== undefined) windows.push(openPartition)
  return windows.sort((a, b) => a.fromMs - b.fromMs)
}

/** What peers could still do while each fault held, in total and per peer. */
export function availability(
  windows: readonly FaultWindow[],
  writes: readonly WriteRecord[],
  reads: readonly ReadRecord[],
  writerPeer: (writer: number) => number,
): RunResult['availability'] {
  return windows.map((window) => {
    const perPeer = new Map<
      number,
      {
        index: number
        writesAccepted: number
        writesRefused: number
        readsServed: number
        readsFailed: number
      }
    >()
    const row = (index: number) => {
      let entry = perPeer.get(index)
      if (entry === undefined) {
        entry = { index, writesAccepted: 0, writesRefused: 0, readsServed: 0, readsFailed: 0 }
        perPeer.set(index, entry)
      }
      return entry
    }
    for (const write of writes) {
      if (write.issuedMs < window.fromMs || write.issuedMs >= window.toMs) continue
      const entry = row(writerPeer(write.writer))
      if (write.ackMs !== undefined) entry.writesAccepted++
      else entry.writesRefused++
    }
    for (const read of reads) {
      if (read.atMs < window.fromMs || read.atMs >= window.toMs) continue
      const entry = row(read.peer)
      if (read.served) entry.readsServed++
      else entry.readsFailed++
    }
    const rows = [...perPeer.values()].sort((a, b) => a.index - b.index)
    const sum = (field: 'writesAccepted' | 'writesRefused' | 'readsServed' | 'readsFailed') =>
      rows.reduce((total, entry) => total + entry[field], 0)
    return {
      event: window.event,
      fromMs: Math.round(window.fromMs),
      toMs: Math.round(window.toMs),
      writesAccepted: sum('writesAccepted'),
      writesRefused: sum('writesRefused'),
      readsServed: sum('readsServed'),
      readsFailed: sum('readsFailed'),
      perPeer: rows,
    }
  })
}

/** Marks, on one peer, every write of `writer` to `key` up to `seq` as seen at `t` (a later write supersedes the earlier). */
export class VisibilityLog {
  readonly seen: SeenTimes
  private readonly byKey = new Map<string, WriteRecord[]>()
  private readonly highest: Array<Map<string, number>>

  constructor(peers: number, capacity: number) {
    this.seen = Array.from({ length: peers }, () => new Float64Array(capacity).fill(Number.NaN))
    this.highest = Array.from({ length: peers }, () => new Map())
  }

  /** Registers a write before it is issued (so a fast watch event finds it). */
  add(write: WriteRecord): void {
    const list = this.byKey.get(write.key)
    if (list === undefined) this.byKey.set(write.key, [write])
    else list.push(write)
  }

  observe(peer: number, key: string, seq: number, t: number): void {
    const highest = this.highest[peer]!
    const before = highest.get(key) ?? 0
    if (seq <= before) return
    highest.set(key, seq)
    const times = this.seen[peer]!
    for (const write of this.byKey.get(key) ?? []) {
      if (write.seq > before && write.seq <= seq && Number.isNaN(times[write.id]!)) times[write.id] = t
    }
  }
}

/** Gossip batches a daemon published and received, from its Prometheus text (`hearsay_gossip_messages_total`). */
export function gossipMessages(metricsText: string): { published: number; received: number } {
  const read = (direction: string) => {
    const match = new RegExp(
      `^hearsay_gossip_messages_total\\{direction="${direction}"\\} (\\S+)$`,
      'm',
    ).exec(metricsText)
    return match === null ? 0 : Number(match[1])
  }
  return { published: read('published'), received: read('received') }
}

import type { Random } from './random.ts'

/**
 * The fault schedule of a run: a pure function of the seed, the peer count and the duration, so a
 * failing run is replayed with the same `--seed`. Times are milliseconds from the start of the faults.
 */

export type PartitionMode = 'drop' | 'reject'

export type FaultEvent =
  | { at: number; kind: 'partition'; groups: [number[], number[]]; mode: PartitionMode; durationMs: number }
  | { at: number; kind: 'loss'; peer: number; probability: number; durationMs: number }
  | { at: number; kind: 'rate'; peer: number; kbit: number; durationMs: number }
  | { at: number; kind: 'kill'; peer: number; signal: 'SIGKILL' | 'SIGTERM'; downMs: number }

export interface ScheduleOptions {
  peers: number
  durationMs: number
  /** At most this many daemons down at once (default: a minority, at least 1). */
  maxDown?: number
}

/**
 * Events every 1.5-4 s. At most one partition at a time; loss and rate limits at most one per peer at a
 * time; kills leave a majority up. Every fault ends (healed or restarted) before the duration ends.
 */
export function faultSchedule(random: Random, options: ScheduleOptions): FaultEvent[] {
  const { peers, durationMs } = options
  const maxDown = options.maxDown ?? Math.max(1, Math.floor((peers - 1) / 2))
  const events: FaultEvent[] = []
  let partitionFree = 0
  const linkFree = new Array<number>(peers).fill(0)
  const downUntil = new Array<number>(peers).fill(0)
  const end = durationMs - 1_000
  for (let at = 2_000; at < end - 2_000; at += random.int(1_500, 4_000)) {
    const roll = random.next()
    const longest = end - at
    if (roll < 0.3 && at >= partitionFree && peers >= 2) {
      const shuffled = shuffle(random, [...Array(peers).keys()])
      const cut = random.int(1, peers - 1)
      const durationMs = Math.min(longest, random.int(3_000, 12_000))
      events.push({
        at,
        kind: 'partition',
        groups: [shuffled.slice(0, cut).sort(byNumber), shuffled.slice(cut).sort(byNumber)],
        mode: random.chance(0.5) ? 'drop' : 'reject',
        durationMs,
      })
      partitionFree = at + durationMs
    } else if (roll < 0.55) {
      const peer = random.int(0, peers - 1)
      if (at < linkFree[peer]!) continue
      const durationMs = Math.min(longest, random.int(3_000, 10_000))
      events.push({ at, kind: 'loss', peer, probability: random.int(5, 30) / 100, durationMs })
      linkFree[peer] = at + durationMs
    } else if (roll < 0.7) {
      const peer = random.int(0, peers - 1)
      if (at < linkFree[peer]!) continue
      const durationMs = Math.min(longest, random.int(3_000, 10_000))
      events.push({ at, kind: 'rate', peer, kbit: random.pick([64, 256, 1024]), durationMs })
      linkFree[peer] = at + durationMs
    } else {
      const peer = random.int(0, peers - 1)
      const down = downUntil.filter((until) => until > at).length
      if (downUntil[peer]! > at || down >= maxDown) continue
      const downMs = Math.min(longest, random.int(1_000, 6_000))
      events.push({ at, kind: 'kill', peer, signal: random.chance(0.5) ? 'SIGKILL' : 'SIGTERM', downMs })
      // The restart itself takes a few seconds more: keep the peer busy past its restart.
      downUntil[peer] = at + downMs + 4_000
    }
  }
  return events
}

function shuffle<T>(random: Random, items: T[]): T[] {
  for (let i = items.length - 1; i > 0; i--) {
    const j = random.int(0, i)
    ;[items[i], items[j]] = [items[j]!, items[i]!]
  }
  return items
}

const byNumber = (a: number, b: number) => a - b

export function describeEvent(event: FaultEvent): string {
  switch (event.kind) {
    case 'partition':
      return `partition ${event.mode} {${event.groups[0].join(',')}} | {${event.groups[1].join(',')}} for ${event.durationMs} ms`
    case 'loss':
      return `loss ${Math.round(event.probability * 100)}% at peer ${event.peer} for ${event.durationMs} ms`
    case 'rate':
      return `rate ${event.kbit} kbit/s at peer ${event.peer} for ${event.durationMs} ms`
    case 'kill':
      return `${event.signal} peer ${event.peer}, restart after ${event.downMs} ms`
  }
}

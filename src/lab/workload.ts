import { seededRandom } from '../seeded-random.ts'
import type { Workload } from './types.ts'

export { seededRandom }

/**
 * The operations of a run, planned in advance from the workload and the seed, so two runs of one
 * scenario issue the same writes at the same offsets whatever the shape.
 *
 * Each writer writes its own keys (`w<writer>/k<i>`): two writers never write one key, so the watch
 * stream of a peer shows every write (a concurrent write to a shared key would be a sibling the
 * watch's resolved value hides). Every value carries its writer and sequence number; a later write of
 * the same writer to the same key also shows that the earlier one arrived (it supersedes it).
 */

export interface PlannedOp {
  /** Offset from the start of the write phase, ms. */
  atMs: number
  /** Peer (or client) index that issues it. */
  writer: number
  kind: 'write' | 'read'
  key: string
  /** Per-writer sequence number of a write (1, 2, …); 0 for reads. */
  seq: number
}

export function keyOf(writer: number, index: number): string {
  return `w${writer}/k${index}`
}

/** Parses `w<writer>/k<i>`; undefined for any other key. */
export function parseKey(key: string): { writer: number; index: number } | undefined {
  const match = /^w(\d+)\/k(\d+)$/.exec(key)
  return match === null ? undefined : { writer: Number(match[1]), index: Number(match[2]) }
}

/** The operations at `ratePerSecond` over `durationMs`, round robin over the writers. */
export function planOperations(workload: Workload, seed: number): PlannedOp[] {
  const random = seededRandom(seed)
  const count = Math.floor((workload.durationMs / 1000) * workload.ratePerSecond)
  const interval = workload.ratePerSecond > 0 ? 1000 / workload.ratePerSecond : 0
  const writesBy = new Array<number>(workload.writers).fill(0)
  const ops: PlannedOp[] = []
  for (let i = 0; i < count; i++) {
    const writer = i % workload.writers
    const atMs = i * interval
    if (random() < workload.readFraction) {
      const index = Math.floor(random() * workload.keys)
      ops.push({ atMs, writer, kind: 'read', key: keyOf(writer, index), seq: 0 })
      continue
    }
    const seq = ++writesBy[writer]!
    ops.push({ atMs, writer, kind: 'write', key: keyOf(writer, (seq - 1) % workload.keys), seq })
  }
  return ops
}

/** A JSON value of exactly `bytes` bytes (UTF-8) that names its writer and sequence number. */
export function labValue(writer: number, seq: number, bytes: number): string {
  const head = `{"w":${writer},"s":${seq},"p":"`
  const tail = '"}'
  return head + 'x'.repeat(Math.max(0, bytes - head.length - tail.length)) + tail
}

/** The writer and sequence number a watch event's value carries, if it is one of the lab's values. */
export function parseValue(value: unknown): { writer: number; seq: number } | undefined {
  if (typeof value !== 'object' || value === null) return undefined
  const { w, s } = value as { w?: unknown; s?: unknown }
  return typeof w === 'number' && typeof s === 'number' ? { writer: w, seq: s } : undefined
}

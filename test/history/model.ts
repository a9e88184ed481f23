/**
 * A recorded history: every operation a client made, with when it was invoked and when it completed
 * (ms since the run started), what it answered, and the causal facts the daemon returned with it
 * (dots, and the dots a write superseded, decoded from its ETag). The checker reads only this.
 */

/** A write's name: (replica, counter). */
export interface Dot {
  replica: string
  counter: number
}

/** A set of dots as ranges per replica: replica → [lo, hi] pairs, both included. */
export type DotSet = Record<string, Array<[number, number]>>

/** ok: answered 200/202. failed: certainly did not happen. unknown: no answer (it may have happened). */
export type Outcome = 'ok' | 'failed' | 'unknown'

interface OpBase {
  id: number
  /** The client session; a session talks to one daemon, one operation at a time. */
  session: number
  daemon: number
  start: number
  /** Undefined when the outcome is unknown. */
  end?: number
  outcome: Outcome
}

/** GET /kv/{key}?siblings=1: the live siblings (empty for 404) and the read's token. */
export interface ReadOp extends OpBase {
  kind: 'read'
  key: string
  siblings: Array<{ dot: Dot; value: string }>
}

/** PUT or DELETE of a register; `value` is unique per put; `ifMatch` names the read whose ETag it sent. */
export interface WriteOp extends OpBase {
  kind: 'put' | 'delete'
  key: string
  value?: string
  ifMatch?: number
  dot?: Dot
  /** What the write superseded, from its ETag (its own dot left out). */
  covers?: DotSet
}

export interface IncrementOp extends OpBase {
  kind: 'incr'
  key: string
  by: number
}

export interface SetOp extends OpBase {
  kind: 'set-add' | 'set-remove'
  key: string
  element: string
}

export type Op = ReadOp | WriteOp | IncrementOp | SetOp

/** One daemon's state of the checked namespace after the heal. */
export interface FinalState {
  daemon: number
  digest: string
  /** register key → live siblings. */
  registers: Record<string, Array<{ dot: Dot; value: string }>>
  counters: Record<string, number>
  sets: Record<string, string[]>
}

export interface History {
  ops: Op[]
  finals: FinalState[]
}

export type Guarantee =
  | 'read-your-writes'
  | 'monotonic-reads'
  | 'monotonic-writes'
  | 'writes-follow-reads'
  | 'if-match-no-lost-write'
  | 'no-lost-write'
  | 'convergence'
  | 'counter'
  | 'add-wins-set'

export interface Violation {
  guarantee: Guarantee
  detail: string
}

export const dotKey = (dot: Dot) => `${dot.replica}:${dot.counter}`

export function inDotSet(set: DotSet | undefined, dot: Dot): boolean {
  for (const [lo, hi] of set?.[dot.replica] ?? []) if (dot.counter >= lo && dot.counter <= hi) return true
  return false
}

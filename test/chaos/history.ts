/** What the workload did and what the peers hold at the end: the checker's input. */

/**
 * ok: the daemon answered that the write is durable (200, or 202 when `?ack` timed out: the write
 * stands either way). failed: it certainly did not happen (an error answer, or the daemon was not
 * there to take it). unknown: no answer (timeout, connection reset, the daemon killed mid-request).
 */
export type Outcome = 'ok' | 'failed' | 'unknown'

export type OpKind = 'put' | 'delete' | 'incr' | 'set-add' | 'set-remove'

export interface Dot {
  replica: string
  counter: number
}

export interface OpRecord {
  id: number
  kind: OpKind
  /** The daemon the client talked to. */
  peer: number
  key: string
  /** put: the value written (unique per operation); set ops: the element. */
  value?: string
  /** incr: the amount. */
  by?: number
  ack?: { peers: number; timeoutMs: number }
  /** Milliseconds since the run started. */
  start: number
  /** When the answer came; undefined when the outcome is unknown. */
  end?: number
  /**
   * unknown only: a time by which the request had certainly taken effect or never would (the daemon
   * it went to had exited by then); undefined when it may still take effect at any time.
   */
  settledBy?: number
  outcome: Outcome
  status?: number
  error?: string
  etag?: string
  /** put/delete/incr: the write's dot; set ops: the dot of the request's last write. */
  dot?: Dot
  /** The write's HLC wall clock, ms. */
  wall?: number
  ackReplicated?: number
  ackReached?: boolean
  /**
   * put/delete: the live sibling dots the same daemon showed just before this write (same process
   * incarnation). A write at a peer supersedes everything live there, so once it is acknowledged
   * none of these dots may ever be live again.
   */
  observedBefore?: Dot[]
}

export interface SiblingView {
  replica: string
  counter: number
  wall: number
  value: string
}

export interface PeerSnapshot {
  peer: number
  /** key → live siblings, sorted by dot; absent keys are left out. */
  kv: Record<string, SiblingView[]>
  counters: Record<string, number>
  /** set key → sorted members. */
  sets: Record<string, string[]>
  digest: string
  versionVector: Record<string, number>
}

export interface Violation {
  rule: string
  detail: string
  /**
   * Hard invariants fail the CI test; the others (error-level log lines, late `?ack` answers,
   * slow convergence) are reported and make the command exit non-zero.
   */
  hard: boolean
}

export const sameDot = (a: Dot, b: Dot) => a.replica === b.replica && a.counter === b.counter
export const dotName = (dot: Dot) => `${dot.replica.slice(-12)}:${dot.counter}`

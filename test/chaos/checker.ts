import {
  type Dot,
  dotName,
  type OpRecord,
  type PeerSnapshot,
  type SiblingView,
  sameDot,
  type Violation,
} from './history.ts'

/**
 * The chaos run's checker: pure functions from the workload's history and the peers' final states
 * (read after the final heal and convergence) to violations. Each rule says why it holds for these
 * CRDTs (multi-value registers with observed-remove deletes, PN-counters, add-wins sets).
 */

export function checkAll(history: readonly OpRecord[], snapshots: readonly PeerSnapshot[]): Violation[] {
  const violations = checkAgreement(snapshots)
  const final = snapshots[0]
  if (final === undefined)
    return [...violations, { rule: 'no-peers', detail: 'no final state read', hard: true }]
  return [
    ...violations,
    ...checkRegisters(history, final),
    ...checkCounters(history, final),
    ...checkSets(history, final),
  ]
}

/** After the heal every peer reads the same values and shows the same digest and version vector. */
export function checkAgreement(snapshots: readonly PeerSnapshot[]): Violation[] {
  const violations: Violation[] = []
  const [first, ...rest] = snapshots
  if (first === undefined) return violations
  const reads = (s: PeerSnapshot) => JSON.stringify({ kv: s.kv, counters: s.counters, sets: s.sets })
  for (const other of rest) {
    if (reads(other) !== reads(first)) {
      violations.push({
        rule: 'divergent-reads',
        detail: `peer ${other.peer} reads differ from peer ${first.peer}: ${firstDifference(first, other)}`,
        hard: true,
      })
    }
    if (other.digest !== first.digest) {
      violations.push({
        rule: 'divergent-digests',
        detail: `peer ${other.peer} digest ${other.digest} ≠ peer ${first.peer} digest ${first.digest}`,
        hard: true,
      })
    }
    if (JSON.stringify(sortedVector(other)) !== JSON.stringify(sortedVector(first))) {
      violations.push({
        rule: 'divergent-version-vectors',
        detail: `peer ${other.peer} version vector differs from peer ${first.peer}`,
        hard: true,
      })
    }
  }
  return violations
}

function sortedVector(snapshot: PeerSnapshot): [string, number][] {
  return Object.entries(snapshot.versionVector).sort(([a], [b]) => a.localeCompare(b))
}

function firstDifference(a: PeerSnapshot, b: PeerSnapshot): string {
  for (const field of ['kv', 'counters', 'sets'] as const) {
    const keys = new Set([...Object.keys(a[field]), ...Object.keys(b[field])])
    for (const key of [...keys].sort()) {
      const left = JSON.stringify(a[field][key])
      const right = JSON.stringify(b[field][key])
      if (left !== right) return `${field} ${key}: ${left} vs ${right}`
    }
  }
  return 'unknown'
}

/** The latest time a request may have taken effect: an unanswered one until its daemon exited, if it did. */
const endOf = (op: OpRecord) =>
  op.outcome === 'unknown' ? (op.settledBy ?? Number.POSITIVE_INFINITY) : (op.end ?? op.start)

/**
 * Registers (put/delete):
 * - no phantom: every live sibling is a value some put wrote (ok or unknown), with that put's dot.
 * - no lost write: an acknowledged put is live at the end, unless another write to the key may have
 *   superseded it. A write supersedes only what its peer had seen, and an HLC is greater than every
 *   HLC its writer has seen, so the superseder is an acknowledged write with a wall clock ≥ this
 *   one's, or an unanswered write that may have happened after this one began.
 * - no resurrection: a dot that was live at a peer just before an acknowledged put or delete there is
 *   superseded by it and must never be live again (covered dots are dead for good).
 */
export function checkRegisters(history: readonly OpRecord[], final: PeerSnapshot): Violation[] {
  const violations: Violation[] = []
  const writes = history.filter((op) => op.kind === 'put' || op.kind === 'delete')
  const byKey = groupBy(writes, (op) => op.key)
  const putsByValue = new Map<string, OpRecord>()
  for (const op of writes) if (op.kind === 'put' && op.value !== undefined) putsByValue.set(op.value, op)

  for (const [key, siblings] of Object.entries(final.kv)) {
    for (const sibling of siblings) {
      const put = putsByValue.get(sibling.value)
      const phantom =
        put === undefined ||
        put.key !== key ||
        put.outcome === 'failed' ||
        (put.dot !== undefined && !sameDot(put.dot, sibling))
      if (phantom) {
        violations.push({
          rule: 'phantom-value',
          detail: `${key}: live value ${JSON.stringify(sibling.value)} (${dotName(sibling)}) matches no write that may have happened`,
          hard: true,
        })
      }
    }
  }

  for (const [key, ops] of byKey) {
    const live = final.kv[key] ?? []
    for (const op of ops) {
      if (op.outcome !== 'ok') continue
      if (op.kind === 'put' && op.dot !== undefined && !isLive(live, op.dot)) {
        const superseder = ops.find(
          (other) =>
            other !== op &&
            other.outcome !== 'failed' &&
            (other.outcome === 'ok' && other.wall !== undefined && op.wall !== undefined
              ? other.wall >= op.wall
              : endOf(other) >= op.start),
        )
        if (superseder === undefined) {
          violations.push({
            rule: 'lost-write',
            detail: `${key}: acknowledged put #${op.id} at peer ${op.peer} (${dotName(op.dot)}, ${
              op.ack ? `ack=${op.ack.peers} replicated=${op.ackReplicated}` : 'no ack'
            }) is gone and no later write could have superseded it`,
            hard: true,
          })
        }
      }
      for (const dot of op.observedBefore ?? []) {
        if (isLive(live, dot)) {
          violations.push({
            rule: op.kind === 'delete' ? 'resurrected-delete' : 'resurrected-overwrite',
            detail: `${key}: ${dotName(dot)} was superseded by acknowledged ${op.kind} #${op.id} at peer ${op.peer} and is live again`,
            hard: true,
          })
        }
      }
    }
  }
  return violations
}

function isLive(siblings: readonly SiblingView[], dot: Dot): boolean {
  return siblings.some((sibling) => sameDot(sibling, dot))
}

/**
 * PN-counters: the final value lies between the sum of acknowledged increments plus every unanswered
 * decrement, and that sum plus every unanswered increment. (The workload never resets counters.)
 */
export function checkCounters(history: readonly OpRecord[], final: PeerSnapshot): Violation[] {
  const violations: Violation[] = []
  const byKey = groupBy(
    history.filter((op) => op.kind === 'incr'),
    (op) => op.key,
  )
  const keys = new Set([...byKey.keys(), ...Object.keys(final.counters)])
  for (const key of keys) {
    let low = 0
    let high = 0
    for (const op of byKey.get(key) ?? []) {
      const by = op.by ?? 0
      if (op.outcome === 'ok') {
        low += by
        high += by
      } else if (op.outcome === 'unknown') {
        if (by < 0) low += by
        else high += by
      }
    }
    const value = final.counters[key] ?? 0
    if (value < low || value > high) {
      violations.push({
        rule: 'counter-bounds',
        detail: `${key} = ${value}, outside [${low}, ${high}] (acknowledged and unanswered increments)`,
        hard: true,
      })
    }
  }
  return violations
}

/**
 * Add-wins sets, per (set, element):
 * - an acknowledged add with no remove of the element that may have happened after it began leaves
 *   the element present (nothing can remove what no remove observed);
 * - when every operation on the element went to one peer, one at a time, they are totally ordered:
 *   the element ends as the last acknowledged operation left it, or as an unanswered later one did.
 */
export function checkSets(history: readonly OpRecord[], final: PeerSnapshot): Violation[] {
  const violations: Violation[] = []
  const ops = history.filter((op) => op.kind === 'set-add' || op.kind === 'set-remove')
  const byElement = groupBy(ops, (op) => `${op.key}\u0000${op.value}`)
  for (const [id, elementOps] of byElement) {
    const [key, element] = id.split('\u0000') as [string, string]
    const present = (final.sets[key] ?? []).includes(element)
    const name = `${key}/${element}`
    for (const add of elementOps) {
      if (add.kind !== 'set-add' || add.outcome !== 'ok') continue
      const laterRemove = elementOps.some(
        (op) => op.kind === 'set-remove' && op.outcome !== 'failed' && endOf(op) >= add.start,
      )
      if (!laterRemove && !present) {
        violations.push({
          rule: 'set-lost-add',
          detail: `${name}: acknowledged add #${add.id} at peer ${add.peer} is missing and no remove could have observed it`,
          hard: true,
        })
      }
    }
    if (!isSequentialAtOnePeer(elementOps)) continue
    const ordered = [...elementOps].sort((a, b) => a.start - b.start)
    let lastOk = -1
    ordered.forEach((op, index) => {
      if (op.outcome === 'ok') lastOk = index
    })
    const allowed = new Set<boolean>()
    if (lastOk < 0) allowed.add(false)
    for (let i = Math.max(lastOk, 0); i < ordered.length; i++) {
      const op = ordered[i]!
      if (i === lastOk || op.outcome === 'unknown') allowed.add(op.kind === 'set-add')
    }
    if (!allowed.has(present)) {
      violations.push({
        rule: present ? 'set-resurrected' : 'set-lost-add',
        detail: `${name}: ${present ? 'present' : 'absent'} at the end, but its last acknowledged operation${
          lastOk < 0 ? ' (none)' : ` #${ordered[lastOk]!.id} (${ordered[lastOk]!.kind})`
        } and the unanswered ones after it allow only ${[...allowed].map((p) => (p ? 'present' : 'absent')).join(' or ')}`,
        hard: true,
      })
    }
  }
  return violations
}

function isSequentialAtOnePeer(ops: readonly OpRecord[]): boolean {
  if (ops.length === 0) return false
  const peer = ops[0]!.peer
  if (ops.some((op) => op.peer !== peer)) return false
  const ordered = [...ops].sort((a, b) => a.start - b.start)
  for (let i = 1; i < ordered.length; i++) {
    if (ordered[i]!.start < endOf(ordered[i - 1]!)) return false
  }
  return true
}

function groupBy<T>(items: readonly T[], keyOf: (item: T) => string): Map<string, T[]> {
  const groups = new Map<string, T[]>()
  for (const item of items) {
    const key = keyOf(item)
    const group = groups.get(key)
    if (group === undefined) groups.set(key, [item])
    else group.push(item)
  }
  return groups
}

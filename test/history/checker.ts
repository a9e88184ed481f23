/**
 * Checks a recorded history (model.ts) against what docs/consistency.md says hearsay guarantees.
 * Pure: no I/O, no clock. Each check is stated as a property of the history; a violation names the
 * operations that break it.
 *
 * Vocabulary. A read R *shows* its siblings' dots. Write X *supersedes* dot d when d is in X's covers
 * (from X's ETag; covers are transitively closed). R *reflects* dot d when it
 * shows d or shows something that supersedes d (for a 404: a recorded delete supersedes d). R *revives*
 * d when it shows a dot that d's write superseded: something older came back.
 *
 * Where a fact is unknowable (a sibling or a delete whose request got no answer, so its covers are not
 * known) the checks give the history the benefit of the doubt rather than invent a violation.
 */
import {
  type Dot,
  dotKey,
  type FinalState,
  type Guarantee,
  type History,
  type IncrementOp,
  inDotSet,
  type Op,
  type ReadOp,
  type SetOp,
  type Violation,
  type WriteOp,
} from './model.ts'

export function checkHistory(history: History): Violation[] {
  const index = new HistoryIndex(history.ops)
  return [
    ...checkSessions(history.ops, index),
    ...checkIfMatch(history.ops, index),
    ...checkNoLostWrite(history, index),
    ...checkConvergence(history.finals),
    ...checkCounters(history),
    ...checkSets(history),
  ]
}

/** The recorded writes by dot, and the supersedes relation between them. */
export class HistoryIndex {
  readonly writes = new Map<string, WriteOp>()
  /** The same, by replica then counter: looked up without building a string. */
  private readonly byReplica = new Map<string, Map<number, WriteOp>>()
  /** Acknowledged writes with their dots, per key. */
  readonly writesOf = new Map<string, WriteOp[]>()
  /** Keys on which some write got no answer: a sibling or a delete there may be unknowable. */
  readonly keysWithUnknownWrites = new Set<string>()

  constructor(ops: readonly Op[]) {
    for (const op of ops) {
      if (op.kind !== 'put' && op.kind !== 'delete') continue
      if (op.outcome === 'ok' && op.dot !== undefined) {
        this.writes.set(dotKey(op.dot), op)
        const counters = this.byReplica.get(op.dot.replica) ?? new Map<number, WriteOp>()
        this.byReplica.set(op.dot.replica, counters)
        counters.set(op.dot.counter, op)
        pushTo(this.writesOf, op.key, op)
      }
      if (op.outcome === 'unknown') this.keysWithUnknownWrites.add(op.key)
    }
  }

  /**
   * Does the write named `by` supersede `dot`? Its covers are transitively closed (a write supersedes
   * what the values it replaced had replaced; docs/architecture.md), so membership is the whole test.
   */
  supersedes(by: Dot, dot: Dot): boolean {
    return inDotSet(this.writeOf(by)?.covers, dot)
  }

  writeOf(dot: Dot): WriteOp | undefined {
    return this.byReplica.get(dot.replica)?.get(dot.counter)
  }

  private readonly superseders = new Map<string, WriteOp[]>()

  /** The recorded writes that supersede `dot` on `key`. */
  supersedersOf(key: string, dot: Dot): WriteOp[] {
    const name = dotKey(dot)
    let found = this.superseders.get(name)
    if (found === undefined) {
      found = (this.writesOf.get(key) ?? []).filter((write) => inDotSet(write.covers, dot))
      this.superseders.set(name, found)
    }
    return found
  }

  /** True when the sibling's write is not recorded with its covers: what it supersedes is unknown. */
  opaque(dot: Dot): boolean {
    return this.writeOf(dot)?.covers === undefined
  }

  reflects(read: ReadOp, dot: Dot): boolean {
    for (const sibling of read.siblings) {
      if (sameDot(sibling.dot, dot) || this.supersedes(sibling.dot, dot) || this.opaque(sibling.dot))
        return true
    }
    // A delete shows as the absence of what it removed.
    const own = this.writeOf(dot)
    if (own?.kind === 'delete' && this.revived(read, dot) === undefined) return true
    // A 404, or siblings that do not cover it: a delete may have removed it.
    if (read.siblings.length === 0 && this.keysWithUnknownWrites.has(read.key)) return true
    for (const write of this.supersedersOf(read.key, dot)) {
      if (write.kind !== 'delete' || write.dot === undefined) continue
      if (write.start > (read.end ?? Number.POSITIVE_INFINITY)) continue
      if (this.supersedes(write.dot, dot) && !read.siblings.some((s) => sameDot(s.dot, write.dot!))) {
        if (read.siblings.every((s) => !this.supersedes(write.dot!, s.dot))) return true
      }
    }
    return false
  }

  /** The sibling of `read` that `by` superseded, if any: an older value shown after a newer one. */
  revived(read: ReadOp, by: Dot): Dot | undefined {
    return read.siblings.find((sibling) => this.supersedes(by, sibling.dot))?.dot
  }
}

const sameDot = (a: Dot, b: Dot) => a.replica === b.replica && a.counter === b.counter
const name = (op: Op) => `#${op.id}(s${op.session}@d${op.daemon} ${op.kind} ${'key' in op ? op.key : ''})`
const showDot = (dot: Dot) => `${dot.replica.slice(-8)}:${dot.counter}`

/** Session guarantees: for each session (one client, one daemon), over its completed operations. */
export function checkSessions(ops: readonly Op[], index: HistoryIndex): Violation[] {
  const violations: Violation[] = []
  const add = (guarantee: Guarantee, detail: string) => violations.push({ guarantee, detail })
  const sessions = new Map<number, Op[]>()
  for (const op of ops) {
    if (op.outcome !== 'ok') continue
    const list = sessions.get(op.session) ?? []
    list.push(op)
    sessions.set(op.session, list)
  }
  for (const list of sessions.values()) {
    list.sort((a, b) => a.start - b.start)
    // Write counters increase along the session, per replica (a restart may bring a new replica id).
    const lastDot = new Map<string, WriteOp>()
    for (const op of list) {
      if (!isWrite(op) || op.dot === undefined) continue
      const previous = lastDot.get(op.dot.replica)
      if (previous?.dot !== undefined && previous.dot.counter >= op.dot.counter)
        add(
          'monotonic-writes',
          `${name(op)} got dot ${op.dot.counter} after ${name(previous)} got ${previous.dot.counter} on the same replica`,
        )
      lastDot.set(op.dot.replica, op)
    }
    const byKey = new Map<string, Op[]>()
    for (const op of list) {
      if (op.kind !== 'read' && !isWrite(op)) continue
      pushTo(byKey, op.key, op)
    }
    for (const onKey of byKey.values()) checkSessionKey(onKey, index, add)
  }
  return violations
}

/** The session guarantees over one session's operations on one key, in invocation order. */
function checkSessionKey(
  list: readonly Op[],
  index: HistoryIndex,
  add: (guarantee: Guarantee, detail: string) => void,
): void {
  for (let j = 0; j < list.length; j++) {
    const later = list[j]!
    for (let i = 0; i < j; i++) {
      const earlier = list[i]!
      // Session order: the earlier one completed before the later one was invoked.
      if ((earlier.end ?? Number.POSITIVE_INFINITY) > later.start) continue
      if (isWrite(earlier) && later.kind === 'read' && earlier.dot !== undefined) {
        if (!index.reflects(later, earlier.dot))
          add(
            'read-your-writes',
            `${name(later)} does not reflect the session's write ${name(earlier)} ${showDot(earlier.dot)}`,
          )
        const revived = index.revived(later, earlier.dot)
        if (revived)
          add(
            'read-your-writes',
            `${name(later)} shows ${showDot(revived)}, which the session's write ${name(earlier)} superseded`,
          )
      }
      if (earlier.kind === 'read' && later.kind === 'read') {
        for (const sibling of earlier.siblings) {
          if (!index.reflects(later, sibling.dot))
            add(
              'monotonic-reads',
              `${name(later)} lost ${showDot(sibling.dot)} that the earlier ${name(earlier)} showed`,
            )
          const revived = index.revived(later, sibling.dot)
          if (revived)
            add(
              'monotonic-reads',
              `${name(later)} shows ${showDot(revived)}, older than ${showDot(sibling.dot)} shown by ${name(earlier)}`,
            )
        }
      }
      if (isWrite(earlier) && isWrite(later) && later.ifMatch === undefined && earlier.dot && later.dot) {
        if (!index.supersedes(later.dot, earlier.dot))
          add(
            'monotonic-writes',
            `${name(later)} does not supersede the session's earlier write ${name(earlier)} on the key`,
          )
      }
      if (earlier.kind === 'read' && isWrite(later) && later.dot !== undefined) {
        if (later.ifMatch !== undefined && later.ifMatch !== earlier.id) continue
        for (const sibling of earlier.siblings) {
          if (!index.supersedes(later.dot, sibling.dot))
            add(
              'writes-follow-reads',
              `${name(later)} does not supersede ${showDot(sibling.dot)} that ${name(earlier)} read before it`,
            )
        }
      }
    }
  }
}

function pushTo<T>(map: Map<string, T[]>, key: string, item: T): void {
  const list = map.get(key)
  if (list === undefined) map.set(key, [item])
  else list.push(item)
}

function isWrite(op: Op): op is WriteOp {
  return op.kind === 'put' || op.kind === 'delete'
}

/**
 * If-Match is "replace what I saw": a write W with the token of read R may supersede a value R did not
 * see only if that value was already superseded by a delete (which saw it and removed it) or by a
 * write that survives W (one R saw, or one W does not supersede). The daemon compacts covers by filling gaps of dots that are no longer live, so W's
 * covers may name such values; what must never happen is a concurrent value disappearing with nothing
 * left that saw it.
 */
export function checkIfMatch(ops: readonly Op[], index: HistoryIndex): Violation[] {
  const violations: Violation[] = []
  const reads = new Map<number, ReadOp>()
  for (const op of ops) if (op.kind === 'read' && op.outcome === 'ok') reads.set(op.id, op)
  for (const op of ops) {
    if (!isWrite(op) || op.outcome !== 'ok' || op.ifMatch === undefined || op.dot === undefined) continue
    const read = reads.get(op.ifMatch)
    if (read === undefined) continue
    const sawIt = (dot: Dot) =>
      read.siblings.some((s) => sameDot(s.dot, dot) || index.supersedes(s.dot, dot) || index.opaque(s.dot))
    const survives = (dot: Dot) => sawIt(dot) || !inDotSet(op.covers, dot)
    const onKey = index.writesOf.get(op.key) ?? []
    for (const other of onKey) {
      // Values only: a tombstone holds none, and one superseded later loses nothing.
      if (other.kind !== 'put' || other.dot === undefined || sameDot(other.dot, op.dot)) continue
      if (!inDotSet(op.covers, other.dot) || sawIt(other.dot)) continue
      const supersededBySurvivor = index
        .supersedersOf(op.key, other.dot)
        .some(
          (x) =>
            x.dot !== undefined &&
            !sameDot(x.dot, op.dot!) &&
            x.start < (op.end ?? Number.POSITIVE_INFINITY) &&
            (x.kind === 'delete' || survives(x.dot)) &&
            index.supersedes(x.dot, other.dot!),
        )
      if (!supersededBySurvivor)
        violations.push({
          guarantee: 'if-match-no-lost-write',
          detail: `${name(op)} with If-Match of ${name(read)} superseded ${name(other)} ${showDot(other.dot)}, which that read did not see and nothing surviving superseded`,
        })
    }
  }
  return violations
}

/**
 * No write is lost: (a) a write supersedes only writes that began before it ended (it cannot have
 * seen a later one), and (b) after the heal every acknowledged put is live on every daemon or
 * superseded by a recorded write.
 */
export function checkNoLostWrite(history: History, index: HistoryIndex): Violation[] {
  const violations: Violation[] = []
  for (const write of index.writes.values()) {
    for (const other of index.writesOf.get(write.key) ?? []) {
      if (other === write || other.dot === undefined) continue
      if (inDotSet(write.covers, other.dot) && other.start > (write.end ?? Number.POSITIVE_INFINITY))
        violations.push({
          guarantee: 'no-lost-write',
          detail: `${name(write)} superseded ${name(other)}, which began after it was answered`,
        })
    }
  }
  for (const final of history.finals) {
    for (const write of index.writes.values()) {
      if (write.kind !== 'put' || write.dot === undefined || index.keysWithUnknownWrites.has(write.key))
        continue
      const live = final.registers[write.key] ?? []
      if (live.some((s) => sameDot(s.dot, write.dot!))) continue
      const superseded = [...index.writes.values()].some(
        (other) =>
          other.key === write.key && other.dot !== undefined && index.supersedes(other.dot, write.dot!),
      )
      if (!superseded)
        violations.push({
          guarantee: 'no-lost-write',
          detail: `daemon ${final.daemon} lost ${name(write)} ${showDot(write.dot)}: not live and nothing recorded supersedes it`,
        })
    }
  }
  return violations
}

/** After the heal every daemon holds the same state and the same digest. */
export function checkConvergence(finals: readonly FinalState[]): Violation[] {
  const violations: Violation[] = []
  const canonical = (final: FinalState) =>
    JSON.stringify({
      registers: Object.fromEntries(
        Object.entries(final.registers)
          .filter(([, siblings]) => siblings.length > 0)
          .map(([key, siblings]) => [key, siblings.map((s) => `${dotKey(s.dot)}=${s.value}`).sort()])
          .sort(([a], [b]) => (a! < b! ? -1 : 1)),
      ),
      counters: Object.entries(final.counters)
        .filter(([, v]) => v !== 0)
        .sort(),
      sets: Object.entries(final.sets)
        .filter(([, members]) => members.length > 0)
        .map(([key, members]) => [key, [...members].sort()])
        .sort(),
    })
  const first = finals[0]
  if (first === undefined) return violations
  for (const final of finals.slice(1)) {
    if (final.digest !== first.digest)
      violations.push({
        guarantee: 'convergence',
        detail: `daemon ${final.daemon} digest ${final.digest} ≠ daemon ${first.daemon} ${first.digest}`,
      })
    if (canonical(final) !== canonical(first))
      violations.push({
        guarantee: 'convergence',
        detail: `daemon ${final.daemon} reads differ from daemon ${first.daemon}`,
      })
  }
  return violations
}

/** A counter (never reset in these runs) is the sum of its acknowledged increments, plus any subset of the unanswered ones. */
export function checkCounters(history: History): Violation[] {
  const violations: Violation[] = []
  const byKey = new Map<string, IncrementOp[]>()
  for (const op of history.ops) if (op.kind === 'incr') pushTo(byKey, op.key, op)
  for (const final of history.finals) {
    for (const [key, ops] of byKey) {
      let sure = 0
      const unknown: number[] = []
      for (const op of ops) {
        if (op.outcome === 'ok') sure += op.by
        else if (op.outcome === 'unknown') unknown.push(op.by)
      }
      const possible = reachableSums(sure, unknown)
      const value = final.counters[key] ?? 0
      if (!possible(value))
        violations.push({
          guarantee: 'counter',
          detail: `daemon ${final.daemon} counter ${key} = ${value}, expected ${sure} plus some of the unanswered [${unknown.join(', ')}]`,
        })
    }
  }
  return violations
}

/**
 * Which totals `sure` plus a subset of the unanswered increments can make: exactly while there are
 * few distinct sums (up to 4096), else the range between the extremes.
 */
function reachableSums(sure: number, unknown: readonly number[]): (value: number) => boolean {
  let sums = new Set([sure])
  for (const by of unknown) {
    const next = new Set(sums)
    for (const sum of sums) next.add(sum + by)
    sums = next
    if (sums.size > 4096) {
      const low = sure + unknown.filter((n) => n < 0).reduce((a, b) => a + b, 0)
      const high = sure + unknown.filter((n) => n > 0).reduce((a, b) => a + b, 0)
      return (value) => value >= low && value <= high
    }
  }
  return (value) => sums.has(value)
}

/**
 * Add-wins: an element is present iff some add of it was not seen by a remove. Checkable from real
 * time alone: an acknowledged add that no remove could have seen (every remove of the element was
 * answered before the add began) must be present; a present element needs an add that no later
 * remove on the add's own daemon (which certainly saw it) covered.
 */
export function checkSets(history: History): Violation[] {
  const violations: Violation[] = []
  const byElement = new Map<string, SetOp[]>()
  for (const op of history.ops) {
    if (op.kind !== 'set-add' && op.kind !== 'set-remove') continue
    const id = `${op.key}\u0000${op.element}`
    pushTo(byElement, id, op)
  }
  for (const final of history.finals) {
    for (const [id, ops] of byElement) {
      const [key, element] = id.split('\u0000') as [string, string]
      const present = (final.sets[key] ?? []).includes(element)
      const adds = ops.filter((op) => op.kind === 'set-add' && op.outcome !== 'failed')
      const removes = ops.filter((op) => op.kind === 'set-remove' && op.outcome !== 'failed')
      const unseenAdd = adds.find(
        (add) =>
          add.outcome === 'ok' &&
          removes.every((remove) => (remove.end ?? Number.POSITIVE_INFINITY) < add.start),
      )
      if (!present && unseenAdd)
        violations.push({
          guarantee: 'add-wins-set',
          detail: `daemon ${final.daemon} set ${key} lacks ${element}: ${name(unseenAdd)} was made after every remove of it`,
        })
      const survivor = adds.some(
        (add) =>
          add.outcome === 'unknown' ||
          !removes.some((r) => r.outcome === 'ok' && r.daemon === add.daemon && r.start > add.end!),
      )
      if (present && !survivor)
        violations.push({
          guarantee: 'add-wins-set',
          detail: `daemon ${final.daemon} set ${key} holds ${element}, but every add of it was removed afterwards on its own daemon`,
        })
    }
  }
  return violations
}

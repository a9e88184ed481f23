import { estimateEncodedSize } from '../codec/delta.ts'
import type { Delta } from '../crdt/causal-map.ts'
import { CausalContext } from '../crdt/context.ts'
import { coversDot, type Entry } from '../crdt/entry.ts'

/**
 * Local writes are coalesced per namespace for a few milliseconds (or until a size bound) into one
 * batch, published once.
 */

export interface BatcherInit {
  /** How long the first write of a batch waits for company, ms. Default 2. */
  delayMs?: number
  /** A batch is sent at once when its entries reach about this many bytes. Default 64 KiB. */
  maxBytes?: number
  /** Sends one batch (a merged delta) for a namespace. */
  send(namespace: string, delta: Delta): void
}

/** Coalesces deltas per namespace and hands each batch to `send`. */
export class DeltaBatcher {
  private readonly pending = new Map<string, { deltas: Delta[]; bytes: number; timer: NodeJS.Timeout }>()
  private readonly init: BatcherInit

  constructor(init: BatcherInit) {
    this.init = init
  }

  add(namespace: string, delta: Delta): void {
    let batch = this.pending.get(namespace)
    if (batch === undefined) {
      const timer = setTimeout(() => this.flush(namespace), this.init.delayMs ?? 2)
      batch = { deltas: [], bytes: 0, timer }
      this.pending.set(namespace, batch)
    }
    batch.deltas.push(delta)
    for (const entry of delta.entries) batch.bytes += estimateEncodedSize(entry)
    if (batch.bytes >= (this.init.maxBytes ?? 64 * 1024)) this.flush(namespace)
  }

  /** A listener for one namespace's local deltas (`replica.on('delta', batcher.adder(ns))`). */
  adder(namespace: string): (delta: Delta) => void {
    return (delta) => this.add(namespace, delta)
  }

  flush(namespace: string): void {
    const batch = this.pending.get(namespace)
    if (batch === undefined) return
    clearTimeout(batch.timer)
    this.pending.delete(namespace)
    this.init.send(namespace, coalesce(batch.deltas))
  }

  flushAll(): void {
    for (const namespace of [...this.pending.keys()]) this.flush(namespace)
  }
}

/**
 * Joins deltas into one, leaving out entries a later entry of the batch supersedes: their dots stay
 * in the context, so receivers still learn they are gone without receiving them.
 */
export function coalesce(deltas: Delta[]): Delta {
  if (deltas.length === 1) return deltas[0]
  const context = new CausalContext()
  const latest = new Map<string, Entry[]>()
  for (const delta of deltas) {
    context.merge(delta.context)
    for (const entry of delta.entries) {
      const siblings = (latest.get(entry.key) ?? []).filter((s) => !coversDot(entry, s.replica, s.counter))
      siblings.push(entry)
      latest.set(entry.key, siblings)
    }
  }
  return { entries: [...latest.values()].flat(), context }
}

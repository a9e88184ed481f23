import type { PrivateKey } from '@libp2p/interface'
import { decodeDelta, encodeDelta, estimateEncodedSize } from '../codec/delta.ts'
import { DecodeError } from '../codec/errors.ts'
import { decodeSignedBatch, encodeSignedBatch, signedPayload } from '../codec/gossip.ts'
import type { Delta } from '../crdt/causal-map.ts'
import { CausalContext } from '../crdt/context.ts'
import { coversDot, type Entry } from '../crdt/entry.ts'
import type { Verdict } from '../mesh/node.ts'
import { parseMeshTopic } from '../mesh/topics.ts'
import { replicaAuthor, verifyEd25519, verifyEntry } from '../replica/signing.ts'

/**
 * Gossip of deltas: local writes are coalesced per namespace for a few milliseconds (or until a
 * size bound) into one signed batch, published once; received batches are decoded once, checked
 * (decode, batch author and signature, each entry's own signature) in gossipsub's validator and
 * merged. The batch signature binds the batch's context to its author; the entry signatures travel
 * on with the entries (stores, anti-entropy).
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

export interface CheckedBatch {
  verdict: Verdict
  /** Why a batch was refused (for the log line). */
  reason?: string
  signer?: string
  delta?: Delta
}

/** Signs and encodes a batch for a topic (its entries must be the key's own replica's). */
export async function signBatch(privateKey: PrivateKey, topic: string, delta: Delta) {
  const encoded = encodeDelta(delta)
  const signature = await privateKey.sign(signedPayload(topic, encoded))
  return encodeSignedBatch({ signature, delta: encoded })
}

/**
 * The one peer a batch speaks for: the author part of every replica id in its context (entries'
 * dots are always in the context, the codec checks). Undefined when the batch mixes authors or has
 * none.
 */
export function batchSigner(delta: Delta): string | undefined {
  let signer: string | undefined
  for (const replica of delta.context.replicas()) {
    const base = replicaAuthor(replica)
    if (signer === undefined) signer = base
    else if (signer !== base) return undefined
  }
  return signer
}

/**
 * Checks a received batch: it decodes, every entry and dot belongs to a replica of the signer, and
 * the signer's key signed it for this topic. Returns 'reject' only for provably bad data.
 */
export async function checkBatch(topic: string, data: Uint8Array, self: string): Promise<CheckedBatch> {
  let delta: Delta
  let signature: Uint8Array
  let encoded: Uint8Array
  try {
    const batch = decodeSignedBatch(data)
    signature = batch.signature
    encoded = batch.delta
    delta = decodeDelta(encoded)
  } catch (error) {
    // Unknown versions are refused too: a mesh upgrades by running both versions' topics side by
    // side (the topic name carries the version), never by mixing formats on one topic.
    if (error instanceof DecodeError) return { verdict: 'reject', reason: error.message }
    throw error
  }
  const signer = batchSigner(delta)
  if (signer === undefined) return { verdict: 'reject', reason: 'a batch must speak for exactly one author' }
  if (!verifyEd25519(signer, signedPayload(topic, encoded), signature)) {
    return { verdict: 'reject', reason: `bad signature for ${signer}`, signer }
  }
  // Checked after the signature: a forgery in our name is rejected, not waved through as an echo.
  if (signer === self) return { verdict: 'ignore', reason: 'our own batch' }
  // Each entry carries its own signature too, which travels with it into stores and anti-entropy:
  // check it here, once (the merge reuses the result), so a bad one never gets stored and served.
  const namespace = parseMeshTopic(topic)?.namespace
  if (namespace === undefined) return { verdict: 'reject', reason: `not a hearsay topic: ${topic}` }
  for (const entry of delta.entries) {
    if (!verifyEntry(namespace, entry, verifyEd25519, { mark: true })) {
      return { verdict: 'reject', reason: `bad entry signature ${entry.replica}:${entry.counter}`, signer }
    }
  }
  return { verdict: 'accept', signer, delta }
}

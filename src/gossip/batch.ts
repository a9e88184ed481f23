import { decodeDelta, encodeDelta } from '../codec/delta.ts'
import { DecodeError } from '../codec/errors.ts'
import type { Delta } from '../crdt/causal-map.ts'
import { CausalContext } from '../crdt/context.ts'
import type { Verdict } from '../mesh/node.ts'
import { parseMeshTopic } from '../mesh/topics.ts'
import { replicaAuthor, verifyEd25519, verifyEntry } from '../replica/signing.ts'
import { decodeGossipBatch, encodeGossipBatch } from './envelope.ts'

/**
 * A gossip batch: a delta of one author's entries, each carrying its author's proof. When received,
 * it is decoded once and checked (decode, one author, context claims backed by the entries, each
 * entry's proof) before anything is merged or forwarded. The entry proofs are the batch's only
 * signatures: they travel on with the entries (stores, anti-entropy). Entries committed in one turn
 * share one signed tree root (codec/proof.ts), verified once per hop and then remembered, so a batch
 * of one turn's writes costs one Ed25519 check per hop, not one per entry (version 1 added a batch
 * signature, a second check per hop for a one-write batch).
 */

export interface CheckedBatch {
  verdict: Verdict
  /** Why a batch was refused (for the log line). */
  reason?: string
  signer?: string
  delta?: Delta
}

/**
 * Encodes a batch of signed entries as a gossip message. Context claims that no entry signs for are
 * left out (a local batch has none: its context is its entries' dots and the dots they supersede);
 * anti-entropy carries anything else.
 */
export function encodeBatch(delta: Delta): Uint8Array {
  const signed = signedDots(delta)
  const context = signed.covers(delta.context) ? delta.context : delta.context.intersection(signed)
  return encodeGossipBatch(
    encodeDelta(context === delta.context ? delta : { entries: delta.entries, context }),
  )
}

/**
 * The dots a batch's entries sign for: each entry's own dot and the dots its covers supersede (the
 * covers are part of what the entry's author signed).
 */
export function signedDots(delta: Delta): CausalContext {
  const dots = new CausalContext()
  for (const entry of delta.entries) {
    dots.add(entry.replica, entry.counter)
    if (!entry.covers.isEmpty()) dots.merge(entry.covers)
  }
  return dots
}

/**
 * True when every dot of the batch's context is signed for by one of its entries. The one-write
 * batch (context = the entry's dot) is answered without building a context.
 */
export function contextIsSigned(delta: Delta): boolean {
  const { entries, context } = delta
  if (entries.length === 1 && context.replicaCount === 1) {
    const ranges = context.rangesOf(entries[0].replica)
    if (ranges.length === 2 && ranges[0] === entries[0].counter && ranges[1] === entries[0].counter)
      return true
  }
  return signedDots(delta).covers(context)
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
 * Checks a received batch: it decodes, every entry and dot belongs to a replica of one peer, every
 * dot its context claims is signed for by one of its entries, and every entry's signature checks
 * out. Returns 'reject' only for provably bad data.
 */
export async function checkBatch(
  topic: string,
  data: Uint8Array,
  self: string,
  /** The topic's namespace when the caller knows it (a receiver does): saves parsing per message. */
  knownNamespace?: string,
): Promise<CheckedBatch> {
  let delta: Delta
  try {
    delta = decodeDelta(decodeGossipBatch(data))
  } catch (error) {
    // Unknown versions are refused too: a mesh upgrades by running both versions' topics side by
    // side (the topic name carries the version), never by mixing formats on one topic.
    if (error instanceof DecodeError) return { verdict: 'reject', reason: error.message }
    throw error
  }
  const signer = batchSigner(delta)
  if (signer === undefined) return { verdict: 'reject', reason: 'a batch must speak for exactly one author' }
  // A claim of a dot no entry signs for could make the receiver skip that dot's entry for good.
  if (!contextIsSigned(delta))
    return { verdict: 'reject', reason: 'a batch may claim only dots its entries sign for', signer }
  const namespace = knownNamespace ?? parseMeshTopic(topic)?.namespace
  if (namespace === undefined) return { verdict: 'reject', reason: `not a hearsay topic: ${topic}` }
  // Each entry's proof travels with it into stores and anti-entropy: checked here, once (the merge
  // reuses the result), so a bad one never gets stored, served or forwarded. Entries of one tree
  // cost one signature check between them (the verified root is remembered).
  for (const entry of delta.entries) {
    if (!verifyEntry(namespace, entry, verifyEd25519, { mark: true })) {
      return { verdict: 'reject', reason: `bad entry signature ${entry.replica}:${entry.counter}`, signer }
    }
  }
  // Checked after the signatures: a forgery in our name is rejected, not waved through as an echo.
  if (signer === self) return { verdict: 'ignore', reason: 'our own batch' }
  return { verdict: 'accept', signer, delta }
}

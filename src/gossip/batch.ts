import type { PrivateKey } from '@libp2p/interface'
import { decodeDelta, encodeDelta } from '../codec/delta.ts'
import { DecodeError } from '../codec/errors.ts'
import type { Delta } from '../crdt/causal-map.ts'
import type { Verdict } from '../mesh/node.ts'
import { parseMeshTopic } from '../mesh/topics.ts'
import { replicaAuthor, verifyEd25519, verifyEntry } from '../replica/signing.ts'
import { decodeSignedBatch, encodeSignedBatch, signedPayload } from './envelope.ts'

/**
 * A gossip batch: signed by its author when published; when received, decoded once and checked
 * (decode, batch author and signature, each entry's own signature) before anything is merged or
 * forwarded. The batch signature binds the batch's context to its author; the entry signatures
 * travel on with the entries (stores, anti-entropy).
 */

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
export async function checkBatch(
  topic: string,
  data: Uint8Array,
  self: string,
  /** The topic's namespace when the caller knows it (a receiver does): saves parsing per message. */
  knownNamespace?: string,
): Promise<CheckedBatch> {
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
  const namespace = knownNamespace ?? parseMeshTopic(topic)?.namespace
  if (namespace === undefined) return { verdict: 'reject', reason: `not a hearsay topic: ${topic}` }
  for (const entry of delta.entries) {
    if (!verifyEntry(namespace, entry, verifyEd25519, { mark: true })) {
      return { verdict: 'reject', reason: `bad entry signature ${entry.replica}:${entry.counter}`, signer }
    }
  }
  return { verdict: 'accept', signer, delta }
}

import { DecodeError } from '../codec/errors.ts'
import { type CodecLimits, DEFAULT_LIMITS } from '../codec/limits.ts'
import { Reader, Writer } from '../codec/wire.ts'

/**
 * The gossip message: a batch of deltas signed by the peer that wrote them.
 *
 *   message = version:u8 type:u8(2) signature:bytes delta:bytes
 *
 * gossipsub runs with StrictNoSign (no author, no signature of its own), so authorship travels
 * inside the message: the signature covers the topic and the encoded delta, and every entry and dot
 * in the delta must belong to replicas of one peer, the signer. The signer is not written out: the
 * delta already names it in its replica ids (`<PeerId>~<incarnation>`). Relays forward the bytes
 * untouched.
 */

export const GOSSIP_VERSION = 1
const SIGNED_BATCH = 2
const MAX_SIGNATURE_BYTES = 128

export interface SignedBatch {
  signature: Uint8Array
  /** The encoded delta (see delta.ts), exactly as signed. */
  delta: Uint8Array
}

export function encodeSignedBatch(batch: SignedBatch): Uint8Array {
  const writer = new Writer(batch.delta.length + batch.signature.length + 8)
  writer.byte(GOSSIP_VERSION)
  writer.byte(SIGNED_BATCH)
  writer.bytes(batch.signature)
  writer.bytes(batch.delta)
  return writer.finish()
}

export function decodeSignedBatch(bytes: Uint8Array, limits: CodecLimits = DEFAULT_LIMITS): SignedBatch {
  if (bytes.length > limits.maxFrameBytes) throw new DecodeError('frame-too-large', `${bytes.length} bytes`)
  const reader = new Reader(bytes)
  const version = reader.byte('gossip version')
  if (version !== GOSSIP_VERSION) {
    throw new DecodeError('unknown-version', `gossip version ${version}, this peer speaks ${GOSSIP_VERSION}`)
  }
  const type = reader.byte('gossip type')
  if (type !== SIGNED_BATCH) throw new DecodeError('unknown-frame-type', `gossip message type ${type}`)
  const signature = reader.bytes('signature', MAX_SIGNATURE_BYTES, 'string-too-long')
  const delta = reader.bytes('delta', limits.maxFrameBytes, 'value-too-large')
  reader.end()
  return { signature, delta }
}

/** The bytes a batch signature covers: the topic (so a batch cannot be replayed elsewhere) and the delta. */
export function signedPayload(topic: string, delta: Uint8Array): Uint8Array {
  const writer = new Writer(topic.length + delta.length + 8)
  writer.string(topic)
  writer.raw(delta)
  return writer.finish()
}

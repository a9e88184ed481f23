import { DecodeError } from '../codec/errors.ts'
import { type CodecLimits, DEFAULT_LIMITS } from '../codec/limits.ts'
import { Reader, Writer } from '../codec/wire.ts'

/**
 * The gossip message: a batch of deltas written by one peer.
 *
 *   message = version:u8 type:u8(3) delta:bytes
 *
 * gossipsub runs with StrictNoSign (no author, no signature of its own), and the batch carries no
 * signature of its own either (version 1 did: one Ed25519 signature over topic ‖ delta, checked on
 * every hop on top of each entry's). Authorship travels inside the delta: every entry carries its
 * author's signature, every replica id in the batch must name one peer, and every dot the batch's
 * context claims must be an entry's own dot or one its entries' signed covers supersede (see
 * checkBatch). So everything the batch makes a receiver believe is signed by its author, entry by
 * entry, exactly as the entries travel on through stores and anti-entropy. Relays forward the bytes
 * untouched. Version 3 carries delta codec version 3: entry proofs (one signature per commit turn,
 * see codec/proof.ts) instead of one signature per entry.
 */

export const GOSSIP_VERSION = 3
const BATCH = 3

/** Encodes an encoded delta (see delta.ts) as a gossip message. */
export function encodeGossipBatch(delta: Uint8Array): Uint8Array {
  const writer = new Writer(delta.length + 8)
  writer.byte(GOSSIP_VERSION)
  writer.byte(BATCH)
  writer.bytes(delta)
  return writer.finish()
}

/** The encoded delta of a gossip message. */
export function decodeGossipBatch(bytes: Uint8Array, limits: CodecLimits = DEFAULT_LIMITS): Uint8Array {
  if (bytes.length > limits.maxFrameBytes) throw new DecodeError('frame-too-large', `${bytes.length} bytes`)
  const reader = new Reader(bytes)
  const version = reader.byte('gossip version')
  if (version !== GOSSIP_VERSION) {
    throw new DecodeError('unknown-version', `gossip version ${version}, this peer speaks ${GOSSIP_VERSION}`)
  }
  const type = reader.byte('gossip type')
  if (type !== BATCH) throw new DecodeError('unknown-frame-type', `gossip message type ${type}`)
  const delta = reader.bytes('delta', limits.maxFrameBytes, 'value-too-large')
  reader.end()
  return delta
}

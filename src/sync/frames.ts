import { decodeContext, decodeDelta, encodeContext, encodeDelta } from '../codec/delta.ts'
import { DecodeError } from '../codec/errors.ts'
import { type CodecLimits, DEFAULT_LIMITS } from '../codec/limits.ts'
import { readHeads, writeHeads } from '../codec/signature.ts'
import { Reader, Writer } from '../codec/wire.ts'
import type { SignedHead } from '../crdt/attest.ts'
import type { Delta } from '../crdt/causal-map.ts'
import type { CausalContext } from '../crdt/context.ts'
import { SYNC_FRAME_VERSION } from './constants.ts'

/**
 * Frames of the anti-entropy protocol. Every frame starts with the version byte and a type byte:
 *
 *   OPEN    namespace:string digest:string context:bytes      initiator's first frame
 *   EQUAL                                                      digests match: nothing to do
 *   CONTEXT context:bytes                                      "send me what this context lacks"
 *   DELTAS  flags:u8 delta:bytes [heads] [held:bytes]          a chunk of what the other side lacks;
 *                                                              the final one (flag 1) ends with signed
 *                                                              heads, and (flag 2) with the dots the
 *                                                              sender holds, when both contexts are
 *                                                              equal but the states are not
 *   ERROR   code:string message:string                         refusal; the stream ends after it
 */

export type SyncFrame =
  | { type: 'open'; namespace: string; digest: string; context: CausalContext }
  | { type: 'equal' }
  | { type: 'context'; context: CausalContext }
  | {
      type: 'deltas'
      final: boolean
      delta: Delta
      heads?: readonly SignedHead[]
      /** Final frame only: every dot the sender holds (the equal-context repair). */
      held?: CausalContext
    }
  | { type: 'error'; code: string; message: string }

const TYPE_CODES = { open: 10, equal: 11, context: 12, deltas: 13, error: 14 } as const

export function encodeSyncFrame(frame: SyncFrame): Uint8Array {
  const writer = new Writer(64)
  writer.byte(SYNC_FRAME_VERSION)
  writer.byte(TYPE_CODES[frame.type])
  switch (frame.type) {
    case 'open':
      writer.string(frame.namespace)
      writer.string(frame.digest)
      writer.bytes(encodeContext(frame.context))
      break
    case 'context':
      writer.bytes(encodeContext(frame.context))
      break
    case 'deltas':
      if (!frame.final && ((frame.heads?.length ?? 0) > 0 || frame.held !== undefined))
        throw new TypeError('only the final DELTAS frame carries heads and held dots')
      writer.byte((frame.final ? 1 : 0) | (frame.held !== undefined ? 2 : 0))
      writer.bytes(encodeDelta(frame.delta))
      if (frame.final) writeHeads(writer, frame.heads ?? [])
      if (frame.held !== undefined) writer.bytes(encodeContext(frame.held))
      break
    case 'error':
      writer.string(frame.code.slice(0, 64))
      writer.string(frame.message.slice(0, 512))
      break
    case 'equal':
      break
  }
  return writer.finish()
}

/** Decodes one frame; throws only DecodeError. */
export function decodeSyncFrame(bytes: Uint8Array, limits: CodecLimits = DEFAULT_LIMITS): SyncFrame {
  const reader = new Reader(bytes)
  const version = reader.byte('sync version')
  if (version !== SYNC_FRAME_VERSION) {
    throw new DecodeError(
      'unknown-version',
      `sync frame version ${version}, this peer speaks ${SYNC_FRAME_VERSION}`,
    )
  }
  const type = reader.byte('sync frame type')
  let frame: SyncFrame
  switch (type) {
    case TYPE_CODES.open:
      frame = {
        type: 'open',
        namespace: reader.string('namespace', 64),
        digest: reader.string('digest', 64),
        context: decodeContext(reader.bytes('context', limits.maxFrameBytes, 'value-too-large'), limits),
      }
      break
    case TYPE_CODES.equal:
      frame = { type: 'equal' }
      break
    case TYPE_CODES.context:
      frame = {
        type: 'context',
        context: decodeContext(reader.bytes('context', limits.maxFrameBytes, 'value-too-large'), limits),
      }
      break
    case TYPE_CODES.deltas: {
      const flags = reader.byte('flags')
      if (flags > 3 || flags === 2) throw new DecodeError('invalid-field', `deltas flags ${flags}`)
      const final = (flags & 1) === 1
      const delta = decodeDelta(reader.bytes('delta', limits.maxFrameBytes, 'value-too-large'), limits)
      const heads = final ? readHeads(reader, limits.maxStrings, limits.maxStringBytes) : []
      frame = { type: 'deltas', final, delta, heads }
      if ((flags & 2) === 2) {
        frame.held = decodeContext(reader.bytes('held', limits.maxFrameBytes, 'value-too-large'), limits)
      }
      break
    }
    case TYPE_CODES.error:
      frame = { type: 'error', code: reader.string('code', 256), message: reader.string('message', 2048) }
      break
    default:
      throw new DecodeError('unknown-frame-type', `sync frame type ${type}`)
  }
  reader.end()
  return frame
}

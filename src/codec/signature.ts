import { hash } from 'node:crypto'
import type { SignedHead } from '../crdt/attest.ts'
import { type Entry, EntryKind } from '../crdt/entry.ts'
import { DecodeError } from './errors.ts'
import { readProof, writeProof } from './proof.ts'
import type { Reader, Writer } from './wire.ts'
import { Writer as ByteWriter } from './wire.ts'

/**
 * What an entry's author signs:
 *
 *   message = "hearsay/entry/v1" namespace:string replica:string counter:uint body-hash:32
 *   body    = key:string kind:u8 wall:uint logical:uint covers
 *             [value: content-type:string value:bytes | counter: increments:uint decrements:uint]
 *             [expires-at:uint, only on an expiring entry]
 *   covers  = n:uint (replica:string ranges){n}, replicas in sorted order
 *
 * The body is hashed (SHA-256) rather than signed whole, so a peer can keep and pass on an author's
 * signed head (dot, body hash, signature: ~160 bytes) after the entry itself is gone, and still
 * prove what that author wrote. The namespace is in the message so an entry cannot be replayed
 * into another namespace; the encoding is this file's own, independent of the wire and store
 * formats, so either can change without invalidating signatures.
 */

export const ENTRY_SIGNATURE_DOMAIN = 'hearsay/entry/v1'
export const SIGNATURE_BYTES = 64
export const BODY_HASH_BYTES = 32

/** SHA-256 of the canonical encoding of everything in an entry but its dot and signature. */
export function entryBodyHash(entry: Entry): Uint8Array {
  const writer = new ByteWriter(48 + entry.key.length + (entry.value?.length ?? 0))
  writer.string(entry.key)
  writer.byte(entry.kind)
  writer.uint(entry.wall)
  writer.uint(entry.logical)
  const covers = entry.covers.entries()
  writer.uint(covers.length)
  for (const [replica, ranges] of covers) {
    writer.string(replica)
    writer.uint(ranges.length / 2)
    for (const n of ranges) writer.uint(n)
  }
  if (entry.kind === EntryKind.Value) {
    writer.string(entry.contentType ?? '')
    writer.bytes(entry.value ?? new Uint8Array(0))
  } else if (entry.kind === EntryKind.Counter) {
    writer.uint(entry.increments ?? 0)
    writer.uint(entry.decrements ?? 0)
  }
  // Last and only when present: bodies of entries without expiry hash as they always did. The
  // value before it is length-prefixed, so the encoding stays unambiguous.
  if (entry.expiresAt !== undefined) writer.uint(entry.expiresAt)
  return hash('sha256', writer.view(), 'buffer')
}

/** The bytes an author signs for the entry (replica, counter) whose body hashes to `bodyHash`. */
export function entrySigningMessage(
  namespace: string,
  replica: string,
  counter: number,
  bodyHash: Uint8Array,
): Uint8Array {
  return encodeEntryMessage(namespace, replica, counter, bodyHash, 0)
}

/** SHA-256(0x00 ‖ entrySigningMessage(...)): the entry's leaf in a signed tree (see proof.ts). */
export function entryLeafHash(
  namespace: string,
  replica: string,
  counter: number,
  bodyHash: Uint8Array,
): Uint8Array {
  // The leading byte is left 0: the leaf prefix.
  return hash('sha256', encodeEntryMessage(namespace, replica, counter, bodyHash, 1), 'buffer')
}

/**
 * The encoded "domain namespace replica" that starts every message of one replica: a few replicas
 * write all entries a peer sees, so it is encoded once per replica, not per entry.
 */
const messagePrefixes = new Map<string, Uint8Array>()
const MAX_CACHED_PREFIXES = 10_000

function encodeEntryMessage(
  namespace: string,
  replica: string,
  counter: number,
  bodyHash: Uint8Array,
  leading: number,
): Uint8Array {
  const name = `${namespace.length}:${namespace}${replica}`
  let prefix = messagePrefixes.get(name)
  if (prefix === undefined) {
    const writer = new ByteWriter(ENTRY_SIGNATURE_DOMAIN.length + namespace.length + replica.length + 8)
    writer.string(ENTRY_SIGNATURE_DOMAIN)
    writer.string(namespace)
    writer.string(replica)
    prefix = writer.finish()
    if (messagePrefixes.size >= MAX_CACHED_PREFIXES) messagePrefixes.clear()
    messagePrefixes.set(name, prefix)
  }
  const out = new Uint8Array(leading + prefix.length + 8 + bodyHash.length)
  out.set(prefix, leading)
  let at = leading + prefix.length
  let value = counter
  while (value >= 0x80) {
    out[at++] = (value % 0x80) | 0x80
    value = Math.floor(value / 0x80)
  }
  out[at++] = value
  out.set(bodyHash, at)
  return out.subarray(0, at + bodyHash.length)
}

/**
 * Writes a list of signed heads: n:uint (replica:string counter:uint body-hash:32 proof:bytes){n}.
 * The proof (see proof.ts) is length-prefixed: 64 bytes for an entry signed alone, up to
 * MAX_PROOF_BYTES for one signed in a tree.
 */
export function writeHeads(writer: Writer, heads: readonly SignedHead[]): void {
  writer.uint(heads.length)
  for (const head of heads) {
    writer.string(head.replica)
    writer.uint(head.counter)
    writer.raw(head.bodyHash)
    writeProof(writer, head.signature)
  }
}

/** Reads what writeHeads wrote, at most `max` heads. */
export function readHeads(reader: Reader, max: number, maxStringBytes: number): SignedHead[] {
  return readHeadList(reader, max, maxStringBytes, (field) => readProof(reader, field).slice())
}

/**
 * Reads heads as writeHeads wrote them before proofs: each with a fixed 64-byte signature (stored
 * head lists of older stores).
 */
export function readLegacyHeads(reader: Reader, max: number, maxStringBytes: number): SignedHead[] {
  return readHeadList(reader, max, maxStringBytes, (field) => reader.fixed(field, SIGNATURE_BYTES).slice())
}

function readHeadList(
  reader: Reader,
  max: number,
  maxStringBytes: number,
  readSignature: (field: string) => Uint8Array,
): SignedHead[] {
  const count = reader.count('head count', max, 2 + BODY_HASH_BYTES + SIGNATURE_BYTES)
  const heads: SignedHead[] = new Array(count)
  for (let i = 0; i < count; i++) {
    const replica = reader.string('head replica', maxStringBytes)
    const counter = reader.uint('head counter')
    if (counter < 1) throw new DecodeError('invalid-field', 'head counter must be >= 1')
    const bodyHash = reader.fixed('head body hash', BODY_HASH_BYTES).slice()
    const signature = readSignature('head signature')
    heads[i] = { replica, counter, bodyHash, signature }
  }
  return heads
}

import { createHash } from 'node:crypto'
import { CausalContext } from '../crdt/context.ts'
import { type Covers, type Entry, EntryKind, NO_COVERS } from '../crdt/entry.ts'
import { entryOf } from './delta.ts'
import { DecodeError } from './errors.ts'
import { DEFAULT_LIMITS } from './limits.ts'
import { readProof, writeProof } from './proof.ts'
import { SIGNATURE_BYTES } from './signature.ts'
import { Reader, readRanges, Writer, writeRanges } from './wire.ts'

/**
 * Encodings that never leave this peer or travel only as opaque strings: the body of an entry as
 * a store keeps it (its key and dot live in their own columns) and the causal token of an ETag.
 */

/**
 * Stored entry bodies. Version 2 added the author's signature (version 1 bodies are refused), version
 * 3 an expiry; both with a fixed 64-byte signature, and still read. Versions 4 and 5 are 2 and 3 with
 * the signature replaced by a length-prefixed proof (see proof.ts); only they are written.
 */
const ENTRY_BODY_VERSION_SIGNED = 2
const ENTRY_BODY_VERSION_SIGNED_EXPIRING = 3
const ENTRY_BODY_VERSION = 4
const ENTRY_BODY_VERSION_EXPIRING = 5
const UNSIGNED = new Uint8Array(SIGNATURE_BYTES)

/** version:u8 kind:u8 wall:uint logical:uint [expires-at:uint, v5] proof:bytes covers [value | counter totals] */
export function encodeEntryBody(entry: Entry): Uint8Array {
  const proof = entry.signature ?? UNSIGNED
  const writer = new Writer(40 + proof.length + (entry.value?.length ?? 0))
  const expires = entry.expiresAt !== undefined
  writer.byte(expires ? ENTRY_BODY_VERSION_EXPIRING : ENTRY_BODY_VERSION)
  writer.byte(entry.kind)
  writer.uint(entry.wall)
  writer.uint(entry.logical)
  if (expires) writer.uint(entry.expiresAt!)
  writeProof(writer, proof)
  writeCovers(writer, entry.covers)
  if (entry.kind === EntryKind.Value) {
    writer.string(entry.contentType!)
    writer.bytes(entry.value!)
  } else if (entry.kind === EntryKind.Counter) {
    writer.uint(entry.increments!)
    writer.uint(entry.decrements!)
  }
  return writer.finish()
}

/**
 * Decodes a stored body. The value and signature are views into `data` (a fresh copy the store
 * handed over), so an entry costs one buffer in memory, not three.
 */
export function decodeEntryBody(key: string, replica: string, counter: number, data: Uint8Array): Entry {
  const reader = new Reader(data)
  const version = reader.byte('stored version')
  if (version < ENTRY_BODY_VERSION_SIGNED || version > ENTRY_BODY_VERSION_EXPIRING)
    throw new DecodeError('unknown-version', `stored entry version ${version}`)
  const kind = reader.byte('kind') as EntryKind
  const wall = reader.uint('wall')
  const logical = reader.uint('logical')
  const expiring = version === ENTRY_BODY_VERSION_EXPIRING || version === ENTRY_BODY_VERSION_SIGNED_EXPIRING
  const expiresAt = expiring ? reader.uint('expires at') : undefined
  const signature =
    version >= ENTRY_BODY_VERSION ? readProof(reader, 'proof') : reader.fixed('signature', SIGNATURE_BYTES)
  const covers = readCovers(reader)
  let entry: Entry
  if (kind === EntryKind.Value) {
    const contentType = reader.string('content type', DEFAULT_LIMITS.maxStringBytes)
    const value = reader.bytes('value', Number.MAX_SAFE_INTEGER, 'value-too-large')
    entry = entryOf(
      key,
      replica,
      counter,
      wall,
      logical,
      covers,
      kind,
      signature,
      value,
      contentType,
      undefined,
      expiresAt,
    )
  } else if (kind === EntryKind.Counter) {
    const increments = reader.uint('increments')
    const decrements = reader.uint('decrements')
    entry = entryOf(key, replica, counter, wall, logical, covers, kind, signature, undefined, undefined, {
      increments,
      decrements,
    })
  } else if (kind === EntryKind.Tombstone) {
    entry = entryOf(key, replica, counter, wall, logical, covers, kind, signature)
  } else {
    throw new DecodeError('invalid-field', `stored entry kind ${kind}`)
  }
  reader.end()
  return entry
}

/**
 * Version 2 names its key (a tag of it): a token used on another key is refused instead of
 * superseding dots that mean nothing there. Version 1 tokens did not; they are refused as such.
 */
const TOKEN_VERSION = 2
const KEY_TAG_BYTES = 4

/** What an If-Match token says: the key it was issued for (as a tag) and the dots its holder saw. */
export interface CausalToken {
  readonly keyTag: number
  readonly covers: Covers
}

/** A short hash of a key (internal key space) that a token carries to name its key. */
export function tokenKeyTag(key: string): number {
  return createHash('sha256').update(key, 'utf8').digest().readUInt32BE(0)
}

/** The causal token of a read or a write on `key`, as an opaque URL-safe string (an HTTP ETag). */
export function encodeToken(key: string, covers: Covers): string {
  const writer = new Writer()
  writer.byte(TOKEN_VERSION)
  const tag = tokenKeyTag(key)
  for (let shift = 24; shift >= 0; shift -= 8) writer.byte((tag >>> shift) & 0xff)
  // Sorted, so equal tokens are equal strings.
  const sorted = CausalContext.fromRanges(covers.entries().map(([replica, ranges]) => [replica, [...ranges]]))
  writeCovers(writer, sorted)
  return Buffer.from(writer.finish()).toString('base64url')
}

export function decodeToken(token: string): CausalToken {
  if (token.length > 16_384 || !/^[A-Za-z0-9_-]*$/.test(token)) {
    throw new DecodeError('invalid-field', 'token is not a base64url string of reasonable size')
  }
  const reader = new Reader(Buffer.from(token, 'base64url'))
  const version = reader.byte('token version')
  if (version === 1) {
    throw new DecodeError('unknown-version', 'token version 1 does not name its key: read the key again')
  }
  if (version !== TOKEN_VERSION) throw new DecodeError('unknown-version', `token version ${version}`)
  let keyTag = 0
  for (let i = 0; i < KEY_TAG_BYTES; i++) keyTag = keyTag * 256 + reader.byte('token key tag')
  const covers = readCovers(reader)
  reader.end()
  return { keyTag, covers }
}

/** Covers inline, replica ids as strings: count (replica ranges (gap length){ranges}){count}. */
function writeCovers(writer: Writer, covers: Covers): void {
  writer.uint(covers.replicaCount)
  for (const [replica, ranges] of covers.unsortedEntries()) {
    writer.string(replica)
    writeRanges(writer, ranges)
  }
}

function readCovers(reader: Reader): Covers {
  const count = reader.count('covers replicas', DEFAULT_LIMITS.maxStrings, 2)
  if (count === 0) return NO_COVERS
  const parsed: Array<[string, number[]]> = []
  for (let i = 0; i < count; i++) {
    const replica = reader.string('covers replica', DEFAULT_LIMITS.maxStringBytes)
    const flat = readRanges(reader, 'covers', DEFAULT_LIMITS.maxRanges)
    parsed.push([replica, flat])
  }
  return CausalContext.fromRanges(parsed)
}

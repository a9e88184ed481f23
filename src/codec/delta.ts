import type { Delta } from '../crdt/causal-map.ts'
import { CausalContext } from '../crdt/context.ts'
import { type Covers, type Entry, EntryKind, NO_COVERS } from '../crdt/entry.ts'
import { DecodeError } from './errors.ts'
import { type CodecLimits, DEFAULT_LIMITS } from './limits.ts'
import { HASH_BYTES, MAX_TREE_LEAVES, parseProof, pathNodes } from './proof.ts'
import { SIGNATURE_BYTES } from './signature.ts'
import { Reader, readRanges, Writer, writeRanges } from './wire.ts'

/**
 * Binary encoding of deltas, version 3 (version 1 had no signatures, version 2 a fixed 64-byte
 * signature per entry).
 *
 *   frame   = version:u8 type:u8 body
 *   delta   = strings entries context
 *   strings = n:uint (utf8-string){n}              replica ids and content types, by first use
 *   entry   = key:string kind:u8 replica:uint(idx) counter:uint wall:int(Δ previous) logical:uint
 *             [expires-at:uint, when kind has bit 0x80] proof covers:context-body
 *             value: contentType:uint(idx) bytes | counter: increments:uint decrements:uint
 *   proof   = 0:u8 signature:64                               signed alone
 *           | 1:u8 signature:64 index:u8 leaves:u8 path'      a leaf of a tree (proof.ts) the frame
 *                                                             names here first (trees count from 0)
 *           | 2:u8 tree:uint index:u8 path'                   a leaf of a tree named earlier
 *   path'   = the leaf's path hashes (proof.ts), less those an earlier entry of the same tree in
 *             the frame carried: each node of a tree travels once per frame
 *   context = n:uint (replica:uint(idx) ranges:(m:uint (gap:uint len:uint){m})){n}
 *
 * Replica ids (long PeerIds) are written once per frame, wall clocks as differences from the
 * previous entry, and context ranges as gaps and lengths, so a frame costs a few bytes per entry
 * beyond its keys and values, plus the author's proof (see proof.ts): a 64-byte signature for an
 * entry signed alone; for the entries of a tree (one commit turn) that travel together, the
 * signature once and each tree node once, ~64 bytes per entry for a whole tree, as much as a
 * signature each cost. An entry without a signature (the pure CRDT layer, size benchmarks) is
 * written with 64 zero bytes, which no verifier accepts.
 *
 * An expiring value entry (TTL) sets bit 0x80 of its kind byte and carries its absolute expiry (HLC
 * wall ms) after `logical`. Frames without expiring entries are byte for byte what they were, so the
 * version did not change; a peer that predates expiry refuses a frame holding one (unknown kind)
 * rather than keeping the value forever.
 */

/** Bit of the kind byte that says an expiry follows `logical`. */
const EXPIRES_FLAG = 0x80

export const CODEC_VERSION = 3

export const FrameType = {
  Delta: 1,
} as const

const KEY_KINDS: Record<string, EntryKind[]> = {
  r: [EntryKind.Value, EntryKind.Tombstone],
  s: [EntryKind.Value, EntryKind.Tombstone],
  c: [EntryKind.Counter, EntryKind.Tombstone],
}

class StringTable {
  readonly list: string[] = []
  private readonly index = new Map<string, number>()

  id(value: string): number {
    let id = this.index.get(value)
    if (id === undefined) {
      id = this.list.length
      this.list.push(value)
      this.index.set(value, id)
    }
    return id
  }
}

/**
 * About how many bytes an entry takes in a frame, without encoding it: its key and value, ~32 bytes
 * of kind, dot, clock and framing, ~64 of proof (a signature; the entries of a tree that travel
 * together share theirs and each tree node once, about as much per entry; an entry that travels
 * without the rest of its tree costs up to 160 bytes more), and ~8 per range of what it covers. For
 * sizing batches and chunks.
 */
export function estimateEncodedSize(entry: Entry): number {
  return entry.key.length + (entry.value?.length ?? 0) + 96 + entry.covers.rangeCount() * 8
}

export function encodeDelta(delta: Delta): Uint8Array {
  const table = new StringTable()
  // Body first so the string table is complete, then the header and table in front of it.
  const body = new Writer(64 + delta.entries.length * 96)
  body.uint(delta.entries.length)
  let previousWall = 0
  const proofs = new ProofWriter()
  for (const entry of delta.entries) {
    body.string(entry.key)
    const expires = entry.expiresAt !== undefined
    body.byte(expires ? entry.kind | EXPIRES_FLAG : entry.kind)
    body.uint(table.id(entry.replica))
    body.uint(entry.counter)
    body.int(entry.wall - previousWall)
    previousWall = entry.wall
    body.uint(entry.logical)
    if (expires) body.uint(entry.expiresAt!)
    proofs.write(body, entry.signature ?? UNSIGNED)
    writeContextBody(body, entry.covers, table)
    if (entry.kind === EntryKind.Value) {
      body.uint(table.id(entry.contentType!))
      body.bytes(entry.value!)
    } else if (entry.kind === EntryKind.Counter) {
      body.uint(entry.increments!)
      body.uint(entry.decrements!)
    }
  }
  writeContextBody(body, delta.context, table)
  const encodedBody = body.finish()

  const out = new Writer(encodedBody.length + 16 + table.list.length * 48)
  out.byte(CODEC_VERSION)
  out.byte(FrameType.Delta)
  out.uint(table.list.length)
  for (const value of table.list) out.string(value)
  out.raw(encodedBody)
  return out.finish()
}

export function decodeDelta(bytes: Uint8Array, limits: CodecLimits = DEFAULT_LIMITS): Delta {
  const reader = openFrame(bytes, FrameType.Delta, limits)
  const strings = readStrings(reader, limits)
  // The smallest entry names a tree of the frame by its number: a tag, the number and an index.
  const entryCount = reader.count('entry count', limits.maxEntries, 9)
  const entries: Entry[] = new Array(entryCount)
  let previousWall = 0
  const proofs = new ProofReader()
  for (let i = 0; i < entryCount; i++) {
    const key = reader.string('key', limits.maxKeyBytes, 'key-too-long')
    const kindByte = reader.byte('kind')
    const kind = (kindByte & ~EXPIRES_FLAG) as EntryKind
    const expires = (kindByte & EXPIRES_FLAG) !== 0
    if (expires && kind !== EntryKind.Value)
      throw new DecodeError('invalid-field', `entry ${i}: only a value entry may expire`)
    const allowed = KEY_KINDS[key[0]]
    if (allowed === undefined)
      throw new DecodeError('invalid-field', `entry ${i}: key has no known type prefix`)
    if (!allowed.includes(kind))
      throw new DecodeError('invalid-field', `entry ${i}: kind ${kind} not valid for key`)
    if (key[0] === 's' && !key.includes('\u0000')) {
      throw new DecodeError('invalid-field', `entry ${i}: set entry without element`)
    }
    const replica = pick(strings, reader.uint('replica'), 'replica')
    const counter = positive(reader.uint('counter'), 'counter')
    const wall = previousWall + reader.int('wall')
    if (wall < 0 || !Number.isSafeInteger(wall))
      throw new DecodeError('invalid-field', `entry ${i}: wall clock`)
    previousWall = wall
    const logical = reader.uint('logical')
    const expiresAt = expires ? reader.uint('expires at') : undefined
    const signature = proofs.read(reader, i)
    const encodedCovers = readContextBody(reader, strings, limits)
    const covers: Covers = encodedCovers.isEmpty() ? NO_COVERS : encodedCovers
    if (kind === EntryKind.Value) {
      const contentType = pick(strings, reader.uint('content type'), 'content type')
      const value = reader.bytes('value', limits.maxValueBytes, 'value-too-large').slice()
      entries[i] = entryOf(
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
      entries[i] = entryOf(
        key,
        replica,
        counter,
        wall,
        logical,
        covers,
        kind,
        signature,
        undefined,
        undefined,
        {
          increments,
          decrements,
        },
      )
    } else {
      entries[i] = entryOf(key, replica, counter, wall, logical, covers, kind, signature)
    }
  }
  const context = readContextBody(reader, strings, limits)
  reader.end()
  for (const entry of entries) {
    if (!context.has(entry.replica, entry.counter)) {
      throw new DecodeError(
        'invalid-field',
        `entry ${entry.replica}:${entry.counter} is missing from the context`,
      )
    }
  }
  return { entries, context }
}

/** Every decoded entry gets the same object shape as a written one (monomorphic hot paths). */
export function entryOf(
  key: string,
  replica: string,
  counter: number,
  wall: number,
  logical: number,
  covers: Covers,
  kind: EntryKind,
  signature: Uint8Array | undefined,
  value?: Uint8Array,
  contentType?: string,
  totals?: { increments: number; decrements: number },
  expiresAt?: number,
): Entry {
  return {
    key,
    replica,
    counter,
    wall,
    logical,
    covers,
    kind,
    value,
    contentType,
    increments: totals?.increments,
    decrements: totals?.decrements,
    expiresAt,
    signature,
  }
}

const UNSIGNED = new Uint8Array(SIGNATURE_BYTES)

const ProofTag = { Alone: 0, NewTree: 1, Tree: 2 } as const

/** Bytes of a tree proof's index and leaf count (each below 128, one byte). */
const TREE_POSITION_BYTES = 2
const TREE_HEAD_BYTES = SIGNATURE_BYTES + TREE_POSITION_BYTES

/** A tree an earlier entry of the frame named: its signature and leaf count, and the path nodes seen. */
interface FrameTree {
  readonly id: number
  /** Signature, then (index, leaf count) of the entry that named it. */
  readonly head: Uint8Array
  readonly known: Map<number, Uint8Array>
}

/**
 * Writes entry proofs so that the entries of one tree travel in a frame at little more than the
 * signature they used to carry each: the tree's signature once, and each path node once.
 */
class ProofWriter {
  private readonly trees = new Map<string, FrameTree>()

  write(writer: Writer, proof: Uint8Array): void {
    if (proof.length === SIGNATURE_BYTES) {
      writer.byte(ProofTag.Alone)
      writer.raw(proof)
      return
    }
    const parsed = parseProof(proof)
    if (typeof parsed === 'string') throw new TypeError(`cannot encode an entry proof: ${parsed}`)
    const { index, leaves } = parsed
    const nodes = pathNodes(index, leaves)
    const name = `${Buffer.from(proof.subarray(0, SIGNATURE_BYTES)).toString('latin1')}${leaves}`
    let tree = this.trees.get(name)
    // An entry whose path disagrees with what the frame already holds for its tree (never one of a
    // proof that verifies) names the tree anew, so its own hashes are written and read back.
    if (tree !== undefined && !this.agrees(tree, proof, nodes)) tree = undefined
    if (tree === undefined) {
      tree = { id: this.trees.size, head: proof.subarray(0, TREE_HEAD_BYTES), known: new Map() }
      this.trees.set(name, tree)
      writer.byte(ProofTag.NewTree)
      writer.raw(tree.head)
    } else {
      writer.byte(ProofTag.Tree)
      writer.uint(tree.id)
      writer.byte(index)
    }
    nodes.forEach((node, k) => {
      if (tree.known.has(node)) return
      const hash = proof.subarray(TREE_HEAD_BYTES + k * HASH_BYTES, TREE_HEAD_BYTES + (k + 1) * HASH_BYTES)
      tree.known.set(node, hash)
      writer.raw(hash)
    })
  }

  private agrees(tree: FrameTree, proof: Uint8Array, nodes: readonly number[]): boolean {
    return nodes.every((node, k) => {
      const known = tree.known.get(node)
      if (known === undefined) return true
      const start = TREE_HEAD_BYTES + k * HASH_BYTES
      return Buffer.compare(known, proof.subarray(start, start + HASH_BYTES)) === 0
    })
  }
}

/** Reads what ProofWriter wrote; returns each entry's whole proof (a fresh copy). */
class ProofReader {
  private readonly trees: FrameTree[] = []

  read(reader: Reader, i: number): Uint8Array {
    const tag = reader.byte('proof tag')
    if (tag === ProofTag.Alone) return reader.fixed('signature', SIGNATURE_BYTES).slice()
    let tree: FrameTree
    let index: number
    if (tag === ProofTag.NewTree) {
      const head = reader.fixed('proof', TREE_HEAD_BYTES).slice()
      index = head[SIGNATURE_BYTES]
      tree = { id: this.trees.length, head, known: new Map() }
      this.trees.push(tree)
    } else if (tag === ProofTag.Tree) {
      const id = reader.uint('proof tree')
      const named = this.trees[id]
      if (named === undefined)
        throw new DecodeError('invalid-field', `entry ${i}: proof tree ${id} of ${this.trees.length}`)
      tree = named
      index = reader.byte('proof index')
    } else {
      throw new DecodeError('invalid-field', `entry ${i}: proof tag ${tag}`)
    }
    const leaves = tree.head[SIGNATURE_BYTES + 1]
    if (leaves < 2 || leaves > MAX_TREE_LEAVES || index >= leaves)
      throw new DecodeError('invalid-field', `entry ${i}: proof for leaf ${index} of ${leaves}`)
    const nodes = pathNodes(index, leaves)
    const proof = new Uint8Array(TREE_HEAD_BYTES + nodes.length * HASH_BYTES)
    proof.set(tree.head.subarray(0, SIGNATURE_BYTES))
    proof[SIGNATURE_BYTES] = index
    proof[SIGNATURE_BYTES + 1] = leaves
    nodes.forEach((node, k) => {
      let hash = tree.known.get(node)
      if (hash === undefined) {
        hash = reader.fixed('proof path', HASH_BYTES).slice()
        tree.known.set(node, hash)
      }
      proof.set(hash, TREE_HEAD_BYTES + k * HASH_BYTES)
    })
    return proof
  }
}

// ---- causal contexts ----------------------------------------------------------------------

export function encodeContext(context: CausalContext): Uint8Array {
  const table = new StringTable()
  const body = new Writer()
  writeContextBody(body, context, table)
  const out = new Writer()
  out.uint(table.list.length)
  for (const value of table.list) out.string(value)
  out.raw(body.finish())
  return out.finish()
}

export function decodeContext(bytes: Uint8Array, limits: CodecLimits = DEFAULT_LIMITS): CausalContext {
  if (bytes.length > limits.maxFrameBytes) throw new DecodeError('frame-too-large', `${bytes.length} bytes`)
  const reader = new Reader(bytes)
  const strings = readStrings(reader, limits)
  const context = readContextBody(reader, strings, limits)
  reader.end()
  return context
}

function writeContextBody(writer: Writer, context: CausalContext, table: StringTable): void {
  const entries = context.entries()
  writer.uint(entries.length)
  for (const [replica, ranges] of entries) {
    writer.uint(table.id(replica))
    writeRanges(writer, ranges)
  }
}

function readContextBody(reader: Reader, strings: string[], limits: CodecLimits): CausalContext {
  const replicaCount = reader.count('context replicas', limits.maxStrings, 2)
  const parsed: Array<[string, number[]]> = []
  let totalRanges = 0
  for (let i = 0; i < replicaCount; i++) {
    const replica = pick(strings, reader.uint('context replica'), 'context replica')
    const flat = readRanges(reader, 'context', limits.maxRanges - totalRanges)
    totalRanges += flat.length / 2
    parsed.push([replica, flat])
  }
  return CausalContext.fromRanges(parsed)
}

// ---- shared helpers -----------------------------------------------------------------------

function openFrame(bytes: Uint8Array, type: number, limits: CodecLimits): Reader {
  if (!(bytes instanceof Uint8Array)) throw new DecodeError('invalid-field', 'frame is not bytes')
  if (bytes.length > limits.maxFrameBytes) {
    throw new DecodeError('frame-too-large', `${bytes.length} bytes > limit ${limits.maxFrameBytes}`)
  }
  const reader = new Reader(bytes)
  const version = reader.byte('version')
  if (version !== CODEC_VERSION) {
    throw new DecodeError('unknown-version', `codec version ${version}, this peer speaks ${CODEC_VERSION}`)
  }
  const frameType = reader.byte('frame type')
  if (frameType !== type)
    throw new DecodeError('unknown-frame-type', `frame type ${frameType}, expected ${type}`)
  return reader
}

function readStrings(reader: Reader, limits: CodecLimits): string[] {
  const count = reader.count('string count', limits.maxStrings, 1)
  const strings = new Array<string>(count)
  for (let i = 0; i < count; i++) strings[i] = reader.string('string', limits.maxStringBytes)
  return strings
}

function pick(strings: string[], index: number, field: string): string {
  const value = strings[index]
  if (value === undefined)
    throw new DecodeError('invalid-field', `${field} refers to string ${index} of ${strings.length}`)
  return value
}

function positive(value: number, field: string): number {
  if (value < 1) throw new DecodeError('invalid-field', `${field} must be >= 1`)
  return value
}

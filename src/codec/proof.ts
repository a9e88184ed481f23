import { hash } from 'node:crypto'
import { DecodeError } from './errors.ts'
import { type Reader, Writer } from './wire.ts'

/**
 * Entry proofs: one Ed25519 signature per commit turn instead of one per entry.
 *
 * A replica signs the entries it commits in one turn together: a Merkle tree over them (RFC 6962
 * shape, an odd node is promoted) whose root it signs once. Each entry carries a proof that it is a
 * leaf of a signed root, so it stays verifiable on its own wherever it travels:
 *
 *   leaf    = SHA-256(0x00 ‖ entry signing message)                (see signature.ts)
 *   node    = SHA-256(0x01 ‖ left ‖ right)
 *   signed  = "hearsay/batch/v1":string namespace:string leaves:uint root:32
 *   proof   = signature:64                                          a tree of one leaf: the signature
 *                                                                   over the entry signing message
 *           | signature:64 index:uint leaves:uint path:32{depth}    a tree of 2..32 leaves
 *
 * A one-leaf proof is byte for byte the 64-byte signature entries carried before, so stored entries
 * and signed heads from before stay valid. The path holds exactly the siblings the leaf's position
 * needs (no more, no fewer), so a proof has one encoding. A tree holds at most 32 leaves: a proof is
 * at most 64 + 2 + 5 × 32 = 226 bytes.
 */

/** An Ed25519 signature (signature.ts's SIGNATURE_BYTES; not imported, signature.ts imports this file). */
const SIGNATURE_BYTES = 64

export const BATCH_SIGNATURE_DOMAIN = 'hearsay/batch/v1'
export const HASH_BYTES = 32
/** Leaves of one tree at most: more entries in a turn are signed as several trees. */
export const MAX_TREE_LEAVES = 32
/** Path hashes of the deepest tree (32 leaves). */
const MAX_PATH_HASHES = 5
/** The largest proof: signature, index and leaf count (one byte each below 128), the deepest path. */
export const MAX_PROOF_BYTES = SIGNATURE_BYTES + 2 + MAX_PATH_HASHES * HASH_BYTES

/**
 * The leaf of an entry: the hash of what a one-leaf proof signs (signature.ts's entryLeafHash
 * computes the same from the entry's dot and body hash, without this copy).
 */
export function leafHash(entryMessage: Uint8Array): Uint8Array {
  const input = new Uint8Array(1 + entryMessage.length)
  input.set(entryMessage, 1)
  return hash('sha256', input, 'buffer')
}

/** 0x01 ‖ left ‖ right, reused: one-shot hashing of one buffer costs less than a Hash object. */
const nodeInput = new Uint8Array(1 + 2 * HASH_BYTES)
nodeInput[0] = 1

function nodeHash(left: Uint8Array, right: Uint8Array): Uint8Array {
  nodeInput.set(left, 1)
  nodeInput.set(right, 1 + HASH_BYTES)
  return hash('sha256', nodeInput, 'buffer')
}

/** Every level of the tree over `leaves` (at least one), leaves first, the root last. */
export function merkleLevels(leaves: readonly Uint8Array[]): Uint8Array[][] {
  if (leaves.length === 0) throw new RangeError('a Merkle tree needs at least one leaf')
  const levels: Uint8Array[][] = [[...leaves]]
  let level = levels[0]
  while (level.length > 1) {
    const next: Uint8Array[] = []
    for (let i = 0; i < level.length; i += 2)
      next.push(i + 1 < level.length ? nodeHash(level[i], level[i + 1]) : level[i])
    levels.push(next)
    level = next
  }
  return levels
}

/** The siblings leaf `index` needs to reach the root, bottom up (a promoted node has none). */
export function merklePath(levels: readonly Uint8Array[][], index: number): Uint8Array[] {
  const path: Uint8Array[] = []
  for (let depth = 0; depth < levels.length - 1; depth++) {
    const level = levels[depth]
    const sibling = index ^ 1
    if (sibling < level.length) path.push(level[sibling])
    index >>= 1
  }
  return path
}

/** How many path hashes leaf `index` of a tree of `leaves` needs. */
export function pathLength(index: number, leaves: number): number {
  let length = 0
  for (let width = leaves; width > 1; width = Math.ceil(width / 2)) {
    if ((index ^ 1) < width) length++
    index >>= 1
  }
  return length
}

/**
 * The tree nodes leaf `index`'s path holds, in path order, each as level × 64 + position within its
 * level: leaves of one tree whose paths name the same node carry the same hash there.
 */
export function pathNodes(index: number, leaves: number): number[] {
  const nodes: number[] = []
  let level = 0
  for (let width = leaves; width > 1; width = Math.ceil(width / 2)) {
    const sibling = index ^ 1
    if (sibling < width) nodes.push(level * 64 + sibling)
    index >>= 1
    level++
  }
  return nodes
}

/** The root that leaf `index` of `leaves` and its path lead to. */
export function rootFromPath(
  leaf: Uint8Array,
  index: number,
  leaves: number,
  path: readonly Uint8Array[],
): Uint8Array | undefined {
  if (!(index >= 0 && index < leaves)) return undefined
  let hash = leaf
  let used = 0
  for (let width = leaves; width > 1; width = Math.ceil(width / 2)) {
    const odd = (index & 1) === 1
    if (odd || index + 1 < width) {
      const sibling = path[used++]
      if (sibling === undefined) return undefined
      hash = odd ? nodeHash(sibling, hash) : nodeHash(hash, sibling)
    }
    index >>= 1
  }
  return used === path.length ? hash : undefined
}

/** The bytes an author signs for a tree of `leaves` entries of `namespace` with root `root`. */
export function batchSigningMessage(namespace: string, leaves: number, root: Uint8Array): Uint8Array {
  const writer = new Writer(BATCH_SIGNATURE_DOMAIN.length + namespace.length + 40)
  writer.string(BATCH_SIGNATURE_DOMAIN)
  writer.string(namespace)
  writer.uint(leaves)
  writer.raw(root)
  return writer.finish()
}

/** A proof's parts: for a one-leaf proof `leaves` is 1 and the path is empty. */
export interface EntryProof {
  readonly signature: Uint8Array
  readonly index: number
  readonly leaves: number
  readonly path: readonly Uint8Array[]
}

/** The proof bytes of leaf `index` of a tree of `leaves` (2..32) signed with `signature`. */
export function encodeTreeProof(
  signature: Uint8Array,
  index: number,
  leaves: number,
  path: readonly Uint8Array[],
): Uint8Array {
  const writer = new Writer(SIGNATURE_BYTES + 2 + path.length * HASH_BYTES)
  writer.raw(signature)
  writer.uint(index)
  writer.uint(leaves)
  for (const hash of path) writer.raw(hash)
  return writer.finish()
}

/** A proof's parts, or a string saying why the bytes are not a well-formed proof. */
export function parseProof(bytes: Uint8Array): EntryProof | string {
  if (bytes.length === SIGNATURE_BYTES) return { signature: bytes, index: 0, leaves: 1, path: [] }
  if (bytes.length < SIGNATURE_BYTES + 2 + HASH_BYTES || bytes.length > MAX_PROOF_BYTES)
    return `a proof of ${bytes.length} bytes`
  // Index and leaf count are below 128: one byte each.
  const index = bytes[SIGNATURE_BYTES]
  const leaves = bytes[SIGNATURE_BYTES + 1]
  if (leaves < 2 || leaves > MAX_TREE_LEAVES) return `a proof for a tree of ${leaves} leaves`
  if (index >= leaves) return `a proof for leaf ${index} of ${leaves}`
  const hashes = pathLength(index, leaves)
  if (bytes.length !== SIGNATURE_BYTES + 2 + hashes * HASH_BYTES)
    return `a proof for leaf ${index} of ${leaves} needs ${hashes} path hashes`
  const path: Uint8Array[] = new Array(hashes)
  for (let i = 0; i < hashes; i++) {
    const start = SIGNATURE_BYTES + 2 + i * HASH_BYTES
    path[i] = bytes.subarray(start, start + HASH_BYTES)
  }
  return { signature: bytes.subarray(0, SIGNATURE_BYTES), index, leaves, path }
}

/** Writes a proof length-prefixed. */
export function writeProof(writer: Writer, proof: Uint8Array): void {
  writer.bytes(proof)
}

/** Reads a length-prefixed proof (a view): refuses one beyond MAX_PROOF_BYTES or malformed. */
export function readProof(reader: Reader, field: string): Uint8Array {
  const length = reader.uint(`${field} length`)
  if (length > MAX_PROOF_BYTES)
    throw new DecodeError('invalid-field', `${field}: ${length} bytes > limit ${MAX_PROOF_BYTES}`)
  const proof = reader.fixed(field, length)
  const parsed = parseProof(proof)
  if (typeof parsed === 'string') throw new DecodeError('invalid-field', `${field}: ${parsed}`)
  return proof
}

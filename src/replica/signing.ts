import {
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  type KeyObject,
  sign,
  verify,
} from 'node:crypto'
import { publicKeyFromRaw } from '@libp2p/crypto/keys'
import type { PrivateKey } from '@libp2p/interface'
import { peerIdFromPublicKey, peerIdFromString } from '@libp2p/peer-id'
import { DecodeError } from '../codec/errors.ts'
import { DEFAULT_LIMITS } from '../codec/limits.ts'
import {
  batchSigningMessage,
  encodeTreeProof,
  MAX_TREE_LEAVES,
  merkleLevels,
  merklePath,
  parseProof,
  rootFromPath,
} from '../codec/proof.ts'
import {
  entryBodyHash,
  entryLeafHash,
  entrySigningMessage,
  readHeads,
  readLegacyHeads,
  SIGNATURE_BYTES,
  writeHeads,
} from '../codec/signature.ts'
import { Reader, Writer } from '../codec/wire.ts'
import type { SignedHead } from '../crdt/attest.ts'
import type { Entry } from '../crdt/entry.ts'
import { HearsayError } from '../errors.ts'

/**
 * Entry signatures: every entry is signed by its author, the peer whose PeerId is the author part of
 * the replica id (`<PeerId>~<incarnation>`; an Ed25519 PeerId embeds its public key), so any peer can
 * check any entry wherever it came from. node:crypto signs and verifies synchronously (~50 µs and
 * ~130 µs), which keeps signing inside the commit path.
 *
 * The entries a replica commits in one turn are signed together: one signature over the root of a
 * Merkle tree of them, and per entry a proof of its leaf (codec/proof.ts). A peer that verified a
 * root remembers it (VerifiedRoots), so the other entries of that turn cost a few hashes each,
 * wherever and in whatever order they arrive; an entry signed alone costs one verification as before.
 */

/** Signs with one peer's identity key. */
export interface EntrySigner {
  /** The PeerId of the key: the author part of the replica ids it signs for. */
  readonly peerId: string
  sign(message: Uint8Array): Uint8Array
}

/** Checks that `author` (a PeerId string) signed `message`. False for anything not a valid signature. */
export type SignatureVerifier = (author: string, message: Uint8Array, signature: Uint8Array) => boolean

/** A signer over a libp2p Ed25519 identity key (the peer's own). */
export function createEntrySigner(privateKey: PrivateKey): EntrySigner {
  if (privateKey.type !== 'Ed25519') throw new TypeError('entry signing needs an Ed25519 identity key')
  // libp2p's raw Ed25519 private key is seed ‖ public key.
  const seed = privateKey.raw.subarray(0, 32)
  const key = createPrivateKey({
    key: {
      kty: 'OKP',
      crv: 'Ed25519',
      d: Buffer.from(seed).toString('base64url'),
      x: Buffer.from(privateKey.publicKey.raw).toString('base64url'),
    },
    format: 'jwk',
  })
  return signerOf(key, peerIdFromPublicKey(privateKey.publicKey).toString())
}

/** A signer with a fresh key: for a replica that runs without a peer identity (tests, tools). */
export function generateEntrySigner(): EntrySigner {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519')
  const raw = Buffer.from(publicKey.export({ format: 'jwk' }).x as string, 'base64url')
  return signerOf(privateKey, peerIdFromPublicKey(publicKeyFromRaw(raw)).toString())
}

function signerOf(key: KeyObject, peerId: string): EntrySigner {
  return { peerId, sign: (message) => sign(null, message, key) }
}

/**
 * Author PeerId → its public key as a node:crypto KeyObject (null: not an Ed25519 PeerId). Verifying
 * through @libp2p/crypto imports the key from JWK on every call, which costs more than the
 * verification itself; one process sees few authors, so the cache is small.
 */
const authorKeys = new Map<string, KeyObject | null>()
const MAX_CACHED_KEYS = 10_000

function authorKey(author: string): KeyObject | null {
  let key = authorKeys.get(author)
  if (key === undefined) {
    key = null
    try {
      const publicKey = peerIdFromString(author).publicKey
      if (publicKey?.type === 'Ed25519') {
        key = createPublicKey({
          key: { kty: 'OKP', crv: 'Ed25519', x: Buffer.from(publicKey.raw).toString('base64url') },
          format: 'jwk',
        })
      }
    } catch {
      key = null
    }
    if (authorKeys.size >= MAX_CACHED_KEYS) authorKeys.clear()
    authorKeys.set(author, key)
  }
  return key
}

/** The default verifier: Ed25519 with the public key embedded in the author's PeerId. */
export const verifyEd25519: SignatureVerifier = (author, message, signature) => {
  const key = authorKey(author)
  if (key === null || signature.length !== SIGNATURE_BYTES) return false
  try {
    return verify(null, message, key, signature)
  } catch {
    return false
  }
}

/** The author part of a replica id: the peer id its writes are signed by. */
export function replicaAuthor(replica: string): string {
  const at = replica.lastIndexOf('~')
  return at < 0 ? replica : replica.slice(0, at)
}

/** Signs an entry of `namespace` alone; returns its head (the signature and the body hash it covers). */
export function signEntry(signer: EntrySigner, namespace: string, entry: Entry): SignedHead {
  const bodyHash = entryBodyHash(entry)
  const signature = signer.sign(entrySigningMessage(namespace, entry.replica, entry.counter, bodyHash))
  return { replica: entry.replica, counter: entry.counter, bodyHash, signature }
}

/**
 * Signs entries of `namespace` written together: one signature per tree of up to MAX_TREE_LEAVES
 * entries (a tree of one is a plain signature). Returns each entry's head, in order; its `signature`
 * is the entry's proof.
 */
export function signEntries(signer: EntrySigner, namespace: string, entries: readonly Entry[]): SignedHead[] {
  const heads: SignedHead[] = []
  for (let start = 0; start < entries.length; start += MAX_TREE_LEAVES) {
    const tree = entries.slice(start, start + MAX_TREE_LEAVES)
    if (tree.length === 1) {
      heads.push(signEntry(signer, namespace, tree[0]))
      continue
    }
    const bodyHashes = tree.map((entry) => entryBodyHash(entry))
    const leaves = tree.map((entry, i) =>
      entryLeafHash(namespace, entry.replica, entry.counter, bodyHashes[i]),
    )
    const levels = merkleLevels(leaves)
    const root = levels[levels.length - 1][0]
    const signature = signer.sign(batchSigningMessage(namespace, tree.length, root))
    tree.forEach((entry, i) => {
      heads.push({
        replica: entry.replica,
        counter: entry.counter,
        bodyHash: bodyHashes[i],
        signature: encodeTreeProof(signature, i, tree.length, merklePath(levels, i)),
      })
    })
  }
  return heads
}

/**
 * Tree roots whose signature checked out, per author and namespace, with that signature: a proof
 * whose path leads to one of them, carrying the same signature, needs no verification of its own.
 * Only verified roots enter; bounded (cleared when full: a refill costs one verification per tree).
 */
export class VerifiedRoots {
  private readonly roots = new Map<string, Uint8Array>()
  private readonly max: number

  constructor(max = 10_000) {
    this.max = max
  }

  get size(): number {
    return this.roots.size
  }

  has(key: string, signature: Uint8Array): boolean {
    const known = this.roots.get(key)
    return known !== undefined && Buffer.compare(known, signature) === 0
  }

  add(key: string, signature: Uint8Array): void {
    if (this.roots.size >= this.max) this.roots.clear()
    this.roots.set(key, signature.slice())
  }

  clear(): void {
    this.roots.clear()
  }
}

/** One cache per verifier: a root another verifier accepted says nothing about this one. */
const rootCaches = new WeakMap<SignatureVerifier, VerifiedRoots>()

/** The verified roots `verifier`'s checks share in this process. */
export function verifiedRootsOf(verifier: SignatureVerifier): VerifiedRoots {
  let roots = rootCaches.get(verifier)
  if (roots === undefined) {
    roots = new VerifiedRoots()
    rootCaches.set(verifier, roots)
  }
  return roots
}

/**
 * Checks that `proof` proves the author of `replica` wrote (replica, counter) with body hash
 * `bodyHash` in `namespace`: a signature over the entry alone, or a path to a tree root the author
 * signed. A root is verified once per `roots` (then remembered); a root whose signature fails is not.
 */
export function verifyProof(
  namespace: string,
  replica: string,
  counter: number,
  bodyHash: Uint8Array,
  proof: Uint8Array,
  verifier: SignatureVerifier = verifyEd25519,
  roots: VerifiedRoots = verifiedRootsOf(verifier),
): boolean {
  const author = replicaAuthor(replica)
  if (proof.length === SIGNATURE_BYTES)
    return verifier(author, entrySigningMessage(namespace, replica, counter, bodyHash), proof)
  const parsed = parseProof(proof)
  if (typeof parsed === 'string') return false
  const leaf = entryLeafHash(namespace, replica, counter, bodyHash)
  const root = rootFromPath(leaf, parsed.index, parsed.leaves, parsed.path)
  if (root === undefined) return false
  const key = `${author} ${namespace} ${parsed.leaves} ${Buffer.from(root).toString('hex')}`
  if (roots.has(key, parsed.signature)) return true
  if (!verifier(author, batchSigningMessage(namespace, parsed.leaves, root), parsed.signature)) return false
  roots.add(key, parsed.signature)
  return true
}

/**
 * Entries verified by the gossip validator, and for which namespace: the merge that follows consumes
 * the mark instead of verifying again. One-shot, so it holds nothing for entries kept in memory.
 */
const verified = new WeakMap<Entry, string>()

/**
 * Checks an entry's proof by its author. With `mark`, remembers the result for the next check of
 * the same entry object in the same namespace (which consumes it): the gossip validator marks, the
 * merge that follows does not verify twice.
 */
export function verifyEntry(
  namespace: string,
  entry: Entry,
  verifier: SignatureVerifier = verifyEd25519,
  options: { mark?: boolean; roots?: VerifiedRoots } = {},
): boolean {
  if (verified.get(entry) === namespace) {
    verified.delete(entry)
    return true
  }
  const proof = entry.signature
  if (proof === undefined) return false
  const bodyHash = entryBodyHash(entry)
  if (!verifyProof(namespace, entry.replica, entry.counter, bodyHash, proof, verifier, options.roots))
    return false
  if (options.mark === true) verified.set(entry, namespace)
  return true
}

/** The signed head of an entry whose signature is known to be good. */
export function headOf(entry: Entry): SignedHead {
  if (entry.signature === undefined)
    throw new TypeError(`entry ${entry.replica}:${entry.counter} is not signed`)
  return {
    replica: entry.replica,
    counter: entry.counter,
    bodyHash: entryBodyHash(entry),
    signature: entry.signature,
  }
}

/** Checks a signed head (its proof) by its replica's author. */
export function verifyHead(
  namespace: string,
  head: SignedHead,
  verifier: SignatureVerifier = verifyEd25519,
  roots?: VerifiedRoots,
): boolean {
  return verifyProof(namespace, head.replica, head.counter, head.bodyHash, head.signature, verifier, roots)
}

/** A remote entry or head whose signature does not check out: nothing of the delta was merged. */
export class SignatureError extends HearsayError<'INVALID_SIGNATURE'> {
  override readonly name = 'SignatureError'

  constructor(message: string, options?: { cause?: unknown }) {
    super('INVALID_SIGNATURE', message, options)
  }
}

/**
 * Heads as a replica persists them (meta `head/<replica>`): 0:u8 version:u8 heads (writeHeads). Lists
 * stored before proofs are the heads alone, with fixed 64-byte signatures: they start with a count,
 * and the only one that starts with 0 is the empty list, a single byte.
 */
const HEAD_LIST_VERSION = 2

export function encodeHeadList(heads: Iterable<SignedHead>): Uint8Array {
  const writer = new Writer()
  writer.byte(0)
  writer.byte(HEAD_LIST_VERSION)
  writeHeads(writer, [...heads])
  return writer.finish()
}

export function decodeHeadList(bytes: Uint8Array): SignedHead[] {
  const reader = new Reader(bytes)
  const { maxStrings, maxStringBytes } = DEFAULT_LIMITS
  let heads: SignedHead[]
  if (bytes.length > 1 && bytes[0] === 0) {
    reader.byte('head list marker')
    const version = reader.byte('head list version')
    if (version !== HEAD_LIST_VERSION)
      throw new DecodeError('unknown-version', `head list version ${version}`)
    heads = readHeads(reader, maxStrings, maxStringBytes)
  } else {
    heads = readLegacyHeads(reader, maxStrings, maxStringBytes)
  }
  reader.end()
  return heads
}

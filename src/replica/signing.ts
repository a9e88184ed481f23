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
import { DEFAULT_LIMITS } from '../codec/limits.ts'
import {
  entryBodyHash,
  entrySigningMessage,
  readHeads,
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

/** Signs an entry of `namespace`; returns its head (the signature and the body hash it covers). */
export function signEntry(signer: EntrySigner, namespace: string, entry: Entry): SignedHead {
  const bodyHash = entryBodyHash(entry)
  const signature = signer.sign(entrySigningMessage(namespace, entry.replica, entry.counter, bodyHash))
  return { replica: entry.replica, counter: entry.counter, bodyHash, signature }
}

/**
 * Entries verified by the gossip validator, and for which namespace: the merge that follows consumes
 * the mark instead of verifying again. One-shot, so it holds nothing for entries kept in memory.
 */
const verified = new WeakMap<Entry, string>()

/**
 * Checks an entry's signature by its author. With `mark`, remembers the result for the next check
 * of the same entry object in the same namespace (which consumes it): the gossip validator marks,
 * the merge that follows does not verify twice.
 */
export function verifyEntry(
  namespace: string,
  entry: Entry,
  verifier: SignatureVerifier = verifyEd25519,
  options: { mark?: boolean } = {},
): boolean {
  if (verified.get(entry) === namespace) {
    verified.delete(entry)
    return true
  }
  const signature = entry.signature
  if (signature === undefined || signature.length !== SIGNATURE_BYTES) return false
  const message = entrySigningMessage(namespace, entry.replica, entry.counter, entryBodyHash(entry))
  if (!verifier(replicaAuthor(entry.replica), message, signature)) return false
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

/** Checks a signed head by its replica's author. */
export function verifyHead(
  namespace: string,
  head: SignedHead,
  verifier: SignatureVerifier = verifyEd25519,
): boolean {
  const message = entrySigningMessage(namespace, head.replica, head.counter, head.bodyHash)
  return verifier(replicaAuthor(head.replica), message, head.signature)
}

/** A remote entry or head whose signature does not check out: nothing of the delta was merged. */
export class SignatureError extends HearsayError<'INVALID_SIGNATURE'> {
  override readonly name = 'SignatureError'

  constructor(message: string, options?: { cause?: unknown }) {
    super('INVALID_SIGNATURE', message, options)
  }
}

/** Heads as a replica persists them (meta `head/<replica>`): n:uint (replica counter hash signature){n}. */
export function encodeHeadList(heads: Iterable<SignedHead>): Uint8Array {
  const writer = new Writer()
  writeHeads(writer, [...heads])
  return writer.finish()
}

export function decodeHeadList(bytes: Uint8Array): SignedHead[] {
  const reader = new Reader(bytes)
  const heads = readHeads(reader, DEFAULT_LIMITS.maxStrings, DEFAULT_LIMITS.maxStringBytes)
  reader.end()
  return heads
}

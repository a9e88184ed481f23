/**
 * Replica ids and incarnations. A replica id is `<author>~<incarnation>`: the author is the peer id
 * its writes are signed by, the incarnation a random tag. A replica whose store may have lost writes
 * that peers still hold (a restored backup, a copied data dir) takes a new incarnation, so it never
 * reuses a dot. Pure: the random source is injected (node:crypto by default).
 */
import { randomBytes } from 'node:crypto'
import { replicaAuthor } from './signing.ts'

/** `size` random bytes. */
export type RandomBytes = (size: number) => Uint8Array

/** Store meta key of the replica id. */
export const META_REPLICA = 'replica'
/** Store meta key of the store identity the replica id was chosen under. */
export const META_HOME = 'home'

const textEncoder = new TextEncoder()
const textDecoder = new TextDecoder()

export interface ChosenReplicaId {
  replicaId: string
  /** Meta values to persist so the choice holds across restarts (empty when nothing changed). */
  meta: Array<[string, Uint8Array]>
}

/**
 * Keeps the stored replica id unless there is doubt it is still ours alone: a new store gets
 * `<base>~<random>`; a store whose identity (`home`) changed since the id was stored was copied or
 * restored, and starts a new incarnation.
 */
export function chooseReplicaId(
  replicaBase: string | undefined,
  home: string | undefined,
  stored: ReadonlyMap<string, Uint8Array>,
  random: RandomBytes = randomBytes,
): ChosenReplicaId {
  const storedRaw = stored.get(META_REPLICA)
  const storedId = storedRaw === undefined ? undefined : textDecoder.decode(storedRaw)
  const storedHomeRaw = stored.get(META_HOME)
  const storedHome = storedHomeRaw === undefined ? undefined : textDecoder.decode(storedHomeRaw)
  let replicaId: string
  if (storedId === undefined) {
    replicaId = nextIncarnation(replicaBase ?? newReplicaId(random), random)
  } else if (home !== undefined && storedHome !== undefined && storedHome !== home) {
    replicaId = nextIncarnation(storedId, random)
  } else {
    replicaId = storedId
  }
  const meta: Array<[string, Uint8Array]> = []
  if (storedId !== replicaId) meta.push([META_REPLICA, textEncoder.encode(replicaId)])
  if (home !== undefined && storedHome !== home) meta.push([META_HOME, textEncoder.encode(home)])
  return { replicaId, meta }
}

/** The meta value that records `replicaId` as this store's replica id. */
export function replicaIdMeta(replicaId: string): [string, Uint8Array] {
  return [META_REPLICA, textEncoder.encode(replicaId)]
}

/** A random replica id for a store that was given none: 16 base32 characters (80 bits). */
export function newReplicaId(random: RandomBytes = randomBytes): string {
  return base32(random(10))
}

/** `base` or `base~old` → `base~<random>`: a new incarnation is a new replica as far as dots go. */
export function nextIncarnation(id: string, random: RandomBytes = randomBytes): string {
  return `${replicaBase(id)}~${base32(random(5))}`
}

/** The author part of a replica id: the peer id its writes are signed by. */
export function replicaBase(id: string): string {
  return replicaAuthor(id)
}

function base32(bytes: Uint8Array): string {
  const alphabet = 'abcdefghijklmnopqrstuvwxyz234567'
  let bits = 0
  let value = 0
  let out = ''
  for (const byte of bytes) {
    value = (value << 8) | byte
    bits += 8
    while (bits >= 5) {
      out += alphabet[(value >>> (bits - 5)) & 31]
      bits -= 5
    }
  }
  if (bits > 0) out += alphabet[(value << (5 - bits)) & 31]
  return out
}

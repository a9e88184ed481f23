/**
 * Invite tickets: one copy-pasteable string that lets a new peer join a private mesh — the mesh key,
 * the mesh name, and the inviting peer's id and dialable addresses.
 *
 *   hsy1<base32 of: body ‖ checksum>
 *
 * `hsy` names the format and `1` its version, so a later layout is refused with a clear message
 * instead of being misread. The body is binary (multiaddrs in their byte form) and base32 (RFC 4648,
 * lowercase, no padding): it survives chat apps, terminals and double-click selection. The checksum
 * is the first 4 bytes of SHA-256 over the prefix and the body, so a mistyped or truncated ticket is
 * caught before anything is written. Pure: no I/O.
 *
 * Body: flags (1 byte; bit 0: the inviter is a hub), the 32-byte key, then length-prefixed (varint)
 * fields: the mesh name (UTF-8), the inviter's `/p2p/<id>` multiaddr, and a count of its addresses,
 * each without the `/p2p` part.
 */
import { createHash } from 'node:crypto'
import { multiaddr } from '@multiformats/multiaddr'
import { MeshError } from './errors.ts'
import { SWARM_KEY_BYTES } from './swarm-key.ts'

export const TICKET_PREFIX = 'hsy'
export const TICKET_VERSION = 1
/** Addresses in one ticket: a host rarely has more interfaces worth listing. */
export const MAX_TICKET_ADDRESSES = 16
/** Longest ticket text read: 16 addresses of ~20 bytes each fit with room to spare. */
export const MAX_TICKET_CHARS = 2048
const CHECKSUM_BYTES = 4
const FLAG_HUB = 1

export interface InviteTicket {
  /** The pnet pre-shared key (32 bytes). */
  psk: Uint8Array
  /** The mesh name (peers replicate only within one). */
  mesh: string
  /** The inviting peer. */
  peerId: string
  /** Dialable addresses of the inviter, each ending in `/p2p/<peerId>`. */
  addresses: string[]
  /** The inviter is a hub (`hearsay hub`): a joiner becomes its client. */
  hub: boolean
}

export class InvalidTicketError extends MeshError {
  override readonly name = 'InvalidTicketError'

  constructor(message: string) {
    super('INVALID_TICKET', message)
  }
}

export function encodeTicket(ticket: InviteTicket): string {
  if (ticket.psk.byteLength !== SWARM_KEY_BYTES)
    throw new RangeError(`the key must have ${SWARM_KEY_BYTES} bytes`)
  if (ticket.addresses.length === 0) throw new RangeError('a ticket needs at least one address')
  const suffix = `/p2p/${ticket.peerId}`
  const addresses = ticket.addresses.slice(0, MAX_TICKET_ADDRESSES).map((address) => {
    const plain = address.endsWith(suffix) ? address.slice(0, -suffix.length) : address
    return multiaddr(plain).bytes
  })
  const parts: number[] = [ticket.hub ? FLAG_HUB : 0, ...ticket.psk]
  const field = (bytes: Uint8Array) => parts.push(...varint(bytes.byteLength), ...bytes)
  field(new TextEncoder().encode(ticket.mesh))
  field(multiaddr(suffix).bytes)
  parts.push(...varint(addresses.length))
  for (const bytes of addresses) field(bytes)
  const body = Uint8Array.from(parts)
  const prefix = `${TICKET_PREFIX}${TICKET_VERSION}`
  const payload = new Uint8Array(body.byteLength + CHECKSUM_BYTES)
  payload.set(body)
  payload.set(checksum(prefix, body), body.byteLength)
  return prefix + base32Encode(payload)
}

/** Parses a ticket; throws InvalidTicketError saying what is wrong with it. */
export function decodeTicket(text: string): InviteTicket {
  const trimmed = text.trim()
  if (trimmed.length > MAX_TICKET_CHARS)
    throw new InvalidTicketError(`is too long (${trimmed.length} characters)`)
  const version = /^hsy(\d+)/i.exec(trimmed)
  if (version === null)
    throw new InvalidTicketError(
      `is not a hearsay invite ticket (those start with ${TICKET_PREFIX}${TICKET_VERSION})`,
    )
  if (Number(version[1]) !== TICKET_VERSION) {
    throw new InvalidTicketError(
      `has version ${version[1]}; this hearsay reads version ${TICKET_VERSION} (upgrade hearsay, or ask for a new ticket)`,
    )
  }
  const prefix = `${TICKET_PREFIX}${TICKET_VERSION}`
  const payload = base32Decode(trimmed.slice(version[0].length).toLowerCase())
  if (payload.byteLength < 1 + SWARM_KEY_BYTES + CHECKSUM_BYTES) {
    throw new InvalidTicketError('is truncated: copy the whole ticket')
  }
  const body = payload.subarray(0, payload.byteLength - CHECKSUM_BYTES)
  const expected = checksum(prefix, body)
  const actual = payload.subarray(payload.byteLength - CHECKSUM_BYTES)
  if (!expected.every((byte, i) => byte === actual[i])) {
    throw new InvalidTicketError(
      'has a wrong checksum: it was mistyped or truncated; copy the whole ticket again',
    )
  }
  // The checksum matched, so a malformed body is a ticket made by a broken encoder, not a typo.
  try {
    return readBody(body)
  } catch (error) {
    if (error instanceof InvalidTicketError) throw error
    throw new InvalidTicketError(`is malformed: ${(error as Error).message}`)
  }
}

function readBody(body: Uint8Array): InviteTicket {
  let at = 0
  const byte = () => {
    if (at >= body.byteLength) throw new InvalidTicketError('is malformed: it ends early')
    return body[at++]
  }
  const readVarint = () => {
    let value = 0
    for (let shift = 0; shift < 28; shift += 7) {
      const b = byte()
      value |= (b & 0x7f) << shift
      if ((b & 0x80) === 0) return value
    }
    throw new InvalidTicketError('is malformed: a length is too large')
  }
  const field = () => {
    const length = readVarint()
    if (at + length > body.byteLength) throw new InvalidTicketError('is malformed: it ends early')
    const bytes = body.subarray(at, at + length)
    at += length
    return bytes
  }
  const flags = byte()
  const psk = body.slice(at, at + SWARM_KEY_BYTES)
  at += SWARM_KEY_BYTES
  const mesh = new TextDecoder('utf-8', { fatal: true }).decode(field())
  const peer = multiaddr(field()).toString()
  const peerId = /^\/p2p\/([A-Za-z0-9]+)$/.exec(peer)?.[1]
  if (peerId === undefined) throw new InvalidTicketError('is malformed: no peer id')
  const count = readVarint()
  if (count === 0 || count > MAX_TICKET_ADDRESSES)
    throw new InvalidTicketError(`is malformed: ${count} addresses`)
  const addresses: string[] = []
  for (let i = 0; i < count; i++) addresses.push(`${multiaddr(field()).toString()}/p2p/${peerId}`)
  if (at !== body.byteLength) throw new InvalidTicketError('is malformed: extra bytes at the end')
  return { psk, mesh, peerId, addresses, hub: (flags & FLAG_HUB) !== 0 }
}

function checksum(prefix: string, body: Uint8Array): Uint8Array {
  return new Uint8Array(createHash('sha256').update(prefix).update(body).digest().subarray(0, CHECKSUM_BYTES))
}

function varint(value: number): number[] {
  const out: number[] = []
  let rest = value
  while (rest >= 0x80) {
    out.push((rest & 0x7f) | 0x80)
    rest >>>= 7
  }
  out.push(rest)
  return out
}

const ALPHABET = 'abcdefghijklmnopqrstuvwxyz234567'

export function base32Encode(bytes: Uint8Array): string {
  let out = ''
  let buffer = 0
  let bits = 0
  for (const byte of bytes) {
    buffer = (buffer << 8) | byte
    bits += 8
    while (bits >= 5) {
      out += ALPHABET[(buffer >>> (bits - 5)) & 31]
      bits -= 5
    }
    buffer &= (1 << bits) - 1
  }
  if (bits > 0) out += ALPHABET[(buffer << (5 - bits)) & 31]
  return out
}

export function base32Decode(text: string): Uint8Array {
  const out: number[] = []
  let buffer = 0
  let bits = 0
  for (const char of text) {
    const value = ALPHABET.indexOf(char)
    if (value < 0) {
      throw new InvalidTicketError(
        `contains "${char}", which is not part of a ticket (letters a-z and digits 2-7)`,
      )
    }
    buffer = (buffer << 5) | value
    bits += 5
    if (bits >= 8) {
      out.push((buffer >>> (bits - 8)) & 0xff)
      bits -= 8
    }
    buffer &= (1 << bits) - 1
  }
  // Only the canonical encoding is accepted, so every changed character is caught: no spare
  // character, and the unused low bits of the last one are zero.
  if (bits >= 5 || buffer !== 0)
    throw new InvalidTicketError('has a wrong last character: it was mistyped or truncated')
  return Uint8Array.from(out)
}

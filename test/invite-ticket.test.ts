/** Invite tickets and mesh key files (src/mesh/invite-ticket.ts, src/mesh/swarm-key.ts): pure logic, plus real files. */
import { randomBytes } from 'node:crypto'
import { chmodSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { afterAll, describe, expect, it } from 'vitest'
import { loadConfig } from '../src/daemon/config.ts'
import { InsecureKeyFileError } from '../src/mesh/errors.ts'
import {
  base32Decode,
  base32Encode,
  decodeTicket,
  encodeTicket,
  InvalidTicketError,
  type InviteTicket,
  MAX_TICKET_ADDRESSES,
} from '../src/mesh/invite-ticket.ts'
import { generateSwarmKey } from '../src/mesh/node.ts'
import {
  decodeSwarmKeyFile,
  encodeSwarmKeyFile,
  newSwarmKeyFile,
  readSwarmKeyFile,
  SwarmKeyFileError,
} from '../src/mesh/swarm-key.ts'

const dirs: string[] = []
afterAll(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true })
})

async function sampleTicket(overrides: Partial<InviteTicket> = {}): Promise<InviteTicket> {
  const peerId = peerIdFromPrivateKey(await generateKeyPair('Ed25519')).toString()
  return {
    psk: new Uint8Array(randomBytes(32)),
    mesh: 'home',
    peerId,
    addresses: [
      `/ip4/192.168.1.7/tcp/7601/p2p/${peerId}`,
      `/ip6/fe80::1/tcp/7601/p2p/${peerId}`,
      `/dns4/hub.example.org/tcp/443/p2p/${peerId}`,
      `/ip4/127.0.0.1/tcp/7601/p2p/${peerId}`,
    ],
    hub: false,
    ...overrides,
  }
}

describe('invite tickets', () => {
  it('round-trip: key, mesh name, peer, addresses and the hub flag', async () => {
    for (const overrides of [{}, { hub: true, mesh: 'default' }]) {
      const ticket = await sampleTicket(overrides)
      const text = encodeTicket(ticket)
      expect(text).toMatch(/^hsy1[a-z2-7]+$/)
      expect(decodeTicket(text)).toEqual(ticket)
      // Whitespace from a copy-paste and upper case from a shouting chat app are fine.
      expect(decodeTicket(`  ${text.toUpperCase()}\n`)).toEqual(ticket)
    }
  })

  it('is short: one LAN address fits in under 200 characters', async () => {
    const ticket = await sampleTicket()
    const text = encodeTicket({ ...ticket, addresses: ticket.addresses.slice(0, 1) })
    expect(text.length).toBeLessThan(200)
  })

  it('every single-character change and every truncation is caught, never misread', async () => {
    const text = encodeTicket(await sampleTicket())
    const alphabet = 'abcdefghijklmnopqrstuvwxyz234567'
    for (let i = 4; i < text.length; i++) {
      for (const replacement of alphabet) {
        if (replacement === text[i]) continue
        const changed = text.slice(0, i) + replacement + text.slice(i + 1)
        expect(() => decodeTicket(changed), `position ${i}: ${replacement}`).toThrow(InvalidTicketError)
      }
    }
    for (let length = 0; length < text.length; length++) {
      expect(() => decodeTicket(text.slice(0, length)), `length ${length}`).toThrow(InvalidTicketError)
    }
  })

  it('names what is wrong: unknown version, foreign text, bad characters', async () => {
    const text = encodeTicket(await sampleTicket())
    expect(() => decodeTicket(`hsy2${text.slice(4)}`)).toThrow(/version 2; this hearsay reads version 1/)
    expect(() => decodeTicket('not a ticket')).toThrow(/not a hearsay invite ticket/)
    expect(() => decodeTicket(`${text.slice(0, 10)}0${text.slice(11)}`)).toThrow(/"0", which is not part/)
    expect(() => decodeTicket(text.slice(0, 10))).toThrow(/truncated/)
    expect(() => decodeTicket(text.slice(0, -2))).toThrow(/mistyped or truncated/)
    expect(() => decodeTicket(`hsy1${'a'.repeat(5000)}`)).toThrow(/too long/)
  })

  it('keeps at most 16 addresses and refuses a ticket without one', async () => {
    const ticket = await sampleTicket()
    const many = Array.from({ length: 40 }, (_, i) => `/ip4/10.0.0.${i}/tcp/7601/p2p/${ticket.peerId}`)
    expect(decodeTicket(encodeTicket({ ...ticket, addresses: many })).addresses).toEqual(
      many.slice(0, MAX_TICKET_ADDRESSES),
    )
    expect(() => encodeTicket({ ...ticket, addresses: [] })).toThrow(RangeError)
  })

  it('base32 round-trips any bytes', () => {
    for (let length = 0; length < 70; length++) {
      const bytes = new Uint8Array(randomBytes(length))
      expect(base32Decode(base32Encode(bytes))).toEqual(bytes)
    }
  })
})

describe('mesh key files', () => {
  const dir = mkdtempSync(join(tmpdir(), 'hearsay-swarm-key-'))
  dirs.push(dir)

  it('are the pnet format libp2p makes, both ways', () => {
    const made = generateSwarmKey()
    const psk = decodeSwarmKeyFile('x', made)
    expect(encodeSwarmKeyFile(psk)).toEqual(made)
    expect(decodeSwarmKeyFile('x', newSwarmKeyFile())).toHaveLength(32)
  })

  it('open and a configured key file contradict each other', () => {
    expect(() => loadConfig({ dataDir: dir, flags: { open: true, swarmKeyFile: '/k' }, env: {} })).toThrow(
      /open cannot go with swarmKeyFile/,
    )
    expect(loadConfig({ dataDir: dir, env: { HEARSAY_OPEN: 'yes' } }).config.open).toBe(true)
    expect(loadConfig({ dataDir: dir, env: {} }).config.open).toBe(false)
  })

  it('reading: missing is undefined; readable by others, a symlink or garbage is refused', async () => {
    const path = join(dir, 'swarm.key')
    expect(await readSwarmKeyFile(path)).toBeUndefined()
    const file = newSwarmKeyFile()
    writeFileSync(path, file, { mode: 0o600 })
    expect((await readSwarmKeyFile(path))?.file).toEqual(file)
    chmodSync(path, 0o644)
    await expect(readSwarmKeyFile(path)).rejects.toThrow(InsecureKeyFileError)
    chmodSync(path, 0o600)
    const link = join(dir, 'link.key')
    symlinkSync(path, link)
    await expect(readSwarmKeyFile(link)).rejects.toThrow(/symbolic link/)
    const garbage = join(dir, 'garbage.key')
    writeFileSync(garbage, 'hello', { mode: 0o600 })
    await expect(readSwarmKeyFile(garbage)).rejects.toThrow(SwarmKeyFileError)
  })
})

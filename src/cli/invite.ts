import { mkdirSync, readFileSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { DEFAULT_MESH, SWARM_KEY_FILE } from '../daemon/constants.ts'
import { readLock } from '../daemon/lock.ts'
import { dataDirFiles } from '../daemon/paths.ts'
import type { DaemonConfig } from '../daemon/settings.ts'
import type { Command, CommandContext } from './command.ts'
import { CliError, EXIT } from './exit-codes.ts'
import { hint, loadFor, writeAtomic } from './up.ts'

/**
 * `hearsay invite` and `hearsay join <ticket>`: a private mesh's key and a way in, as one string
 * (src/mesh/invite-ticket.ts), so a new peer joins with one copy-paste instead of a file copy and a
 * bootstrap address.
 */

interface StatusForInvite {
  peerId: string
  topology?: 'mesh' | 'hub' | 'hub-client'
  mesh: { name: string; addresses: string[]; private?: { swarmKey: boolean } }
}

export const inviteCommand: Command = {
  name: 'invite',
  args: '',
  summary: 'print a ticket that lets another peer join this private mesh (hearsay join <ticket>)',
  details: `The ticket holds the mesh key and this peer's addresses (asked from the running daemon).
Anyone holding it can join the mesh and read and write everything in it: send it only to peers you
trust, over a channel you trust. The ticket alone goes to stdout, so

  hearsay join "$(ssh home hearsay invite)"

works. Without a running daemon there are no addresses to put in it: start one with "hearsay up".`,
  client: true,
  async run(context) {
    const { body: status } = await context.client().json<StatusForInvite>('/v1/status')
    if (status.mesh.private?.swarmKey !== true) {
      throw new CliError(
        EXIT.REJECTED,
        'this peer runs an open mesh (--open): anyone on the network can already join; give them an address from "hearsay status" for --bootstrap',
        'OPEN_MESH',
      )
    }
    if (status.topology === 'hub-client') {
      throw new CliError(
        EXIT.REJECTED,
        'this peer is a hub client, which other peers cannot reach through; run "hearsay invite" on its hub',
        'HUB_CLIENT',
      )
    }
    if (status.mesh.addresses.length === 0) {
      throw new CliError(EXIT.FAILURE, 'the daemon reports no p2p addresses (is its mesh attached?)')
    }
    const { config } = await loadFor(context)
    const { readSwarmKeyFile } = await import('../mesh/swarm-key.ts')
    const path = meshKeyPath(config)
    const key = await readSwarmKeyFile(path).catch((error: Error) => {
      throw new CliError(EXIT.FAILURE, error.message)
    })
    if (key === undefined) {
      throw new CliError(
        EXIT.FAILURE,
        `no mesh key at ${path}: run "hearsay invite" with the daemon's data dir`,
      )
    }
    const { encodeTicket } = await import('../mesh/invite-ticket.ts')
    // Addresses another host can reach first; loopback last (it only serves peers on this host).
    const addresses = [...status.mesh.addresses].sort((a, b) => Number(isLoopback(a)) - Number(isLoopback(b)))
    const ticket = encodeTicket({
      psk: key.psk,
      mesh: status.mesh.name,
      peerId: status.peerId,
      addresses,
      hub: status.topology === 'hub',
    })
    if (context.json) {
      context.printJson({ ticket, mesh: status.mesh.name, peerId: status.peerId, addresses })
      return EXIT.OK
    }
    context.out(ticket)
    if (context.io.stderr.isTTY === true) {
      const cli = hint(context)
      context.err('')
      context.err(`On the new peer: ${cli} join <this ticket>, then ${cli} up`)
      context.err('The ticket holds the mesh key: whoever has it can read and write the whole mesh.')
    }
    return EXIT.OK
  },
}

/** True when the argument of `hearsay join` is a ticket rather than a namespace name. */
export function looksLikeTicket(argument: string): boolean {
  return /^hsy\d/i.test(argument.trim()) || argument.trim().length > 64
}

/** `hearsay join <ticket>`: writes the mesh key and the inviter's addresses into this data dir. */
export async function joinWithTicket(context: CommandContext, text: string): Promise<number> {
  const { decodeTicket, InvalidTicketError } = await import('../mesh/invite-ticket.ts')
  let ticket: ReturnType<typeof decodeTicket>
  try {
    ticket = decodeTicket(text)
  } catch (error) {
    if (error instanceof InvalidTicketError) {
      throw new CliError(EXIT.USAGE, `the invite ticket ${error.message}`, 'INVALID_TICKET')
    }
    throw error
  }
  const { config, file } = await loadFor(context)
  if (config.open) {
    throw new CliError(
      EXIT.REJECTED,
      'this data dir is set to run an open mesh (the open setting); remove it to join a private mesh',
      'OPEN_MESH',
    )
  }
  const { encodeSwarmKeyFile, readSwarmKeyFile, writeSwarmKeyFile } = await import('../mesh/swarm-key.ts')
  const path = meshKeyPath(config)
  mkdirSync(config.dataDir, { recursive: true, mode: 0o700 })
  const existing = await readSwarmKeyFile(path).catch((error: Error) => {
    if (context.values.force === true) return undefined
    throw new CliError(EXIT.FAILURE, `${error.message} (--force replaces it)`)
  })
  const same = existing !== undefined && Buffer.from(existing.psk).equals(Buffer.from(ticket.psk))
  if (existing !== undefined && !same && context.values.force !== true) {
    throw new CliError(
      EXIT.REJECTED,
      `${path} holds the key of another mesh; this peer would leave it. Use --force to replace the key`,
      'OTHER_MESH',
    )
  }
  const keyFile = encodeSwarmKeyFile(ticket.psk)
  if (existing === undefined && context.values.force !== true) {
    if (!(await writeSwarmKeyFile(path, keyFile))) {
      throw new CliError(EXIT.FAILURE, `${path} appeared while joining; run join again`)
    }
  } else if (!same) {
    writeAtomic(path, keyFile)
  }

  const previous: Record<string, unknown> = file.found ? JSON.parse(readFileSync(file.path, 'utf8')) : {}
  const next: Record<string, unknown> = { ...previous }
  const listKey = ticket.hub ? 'hub' : 'bootstrap'
  const known = Array.isArray(previous[listKey]) ? (previous[listKey] as string[]) : []
  next[listKey] = [...known, ...ticket.addresses.filter((address) => !known.includes(address))]
  if (ticket.mesh === DEFAULT_MESH) delete next.mesh
  else next.mesh = ticket.mesh
  const configChanged = JSON.stringify(next) !== JSON.stringify(previous)
  if (configChanged) writeAtomic(file.path, `${JSON.stringify(next, null, 2)}\n`)

  const running = readLock(dataDirFiles(config.dataDir).lock).state === 'live'
  const result = {
    mesh: ticket.mesh,
    peerId: ticket.peerId,
    swarmKeyFile: path,
    keyReplaced: existing !== undefined && !same,
    [listKey]: ticket.addresses,
    configFile: file.path,
    daemonRunning: running,
  }
  if (context.json) {
    context.printJson(result)
    return EXIT.OK
  }
  const cli = hint(context)
  context.out(`joined mesh "${ticket.mesh}" through peer ${ticket.peerId}`)
  context.out(
    `  mesh key  ${path}${same ? '  (already here)' : result.keyReplaced ? '  (replaced)' : '  (written)'}`,
  )
  context.out(
    `  ${ticket.hub ? 'hub      ' : 'bootstrap'} ${ticket.addresses.length} address(es) in ${file.path}`,
  )
  context.out('')
  context.out(
    running
      ? `a daemon is running on this data dir: restart it (Ctrl-C, then ${cli} up) to use the new key`
      : `start the peer with: ${cli} up`,
  )
  return EXIT.OK
}

function meshKeyPath(config: DaemonConfig): string {
  return config.swarmKeyFile === '' ? join(config.dataDir, SWARM_KEY_FILE) : resolve(config.swarmKeyFile)
}

function isLoopback(address: string): boolean {
  return address.startsWith('/ip4/127.') || address.startsWith('/ip6/::1/')
}

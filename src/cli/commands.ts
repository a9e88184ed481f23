import { readFile } from 'node:fs/promises'
import { extname } from 'node:path'
import { encodeValue, stringifyJson } from '../daemon/values.ts'
import { keyPath, nsPath } from './client.ts'
import type { Command, CommandContext } from './command.ts'
import { statusPeers } from './commands-insight.ts'
import { deletePrefix, prefixDeleteOptions, ttlOption, withTtl } from './commands-ttl.ts'
import { CliError, EXIT } from './exit-codes.ts'
import { bytes, duration, preview, shortId, table } from './format.ts'
import { joinWithTicket, looksLikeTicket } from './invite.ts'
import { watchCommand } from './watch.ts'

/** The client commands: each one HTTP request (or a few) to the local daemon. */

const TYPE_ALIASES: Record<string, string> = {
  json: 'application/json',
  text: 'text/plain; charset=utf-8',
  bytes: 'application/octet-stream',
  binary: 'application/octet-stream',
}

/** A MIME type as RFC 9110 spells it: `type/subtype`, then optional `; name=value` parameters. */
const TOKEN = "[!#$%&'*+.^_`|~0-9A-Za-z-]+"
const MIME_TYPE = new RegExp(`^${TOKEN}/${TOKEN}(\\s*;\\s*${TOKEN}=(${TOKEN}|"[^"]*"))*$`)

/** The content type `--type` names: a shorthand (json, text, bytes, binary) or a MIME type. */
export function contentTypeOf(requested: string): string {
  const alias = TYPE_ALIASES[requested.toLowerCase()]
  if (alias !== undefined) return alias
  if (MIME_TYPE.test(requested.trim())) return requested.trim()
  throw new CliError(
    EXIT.USAGE,
    `--type "${requested}" is neither ${Object.keys(TYPE_ALIASES).join(', ')} nor a MIME type like image/png`,
  )
}

/** Bytes that decode as UTF-8 are text; anything else is bytes. */
function isUtf8(value: Uint8Array): boolean {
  try {
    new TextDecoder('utf-8', { fatal: true }).decode(value)
    return true
  } catch {
    return false
  }
}

export const ackOptions = {
  ack: {
    type: 'string',
    value: '<n>',
    description: 'wait until n other peers hold the write (exit 6 if they do not in time)',
  },
  timeout: { type: 'string', value: '<ms>', description: 'how long --ack may wait (default 5000)' },
} as const

export function need(context: CommandContext, count: number, what: string): string[] {
  if (context.positionals.length < count) throw new CliError(EXIT.USAGE, `missing ${what}`)
  return context.positionals
}

export function ackQuery(context: CommandContext): string {
  const params = new URLSearchParams()
  for (const name of ['ack', 'timeout'] as const) {
    const value = context.values[name]
    if (value === undefined) continue
    if (!/^\d+$/.test(String(value))) throw new CliError(EXIT.USAGE, `--${name} must be a whole number`)
    params.set(name, String(value))
  }
  const text = params.toString()
  return text === '' ? '' : `?${text}`
}

/** Shows progress of an --ack wait on a terminal; the returned function clears it. */
export function ackProgress(context: CommandContext): () => void {
  if (context.values.ack === undefined || context.io.stderr.isTTY !== true) return () => {}
  context.io.stderr.write(`waiting for ${context.values.ack} peer(s) to hold the write…`)
  return () => context.io.stderr.write('\r\x1b[K')
}

/** Exit code and message for a write answered 202 (durable here, fewer peers than asked). */
export function ackOutcome(
  context: CommandContext,
  status: number,
  body: { ack?: { requested: number; replicated: number } },
): number {
  if (status !== 202) return EXIT.OK
  if (!context.json) {
    context.err(
      `written here, but only ${body.ack?.replicated ?? 0} of ${body.ack?.requested ?? '?'} peer(s) held it before the timeout`,
    )
  }
  return EXIT.ACK_TIMEOUT
}

function readStdin(context: CommandContext): Promise<Uint8Array> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    context.io.stdin.on('data', (chunk: Buffer) => chunks.push(chunk))
    context.io.stdin.on('end', () => resolve(Buffer.concat(chunks)))
    context.io.stdin.on('error', reject)
  })
}

export const putCommand: Command = {
  name: 'put',
  args: '<key> [value]',
  summary: 'write a value (from the argument, --file, or stdin)',
  details: `A value on the command line, or UTF-8 text from stdin, is stored as text unless --type says
otherwise; --type json checks it is JSON. With no value (or "-") the value is read from stdin.

  hearsay put greeting hello
  hearsay put config '{"mode":"eco"}' --type json
  hearsay put photo --file cat.jpg --type image/jpeg
  echo 21.5 | hearsay put sensors/kitchen --type json --ack 1
  hearsay put session/42 token --ttl 30m      (expires on every peer 30 minutes after the write)`,
  namespaced: true,
  client: true,
  options: {
    type: {
      type: 'string',
      short: 't',
      value: '<type>',
      description: 'json, text, bytes, or a MIME type (type/subtype)',
    },
    file: { type: 'string', short: 'f', value: '<path>', description: 'read the value from a file' },
    'if-match': {
      type: 'string',
      value: '<etag>',
      description: 'replace exactly the values a read with this ETag saw',
    },
    ...ttlOption,
    ...ackOptions,
  },
  async run(context) {
    const [key, argument] = need(context, 1, 'key')
    const requested = context.values.type as string | undefined
    // Checked before reading stdin or a file: a typo in --type fails fast.
    const typed = requested === undefined ? undefined : contentTypeOf(requested)
    let value: Uint8Array
    let defaultType: string
    if (typeof context.values.file === 'string') {
      if (argument !== undefined) throw new CliError(EXIT.USAGE, 'give a value or --file, not both')
      value = await readFile(context.values.file).catch((error: Error) => {
        throw new CliError(EXIT.USAGE, `cannot read ${context.values.file}: ${error.message}`)
      })
      const extension = extname(context.values.file).toLowerCase()
      defaultType =
        extension === '.json'
          ? 'application/json'
          : extension === '.txt' || extension === '.md'
            ? TYPE_ALIASES.text
            : TYPE_ALIASES.bytes
    } else if (argument === undefined || argument === '-') {
      if (argument === undefined && context.io.stdin.isTTY === true) {
        throw new CliError(EXIT.USAGE, 'give a value, --file <path>, or pipe the value into stdin')
      }
      value = await readStdin(context)
      defaultType = isUtf8(value) ? TYPE_ALIASES.text : TYPE_ALIASES.bytes
    } else {
      value = new TextEncoder().encode(argument)
      defaultType = TYPE_ALIASES.text
    }
    const contentType = typed ?? defaultType
    const headers: Record<string, string> = { 'content-type': contentType }
    if (typeof context.values['if-match'] === 'string') headers['if-match'] = context.values['if-match']
    const query = withTtl(context, ackQuery(context))
    const done = ackProgress(context)
    const { status, body } = await context
      .client()
      .json<{ etag: string; ack?: { requested: number; replicated: number } }>(
        `${nsPath(context.ns)}/kv/${keyPath(key)}${query}`,
        { method: 'PUT', body: value, headers },
      )
      .finally(done)
    if (context.json) context.printJson(body)
    else context.out(`ok  ${key}  etag ${body.etag}`)
    return ackOutcome(context, status, body)
  },
}

interface SiblingJson {
  contentType: string
  encoding: string
  value: unknown
  replica: string
  writtenAt: string
}

export const getCommand: Command = {
  name: 'get',
  args: '<key>',
  summary: 'read a value (or all concurrent ones: --siblings)',
  details: `  hearsay get greeting
  hearsay get photo > cat.jpg
  hearsay get config --json        # {"key","contentType","etag","siblings","encoding","value"}
  hearsay get config --siblings    # concurrent writes, one block each`,
  namespaced: true,
  client: true,
  options: {
    siblings: { type: 'boolean', short: 's', description: 'show every concurrent value (siblings)' },
  },
  async run(context) {
    const [key] = need(context, 1, 'key')
    const path = `${nsPath(context.ns)}/kv/${keyPath(key)}`
    if (context.values.siblings === true) {
      const { body } = await context
        .client()
        .json<{ etag: string; winner: number; siblings: SiblingJson[] }>(`${path}?siblings=1`)
      if (context.json) {
        context.printJson(body)
        return EXIT.OK
      }
      const count = body.siblings.length
      body.siblings.forEach((sibling, i) => {
        const mark = i === body.winner ? ' (read resolves to this one)' : ''
        context.out(
          `[${i + 1}/${count}] ${sibling.contentType}  by ${shortId(sibling.replica)}  at ${sibling.writtenAt}${mark}`,
        )
        context.out(
          sibling.encoding === 'base64'
            ? preview(sibling)
            : sibling.encoding === 'json'
              ? JSON.stringify(sibling.value)
              : String(sibling.value),
        )
      })
      context.out(`etag ${body.etag}${count > 1 ? '  (put with --if-match this etag to resolve them)' : ''}`)
      return EXIT.OK
    }
    const response = await context.client().request(path)
    const value = await response.bytes()
    const contentType = response.headers.get('content-type') ?? 'application/octet-stream'
    const etag = (response.headers.get('etag') ?? '').replace(/^"|"$/g, '')
    const siblings = Number(response.headers.get('x-hearsay-siblings') ?? '1')
    if (context.json) {
      // stringifyJson embeds a JSON value as itself (JSON.stringify would print the wrapper).
      context.out(
        stringifyJson({ namespace: context.ns, key, etag, siblings, ...encodeValue(value, contentType) }),
      )
      return EXIT.OK
    }
    const encoded = encodeValue(value, contentType)
    if (context.io.stdout.isTTY === true && encoded.encoding === 'base64') {
      context.err(
        `${value.length} bytes of ${contentType}; redirect to a file to save them (hearsay get ${key} > file)`,
      )
    } else {
      context.io.stdout.write(value)
      if (context.io.stdout.isTTY === true && value.at(-1) !== 10) context.io.stdout.write('\n')
    }
    if (siblings > 1) context.err(`note: ${siblings} concurrent values; see them with --siblings`)
    return EXIT.OK
  },
}

export const delCommand: Command = {
  name: 'del',
  args: '<key> | --prefix <p>',
  summary: 'delete a key, or every key under a prefix',
  details: `--prefix deletes every key under the prefix as one operation (peers that are offline lose
exactly the keys this peer had seen when they come back; writes made meanwhile survive). It shows how
many keys will go and asks first; --yes skips the question. An empty prefix needs --all.

  hearsay del greeting
  hearsay del --prefix sessions/ --yes`,
  namespaced: true,
  client: true,
  options: {
    'if-match': {
      type: 'string',
      value: '<etag>',
      description: 'delete exactly the values a read with this ETag saw',
    },
    ...prefixDeleteOptions,
    ...ackOptions,
  },
  async run(context) {
    if (context.values.prefix !== undefined || context.values.all === true) return deletePrefix(context)
    const [key] = need(context, 1, 'key')
    const headers: Record<string, string> = {}
    if (typeof context.values['if-match'] === 'string') headers['if-match'] = context.values['if-match']
    const done = ackProgress(context)
    const { status, body } = await context
      .client()
      .json<{ ack?: { requested: number; replicated: number } }>(
        `${nsPath(context.ns)}/kv/${keyPath(key)}${ackQuery(context)}`,
        {
          method: 'DELETE',
          headers,
        },
      )
      .finally(done)
    if (context.json) context.printJson(body)
    else context.out(`deleted  ${key}`)
    return ackOutcome(context, status, body)
  },
}

interface ListItem {
  key: string
  contentType: string
  encoding?: string
  value?: unknown
  siblings: number
}

export const lsCommand: Command = {
  name: 'ls',
  args: '[prefix]',
  summary: 'list keys (and a preview of their values)',
  details: `One page (--limit, default 100) unless --all, which follows the pages to the end and shows
progress on a terminal. --json prints each page as one line, {"items":[...],"cursor":"..."}: the
cursor (absent on the last page) is what --cursor takes to list the next page.

  hearsay ls sensors/ --limit 50 --json
  hearsay ls sensors/ --limit 50 --json --cursor 'sensors/kitchen'`,
  namespaced: true,
  client: true,
  options: {
    limit: { type: 'string', short: 'l', value: '<n>', description: 'keys per page, 1-1000 (default 100)' },
    all: { type: 'boolean', short: 'a', description: 'list every key, page after page' },
    cursor: {
      type: 'string',
      value: '<key>',
      description: 'start after this key (the cursor of a previous page)',
    },
    'keys-only': { type: 'boolean', short: 'k', description: 'print keys only' },
  },
  async run(context) {
    const prefix = context.positionals[0] ?? ''
    const limit = context.values.limit === undefined ? '100' : String(context.values.limit)
    if (!/^\d+$/.test(limit)) throw new CliError(EXIT.USAGE, '--limit must be a whole number')
    const keysOnly = context.values['keys-only'] === true
    let cursor = context.values.cursor as string | undefined
    let total = 0
    const progress = context.values.all === true && context.io.stderr.isTTY === true
    for (;;) {
      const params = new URLSearchParams({ prefix, limit })
      if (cursor !== undefined) params.set('cursor', cursor)
      if (keysOnly) params.set('values', '0')
      const { body } = await context
        .client()
        .json<{ items: ListItem[]; cursor?: string }>(`${nsPath(context.ns)}/kv?${params}`)
      if (progress) context.io.stderr.write('\r\x1b[K')
      if (context.json) context.printJson(body.cursor === undefined ? { items: body.items } : body)
      else
        for (const item of body.items) {
          if (keysOnly) context.out(item.key)
          else
            context.out(
              `${item.key}\t${preview(item)}${item.siblings > 1 ? `  (${item.siblings} siblings)` : ''}`,
            )
        }
      total += body.items.length
      cursor = body.cursor
      if (cursor === undefined) break
      if (context.values.all !== true) {
        if (!context.json) context.err(`… more keys: use --all, or --cursor '${cursor}' for the next page`)
        break
      }
      if (progress) context.io.stderr.write(`listed ${total} keys…`)
    }
    if (total === 0 && !context.json)
      context.err(prefix === '' ? 'no keys' : `no keys start with "${prefix}"`)
    return EXIT.OK
  },
}

/** `incr key -3`: node:util parseArgs reads "-3" as an option, so main.ts escapes negative numbers. */
export const incrCommand: Command = {
  name: 'incr',
  args: '<key> [by]',
  summary: 'add to a counter (default 1) and print its value',
  details: `Counters are PN-counters: increments made on different peers at the same time all count.

  hearsay incr visits
  hearsay incr stock -3`,
  namespaced: true,
  client: true,
  options: { ...ackOptions },
  async run(context) {
    const [key, by = '1'] = need(context, 1, 'key')
    if (!/^-?\d+$/.test(by) || !Number.isSafeInteger(Number(by)))
      throw new CliError(EXIT.USAGE, `"${by}" is not a whole number`)
    const done = ackProgress(context)
    const { status, body } = await context
      .client()
      .json<{ value: number; ack?: { requested: number; replicated: number } }>(
        `${nsPath(context.ns)}/counter/${keyPath(key)}${ackQuery(context)}`,
        {
          method: 'POST',
          body: JSON.stringify({ by: Number(by) }),
          headers: { 'content-type': 'application/json' },
        },
      )
      .finally(done)
    if (context.json) context.printJson(body)
    else context.out(String(body.value))
    return ackOutcome(context, status, body)
  },
}

export const counterCommand: Command = {
  name: 'counter',
  args: '<key>',
  summary: 'print a counter (or reset it with --reset)',
  namespaced: true,
  client: true,
  options: {
    reset: { type: 'boolean', description: 'reset to 0 (increments concurrent with the reset survive it)' },
  },
  async run(context) {
    const [key] = need(context, 1, 'key')
    const path = `${nsPath(context.ns)}/counter/${keyPath(key)}`
    const { body } = await context
      .client()
      .json<{ value: number }>(path, context.values.reset === true ? { method: 'DELETE' } : {})
    if (context.json) context.printJson(body)
    else context.out(String(body.value))
    return EXIT.OK
  },
}

function setCommand(name: 'sadd' | 'srem', field: 'add' | 'remove', summary: string): Command {
  return {
    name,
    args: '<key> <member...>',
    summary,
    details: 'Sets are add-wins: an add concurrent with a remove of the same member keeps it.',
    namespaced: true,
    client: true,
    options: { ...ackOptions },
    async run(context) {
      const [key, ...members] = need(context, 2, 'key and at least one member')
      const done = ackProgress(context)
      const { status, body } = await context
        .client()
        .json<{ members: string[]; ack?: { requested: number; replicated: number } }>(
          `${nsPath(context.ns)}/set/${keyPath(key)}${ackQuery(context)}`,
          {
            method: 'POST',
            body: JSON.stringify({ [field]: members }),
            headers: { 'content-type': 'application/json' },
          },
        )
        .finally(done)
      if (context.json) context.printJson(body)
      else for (const member of body.members) context.out(member)
      return ackOutcome(context, status, body)
    },
  }
}

export const saddCommand = setCommand('sadd', 'add', 'add members to a set and print the set')
export const sremCommand = setCommand('srem', 'remove', 'remove members from a set and print the set')

export const smembersCommand: Command = {
  name: 'smembers',
  args: '<key>',
  summary: 'print the members of a set, one per line',
  namespaced: true,
  client: true,
  async run(context) {
    const [key] = need(context, 1, 'key')
    const { body } = await context
      .client()
      .json<{ members: string[] }>(`${nsPath(context.ns)}/set/${keyPath(key)}`)
    if (context.json) context.printJson(body)
    else for (const member of body.members) context.out(member)
    return EXIT.OK
  },
}

interface PeerJson {
  peerId: string
  addresses: string[]
  connected: boolean
  rttMs?: number
  lastSeenAt?: string
}

export const peersCommand: Command = {
  name: 'peers',
  args: '',
  summary: 'list peers with round-trip time and last seen',
  client: true,
  async run(context) {
    const { body } = await context.client().json<{ meshAttached: boolean; peers: PeerJson[] }>('/v1/peers')
    if (context.json) {
      context.printJson(body)
      return EXIT.OK
    }
    if (!body.meshAttached) context.err('this peer runs without a mesh: it has no peers')
    else if (body.peers.length === 0)
      context.err('no peers yet (mDNS finds peers on the LAN; or: hearsay connect <multiaddr>)')
    const rows = [['PEER', 'STATE', 'RTT', 'LAST SEEN', 'ADDRESS']]
    for (const peer of body.peers) {
      rows.push([
        peer.peerId,
        peer.connected ? 'connected' : 'known',
        peer.rttMs === undefined ? '-' : `${peer.rttMs.toFixed(1)} ms`,
        peer.lastSeenAt === undefined ? '-' : `${duration(Date.now() - Date.parse(peer.lastSeenAt))} ago`,
        peer.addresses[0] ?? '-',
      ])
    }
    if (body.peers.length > 0) for (const line of table(rows)) context.out(line)
    return EXIT.OK
  },
}

export const connectCommand: Command = {
  name: 'connect',
  args: '<multiaddr>',
  summary: 'dial a peer: /ip4/<address>/tcp/<port>/p2p/<peer id>',
  client: true,
  async run(context) {
    const [address] = need(context, 1, 'multiaddr')
    const tty = context.io.stderr.isTTY === true && !context.json
    if (tty) context.io.stderr.write(`dialing ${address}…`)
    const { body } = await context
      .client()
      .json<{ peerId: string; dialMs: number }>('/v1/peers', {
        method: 'POST',
        body: JSON.stringify({ address }),
        headers: { 'content-type': 'application/json' },
      })
      .finally(() => tty && context.io.stderr.write('\r\x1b[K'))
    if (context.json) context.printJson(body)
    else context.out(`connected to ${body.peerId} in ${body.dialMs} ms`)
    return EXIT.OK
  },
}

export const joinCommand: Command = {
  name: 'join',
  args: '<ticket | namespace>',
  summary: 'join a mesh with a ticket, or start replicating a namespace',
  details: `With a ticket (from "hearsay invite" on a peer of the mesh, it starts with hsy1): writes the
mesh key into the data dir and the inviter's addresses into config.json as bootstrap peers; then
"hearsay up" joins the mesh. No daemon needs to run. A different mesh key already in the data dir is
kept unless --force.

With a namespace name: the running daemon starts replicating it (writing to a namespace joins it too).`,
  client: true,
  options: {
    force: { type: 'boolean', description: 'replace a different mesh key already in the data dir' },
  },
  async run(context) {
    const [argument] = need(context, 1, 'ticket or namespace')
    if (looksLikeTicket(argument)) return joinWithTicket(context, argument)
    const ns = argument
    const { status, body } = await context.client().json(nsPath(ns), { method: 'PUT' })
    if (context.json) context.printJson(body)
    else context.out(status === 201 ? `joined ${ns}` : `already in ${ns}`)
    return EXIT.OK
  },
}

interface StatusJson {
  peerId: string
  version: string
  pid: number
  uptimeMs: number
  api: { url: string }
  dataDir: string
  /** Absent from daemons older than hub mode: they are mesh peers. */
  topology?: 'mesh' | 'hub' | 'hub-client'
  mesh: {
    name: string
    attached: boolean
    addresses: string[]
    mdns: boolean
    bootstrap: string[]
    hubs?: string[]
    private?: { swarmKey: boolean; allowPeers: number }
  }
  peers: { connected: number; known: number }
  namespaces: Array<{
    name: string
    entries: number
    tombstones: number
    versionVector: Record<string, number>
    digest: string
  }>
  store: { kind: string; sizeBytes: number; path?: string }
  process: { rssBytes: number }
  watchClients: number
}

export const statusCommand: Command = {
  name: 'status',
  args: '',
  summary: 'show peer id, API, mesh, peers, namespaces, store (--peers: replication per peer)',
  client: true,
  namespaced: true,
  options: {
    peers: {
      type: 'boolean',
      description: 'per-peer replication of the namespace (--ns): lag, syncs, failures',
    },
  },
  async run(context) {
    if (context.values.peers === true) return statusPeers(context)
    const { body } = await context.client().json<StatusJson>('/v1/status')
    if (context.json) {
      context.printJson(body)
      return EXIT.OK
    }
    const closed = [
      ...(body.mesh.private?.swarmKey ? ['mesh key'] : []),
      ...(body.mesh.private?.allowPeers ? [`${body.mesh.private.allowPeers} allowed peers`] : []),
    ]
    const topology = body.topology ?? 'mesh'
    const discovery =
      topology === 'mesh'
        ? [`mDNS ${body.mesh.mdns ? 'on' : 'off'}`, `${body.mesh.bootstrap.length} bootstrap`]
        : ['mDNS off']
    const mesh = body.mesh.attached
      ? `${body.mesh.name} (${[
          ...discovery,
          // Daemons older than private-by-default do not report it: say nothing rather than guess.
          ...(closed.length > 0
            ? [`private: ${closed.join(', ')}`]
            : body.mesh.private !== undefined
              ? ['OPEN: anyone on the network can join']
              : []),
        ].join(', ')})`
      : 'not attached: this peer runs alone and does not replicate'
    const hubs = body.mesh.hubs ?? []
    const shape =
      topology === 'hub'
        ? [['topology', 'hub: client peers (hearsay up --hub <address>) talk only to this peer']]
        : topology === 'hub-client'
          ? hubs.map((address, i) => [
              i === 0 ? 'topology' : '',
              `${i === 0 ? 'hub client of ' : '              '}${address}`,
            ])
          : [['topology', 'mesh (peer-to-peer)']]
    const lines = [
      ['peer id', body.peerId],
      ['version', `hearsay ${body.version}, pid ${body.pid}, up ${duration(body.uptimeMs)}`],
      ['API', body.api.url],
      ...shape,
      ['mesh', mesh],
      ...body.mesh.addresses.map((address, i) => [i === 0 ? 'addresses' : '', address]),
      ['peers', `${body.peers.connected} connected, ${body.peers.known} known`],
      [
        'store',
        `${body.store.kind}, ${bytes(body.store.sizeBytes)}${body.store.path === undefined ? '' : ` at ${body.store.path}`}`,
      ],
      ['memory', `${bytes(body.process.rssBytes)} RSS`],
      ['data dir', body.dataDir],
      ['watchers', String(body.watchClients)],
    ]
    for (const line of table(lines)) context.out(line)
    context.out('')
    const rows = [['NAMESPACE', 'ENTRIES', 'TOMBSTONES', 'WRITERS', 'DIGEST']]
    for (const ns of body.namespaces) {
      rows.push([
        ns.name,
        String(ns.entries),
        String(ns.tombstones),
        String(Object.keys(ns.versionVector).length),
        ns.digest.slice(0, 16),
      ])
    }
    for (const line of table(rows)) context.out(line)
    return EXIT.OK
  },
}

export { watchCommand }

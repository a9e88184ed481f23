import type { PeerReplication } from '../peer/replication-state.ts'
import { keyPath, nsPath } from './client.ts'
import type { Command, CommandContext } from './command.ts'
import { contentTypeOf, need } from './commands.ts'
import { CliError, EXIT } from './exit-codes.ts'
import { bytes, duration, preview, shortId, table } from './format.ts'
import { parseSse } from './watch.ts'

/**
 * Seeing the mesh from a terminal: per-peer replication (`status --peers`), why a key reads as it
 * does (`explain`), the keys with concurrent values (`conflicts`, `resolve`), and the mesh's events.
 */

/** A row of `GET /v1/ns/{ns}/replication`, as the daemon builds it. */
type PeerRow = PeerReplication

function ago(iso: string | null, now = Date.now()): string {
  if (iso === null) return '-'
  return `${duration(Math.max(0, now - Date.parse(iso)))} ago`
}

const lack = (n: number | null) => (n === null ? '?' : String(n))

/** `hearsay status --peers`: one row per known peer for the namespace. */
export async function statusPeers(context: CommandContext): Promise<number> {
  const { body } = await context
    .client()
    .json<{ namespace: string; self: { peerId: string }; peers: PeerRow[] }>(
      `${nsPath(context.ns)}/replication`,
    )
  if (context.json) {
    context.printJson(body)
    return EXIT.OK
  }
  context.out(`namespace ${body.namespace}, seen from ${body.self.peerId}`)
  if (body.peers.length === 0) {
    context.out('no other peer known yet')
    return EXIT.OK
  }
  const rows = [['PEER', 'CONNECTION', 'THEY LACK', 'WE LACK', 'LAST SYNC', 'RTT', 'PROBLEM']]
  for (const peer of body.peers) {
    const sync = peer.lastSync
    const problem = peer.lastSyncFailure ?? peer.connection.lastFailure
    rows.push([
      shortId(peer.peerId, 12),
      peer.connection.state === 'connected'
        ? `connected ${ago(peer.connection.since)}`
        : peer.connection.state === 'never'
          ? 'never connected'
          : `down ${ago(peer.connection.since)}`,
      lack(peer.theyLack),
      lack(peer.weLack),
      sync === null
        ? '-'
        : `${ago(sync.at)} (${sync.reason}, ${Math.round(sync.durationMs)} ms, ${bytes(sync.bytesSent + sync.bytesReceived)})`,
      peer.rttMs === null ? '-' : `${Math.round(peer.rttMs)} ms`,
      problem === null ? '' : `${ago(problem.at)}: ${problem.reason.slice(0, 60)}`,
    ])
  }
  for (const line of table(rows)) context.out(line)
  if (body.peers.some((peer) => !peer.contextKnown))
    context.out('? = not known yet: no anti-entropy session with that peer for this namespace so far')
  return EXIT.OK
}

interface ExplainedEntry {
  value?: unknown
  encoding?: string
  contentType?: string
  peerId: string
  replica: string
  hlc: { wall: number; logical: number; at: string }
  dot: { replica: string; counter: number }
  covers: Array<{ replica: string; from: number; to: number }>
  winner?: boolean
  heldBy: string[]
  notYetAt: string[]
  unknown: string[]
  expiresAt?: string
  expired?: boolean
}

interface Explained {
  key: string
  state: string
  why: string
  siblings: ExplainedEntry[]
  tombstone: ExplainedEntry | null
  horizon: { collected: boolean; note: string } | null
}

function describeHolders(entry: ExplainedEntry, self: string): string {
  const name = (id: string) => (id === self ? 'this peer' : shortId(id))
  const parts = [`held by ${entry.heldBy.map(name).join(', ')}`]
  if (entry.notYetAt.length > 0)
    parts.push(`not yet at ${entry.notYetAt.map((id) => shortId(id)).join(', ')}`)
  if (entry.unknown.length > 0) parts.push(`unknown at ${entry.unknown.map((id) => shortId(id)).join(', ')}`)
  return parts.join('; ')
}

function describeCovers(entry: ExplainedEntry): string {
  if (entry.covers.length === 0) return 'supersedes nothing (the first write it knew of)'
  return `supersedes ${entry.covers.map((r) => `${shortId(r.replica)} ${r.from === r.to ? r.from : `${r.from}-${r.to}`}`).join(', ')}`
}

export const explainCommand: Command = {
  name: 'explain',
  args: '<key>',
  summary: 'why a key reads as it does: siblings, who wrote them, which peers hold them',
  details: `  hearsay explain config
  hearsay explain config --json    # the API's answer (GET /v1/ns/{ns}/kv/{key}/explain)`,
  namespaced: true,
  client: true,
  async run(context) {
    const [key] = need(context, 1, 'key')
    const { body } = await context
      .client()
      .json<Explained>(`${nsPath(context.ns)}/kv/${keyPath(key).replace(/\/explain$/, '%2Fexplain')}/explain`)
    if (context.json) {
      context.printJson(body)
      return EXIT.OK
    }
    // The first holder is always the peer that answered.
    const self = body.siblings[0]?.heldBy[0] ?? body.tombstone?.heldBy[0] ?? ''
    context.out(`${body.key}: ${body.state}`)
    context.out(body.why)
    body.siblings.forEach((sibling, i) => {
      context.out('')
      const mark = sibling.winner === true ? '  <- a read returns this one' : ''
      context.out(`[${i + 1}/${body.siblings.length}] ${preview(sibling)}${mark}`)
      context.out(
        `  written by peer ${sibling.peerId} at ${sibling.hlc.at} (HLC ${sibling.hlc.wall}.${sibling.hlc.logical})`,
      )
      context.out(`  dot ${sibling.dot.replica} #${sibling.dot.counter}; ${describeCovers(sibling)}`)
      context.out(`  ${describeHolders(sibling, self)}`)
      if (sibling.expiresAt !== undefined)
        context.out(`  ${sibling.expired === true ? 'expired' : 'expires'} at ${sibling.expiresAt}`)
    })
    if (body.tombstone !== null) {
      context.out('')
      context.out(`tombstone by peer ${body.tombstone.peerId} at ${body.tombstone.hlc.at}`)
      context.out(`  ${describeCovers(body.tombstone)}; ${describeHolders(body.tombstone, self)}`)
    }
    if (body.horizon !== null) {
      context.out('')
      context.out(body.horizon.note)
    }
    if (body.siblings.filter((s) => s.expired !== true).length > 1)
      context.out(`\nresolve with: hearsay resolve ${key} --pick N   (or --value V)`)
    return EXIT.OK
  },
}

/** Conflicts one `hearsay conflicts` prints at most unless --limit says otherwise, and pages it reads. */
const DEFAULT_CONFLICTS = 100
const MAX_CONFLICT_PAGES = 1_000

export const conflictsCommand: Command = {
  name: 'conflicts',
  args: '',
  summary: 'list keys with concurrent values (siblings)',
  details: `  hearsay conflicts
  hearsay conflicts --prefix config/ --json`,
  namespaced: true,
  client: true,
  options: {
    prefix: { type: 'string', value: '<p>', description: 'only keys under this prefix' },
    limit: {
      type: 'string',
      value: '<n>',
      description: `list at most n keys (default ${DEFAULT_CONFLICTS})`,
    },
  },
  async run(context) {
    const prefix = typeof context.values.prefix === 'string' ? context.values.prefix : ''
    const limitText = context.values.limit as string | undefined
    if (limitText !== undefined && !/^[1-9]\d*$/.test(limitText))
      throw new CliError(EXIT.USAGE, '--limit must be a whole number above 0')
    const limit = limitText === undefined ? DEFAULT_CONFLICTS : Number(limitText)
    const found: Array<{ key: string; siblings: number; etag: string }> = []
    let cursor: string | null = null
    for (let page = 0; page < MAX_CONFLICT_PAGES && found.length < limit; page++) {
      const params = new URLSearchParams({ prefix, limit: String(Math.min(1000, limit - found.length)) })
      if (cursor !== null) params.set('cursor', cursor)
      const { body } = await context
        .client()
        .json<{ conflicts: typeof found; cursor: string | null }>(`${nsPath(context.ns)}/conflicts?${params}`)
      found.push(...body.conflicts)
      cursor = body.cursor
      if (cursor === null) break
    }
    if (context.json) {
      context.printJson({ namespace: context.ns, prefix, conflicts: found, cursor })
      return EXIT.OK
    }
    if (found.length === 0) {
      context.out(`no conflicts${prefix === '' ? '' : ` under ${prefix}`} in ${context.ns}`)
      return EXIT.OK
    }
    for (const line of table([
      ['KEY', 'SIBLINGS'],
      ...found.map((conflict) => [conflict.key, String(conflict.siblings)]),
    ]))
      context.out(line)
    if (cursor !== null) context.out(`(more: raise --limit)`)
    return EXIT.OK
  },
}

interface SiblingJson {
  value: unknown
  encoding: 'json' | 'utf8' | 'base64'
  contentType: string
}

/** The bytes a sibling shows: JSON as its text (re-serialized compactly), text, or base64. */
function siblingBytes(sibling: SiblingJson): Uint8Array {
  if (sibling.encoding === 'base64') return Buffer.from(String(sibling.value), 'base64')
  if (sibling.encoding === 'json') return Buffer.from(JSON.stringify(sibling.value))
  return Buffer.from(String(sibling.value))
}

export const resolveCommand: Command = {
  name: 'resolve',
  args: '<key>',
  summary: 'replace all concurrent values of a key with one of them (--pick) or a new one (--value)',
  details: `Reads the key's siblings (as get --siblings shows them, numbered from 1), then writes the
chosen or new value with If-Match set to that read's ETag, so it replaces exactly the values
that were read; a value written meanwhile is kept beside it (412 if the key changed
in a way the read did not see).

  hearsay resolve config --pick 2
  hearsay resolve config --value '{"mode":"fast"}' --type json`,
  namespaced: true,
  client: true,
  options: {
    pick: {
      type: 'string',
      value: '<n>',
      description: 'keep sibling n (1 = the first get --siblings shows)',
    },
    value: { type: 'string', value: '<v>', description: 'write this value instead' },
    type: {
      type: 'string',
      value: '<type>',
      description: 'content type of --value (default: that of the value a read returns)',
    },
  },
  async run(context) {
    const [key] = need(context, 1, 'key')
    const pick = context.values.pick as string | undefined
    const value = context.values.value as string | undefined
    if ((pick === undefined) === (value === undefined))
      throw new CliError(EXIT.USAGE, 'give exactly one of --pick <n> or --value <v>')
    const path = `${nsPath(context.ns)}/kv/${keyPath(key)}`
    const { body: read } = await context
      .client()
      .json<{ etag: string; winner: number; siblings: SiblingJson[] }>(`${path}?siblings=1`)
    let bytesToWrite: Uint8Array
    let contentType: string
    if (pick !== undefined) {
      if (!/^[1-9]\d*$/.test(pick) || Number(pick) > read.siblings.length)
        throw new CliError(
          EXIT.USAGE,
          `--pick must be from 1 to ${read.siblings.length} (the key has ${read.siblings.length} value(s))`,
        )
      const chosen = read.siblings[Number(pick) - 1]
      bytesToWrite = siblingBytes(chosen)
      contentType = chosen.contentType
    } else {
      bytesToWrite = Buffer.from(value!)
      const type = context.values.type as string | undefined
      contentType = type === undefined ? read.siblings[read.winner].contentType : contentTypeOf(type)
    }
    const { body } = await context.client().json<{ etag: string }>(path, {
      method: 'PUT',
      body: bytesToWrite,
      headers: { 'content-type': contentType, 'if-match': `"${read.etag}"` },
    })
    if (context.json) {
      context.printJson({ namespace: context.ns, key, replaced: read.siblings.length, etag: body.etag })
      return EXIT.OK
    }
    context.out(
      `${key}: ${read.siblings.length === 1 ? 'the one value was' : `${read.siblings.length} values were`} replaced by ${pick !== undefined ? `sibling ${pick}` : 'the new value'} (etag ${body.etag})`,
    )
    return EXIT.OK
  },
}

interface EventJson {
  type: string
  at: string
  peerId: string
  namespace?: string
  reason?: string
  role?: string
  durationMs?: number
  bytesSent?: number
  bytesReceived?: number
  entriesReceived?: number
  error?: string
}

function describeEvent(data: EventJson): string {
  const time = data.at.slice(11, 23)
  const who = shortId(data.peerId, 12)
  const ns = data.namespace === undefined ? '' : ` ${data.namespace}`
  switch (data.type) {
    case 'sync-started':
      return `${time} sync started    ${who}${ns} (${data.role}, ${data.reason})`
    case 'sync-completed':
      return `${time} sync completed  ${who}${ns} (${data.role}, ${data.reason}) ${Math.round(data.durationMs ?? 0)} ms, ${data.entriesReceived ?? 0} entries in, ${bytes((data.bytesSent ?? 0) + (data.bytesReceived ?? 0))}`
    case 'sync-failed':
      return `${time} sync FAILED     ${who}${ns}: ${data.error}`
    case 'peer-connected':
      return `${time} connected       ${who}`
    case 'peer-disconnected':
      return `${time} disconnected    ${who}`
    default:
      return `${time} ${data.type} ${who}`
  }
}

export const eventsCommand: Command = {
  name: 'events',
  args: '',
  summary: 'print mesh events as they happen: peers connecting, anti-entropy sessions',
  details: `  hearsay events
  hearsay events --json --count 5   # one JSON object per event (GET /v1/events)`,
  client: true,
  options: {
    count: { type: 'string', value: '<n>', description: 'exit after n events' },
  },
  async run(context) {
    const countText = context.values.count as string | undefined
    if (countText !== undefined && !/^\d+$/.test(countText))
      throw new CliError(EXIT.USAGE, '--count must be a whole number')
    const limit = countText === undefined ? Number.POSITIVE_INFINITY : Number(countText)
    if (limit === 0) return EXIT.OK
    const controller = new AbortController()
    const onSignal = () => controller.abort()
    process.once('SIGINT', onSignal)
    process.once('SIGTERM', onSignal)
    let seen = 0
    try {
      const response = await context
        .client()
        .request('/v1/events', { signal: controller.signal, stream: true })
      for await (const event of parseSse(response.body)) {
        if (event.event === 'ready') continue
        if (event.event === 'overflow' || event.event === 'shutdown') {
          throw new CliError(
            EXIT.NO_DAEMON,
            event.event === 'overflow' ? 'fell behind the event stream' : 'the daemon stopped',
          )
        }
        const data = JSON.parse(event.data) as EventJson
        if (context.json) context.out(event.data)
        else context.out(describeEvent(data))
        if (++seen >= limit) return EXIT.OK
      }
      throw new CliError(EXIT.NO_DAEMON, 'the daemon closed the event stream')
    } catch (error) {
      if (controller.signal.aborted) return EXIT.OK
      throw error
    } finally {
      controller.abort()
      process.off('SIGINT', onSignal)
      process.off('SIGTERM', onSignal)
    }
  },
}

export const INSIGHT_COMMANDS: Command[] = [explainCommand, conflictsCommand, resolveCommand, eventsCommand]

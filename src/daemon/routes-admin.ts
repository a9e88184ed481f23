import { mkdirSync } from 'node:fs'
import { join } from 'node:path'
import { CausalContext } from '../crdt/context.ts'
import { parseInternalKey } from '../crdt/document.ts'
import { EntryKind } from '../crdt/entry.ts'
import type { Replica } from '../replica/replica.ts'
import { verifyStoreFile } from '../store/backup.ts'
import type { SqliteStore } from '../store/sqlite.ts'
import { StoreError } from '../store/types.ts'
import { ApiError } from './errors.ts'
import type { ApiResponse } from './http.ts'
import { json, type Route, type RouteContext, readJsonObject } from './route.ts'
import { describeSibling, encodeValue, stringifyJson } from './values.ts'

/**
 * Operations on the daemon's data as a whole: an online backup, an export as JSON lines, leaving a
 * namespace, forgetting a member. A backup is only ever written inside the data dir (`backups/`):
 * an API client must not be able to make the daemon create or replace files elsewhere with its
 * rights (the CLI copies the backup out with the rights of whoever runs it). All but the export change state, so the access rules of
 * access.ts (no cross-origin writes, the bearer token beyond loopback) apply to them.
 */

/** The content type of an export: one JSON object per line. */
export const JSON_LINES_TYPE = 'application/x-ndjson; charset=utf-8'

/** Lines of an export rendered per chunk of the response stream (between chunks, others run). */
const EXPORT_LINES_PER_CHUNK = 256

let backupRunning = false

/** Backup file names: one plain name, so a request can only ever write inside the backups dir. */
const BACKUP_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/

/** Where backups go: `backups/` in the data dir, owner only (they hold every replicated value). */
export function backupDir(dataDir: string): string {
  return join(dataDir, 'backups')
}

export const backupRoute: Route = {
  template: '/v1/admin/backup',
  methods: {
    async POST(context) {
      const body = await readJsonObject(context.request)
      const { name, overwrite } = body
      if (typeof name !== 'string' || !BACKUP_NAME.test(name)) {
        throw new ApiError(
          400,
          'INVALID_BODY',
          'send {"name": "<file name>", "overwrite": false}: a plain file name (letters, digits, ".", "_", "-"), written in the data dir\'s backups/',
        )
      }
      if (overwrite !== undefined && typeof overwrite !== 'boolean') {
        throw new ApiError(400, 'INVALID_BODY', '"overwrite" must be true or false')
      }
      const store = context.app.peer.store as Partial<SqliteStore>
      if (store.kind !== 'sqlite' || typeof store.backup !== 'function') {
        throw new ApiError(
          409,
          'BACKUP_UNAVAILABLE',
          `this daemon keeps its data in a ${store.kind} store, which has no file to back up`,
        )
      }
      if (backupRunning)
        throw new ApiError(409, 'BACKUP_UNAVAILABLE', 'another backup is running; retry when it ends')
      backupRunning = true
      const started = performance.now()
      const dir = backupDir(context.app.info().dataDir)
      const path = join(dir, name)
      try {
        try {
          mkdirSync(dir, { recursive: true, mode: 0o700 })
        } catch (error) {
          throw new ApiError(422, 'BACKUP_FAILED', `cannot create ${dir}: ${(error as Error).message}`)
        }
        // Pending local writes first: everything acknowledged before this request is in the copy.
        await Promise.all(context.app.peer.namespaces().map((ns) => context.app.peer.namespace(ns).flush()))
        const { pages, bytes } = await store.backup(path, { overwrite: overwrite === true })
        const report = verifyStoreFile(path)
        return json(201, {
          path,
          bytes,
          pages,
          namespaces: report.namespaces,
          entries: report.entries,
          schemaVersion: report.schemaVersion,
          integrity: 'ok',
          tookMs: Math.round(performance.now() - started),
        })
      } catch (error) {
        if (!(error instanceof StoreError)) throw error
        if (/EEXIST/.test(error.message)) {
          throw new ApiError(409, 'BACKUP_EXISTS', `${path} exists; send "overwrite": true to replace it`)
        }
        throw new ApiError(422, 'BACKUP_FAILED', error.message)
      } finally {
        backupRunning = false
      }
    },
  },
}

/** DELETE /v1/ns/:ns?confirm=<ns>: stop replicating a namespace and delete its local data. */
export async function leaveNamespace(context: RouteContext): Promise<ApiResponse> {
  const ns = context.params.ns!
  const confirm = context.query.get('confirm')
  if (confirm !== ns) {
    throw new ApiError(
      400,
      'CONFIRMATION_REQUIRED',
      `leaving deletes this peer's copy of "${ns}": repeat its name as ?confirm=${encodeURIComponent(ns)}`,
    )
  }
  const replica = context.existing()
  const entries = replica.entryCount
  const { peer, hub, reads } = context.app
  await peer.leave(ns)
  hub.leave(ns)
  reads.dropNamespace(ns)
  context.app.logger.info({ namespace: ns, entries }, 'left a namespace and deleted its local data')
  return json(200, { namespace: ns, left: true, entriesDropped: entries })
}

export const forgetPeerRoute: Route = {
  template: '/v1/peers/:peer',
  methods: {
    DELETE(context) {
      const id = context.params.peer!
      const { peer } = context.app
      const known = peer.peers().find((p) => p.peerId === id)
      if (known === undefined) {
        throw new ApiError(404, 'PEER_NOT_FOUND', `peer ${id} is not a member known to this peer`)
      }
      if (known.connected) {
        throw new ApiError(
          409,
          'PEER_CONNECTED',
          `peer ${id} is connected right now; forget is for members that are gone (it would be a member again at once)`,
        )
      }
      if (!peer.forgetPeer(id))
        throw new ApiError(404, 'PEER_NOT_FOUND', `peer ${id} is not a member known to this peer`)
      context.app.logger.info({ peer: id }, 'forgot a member')
      return json(200, { peerId: id, forgotten: true })
    },
  },
}

export const exportRoute: Route = {
  template: '/v1/admin/export',
  methods: {
    GET(context) {
      const { peer } = context.app
      const prefix = context.query.get('prefix') ?? ''
      const asked = context.query.getAll('namespace')
      for (const name of asked) {
        if (!peer.hasNamespace(name)) {
          throw new ApiError(404, 'NAMESPACE_NOT_FOUND', `namespace "${name}" is not joined on this peer`)
        }
      }
      const names = asked.length > 0 ? [...new Set(asked)].sort() : peer.namespaces()
      const replicas = names.map((name) => peer.namespace(name))
      return {
        status: 200,
        headers: { 'content-type': JSON_LINES_TYPE },
        body: exportLines(replicas, prefix),
      }
    },
  },
}

interface KeyRef {
  type: 'register' | 'counter' | 'set'
  key: string
}

/** The live keys of a namespace with their types, sorted by type then key. */
function liveKeys(replica: Replica, prefix: string): KeyRef[] {
  const seen = new Map<string, KeyRef>()
  for (const entry of replica.deltasSince(new CausalContext()).entries) {
    if (entry.kind === EntryKind.Tombstone) continue
    const { type, key } = parseInternalKey(entry.key)
    if (!key.startsWith(prefix)) continue
    seen.set(`${type}\u0000${key}`, { type, key })
  }
  const order = { register: 0, counter: 1, set: 2 }
  return [...seen.values()].sort(
    (a, b) => order[a.type] - order[b.type] || (a.key < b.key ? -1 : a.key > b.key ? 1 : 0),
  )
}

/** One export line per live key, read when its chunk is rendered (the export is not a snapshot). */
export function exportLine(replica: Replica, ref: KeyRef): string | undefined {
  const namespace = replica.namespace
  if (ref.type === 'register') {
    const read = replica.get(ref.key)
    if (read === undefined) return undefined
    return stringifyJson({
      namespace,
      type: 'register',
      key: ref.key,
      etag: read.etag,
      ...encodeValue(read.winner.value, read.winner.contentType),
      writtenAt: new Date(read.winner.wall).toISOString(),
      siblings: read.siblings.map(describeSibling),
    })
  }
  if (ref.type === 'counter') {
    return stringifyJson({ namespace, type: 'counter', key: ref.key, value: replica.counter(ref.key) })
  }
  const members = replica.setMembers(ref.key)
  if (members.length === 0) return undefined
  return stringifyJson({ namespace, type: 'set', key: ref.key, members })
}

async function* exportLines(replicas: Replica[], prefix: string): AsyncGenerator<string> {
  for (const replica of replicas) {
    const refs = liveKeys(replica, prefix)
    for (let at = 0; at < refs.length; at += EXPORT_LINES_PER_CHUNK) {
      let chunk = ''
      for (const ref of refs.slice(at, at + EXPORT_LINES_PER_CHUNK)) {
        const line = exportLine(replica, ref)
        if (line !== undefined) chunk += `${line}\n`
      }
      if (chunk !== '') yield chunk
      // Let requests and merges run between chunks of a large export.
      await new Promise((resolve) => setImmediate(resolve))
    }
  }
}

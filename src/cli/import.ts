import type { DaemonClient } from './client.ts'
import { keyPath, nsPath } from './client.ts'
import { CliError } from './exit-codes.ts'

/**
 * `hearsay import`: the lines of an export (src/daemon/routes-admin.ts), written back through the
 * ordinary API. Every line is idempotent, so applying a line twice (a resume that repeats the last
 * few lines) changes nothing: a register is put to its value, a counter is moved to its value (by
 * the difference from what it is now), a set's members are added.
 */

/** One line of an export, checked. */
export type ImportRecord =
  | { type: 'register'; namespace: string; key: string; contentType: string; body: Uint8Array }
  | { type: 'counter'; namespace: string; key: string; value: number }
  | { type: 'set'; namespace: string; key: string; members: string[] }

/** A line that cannot be imported; `line` is 1-based. */
export class ImportLineError extends Error {
  override readonly name = 'ImportLineError'
}

/** Set members sent per request (a JSON body may be at most 64 KiB). */
const MEMBERS_PER_REQUEST = 256

/**
 * Parses one line of an export. `namespace` overrides the line's own (or fills it in when the line
 * has none). Throws ImportLineError saying what is wrong.
 */
export function parseImportLine(
  text: string,
  namespace: { override?: string; fallback: string },
): ImportRecord {
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch (error) {
    throw new ImportLineError(`not JSON: ${(error as Error).message}`)
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new ImportLineError('not a JSON object')
  }
  const line = value as Record<string, unknown>
  const key = line.key
  if (typeof key !== 'string' || key === '') throw new ImportLineError('"key" must be a non-empty string')
  const own = line.namespace
  if (own !== undefined && typeof own !== 'string') throw new ImportLineError('"namespace" must be a string')
  const ns = namespace.override ?? own ?? namespace.fallback
  switch (line.type) {
    case 'register': {
      const contentType = line.contentType
      if (typeof contentType !== 'string' || contentType === '') {
        throw new ImportLineError('a register needs a "contentType"')
      }
      return { type: 'register', namespace: ns, key, contentType, body: registerBody(line) }
    }
    case 'counter': {
      if (!Number.isSafeInteger(line.value))
        throw new ImportLineError('a counter "value" must be a safe integer')
      return { type: 'counter', namespace: ns, key, value: line.value as number }
    }
    case 'set': {
      const members = line.members
      if (!Array.isArray(members) || !members.every((m) => typeof m === 'string')) {
        throw new ImportLineError('a set needs "members", an array of strings')
      }
      return { type: 'set', namespace: ns, key, members: members as string[] }
    }
    default:
      throw new ImportLineError(`"type" must be register, counter or set, got ${JSON.stringify(line.type)}`)
  }
}

function registerBody(line: Record<string, unknown>): Uint8Array {
  switch (line.encoding) {
    case 'json':
      if (line.value === undefined) throw new ImportLineError('a register needs a "value"')
      return Buffer.from(JSON.stringify(line.value))
    case 'utf8':
      if (typeof line.value !== 'string') throw new ImportLineError('a utf8 "value" must be a string')
      return Buffer.from(line.value, 'utf8')
    case 'base64':
      if (typeof line.value !== 'string' || !/^[A-Za-z0-9+/]*={0,2}$/.test(line.value)) {
        throw new ImportLineError('a base64 "value" must be a base64 string')
      }
      return Buffer.from(line.value, 'base64')
    default:
      throw new ImportLineError(
        `"encoding" must be json, utf8 or base64, got ${JSON.stringify(line.encoding)}`,
      )
  }
}

/** Writes one record through the API; throws CliError when the daemon refuses it. */
export async function applyRecord(client: DaemonClient, record: ImportRecord): Promise<void> {
  const base = nsPath(record.namespace)
  const path = (kind: string) => `${base}/${kind}/${keyPath(record.key)}`
  switch (record.type) {
    case 'register':
      await client.request(path('kv'), {
        method: 'PUT',
        body: record.body,
        headers: { 'content-type': record.contentType },
      })
      return
    case 'counter': {
      // GET of a counter in a namespace not joined yet is a 404: it is 0 there.
      const current = await client.json<{ value?: number }>(path('counter'), { accept: [404] })
      const by = record.value - (current.status === 404 ? 0 : (current.body.value ?? 0))
      if (by === 0 && current.status !== 404) return
      await client.request(path('counter'), {
        method: 'POST',
        body: JSON.stringify({ by }),
        headers: { 'content-type': 'application/json' },
      })
      return
    }
    case 'set':
      for (let at = 0; at < record.members.length; at += MEMBERS_PER_REQUEST) {
        await client.request(path('set'), {
          method: 'POST',
          body: JSON.stringify({ add: record.members.slice(at, at + MEMBERS_PER_REQUEST) }),
          headers: { 'content-type': 'application/json' },
        })
      }
      return
  }
}

/** Why a line failed, for the report on stderr. */
export function failureReason(error: unknown): string {
  if (error instanceof ImportLineError) return error.message
  if (error instanceof CliError)
    return error.code === undefined ? error.message : `${error.code}: ${error.message}`
  return (error as Error).message ?? String(error)
}

import type { Replica } from '../replica/replica.ts'
import type { AppInit } from './app.ts'
import { DEFAULT_LIST_LIMIT, MAX_JSON_BODY_BYTES, MAX_LIST_LIMIT } from './constants.ts'
import { ApiError } from './errors.ts'
import { type ApiRequest, type ApiResponse, header } from './http.ts'
import { jsonTextProblem, MAX_JSON_DEPTH } from './json-text.ts'
import { isJsonType, stringifyJson, utf8Text } from './values.ts'

/** What a route is and gets, and the small helpers every route file shares. */

/** What a route handler gets. */
export interface RouteContext {
  request: ApiRequest
  /** Decoded path parameters. */
  params: { ns?: string; key?: string; peer?: string }
  query: URLSearchParams
  app: AppInit
  /** A joined namespace, or 404 NAMESPACE_NOT_FOUND (reads must not create namespaces by typo). */
  existing(): Replica
  /** A namespace, joined now if it was not (writes and watches join). */
  join(): Replica
}

export type Handler = (context: RouteContext) => ApiResponse | Promise<ApiResponse>

export interface Route {
  /** Template for metrics and logs, e.g. `/v1/ns/:ns/kv/:key`. */
  template: string
  methods: Partial<Record<'GET' | 'PUT' | 'POST' | 'DELETE', Handler>>
}

export const JSON_TYPE = 'application/json; charset=utf-8'

export function json(status: number, value: unknown, headers: Record<string, string> = {}): ApiResponse {
  return { status, headers: { 'content-type': JSON_TYPE, ...headers }, body: stringifyJson(value) }
}

export function errorResponse(error: ApiError): ApiResponse {
  return json(error.status, { error: { code: error.code, message: error.message } }, error.headers)
}

/** A JSON object body (empty body → `{}`), refusing other media types, bad JSON and non-objects. */
export async function readJsonObject(request: ApiRequest): Promise<Record<string, unknown>> {
  const bytes = await request.body(MAX_JSON_BODY_BYTES, 'PAYLOAD_TOO_LARGE')
  if (bytes.length === 0) return {}
  const type = header(request, 'content-type')
  if (!isJsonType(type)) {
    throw new ApiError(
      415,
      'UNSUPPORTED_MEDIA_TYPE',
      `send application/json (got ${type ?? 'no Content-Type'})`,
    )
  }
  const text = checkJsonText(bytes, 'body')
  // Checked above: valid and shallow, so the (recursive) consumers of the parsed object are safe.
  const value: unknown = JSON.parse(text)
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new ApiError(400, 'INVALID_BODY', 'body must be a JSON object')
  }
  return value as Record<string, unknown>
}

/**
 * The text of a JSON body or value, refused (400) unless it is UTF-8, valid JSON and nested at most
 * MAX_JSON_DEPTH deep: `JSON_TOO_DEEP` names the limit, `INVALID_JSON` says what is wrong where.
 */
export function checkJsonText(bytes: Uint8Array, what: 'body' | 'value'): string {
  const text = utf8Text(bytes)
  if (text === undefined) throw new ApiError(400, 'INVALID_JSON', `the JSON ${what} is not valid UTF-8`)
  const problem = jsonTextProblem(text)
  if (problem?.kind === 'too-deep') {
    throw new ApiError(
      400,
      'JSON_TOO_DEEP',
      `the JSON ${what} nests arrays and objects deeper than ${MAX_JSON_DEPTH} levels, the limit (at character ${problem.offset})`,
    )
  }
  if (problem !== undefined) {
    throw new ApiError(
      400,
      'INVALID_JSON',
      `${what === 'value' ? 'Content-Type says JSON but the value' : 'the body'} is not valid JSON: ${problem.reason} at character ${problem.offset}`,
    )
  }
  return text
}

/** An integer query parameter within bounds, or its default. */
export function intParam(
  query: URLSearchParams,
  name: string,
  min: number,
  max: number,
  fallback: number,
): number {
  const raw = query.get(name)
  if (raw === null || raw === '') return fallback
  if (!/^-?\d+$/.test(raw))
    throw new ApiError(400, 'INVALID_PARAMETER', `${name} must be a whole number, got "${raw}"`)
  const value = Number(raw)
  if (value < min || value > max) {
    throw new ApiError(400, 'INVALID_PARAMETER', `${name} must be from ${min} to ${max}, got ${value}`)
  }
  return value
}

/** The paging parameters of a key listing: `prefix`, `limit` and `cursor` (empty: the first page). */
export function pageParams(query: URLSearchParams): { prefix: string; limit: number; cursor?: string } {
  const cursor = query.get('cursor') ?? ''
  return {
    prefix: query.get('prefix') ?? '',
    limit: intParam(query, 'limit', 1, MAX_LIST_LIMIT, DEFAULT_LIST_LIMIT),
    cursor: cursor === '' ? undefined : cursor,
  }
}

/** A boolean query flag: present as `1`, `true`, `yes` or empty (`?siblings`). */
export function flagParam(query: URLSearchParams, name: string): boolean {
  const raw = query.get(name)
  if (raw === null) return false
  const text = raw.toLowerCase()
  if (text === '' || text === '1' || text === 'true' || text === 'yes') return true
  if (text === '0' || text === 'false' || text === 'no') return false
  throw new ApiError(400, 'INVALID_PARAMETER', `${name} must be 1 or 0, got "${raw}"`)
}

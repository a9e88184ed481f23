import type { Sibling } from '../crdt/document.ts'
import { jsonTextProblem } from './json-text.ts'

/**
 * Values are bytes with a content type; nothing below the HTTP layer interprets them. Where the API
 * must put a value inside JSON (siblings, listings, watch events) it says how, in `encoding`:
 *
 * - `json`: the value itself, embedded as its stored text (never parsed and re-serialized), when the
 *   content type is JSON and the text passes `jsonTextProblem` (valid, nested at most
 *   MAX_JSON_DEPTH deep);
 * - `utf8`: a JSON string holding the text, for text types, and for a JSON-typed value that fails
 *   that check (a peer may store anything: peers never interpret values);
 * - `base64`: everything else.
 */

export type ValueEncoding = 'json' | 'utf8' | 'base64'

/** JSON text to embed as is by `stringifyJson`; it passed `jsonTextProblem` and has no line breaks. */
export class RawJson {
  readonly text: string
  constructor(text: string) {
    this.text = text
  }
}

export interface EncodedValue {
  contentType: string
  encoding: ValueEncoding
  value: RawJson | string
}

// ignoreBOM keeps a leading BOM in the text, so a utf8 value is exactly the stored bytes.
const strictUtf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true })

/** The media type without parameters, lower-cased: `Application/JSON; charset=utf-8` → `application/json`. */
export function mediaType(contentType: string | undefined): string {
  if (contentType === undefined) return ''
  const semicolon = contentType.indexOf(';')
  return (semicolon < 0 ? contentType : contentType.slice(0, semicolon)).trim().toLowerCase()
}

export function isJsonType(contentType: string | undefined): boolean {
  const type = mediaType(contentType)
  return type === 'application/json' || type.endsWith('+json')
}

function isTextType(contentType: string): boolean {
  const type = mediaType(contentType)
  return (
    type.startsWith('text/') ||
    type === 'application/xml' ||
    type.endsWith('+xml') ||
    type === 'application/javascript' ||
    /;\s*charset=utf-?8/i.test(contentType)
  )
}

/** Strict UTF-8 text of bytes, or undefined when they are not UTF-8. */
export function utf8Text(value: Uint8Array): string | undefined {
  try {
    return strictUtf8.decode(value)
  } catch {
    return undefined
  }
}

export function encodeValue(value: Uint8Array, contentType: string): EncodedValue {
  const json = isJsonType(contentType)
  if (json || isTextType(contentType)) {
    const text = utf8Text(value)
    if (text !== undefined) {
      if (json && jsonTextProblem(text) === undefined) {
        // In valid JSON, CR and LF occur only as whitespace between tokens: as spaces they mean the
        // same, and the text then fits on one SSE `data:` line.
        return { contentType, encoding: 'json', value: new RawJson(text.replace(/[\r\n]/g, ' ')) }
      }
      return { contentType, encoding: 'utf8', value: text }
    }
  }
  return { contentType, encoding: 'base64', value: Buffer.from(value).toString('base64') }
}

export function describeSibling(sibling: Sibling) {
  return {
    ...encodeValue(sibling.value, sibling.contentType),
    replica: sibling.replica,
    counter: sibling.counter,
    wall: sibling.wall,
    writtenAt: new Date(sibling.wall).toISOString(),
  }
}

/**
 * JSON.stringify for the API's own envelopes, embedding RawJson as its text. It recurses only
 * through the envelope (a few levels the daemon builds), never into a value.
 */
export function stringifyJson(value: unknown): string {
  if (value instanceof RawJson) return value.text
  if (Array.isArray(value)) {
    let out = ''
    for (let i = 0; i < value.length; i++) {
      const item = value[i]
      out += `${i === 0 ? '' : ','}${item === undefined ? 'null' : stringifyJson(item)}`
    }
    return `[${out}]`
  }
  if (value !== null && typeof value === 'object') {
    let out = ''
    for (const name of Object.keys(value)) {
      const item = (value as Record<string, unknown>)[name]
      if (item === undefined || typeof item === 'function') continue
      out += `${out === '' ? '' : ','}${JSON.stringify(name)}:${stringifyJson(item)}`
    }
    return `{${out}}`
  }
  return JSON.stringify(value) ?? 'null'
}

import type { Sibling } from '../crdt/document.ts'

/**
 * Values are bytes with a content type. Where the API must put a value inside JSON (siblings,
 * listings, watch events) it says how: `json` (the parsed value), `utf8` (text) or `base64`.
 */

export type ValueEncoding = 'json' | 'utf8' | 'base64'

export interface EncodedValue {
  contentType: string
  encoding: ValueEncoding
  value: unknown
}

const strictUtf8 = new TextDecoder('utf-8', { fatal: true })

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

export function encodeValue(value: Uint8Array, contentType: string): EncodedValue {
  if (isJsonType(contentType) || isTextType(contentType)) {
    let text: string | undefined
    try {
      text = strictUtf8.decode(value)
    } catch {
      text = undefined
    }
    if (text !== undefined) {
      if (isJsonType(contentType)) {
        try {
          return { contentType, encoding: 'json', value: JSON.parse(text) }
        } catch {
          // Written by a peer that did not check: show it as the text it is.
        }
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

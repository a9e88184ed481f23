/**
 * The key rules: one place that says which keys and set elements a replica accepts. The Replica
 * enforces them on every call; the HTTP layer checks them before a write joins a namespace, so a
 * bad key creates nothing.
 */
import { DEFAULT_LIMITS } from '../codec/limits.ts'
import { KEY_SEPARATOR } from '../crdt/document.ts'

/** Largest key by default, UTF-8 bytes: the codec's key limit minus the one-byte type prefix. */
export const MAX_KEY_BYTES = DEFAULT_LIMITS.maxKeyBytes - 1

/** Why a key is refused, or undefined when it is fine. */
export function keyProblem(key: string, maxKeyBytes = MAX_KEY_BYTES): string | undefined {
  if (typeof key !== 'string' || key.length === 0) return 'key must be a non-empty string'
  if (key.includes(KEY_SEPARATOR)) return 'key must not contain NUL'
  if (!key.isWellFormed()) return 'key must be well-formed Unicode'
  const bytes = Buffer.byteLength(key, 'utf8')
  if (bytes > maxKeyBytes) return `key is ${bytes} bytes, the limit is ${maxKeyBytes}`
  return undefined
}

/** Why a set element is refused (the key is checked separately), or undefined. */
export function setElementProblem(
  key: string,
  element: string,
  maxKeyBytes = MAX_KEY_BYTES,
): string | undefined {
  if (typeof element !== 'string' || element.includes(KEY_SEPARATOR) || !element.isWellFormed()) {
    return 'set element must be a well-formed string without NUL'
  }
  const bytes = Buffer.byteLength(key, 'utf8') + 1 + Buffer.byteLength(element, 'utf8')
  if (bytes > maxKeyBytes) return `set key and element are ${bytes} bytes, the limit is ${maxKeyBytes}`
  return undefined
}

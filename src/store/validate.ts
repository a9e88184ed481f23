import type { StoreBatch } from './types.ts'

/**
 * Checks a whole batch before any of it is applied. A malformed batch is a caller bug, not a storage
 * failure: it throws a TypeError, changes nothing, and leaves the store usable. Checking up front
 * (rather than letting the driver choke halfway) also keeps odd values out of the file: node:sqlite
 * binds NaN as NULL and a missing parameter as NULL without complaint.
 */
export function assertValidBatch(namespace: string, batch: StoreBatch): void {
  assertNamespace(namespace)
  if (batch === null || typeof batch !== 'object') throw new TypeError('store batch must be an object')
  const { put, remove, meta } = batch
  if (!Array.isArray(put) || !Array.isArray(remove) || !Array.isArray(meta)) {
    throw new TypeError('store batch needs put, remove and meta arrays')
  }
  for (let i = 0; i < put.length; i++) {
    const entry = put[i]
    if (entry === null || typeof entry !== 'object') throw new TypeError(`put[${i}] is not an entry`)
    assertDot(entry.replica, entry.counter, `put[${i}]`)
    if (typeof entry.key !== 'string') throw new TypeError(`put[${i}].key must be a string`)
    if (!(entry.data instanceof Uint8Array)) throw new TypeError(`put[${i}].data must be a Uint8Array`)
  }
  for (let i = 0; i < remove.length; i++) {
    const dot = remove[i]
    if (dot === null || typeof dot !== 'object') throw new TypeError(`remove[${i}] is not a dot`)
    assertDot(dot.replica, dot.counter, `remove[${i}]`)
  }
  for (let i = 0; i < meta.length; i++) {
    const pair = meta[i]
    if (!Array.isArray(pair) || pair.length !== 2) {
      throw new TypeError(`meta[${i}] must be a [name, value] pair`)
    }
    if (typeof pair[0] !== 'string' || pair[0] === '') {
      throw new TypeError(`meta[${i}] name must be a non-empty string`)
    }
    if (!(pair[1] instanceof Uint8Array)) throw new TypeError(`meta[${i}] value must be a Uint8Array`)
  }
}

export function assertNamespace(namespace: string): void {
  if (typeof namespace !== 'string' || namespace === '') {
    throw new TypeError('namespace must be a non-empty string')
  }
}

function assertDot(replica: unknown, counter: unknown, where: string): void {
  if (typeof replica !== 'string' || replica === '') {
    throw new TypeError(`${where}.replica must be a non-empty string`)
  }
  if (typeof counter !== 'number' || !Number.isSafeInteger(counter) || counter < 1) {
    throw new TypeError(`${where}.counter must be a positive safe integer, got ${String(counter)}`)
  }
}

/** True when a batch changes nothing, so an adapter can skip the transaction. */
export function isEmptyBatch(batch: StoreBatch): boolean {
  return batch.put.length === 0 && batch.remove.length === 0 && batch.meta.length === 0
}

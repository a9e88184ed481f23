import type { HearsayPeer } from '../peer/peer.ts'
import type { ChangeEvent, Replica } from '../replica/replica.ts'

/**
 * The answer to a plain GET of a key, kept until the key changes. A read through the Replica builds
 * its causal token (the ETag) every time, which is half the cost of a local GET; the token only
 * changes when the key does, and every change of a key reaches the peer's change event after commit,
 * so invalidating there keeps the cache exact.
 */

export interface CachedRead {
  value: Uint8Array
  contentType: string
  /** The quoted ETag header value. */
  etag: string
  siblings: number
}

/** Enough for the hot keys of an edge app; beyond it the cache starts over (cheap, and never stale). */
const MAX_ENTRIES = 10_000

export class ReadCache {
  private readonly reads = new Map<string, CachedRead>()

  constructor(peer: HearsayPeer) {
    peer.on('change', (event: ChangeEvent) => {
      if (event.type === 'register') this.reads.delete(cacheKey(event.namespace, event.key))
    })
  }

  /** Drops every read of a namespace (it was left). */
  dropNamespace(namespace: string): void {
    const prefix = cacheKey(namespace, '')
    for (const id of [...this.reads.keys()]) if (id.startsWith(prefix)) this.reads.delete(id)
  }

  /** The current read of a key, or undefined when it does not exist. */
  read(replica: Replica, key: string): CachedRead | undefined {
    const id = cacheKey(replica.namespace, key)
    const cached = this.reads.get(id)
    if (cached !== undefined) return cached
    const read = replica.get(key)
    if (read === undefined) return undefined
    const fresh: CachedRead = {
      value: read.winner.value,
      contentType: headerSafeType(read.winner.contentType),
      etag: `"${read.etag}"`,
      siblings: read.siblings.length,
    }
    if (this.reads.size >= MAX_ENTRIES) this.reads.clear()
    this.reads.set(id, fresh)
    return fresh
  }
}

/**
 * The Content-Type header of a stored value. A peer may have stored any text as a content type (peers
 * never interpret it); one that an HTTP header cannot carry is served as application/octet-stream,
 * and the JSON views (`?siblings=1`, listings, watch) still show it as stored.
 */
function headerSafeType(contentType: string): string {
  return /^[\x21-\x7e][\x20-\x7e]{0,126}$/.test(contentType) ? contentType : 'application/octet-stream'
}

function cacheKey(namespace: string, key: string): string {
  return `${namespace}\u0000${key}`
}

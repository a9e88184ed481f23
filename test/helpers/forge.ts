import type { PrivateKey } from '@libp2p/interface'
import type { Delta } from '../../src/crdt/index.ts'
import { createEntrySigner, signEntry, signEntries as signTogether } from '../../src/replica/signing.ts'

/**
 * Signs every entry of a delta made outside a Replica (a bare CrdtDocument) with `key`, as its
 * author would: valid when the entries' replica ids belong to the key, foreign otherwise.
 */
export function signEntries(key: PrivateKey, namespace: string, delta: Delta): Delta {
  const signer = createEntrySigner(key)
  for (const entry of delta.entries) entry.signature = signEntry(signer, namespace, entry).signature
  return delta
}

/** Signs every entry of a delta with `key` the way a replica signs one commit turn: together. */
export function signAsTurn(key: PrivateKey, namespace: string, delta: Delta): Delta {
  const heads = signTogether(createEntrySigner(key), namespace, delta.entries)
  delta.entries.forEach((entry, i) => {
    entry.signature = heads[i].signature
  })
  return delta
}

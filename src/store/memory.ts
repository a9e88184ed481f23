import { type NamespaceSnapshot, type Store, type StoreBatch, type StoredEntry, StoreError } from './types.ts'
import { assertNamespace, assertValidBatch, isEmptyBatch } from './validate.ts'

interface MemoryNamespace {
  /** replica → counter → entry; a replica's map is dropped when its last entry goes. */
  entries: Map<string, Map<number, StoredEntry>>
  meta: Map<string, Uint8Array>
}

// Rough per-row overhead so sizeBytes() tracks the number of entries, not just their bodies.
const ENTRY_OVERHEAD_BYTES = 16

/**
 * The in-memory Store: same contract as the SQLite adapter (atomic batches, copied bytes, the same
 * load order), nothing survives the process. For tests and throwaway peers.
 */
export function createMemoryStore(): Store {
  let spaces: Map<string, MemoryNamespace> | undefined = new Map()
  let bytes = 0

  function open(): Map<string, MemoryNamespace> {
    if (spaces === undefined) throw new StoreError('STORE_CLOSED', 'memory store is closed')
    return spaces
  }

  function entrySize(entry: StoredEntry): number {
    return entry.replica.length + entry.key.length + entry.data.byteLength + ENTRY_OVERHEAD_BYTES
  }

  return {
    kind: 'memory',

    namespaces() {
      const names: string[] = []
      for (const [name, space] of open()) {
        if (space.entries.size > 0 || space.meta.size > 0) names.push(name)
      }
      return names.sort()
    },

    load(namespace: string): NamespaceSnapshot {
      const space = open().get(namespace)
      assertNamespace(namespace)
      const entries: StoredEntry[] = []
      const meta = new Map<string, Uint8Array>()
      if (space === undefined) return { entries, meta }
      // Same order as SQLite: grouped by replica, ascending counter within a replica.
      for (const byCounter of space.entries.values()) {
        const counters = [...byCounter.keys()].sort((a, b) => a - b)
        for (const counter of counters) {
          const entry = byCounter.get(counter)!
          entries.push({ replica: entry.replica, counter, key: entry.key, data: new Uint8Array(entry.data) })
        }
      }
      for (const [name, value] of space.meta) meta.set(name, new Uint8Array(value))
      return { entries, meta }
    },

    commit(namespace: string, batch: StoreBatch) {
      const all = open()
      // Validate everything first: nothing below can throw, so a batch applies whole or not at all.
      assertValidBatch(namespace, batch)
      if (isEmptyBatch(batch)) return
      let space = all.get(namespace)
      if (space === undefined) {
        space = { entries: new Map(), meta: new Map() }
        all.set(namespace, space)
      }
      for (const put of batch.put) {
        // new Uint8Array(view) copies; Buffer#slice would not.
        const entry = {
          replica: put.replica,
          counter: put.counter,
          key: put.key,
          data: new Uint8Array(put.data),
        }
        let byCounter = space.entries.get(put.replica)
        if (byCounter === undefined) {
          byCounter = new Map()
          space.entries.set(put.replica, byCounter)
        }
        const old = byCounter.get(put.counter)
        if (old !== undefined) bytes -= entrySize(old)
        byCounter.set(put.counter, entry)
        bytes += entrySize(entry)
      }
      // Removes after puts: a dot both put and removed in one batch ends up removed.
      for (const dot of batch.remove) {
        const byCounter = space.entries.get(dot.replica)
        const old = byCounter?.get(dot.counter)
        if (byCounter === undefined || old === undefined) continue
        byCounter.delete(dot.counter)
        bytes -= entrySize(old)
        if (byCounter.size === 0) space.entries.delete(dot.replica)
      }
      for (const [name, value] of batch.meta) {
        const old = space.meta.get(name)
        if (old !== undefined) bytes -= name.length + old.byteLength
        space.meta.set(name, new Uint8Array(value))
        bytes += name.length + value.byteLength
      }
    },

    dropNamespace(namespace: string) {
      assertNamespace(namespace)
      const space = open().get(namespace)
      if (space === undefined) return
      for (const byCounter of space.entries.values())
        for (const entry of byCounter.values()) bytes -= entrySize(entry)
      for (const [name, value] of space.meta) bytes -= name.length + value.byteLength
      open().delete(namespace)
    },

    sizeBytes() {
      open()
      return bytes
    },

    close() {
      spaces = undefined
      bytes = 0
    },
  }
}

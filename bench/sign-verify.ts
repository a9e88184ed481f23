/**
 * `npx node bench/sign-verify.ts`: what signing and verifying entries costs per entry, one signature
 * per entry (the baseline, as entries were signed before proofs) against one signature per commit
 * turn (a Merkle tree of the turn's entries, codec/proof.ts), for single writes and turns of 16 and
 * 32; and the bytes per entry of a gossip message and a stored body under either scheme.
 *
 * CPU time comes from process.cpuUsage, so the figures hold on a loaded machine. The writes are
 * 68-byte JSON values, as the receive bench's. The verifier starts each scheme with no verified
 * roots, as a receiver that has not seen the turn does.
 *
 * Last, what a reader spends per delivered write on gossip batches of 16 writes (checkBatch, then
 * Replica.merge into SQLite, one commit per batch), written one per turn (a signature each) or 16
 * per turn (one tree): each batch is checked once, as a receiver meets it.
 *
 * Options: --entries 3200 (total entries per scheme; a multiple of 32).
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { encodeEntryBody } from '../src/codec/stored.ts'
import type { Delta } from '../src/crdt/causal-map.ts'
import { CrdtDocument } from '../src/crdt/document.ts'
import type { Entry } from '../src/crdt/entry.ts'
import { checkBatch, encodeBatch } from '../src/gossip/batch.ts'
import { coalesce } from '../src/gossip/batcher.ts'
import { meshTopic } from '../src/mesh/topics.ts'
import { Replica } from '../src/replica/replica.ts'
import {
  type EntrySigner,
  generateEntrySigner,
  signEntries,
  signEntry,
  VerifiedRoots,
  verifyEd25519,
  verifyEntry,
} from '../src/replica/signing.ts'
import { createMemoryStore } from '../src/store/memory.ts'
import { openSqliteStore } from '../src/store/sqlite.ts'

const NAMESPACE = 'default'
const PAYLOAD_BYTES = 68

const { values } = parseArgs({ options: { entries: { type: 'string', default: '3200' } } })
const total = Math.max(32, Math.ceil(Number(values.entries) / 32) * 32)

function cpuUs(): number {
  const usage = process.cpuUsage()
  return usage.user + usage.system
}

/** `count` puts of one replica of `signer`, each with its own delta (as the replica emits them). */
function writes(signer: EntrySigner, count: number): Delta[] {
  const doc = new CrdtDocument({ replica: `${signer.peerId}~bench` })
  const deltas: Delta[] = []
  for (let i = 0; i < count; i++) {
    const value = `{"seq":${String(i).padStart(8, '0')},"sensor":"attic","reading":21.5,"ok":true}`
    const bytes = new TextEncoder().encode(value.padEnd(PAYLOAD_BYTES, ' ').slice(0, PAYLOAD_BYTES))
    deltas.push(doc.put(`bench/key-${String(i).padStart(6, '0')}`, bytes, 'application/json').delta)
  }
  return deltas
}

/** Signs `entries` in turns of `turn` (0: each alone, the baseline); returns CPU µs spent. */
function signAll(signer: EntrySigner, entries: readonly Entry[], turn: number): number {
  const start = cpuUs()
  if (turn === 0) {
    for (const entry of entries) entry.signature = signEntry(signer, NAMESPACE, entry).signature
  } else {
    for (let i = 0; i < entries.length; i += turn) {
      const group = entries.slice(i, i + turn)
      const heads = signEntries(signer, NAMESPACE, group)
      group.forEach((entry, j) => {
        entry.signature = heads[j].signature
      })
    }
  }
  return cpuUs() - start
}

/** Verifies every entry as a receiver that has verified nothing yet; returns CPU µs spent. */
function verifyAll(entries: readonly Entry[]): number {
  const roots = new VerifiedRoots()
  const start = cpuUs()
  for (const entry of entries) {
    if (!verifyEntry(NAMESPACE, entry, verifyEd25519, { roots })) throw new Error('a proof failed')
  }
  return cpuUs() - start
}

interface SchemeFigures {
  label: string
  signUs: number
  verifyUs: number
}

function measure(label: string, turn: number): SchemeFigures {
  const signer = generateEntrySigner()
  const entries = writes(signer, total).map((delta) => delta.entries[0])
  // Warm-up on a tenth, then the measured pass on fresh entries.
  const warm = entries.slice(0, total / 10)
  signAll(signer, warm, turn)
  verifyAll(warm)
  for (const entry of warm) entry.signature = undefined
  const signUs = signAll(signer, entries, turn) / entries.length
  const verifyUs = verifyAll(entries) / entries.length
  return { label, signUs, verifyUs }
}

/** Bytes per entry of a gossip message and of a stored body, `count` writes signed as `turn`. */
function bytesPerEntry(count: number, turn: number): { gossip: number; stored: number } {
  const signer = generateEntrySigner()
  const deltas = writes(signer, count)
  const entries = deltas.map((delta) => delta.entries[0])
  signAll(signer, entries, turn)
  const gossip = encodeBatch(coalesce(deltas)).length / count
  const stored = entries.reduce((sum, entry) => sum + encodeEntryBody(entry).length, 0) / count
  // The layout before proofs had no proof tag (delta) and no length prefix (stored): one byte less
  // per entry signed alone.
  const legacy = turn === 0 ? 1 : 0
  return { gossip: gossip - legacy, stored: stored - legacy }
}

const f = (n: number, digits = 1) => n.toFixed(digits)

const baseline = measure('one signature per entry (baseline)', 0)
const schemes = [
  measure('proofs, single writes (turn of 1)', 1),
  measure('proofs, turns of 16', 16),
  measure('proofs, turns of 32', 32),
]
const baseTotal = baseline.signUs + baseline.verifyUs
console.log(`sign + verify CPU per entry (${total} entries per scheme, µs; ratio to the baseline):`)
for (const s of [baseline, ...schemes]) {
  const sum = s.signUs + s.verifyUs
  console.log(
    `  ${s.label.padEnd(36)} sign ${f(s.signUs).padStart(6)}  verify ${f(s.verifyUs).padStart(6)}  ` +
      `total ${f(sum).padStart(6)}  (×${f(sum / baseTotal, 3)}; verify ×${f(s.verifyUs / baseline.verifyUs, 3)})`,
  )
}

console.log(`\nbytes per entry (${PAYLOAD_BYTES}-byte values, keys of 17 bytes):`)
for (const [label, count, turn] of [
  ['single write, baseline (64-byte signature)', 1, 0],
  ['single write, proofs', 1, 1],
  ['turn of 16, baseline (signature each)', 16, 0],
  ['turn of 16, proofs (shared signature)', 16, 16],
  ['turn of 32, proofs (shared signature)', 32, 32],
] as const) {
  const { gossip, stored } = bytesPerEntry(count, turn)
  console.log(
    `  ${label.padEnd(44)} gossip ${f(gossip).padStart(6)} (${f(gossip / PAYLOAD_BYTES, 2)}× payload)  stored ${f(stored).padStart(6)}`,
  )
}

/** Gossip messages of `batches` × 16 writes by a real replica, `perTurn` writes per commit turn. */
async function authorBatches(batches: number, perTurn: number): Promise<Uint8Array[]> {
  const author = Replica.open({ namespace: NAMESPACE, store: createMemoryStore() })
  const deltas: Delta[] = []
  author.on('delta', (delta: Delta) => deltas.push(delta))
  const te = new TextEncoder()
  for (let i = 0; i < batches * 16; i += perTurn) {
    await Promise.all(
      Array.from({ length: perTurn }, (_, j) =>
        author.put(
          `e2e-${i + j}`,
          te.encode(`{"seq":${i + j}}`.padEnd(PAYLOAD_BYTES, ' ')),
          'application/json',
        ),
      ),
    )
  }
  const messages: Uint8Array[] = []
  for (let i = 0; i < deltas.length; i += 16) messages.push(encodeBatch(coalesce(deltas.slice(i, i + 16))))
  return messages
}

/** CPU µs per write a reader spends checking and merging `messages` (16 writes each) into SQLite. */
async function readerPerWrite(messages: Uint8Array[], dir: string, name: string): Promise<number> {
  const topic = meshTopic('bench', NAMESPACE)
  const reader = Replica.open({
    namespace: NAMESPACE,
    store: openSqliteStore({ path: join(dir, `${name}.db`) }),
  })
  const receive = async (message: Uint8Array) => {
    const checked = await checkBatch(topic, message, 'a-reader', NAMESPACE)
    if (checked.delta === undefined) throw new Error(`refused: ${checked.reason}`)
    await reader.merge(checked.delta)
  }
  // Warm-up on batches of their own, so every measured batch is new to the verified roots.
  const warm = Math.ceil(messages.length / 10)
  for (const message of messages.slice(0, warm)) await receive(message)
  const start = cpuUs()
  for (const message of messages.slice(warm)) await receive(message)
  const us = (cpuUs() - start) / ((messages.length - warm) * 16)
  await reader.close()
  return us
}

const dir = mkdtempSync(join(tmpdir(), 'hearsay-sign-verify-'))
try {
  const batches = Math.max(20, total / 16)
  const alone = await readerPerWrite(await authorBatches(batches, 1), dir, 'alone')
  const together = await readerPerWrite(await authorBatches(batches, 16), dir, 'together')
  console.log(`\nreader CPU per delivered write, gossip batches of 16 (checkBatch + merge into SQLite):`)
  console.log(`  written one per turn (a signature each)       ${f(alone).padStart(6)} µs`)
  console.log(
    `  written 16 per turn (one tree)                ${f(together).padStart(6)} µs  (×${f(together / alone, 3)})`,
  )
} finally {
  rmSync(dir, { recursive: true, force: true })
}

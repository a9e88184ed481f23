/**
 * `npm run bench -- receive`: what one delivered gossip batch costs the receiving peer's CPU, step by
 * step, in one process (CPU time from process.cpuUsage, so the figures hold on a loaded machine where
 * the e2e latencies do not). The batches are what a daemon publishes at 200 writes/s: one 68-byte
 * write each, signed by its author's replica; the receiver merges them into a SQLite replica, one
 * commit per batch, as a reader does when writes arrive one at a time.
 *
 * Options: --batches 2000 (RECEIVE_BATCHES), --writes-per-batch 1.
 */
import { generateKeyPairSync, sign } from 'node:crypto'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { decodeDelta } from '../src/codec/delta.ts'
import type { Delta } from '../src/crdt/causal-map.ts'
import { CausalContext } from '../src/crdt/context.ts'
import { checkBatch, encodeBatch } from '../src/gossip/batch.ts'
import { coalesce } from '../src/gossip/batcher.ts'
import { decodeGossipBatch } from '../src/gossip/envelope.ts'
import { messageId } from '../src/mesh/message-id.ts'
import { meshTopic } from '../src/mesh/topics.ts'
import { Membership } from '../src/peer/membership.ts'
import { Replica } from '../src/replica/replica.ts'
import { createEntrySigner, verifyEd25519 } from '../src/replica/signing.ts'
import { createMemoryStore } from '../src/store/memory.ts'
import { openSqliteStore } from '../src/store/sqlite.ts'
import { seededRandom } from './harness.ts'

const NAMESPACE = 'default'
const TOPIC = meshTopic('bench', NAMESPACE)

function cpuUs(): number {
  const usage = process.cpuUsage()
  return usage.user + usage.system
}

/** CPU µs per item of `run` over `items`, after a warm-up pass over the first tenth. */
async function perItem<T>(items: T[], run: (item: T) => unknown | Promise<unknown>): Promise<number> {
  for (const item of items.slice(0, Math.ceil(items.length / 10))) await run(item)
  const start = cpuUs()
  for (const item of items) await run(item)
  return (cpuUs() - start) / items.length
}

export async function main(argv: string[] = []): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: { batches: { type: 'string' }, 'writes-per-batch': { type: 'string' } },
    strict: true,
  })
  const batches = Number(values.batches ?? process.env.RECEIVE_BATCHES ?? 2000)
  const perBatch = Number(values['writes-per-batch'] ?? 1)
  if (!Number.isInteger(batches) || batches < 10 || batches > 100_000)
    throw new Error('--batches must be a whole number within 10..100000')
  if (!Number.isInteger(perBatch) || perBatch < 1 || perBatch > 1000)
    throw new Error('--writes-per-batch must be a whole number within 1..1000')

  // The author: a replica signing its writes, as a writing daemon does; one batch per `perBatch` writes.
  const key = await generateKeyPair('Ed25519')
  const author = Replica.open({
    namespace: NAMESPACE,
    store: createMemoryStore(),
    replicaBase: peerIdFromPrivateKey(key).toString(),
    signer: createEntrySigner(key),
  })
  const deltas: Delta[] = []
  author.on('delta', (delta: Delta) => deltas.push(delta))
  const random = seededRandom(7)
  const te = new TextEncoder()
  for (let i = 0; i < batches * perBatch; i++) {
    const value = `{"seq":${i},"pad":"${Math.floor(random() * 1e16)
      .toString(36)
      .padEnd(48, 'x')}"}`.slice(0, 68)
    await author.put(`e2e-${i}`, te.encode(value), 'application/json')
  }
  const grouped: Delta[] = []
  for (let i = 0; i < deltas.length; i += perBatch) grouped.push(coalesce(deltas.slice(i, i + perBatch)))
  const messages = grouped.map((delta) => encodeBatch(delta))
  const bytes = messages.reduce((sum, m) => sum + m.length, 0) / messages.length

  // A batch signature as gossip version 1 carried (over topic ‖ delta): what one more check costs.
  const { privateKey } = generateKeyPairSync('ed25519')
  const authorId = peerIdFromPrivateKey(key).toString()
  const batchSignatures = messages.map((m) => sign(null, m, privateKey))

  const dir = mkdtempSync(join(tmpdir(), 'hearsay-receive-'))
  try {
    const msgIdUs = await perItem(messages, (m) => messageId(TOPIC, m))
    const decodeUs = await perItem(messages, (m) => decodeDelta(decodeGossipBatch(m)))
    const verifyUs = await perItem(messages.slice(0, 500), (m) => {
      verifyEd25519(authorId, m, batchSignatures[messages.indexOf(m)])
    })
    const checkUs = await perItem(messages, (m) => checkBatch(TOPIC, m, 'a-reader', NAMESPACE))
    // Checked then merged into SQLite, one commit per batch (what a reader does at 200 writes/s).
    const reader = Replica.open({
      namespace: NAMESPACE,
      store: openSqliteStore({ path: join(dir, 'reader.db') }),
      replicaBase: 'reader',
      signer: createEntrySigner(await generateKeyPair('Ed25519')),
    })
    const mergeUs = await perItem(messages, async (m) => {
      const checked = await checkBatch(TOPIC, m, 'a-reader', NAMESPACE)
      if (checked.delta !== undefined) await reader.merge(checked.delta)
    })
    await reader.close()
    // What the replication figures learn per accepted batch: its dots seen at the author and at the
    // neighbour that delivered it, both already known from a session (a context of 10 writers).
    const membership = new Membership({ self: 'a-reader' })
    const known = CausalContext.fromRanges(Array.from({ length: 10 }, (_, i) => [`w${i}~r`, [1, 1000]]))
    for (const peer of [authorId, 'a-neighbour']) membership.holds(peer, NAMESPACE, known)
    const checked = (await Promise.all(messages.map((m) => checkBatch(TOPIC, m, 'a-reader', NAMESPACE)))).map(
      (c) => c.delta!,
    )
    const seenUs = await perItem(checked, (delta) => {
      membership.sawDots(authorId, NAMESPACE, delta.context)
      membership.sawDots('a-neighbour', NAMESPACE, delta.context)
    })

    const rows: string[][] = [
      [
        'gossip message size (bytes)',
        bytes.toFixed(0),
        `${perBatch} write(s) of ~68 B; version 1 added a 65-byte batch signature`,
      ],
      ['message id (SHA-256 of topic ‖ data), µs', msgIdUs.toFixed(1), 'once per copy received'],
      ['decode (envelope + delta), µs', decodeUs.toFixed(1), ''],
      [
        'one Ed25519 verification, µs',
        verifyUs.toFixed(1),
        'node:crypto, cached key; version 1 did one more per batch',
      ],
      ['checkBatch (decode, author, context, entry signatures), µs', checkUs.toFixed(1), ''],
      ['checkBatch + Replica.merge on SQLite, µs', mergeUs.toFixed(1), 'one commit per batch'],
      ['same, per write, µs', (mergeUs / perBatch).toFixed(1), ''],
      [
        'dots seen at author + neighbour (Membership.sawDots ×2), µs',
        seenUs.toFixed(2),
        'for the replication figures; compare with the line above',
      ],
    ]
    console.log(`\n### Receive path, CPU per gossip batch (${batches} batches, ${perBatch} write(s) each)\n`)
    console.log('| step | value | note |')
    console.log('|---|---:|---|')
    for (const row of rows) console.log(`| ${row.join(' | ')} |`)
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

if (import.meta.url === `file://${process.argv[1]}`) await main(process.argv.slice(2))

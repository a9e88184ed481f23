/**
 * Foundation benchmarks: the CRDT core and codec against Yjs (Y.Map with the same workload, in the
 * same process), and the SQLite replica's durable write rate and reopen time.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import * as Y from 'yjs'
import { decodeDelta, encodeDelta } from '../src/codec/index.ts'
import { CrdtDocument, HybridClock } from '../src/crdt/index.ts'
import { Replica } from '../src/replica/replica.ts'
import { createMemoryStore } from '../src/store/memory.ts'
import { openSqliteStore } from '../src/store/sqlite.ts'
import { formatNumber, medianMs, now, peakRssMiB, printTable, type Row, seededRandom } from './harness.ts'

const PUTS = 100_000
const KEYS = 10_000
const REMOTE_DELTAS = 10_000
const RUNS = 3
const REPLICA_ID = '12D3KooWBenchmarkPeerIdOfTypicalLengthAbcdefghijklm'

interface Workload {
  keys: string[]
  values: Uint8Array[]
}

/** Random keys out of KEYS and small JSON values, fixed by the seed. */
function workload(count: number, seed: number): Workload {
  const random = seededRandom(seed)
  const keys: string[] = new Array(count)
  const values: Uint8Array[] = new Array(count)
  const te = new TextEncoder()
  for (let i = 0; i < count; i++) {
    keys[i] = `sensor/${Math.floor(random() * KEYS)}`
    values[i] = te.encode(`{"t":${20 + (i % 15)},"seq":${i}}`)
  }
  return { keys, values }
}

function hearsayPuts(work: Workload): CrdtDocument {
  let t = 1_700_000_000_000
  const doc = new CrdtDocument({ replica: REPLICA_ID, clock: new HybridClock(() => t++) })
  for (let i = 0; i < work.keys.length; i++) doc.put(work.keys[i], work.values[i], 'application/json')
  return doc
}

function yjsPuts(work: Workload): Y.Doc {
  const doc = new Y.Doc()
  const map = doc.getMap<Uint8Array>('m')
  for (let i = 0; i < work.keys.length; i++) map.set(work.keys[i], work.values[i])
  return doc
}

export async function runFoundation(): Promise<Row[]> {
  const rows: Row[] = []
  const puts = workload(PUTS, 1)

  // 1. Local puts.
  const hearsayPutMs = await medianMs(RUNS, () => hearsayPuts(puts))
  const yjsPutMs = await medianMs(RUNS, () => yjsPuts(puts))
  const hearsayPutRate = PUTS / (hearsayPutMs / 1000)
  const yjsPutRate = PUTS / (yjsPutMs / 1000)
  rows.push({
    name: `${formatNumber(PUTS)} puts over ${formatNumber(KEYS)} keys (ops/s)`,
    hearsay: formatNumber(hearsayPutRate),
    baseline: formatNumber(yjsPutRate),
    ratio: (hearsayPutRate / yjsPutRate).toFixed(2),
    goal: '≥ 1.0',
    met: hearsayPutRate / yjsPutRate >= 1,
  })

  // The same through a Replica on the memory store: validation, group commit and tokens included.
  const replicaPutMs = await medianMs(RUNS, async () => {
    const replica = Replica.open({ namespace: 'bench', store: createMemoryStore(), replicaBase: REPLICA_ID })
    const pending: Promise<unknown>[] = []
    for (let i = 0; i < puts.keys.length; i++) {
      pending.push(replica.put(puts.keys[i], puts.values[i], 'application/json'))
      if (pending.length === 1000) await Promise.all(pending.splice(0))
    }
    await Promise.all(pending)
  })
  const replicaPutRate = PUTS / (replicaPutMs / 1000)
  rows.push({
    name: 'same, through Replica on the memory store (ops/s)',
    hearsay: formatNumber(replicaPutRate),
    baseline: formatNumber(yjsPutRate),
    ratio: (replicaPutRate / yjsPutRate).toFixed(2),
    goal: '',
    met: undefined,
  })

  // 2. Applying remote deltas, each encoded as it would travel.
  const remote = workload(REMOTE_DELTAS, 2)
  const hearsaySource = new CrdtDocument({ replica: REPLICA_ID })
  const hearsayFrames = remote.keys.map((key, i) =>
    encodeDelta(hearsaySource.put(key, remote.values[i], 'application/json').delta),
  )
  const yjsSource = new Y.Doc()
  const yjsUpdates: Uint8Array[] = []
  yjsSource.on('update', (update: Uint8Array) => yjsUpdates.push(update))
  const sourceMap = yjsSource.getMap<Uint8Array>('m')
  for (let i = 0; i < remote.keys.length; i++) sourceMap.set(remote.keys[i], remote.values[i])

  const hearsayApplyMs = await medianMs(RUNS, () => {
    const doc = new CrdtDocument({ replica: 'receiver' })
    for (const frame of hearsayFrames) doc.merge(decodeDelta(frame))
  })
  const yjsApplyMs = await medianMs(RUNS, () => {
    const doc = new Y.Doc()
    for (const update of yjsUpdates) Y.applyUpdate(doc, update)
  })
  const hearsayApplyRate = REMOTE_DELTAS / (hearsayApplyMs / 1000)
  const yjsApplyRate = REMOTE_DELTAS / (yjsApplyMs / 1000)
  rows.push({
    name: `apply ${formatNumber(REMOTE_DELTAS)} remote deltas, decode included (ops/s)`,
    hearsay: formatNumber(hearsayApplyRate),
    baseline: formatNumber(yjsApplyRate),
    ratio: (hearsayApplyRate / yjsApplyRate).toFixed(2),
    goal: '≥ 1.0',
    met: hearsayApplyRate / yjsApplyRate >= 1,
  })
  const frameBytes = hearsayFrames.reduce((sum, f) => sum + f.length, 0) / hearsayFrames.length
  const updateBytes = yjsUpdates.reduce((sum, u) => sum + u.length, 0) / yjsUpdates.length
  rows.push({
    name: 'mean bytes per remote delta',
    hearsay: formatNumber(frameBytes, 1),
    baseline: formatNumber(updateBytes, 1),
    ratio: (frameBytes / updateBytes).toFixed(2),
    goal: '',
    met: undefined,
  })

  // 3. Encoded size of the whole state after workload 1.
  const hearsayState = encodeDelta(hearsayPuts(puts).snapshot()).length
  const yjsState = Y.encodeStateAsUpdate(yjsPuts(puts)).length
  rows.push({
    name: 'encoded full state after the put workload (bytes)',
    hearsay: formatNumber(hearsayState),
    baseline: formatNumber(yjsState),
    ratio: (hearsayState / yjsState).toFixed(2),
    goal: '≤ 1.0',
    met: hearsayState / yjsState <= 1,
  })
  return rows
}

export async function runSqlite(): Promise<Row[]> {
  const rows: Row[] = []
  const dir = mkdtempSync(join(tmpdir(), 'hearsay-bench-'))
  try {
    const path = join(dir, 'bench.db')
    const store = openSqliteStore({ path })
    const replica = Replica.open({ namespace: 'bench', store, replicaBase: REPLICA_ID })
    const te = new TextEncoder()
    const total = 100_000
    const batch = 100
    const start = now()
    for (let i = 0; i < total; i += batch) {
      const acks: Promise<unknown>[] = []
      for (let j = i; j < i + batch; j++)
        acks.push(replica.put(`key/${j}`, te.encode(`{"v":${j}}`), 'application/json'))
      await Promise.all(acks)
    }
    const seconds = (now() - start) / 1000
    const rate = total / seconds
    rows.push({
      name: `durable puts, batches of ${batch}, synchronous=FULL (puts/s)`,
      hearsay: formatNumber(rate),
      baseline: '',
      ratio: '',
      goal: '≥ 50,000/s',
      met: rate >= 50_000,
    })
    await replica.close()
    store.close()

    const reopenStart = now()
    const reopened = openSqliteStore({ path })
    const again = Replica.open({ namespace: 'bench', store: reopened })
    const reopenMs = now() - reopenStart
    const keys = again.list('key/', { limit: 10_000 }).items.length
    rows.push({
      name: `reopen with ${formatNumber(total)} keys (ms)`,
      hearsay: formatNumber(reopenMs),
      baseline: '',
      ratio: '',
      goal: '≤ 1,000 ms',
      met: reopenMs <= 1000 && keys === 10_000,
    })
    reopened.close()
    rows.push({
      name: 'peak RSS of the whole benchmark process (MiB)',
      hearsay: formatNumber(peakRssMiB()),
      baseline: '',
      ratio: '',
      goal: '',
      met: undefined,
    })
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
  return rows
}

export async function main(): Promise<void> {
  console.log(`## Foundation (Node ${process.version}, ${new Date().toISOString()})`)
  const yjsVersion = JSON.parse(
    readFileSync(new URL('../node_modules/yjs/package.json', import.meta.url), 'utf8'),
  ).version
  printTable(
    'CRDT core and codec vs Yjs (same process, same workload, median of 3)',
    `Yjs ${yjsVersion}`,
    await runFoundation(),
  )
  printTable('SQLite replica', '', await runSqlite())
}

/**
 * `npm run bench -- copies`: how many copies of each gossip message a peer receives, and what they
 * cost, under gossipsub settings side by side. N real mesh nodes (libp2p over TCP on 127.0.0.1, noise,
 * yamux, gossipsub with hearsay's options) in this one process, all connected to all as the e2e mesh
 * is; node 0 publishes one-write batches at a paced rate; every node checks each batch as a reader
 * does (checkBatch: decode, author, entry signature) before gossipsub forwards it.
 *
 * Per variant: copies of a message received per reader (counted off the wire, before gossipsub's
 * duplicate check), TCP bytes received per reader per message (`ss`, this process's loopback
 * sockets), and this process's CPU per message and reader (all nodes together, so it includes the
 * publisher's share). Loopback, no swarm key.
 *
 * Options: --n 4,8 (COPIES_N), --rate 200, --messages 1000, --variants all (or some of
 * ours,before,d4,idontwant,idontwant128,dhi3,idontwant128-dhi3,d2-out1,d2).
 */
import { parseArgs } from 'node:util'
import { generateKeyPair } from '@libp2p/crypto/keys'
import type { GossipsubOpts } from '@libp2p/gossipsub'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import type { Delta } from '../src/crdt/causal-map.ts'
import { checkBatch, encodeBatch } from '../src/gossip/batch.ts'
import { createMeshNode, type MeshNode } from '../src/mesh/node.ts'
import { meshTopic } from '../src/mesh/topics.ts'
import { Replica } from '../src/replica/replica.ts'
import { createEntrySigner } from '../src/replica/signing.ts'
import { createMemoryStore } from '../src/store/memory.ts'
import { pause, sampleSockets } from './e2e-procs.ts'

const NAMESPACE = 'default'
const TOPIC = meshTopic('bench', NAMESPACE)

/** The mesh degree before the per-hop work. */
const D4 = { D: 4, Dlo: 3, Dhi: 6, Dout: 2, Dscore: 3, Dlazy: 4 }
/** gossipsub settings compared, by short name (for --variants); `ours` is what hearsay runs with. */
const VARIANTS: Record<string, { label: string; options: Partial<GossipsubOpts> }> = {
  ours: { label: 'ours (D=3, Dlo 2, Dhi 4, Dlazy 3, mcacheGossip 1)', options: {} },
  before: {
    label: 'D=4 (Dlo 3, Dhi 6, Dlazy 4), mcacheGossip 3 (before)',
    options: { ...D4, mcacheGossip: 3 },
  },
  d4: { label: 'D=4, mcacheGossip 1', options: D4 },
  idontwant: {
    label: 'ours + IDONTWANT for every message (threshold 0)',
    options: { idontwantMinDataSize: 0 },
  },
  idontwant128: {
    label: 'ours + IDONTWANT above 128 B (below a one-write batch)',
    options: { idontwantMinDataSize: 128 },
  },
  dhi3: {
    label: 'D=3, Dlo 2, Dhi 3 (no mesh above D)',
    options: { Dhi: 3 },
  },
  'idontwant128-dhi3': {
    label: 'D=3, Dlo 2, Dhi 3 + IDONTWANT above 128 B',
    options: { Dhi: 3, idontwantMinDataSize: 128 },
  },
  'd2-out1': {
    label: 'D=2, Dlo 2, Dhi 3, Dout 1, Dlazy 3',
    options: { D: 2, Dlo: 2, Dhi: 3, Dout: 1, Dscore: 1 },
  },
  d2: {
    label: 'D=2 (Dlo 1, Dhi 3, Dout 0, Dlazy 2)',
    options: { D: 2, Dlo: 1, Dhi: 3, Dout: 0, Dscore: 1, Dlazy: 2 },
  },
}

interface Result {
  n: number
  variant: string
  copies: number
  bytesIn: number
  cpuUs: number
  delivered: number
}

async function makeMessages(count: number): Promise<Uint8Array[]> {
  const key = await generateKeyPair('Ed25519')
  const author = Replica.open({
    namespace: NAMESPACE,
    store: createMemoryStore(),
    replicaBase: peerIdFromPrivateKey(key).toString(),
    signer: createEntrySigner(key),
  })
  const deltas: Delta[] = []
  author.on('delta', (delta: Delta) => deltas.push(delta))
  const te = new TextEncoder()
  for (let i = 0; i < count; i++) {
    await author.put(
      `e2e-${i}`,
      te.encode(`{"seq":${i},"pad":"${'x'.repeat(52)}"}`.slice(0, 68)),
      'application/json',
    )
  }
  await author.close()
  return deltas.map((delta) => encodeBatch(delta))
}

async function runVariant(
  n: number,
  variant: string,
  messages: Uint8Array[],
  rate: number,
  warmup: Uint8Array[],
): Promise<Result> {
  const copies = new Array<number>(n).fill(0)
  const accepted = new Array<number>(n).fill(0)
  const nodes: MeshNode[] = []
  try {
    for (let i = 0; i < n; i++) {
      const node = await createMeshNode({
        mdns: false,
        loopbackTesting: true,
        meshName: 'bench',
        listen: ['/ip4/127.0.0.1/tcp/0'],
        peerExchange: false,
        admitMessage: () => {
          copies[i]++
          return true
        },
        gossipsubOverrides: VARIANTS[variant].options,
      })
      const self = node.peerId.toString()
      node.receive(TOPIC, async (message) => {
        const checked = await checkBatch(TOPIC, message.data, self, NAMESPACE)
        if (checked.verdict === 'accept') accepted[i]++
        return checked.verdict
      })
      nodes.push(node)
    }
    for (let i = 0; i < n; i++) for (let j = i + 1; j < n; j++) await nodes[j].dial(nodes[i].addresses()[0])
    const deadline = Date.now() + 30_000
    while (nodes.some((node) => node.topicPeers(TOPIC).length < n - 1) && Date.now() < deadline)
      await pause(50)
    // Meshes form on the heartbeat: let two pass, then a warm-up second at the measured rate.
    await pause(2500)
    await publishPaced(nodes[0], warmup, rate)
    await waitAccepted(accepted, warmup.length, n)

    const before = accepted.slice()
    copies.fill(0)
    const sockets = sampleSockets()
    const cpu = process.cpuUsage()
    await publishPaced(nodes[0], messages, rate)
    await waitAccepted(
      accepted.map((a, i) => a - before[i]),
      messages.length,
      n,
    )
    // Let the heartbeat after the last message send its IHAVEs, as it would in a steady stream.
    await pause(1100)
    const used = process.cpuUsage(cpu)
    const after = sampleSockets()
    let received = 0
    for (const [key, socket] of after) {
      if (socket.pid !== process.pid) continue
      const earlier = sockets.get(key)
      received += socket.received - (earlier?.pid === process.pid ? earlier.received : 0)
    }
    const readers = n - 1
    const delivered = accepted.slice(1).reduce((sum, a, i) => sum + a - before[i + 1], 0) / readers
    return {
      n,
      variant,
      copies: copies.slice(1).reduce((a, b) => a + b, 0) / readers / messages.length,
      bytesIn: received / readers / messages.length,
      cpuUs: (used.user + used.system) / readers / messages.length,
      delivered: delivered / messages.length,
    }
  } finally {
    await Promise.allSettled(nodes.map((node) => node.stop()))
  }
}

async function publishPaced(node: MeshNode, messages: Uint8Array[], rate: number): Promise<void> {
  const start = performance.now()
  for (let i = 0; i < messages.length; i++) {
    const due = start + (i * 1000) / rate
    const wait = due - performance.now()
    if (wait > 0) await pause(wait)
    await node.publish(TOPIC, messages[i])
  }
}

async function waitAccepted(accepted: number[], count: number, n: number): Promise<void> {
  const deadline = Date.now() + 20_000
  while (Date.now() < deadline) {
    let all = true
    for (let i = 1; i < n; i++) if (accepted[i] < count) all = false
    if (all) return
    await pause(20)
  }
}

export async function main(argv: string[] = []): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      n: { type: 'string' },
      rate: { type: 'string' },
      messages: { type: 'string' },
      variants: { type: 'string' },
    },
    strict: true,
  })
  const ns = (values.n ?? process.env.COPIES_N ?? '4,8').split(',').map(Number)
  for (const n of ns) if (!Number.isInteger(n) || n < 3 || n > 16) throw new Error('--n: each N within 3..16')
  const rate = Number(values.rate ?? 200)
  const count = Number(values.messages ?? 1000)
  if (!(rate > 0 && rate <= 5000)) throw new Error('--rate within 1..5000')
  if (!Number.isInteger(count) || count < 10 || count > 20_000) throw new Error('--messages within 10..20000')
  const names =
    values.variants === undefined || values.variants === 'all'
      ? Object.keys(VARIANTS)
      : values.variants.split(',')
  for (const name of names) if (!(name in VARIANTS)) throw new Error(`unknown variant '${name}'`)

  const all = await makeMessages(count + Math.ceil(rate))
  const warmup = all.slice(count)
  const messages = all.slice(0, count)
  const results: Result[] = []
  for (const n of ns)
    for (const name of names) results.push(await runVariant(n, name, messages, rate, warmup))

  console.log(
    `\n### Gossip copies: ${count} one-write batches (${messages[0].length} B) at ${rate}/s, all connected to all\n`,
  )
  console.log(
    '| N | gossipsub settings | copies received / reader | TCP bytes in / reader / message | CPU µs / message / reader (whole process) | delivered |',
  )
  console.log('|---|---|---:|---:|---:|---:|')
  for (const r of results)
    console.log(
      `| ${r.n} | ${VARIANTS[r.variant].label} | ${r.copies.toFixed(2)} | ${r.bytesIn.toFixed(0)} | ${r.cpuUs.toFixed(0)} | ${(100 * r.delivered).toFixed(1)}% |`,
    )
}

if (import.meta.url === `file://${process.argv[1]}`) await main(process.argv.slice(2))

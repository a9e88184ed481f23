/**
 * One hearsay peer as its own OS process, driven over stdin/stdout with JSON lines. Used by the
 * multi-process and mDNS tests and the mesh benchmarks.
 *
 * argv: <data dir> [bootstrap multiaddr...]
 * env:  HEARSAY_ROLE: mesh (default) | hub | client (talks to the bootstrap addresses as its hubs)
 *       HEARSAY_MDNS=1: the defaults a user gets (listen on 0.0.0.0, mDNS on); only ever inside a
 *       network namespace a test made, since it sends multicast on every interface it sees
 *       HEARSAY_MESH: mesh name (default 'default')
 *       HEARSAY_SWARM_KEY_FILE: the mesh key file (as `hearsay up` uses it); without it the mesh is open
 * stdin commands:  {"cmd":"put","key":"k","value":"v"} | {"cmd":"get","key":"k"} | {"cmd":"digest"}
 *                  {"cmd":"write-rate","prefix":"p","rate":200,"durationMs":20000}
 *                  {"cmd":"watch","prefix":"p"} | {"cmd":"observations"} | {"cmd":"io"} | {"cmd":"peers"}
 *                  {"cmd":"stop"}
 * stdout events:   {"event":"ready","address":...,"peerId":...} | {"event":"reply","id":...,...}
 *                  {"event":"discovered","peerId":...,"addresses":[...],"at":ms}
 *                  {"event":"connected","peerId":...,"at":ms}
 *                  {"event":"dial-failed","peerId":...,"error":...,"at":ms} (each failed dial of the
 *                  connector, to see how often a peer that cannot connect is retried)
 * `observations` returns the [key, time] pairs of remote changes under the watched prefix and of
 * acknowledged write-rate writes, kept in memory until asked. Times are wall-clock milliseconds with
 * sub-millisecond precision, comparable across processes.
 */
import { readFileSync } from 'node:fs'
import { createInterface } from 'node:readline'
import { loadOrCreateIdentity } from '../src/mesh/identity.ts'
import { attachMesh } from '../src/peer/attach-mesh.ts'
import { HearsayPeer } from '../src/peer/peer.ts'
import { openSqliteStore } from '../src/store/sqlite.ts'

const [dataDir, ...bootstrap] = process.argv.slice(2)
const clock = () => performance.timeOrigin + performance.now()
const te = new TextEncoder()
const td = new TextDecoder()

// Lines are gathered and written once per event-loop turn: a synchronous pipe write per event
// would cost the peer more than the work being measured. Times are taken when events happen.
let outgoing: string[] = []
function emit(event: object): void {
  if (outgoing.length === 0) setImmediate(flushOutput)
  outgoing.push(JSON.stringify(event))
}
function flushOutput(): void {
  const lines = outgoing
  outgoing = []
  if (lines.length > 0) process.stdout.write(`${lines.join('\n')}\n`)
}

const identity = await loadOrCreateIdentity({ dataDir })
const peer = new HearsayPeer({
  store: openSqliteStore({ path: `${dataDir}/hearsay.db` }),
  peerId: identity.peerId.toString(),
  privateKey: identity.privateKey,
  namespaces: ['ns'],
})
const role = process.env.HEARSAY_ROLE ?? 'mesh'
const mdns = process.env.HEARSAY_MDNS === '1'
const mesh = await attachMesh(peer, {
  privateKey: identity.privateKey,
  listen: mdns ? undefined : ['/ip4/127.0.0.1/tcp/0'],
  meshName: process.env.HEARSAY_MESH ?? 'default',
  bootstrap: role === 'client' ? undefined : bootstrap,
  hub: role === 'client' ? bootstrap : undefined,
  isHub: role === 'hub',
  mdns,
  swarmKey: process.env.HEARSAY_SWARM_KEY_FILE ? readFileSync(process.env.HEARSAY_SWARM_KEY_FILE) : undefined,
  loopbackTesting: true,
  // The defaults a user gets, unless a run overrides them.
  syncIntervalMs: process.env.HEARSAY_SYNC_INTERVAL_MS
    ? Number(process.env.HEARSAY_SYNC_INTERVAL_MS)
    : undefined,
  gossipDegree: process.env.HEARSAY_GOSSIP_D ? Number(process.env.HEARSAY_GOSSIP_D) : undefined,
})
const libp2p = mesh.node.libp2p
libp2p.addEventListener('peer:discovery', (evt) => {
  emit({
    event: 'discovered',
    peerId: evt.detail.id.toString(),
    addresses: evt.detail.multiaddrs.map(String),
    at: clock(),
  })
})
// The connector dials through this method: wrapped, every failed dial shows up as an event.
const dial = libp2p.dial.bind(libp2p)
libp2p.dial = async (...args: Parameters<typeof dial>) => {
  try {
    return await dial(...args)
  } catch (error) {
    const target = args[0]
    const peerId = typeof target === 'object' && 'toMultihash' in target ? target.toString() : String(target)
    emit({ event: 'dial-failed', peerId, error: (error as Error).message, at: clock() })
    throw error
  }
}
libp2p.addEventListener('peer:connect', (evt) => {
  emit({ event: 'connected', peerId: evt.detail.toString(), at: clock() })
})
const replica = peer.namespace('ns')
// Observations stay in memory until asked for: no I/O of the harness on the measured path.
let watched: string | undefined
const seen: Array<[string, number]> = []
const acked: Array<[string, number]> = []
replica.on('change', (change) => {
  if (watched !== undefined && change.origin === 'remote' && change.key.startsWith(watched)) {
    seen.push([change.key, clock()])
  }
})

async function writeAtRate(prefix: string, rate: number, durationMs: number): Promise<void> {
  const start = clock()
  const total = Math.floor((rate * durationMs) / 1000)
  const pending: Promise<void>[] = []
  for (let i = 0; i < total; i++) {
    const due = start + (i * 1000) / rate
    const wait = due - clock()
    if (wait > 1) await new Promise((resolve) => setTimeout(resolve, wait))
    const key = `${prefix}${i}`
    pending.push(
      replica.put(key, te.encode(`{"i":${i}}`), 'application/json').then(() => {
        acked.push([key, clock()])
      }),
    )
    if (pending.length > 1000) await Promise.all(pending.splice(0, 500))
  }
  await Promise.all(pending)
}

/** Bytes this process has read and written through syscalls (sockets included; see proc(5)). */
function io(): { rchar: number; wchar: number } {
  const text = readFileSync('/proc/self/io', 'utf8')
  const field = (name: string) => Number(new RegExp(`${name}: (\\d+)`).exec(text)?.[1] ?? 0)
  return { rchar: field('rchar'), wchar: field('wchar') }
}

const lines = createInterface({ input: process.stdin })
lines.on('line', async (line) => {
  let command: { cmd: string; id?: number; [key: string]: unknown }
  try {
    command = JSON.parse(line)
  } catch {
    emit({ event: 'error', message: `not JSON: ${line.slice(0, 80)}` })
    return
  }
  const reply = (fields: object) => emit({ event: 'reply', id: command.id, ...fields })
  try {
    switch (command.cmd) {
      case 'put':
        await replica.put(String(command.key), te.encode(String(command.value)), 'text/plain')
        reply({ ok: true })
        break
      case 'get': {
        const read = replica.get(String(command.key))
        reply({ value: read === undefined ? null : td.decode(read.winner.value) })
        break
      }
      case 'digest':
        reply({ digest: replica.digest(), entries: replica.entryCount, peers: mesh.node.peers().length })
        break
      case 'observations':
        // What was seen and acknowledged since the last ask: [key, wall-clock ms] pairs.
        reply({ seen: seen.splice(0), acked: acked.splice(0) })
        break
      case 'watch':
        watched = String(command.prefix)
        reply({ ok: true })
        break
      case 'write-rate':
        await writeAtRate(String(command.prefix), Number(command.rate), Number(command.durationMs))
        reply({ done: true })
        break
      case 'io':
        reply({
          ...io(),
          gossipBytesReceived: mesh.counters.gossipBytesReceived,
          gossipReceived: mesh.counters.gossipReceived,
        })
        break
      case 'peers':
        reply({ peers: mesh.node.peers().map(String), addresses: mesh.addresses() })
        break
      case 'stop':
        await peer.stop()
        reply({ stopped: true })
        flushOutput()
        process.exit(0)
        break
      default:
        reply({ error: `unknown command ${command.cmd}` })
    }
  } catch (error) {
    reply({ error: (error as Error).message })
  }
})

// Stop when the parent goes away without saying so.
process.stdin.on('end', () => {
  void peer.stop().finally(() => process.exit(0))
})

emit({ event: 'ready', address: mesh.addresses()[0], peerId: mesh.peerId })

import { type ChildProcess, spawn } from 'node:child_process'
import { mkdtempSync, readdirSync, rmSync } from 'node:fs'
import { connect, createServer, type Server } from 'node:net'
import { tmpdir } from 'node:os'
import { extname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { LinkProxy } from './link-proxy.ts'
import type { ProxyProcessConfig } from './link-proxy-process.ts'
import { checkLink, isPlainLink, netemArgs, seededRandom } from './link-schedule.ts'
import {
  createNamespaceNetwork,
  hasNetem,
  isAlive,
  type Network,
  removeLeftoverNamespaces,
  whyNoNamespaces,
} from './netns.ts'
import type { LabNetwork, LabNetworkInit, LinkConditions, LinkEmulation } from './types.ts'

/**
 * The links of a process run (docs/lab-links.md).
 *
 * With namespaces: peer i lives in its own network namespace on a bridge, at 10.78.0.(i+1). Loss is
 * an iptables `statistic` rule and rate a tbf qdisc on each peer's egress; delay and jitter are the
 * lab's proxy, a small process in each namespace that iptables hands every inbound connection to the
 * peer's libp2p port (so the address a peer listens on, announces and is dialled at is the same, and
 * nothing can bypass the proxy); partitions are iptables rules. Where the kernel has netem, netem
 * makes delay, jitter, loss and rate instead.
 *
 * On loopback (no root): one proxy listener in this process per (dialer, target) pair, so the proxy
 * knows both ends; it delays and partitions; loss and rate cannot be made there.
 */

/** The TCP port every peer's libp2p listens on inside its namespace. */
export const LAB_P2P_PORT = 4001
/** The port of the link proxy inside each namespace (the runner must not use it for the API). */
export const LAB_PROXY_PORT = 47001
const LAB_TAG = 'hsl'
const LAB_SUBNET = '10.78.0'
/** Inside peer j's namespace, peer k's connections reach j's daemon from 10.79.0.(k+1) (see the proxy process). */
const LAB_SHADOW_SUBNET = '10.79.0'
const RUN_DIR_PATTERN = /^hearsay-lab-links-(\d+)-/
const PROXY_PROCESS = fileURLToPath(
  new URL(`./link-proxy-process${extname(fileURLToPath(import.meta.url))}`, import.meta.url),
)
/** The subnet has room for 254 peers. */
const MAX_NAMESPACE_PEERS = 250
/** Generous: on a loaded machine a node process can take many seconds to start. */
const PROXY_READY_TIMEOUT_MS = 60_000
/** Helpers started at once: a burst of node processes starting together starves them all. */
const HELPER_START_CONCURRENCY = 4

/** Builds the links of a process run. Throws a clear error before creating anything it cannot make. */
export async function createLabNetwork(init: LabNetworkInit): Promise<LabNetwork> {
  checkInit(init)
  return init.namespaces ? await createNamespaceLinks(init) : await createLoopbackLinks(init)
}

function checkInit(init: LabNetworkInit): void {
  if (!Number.isInteger(init.peers) || init.peers < 1) {
    throw new Error(`peers: must be a whole number ≥ 1 (got ${String(init.peers)})`)
  }
  if (init.namespaces && init.peers > MAX_NAMESPACE_PEERS) {
    throw new Error(`peers: at most ${MAX_NAMESPACE_PEERS} in network namespaces (got ${init.peers})`)
  }
  if (init.link !== undefined) checkLink(init.link)
  if (
    !init.namespaces &&
    init.link !== undefined &&
    (init.link.lossPercent > 0 || init.link.rateKbit !== undefined)
  ) {
    const field = init.link.lossPercent > 0 ? 'lossPercent' : 'rateKbit'
    throw new Error(
      `link.${field}: packet loss and rate limits need network namespaces (root, with ip, iptables and tc); on loopback the lab only delays and partitions`,
    )
  }
}

/** Checks partition groups: peers in range, each in one group at most. */
export function checkGroups(groups: number[][], peers: number): Map<number, number> {
  const groupOf = new Map<number, number>()
  groups.forEach((group, index) => {
    for (const peer of group) {
      if (!Number.isInteger(peer) || peer < 0 || peer >= peers) {
        throw new Error(`partition: peer ${String(peer)} is not one of 0..${peers - 1}`)
      }
      if (groupOf.has(peer)) throw new Error(`partition: peer ${peer} is in two groups`)
      groupOf.set(peer, index)
    }
  })
  return groupOf
}

/** Whether the partition separates a connection from `from` to `to`; peers in no group reach everyone. */
export function separated(groupOf: Map<number, number>, from: number, to: number): boolean {
  const a = groupOf.get(from)
  const b = groupOf.get(to)
  return a !== undefined && b !== undefined && a !== b
}

// ---- clean-up whatever happens -------------------------------------------------------------------

/** Synchronous clean-ups of the live networks, run on exit and on SIGINT/SIGTERM. */
const liveCleanups = new Set<() => void>()
let exitHandlersInstalled = false

function installExitHandlers(): void {
  if (exitHandlersInstalled) return
  exitHandlersInstalled = true
  process.on('exit', cleanUpAll)
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    const onSignal = () => {
      // Someone else handles the signal (a runner stopping its peers first): the exit handler cleans up.
      if (process.listenerCount(signal) > 1) return
      cleanUpAll()
      // Nobody else handles it: do what it would have done without us.
      process.off(signal, onSignal)
      process.kill(process.pid, signal)
    }
    process.on(signal, onSignal)
  }
}

function cleanUpAll(): void {
  for (const cleanUp of [...liveCleanups]) cleanUp()
}

function removeLeftoverRunDirs(): void {
  for (const name of readdirSync(tmpdir())) {
    const match = RUN_DIR_PATTERN.exec(name)
    if (match === null || isAlive(Number(match[1]))) continue
    rmSync(join(tmpdir(), name), { recursive: true, force: true })
  }
}

// ---- network namespaces --------------------------------------------------------------------------

async function createNamespaceLinks(init: LabNetworkInit): Promise<LabNetwork> {
  const why = whyNoNamespaces(LAB_TAG)
  if (why !== undefined) {
    throw new Error(
      `link conditions in network namespaces are not possible here: ${why}. Run the lab as root with ip, iptables and tc installed, or without namespaces (loopback: delay, jitter and partitions only).`,
    )
  }
  removeLeftoverNamespaces(LAB_TAG)
  removeLeftoverRunDirs()
  const link = init.link
  const useNetem = !isPlainLink(link) && hasNetem(LAB_TAG)
  /** Whether connections go through the proxies (delay or jitter without netem). */
  const proxied = !useNetem && link !== undefined && (link.delayMs > 0 || link.jitterMs > 0)
  const emulation: LinkEmulation = isPlainLink(link) ? 'none' : useNetem ? 'netem' : 'netns-proxy'

  const runDir = mkdtempSync(join(tmpdir(), `hearsay-lab-links-${process.pid}-`))
  let network: Network | undefined
  const helpers: ChildProcess[] = []
  const helperOf: Helper[] = []
  const services = new Map<string, Promise<{ host: string; port: number }>>()
  const apiServers = new Map<string, Promise<{ server: Server; url: string }>>()
  const socketPathOf = (peer: number) => join(runDir, `p${peer}.sock`)

  const cleanUpNow = () => {
    liveCleanups.delete(cleanUpNow)
    for (const helper of helpers) {
      if (helper.exitCode === null && helper.signalCode === null) helper.kill('SIGKILL')
    }
    network?.teardown()
    rmSync(runDir, { recursive: true, force: true })
  }
  liveCleanups.add(cleanUpNow)
  installExitHandlers()

  try {
    network = createNamespaceNetwork(init.peers, { tag: LAB_TAG, subnet: LAB_SUBNET })
    const made = network
    if (link !== undefined && !isPlainLink(link)) {
      await Promise.all(
        made.peerNamespaces.map(async (_, peer) => {
          if (useNetem) {
            await made.setRootQdisc(peer, netemArgs(link))
            return
          }
          if (link.lossPercent > 0) await made.setEgressLoss(peer, link.lossPercent / 100)
          if (link.rateKbit !== undefined) await made.setRate(peer, link.rateKbit)
          if (proxied) {
            await made.addLoopbackAddresses(
              peer,
              made.peerNamespaces.flatMap((_, other) =>
                other === peer ? [] : [`${LAB_SHADOW_SUBNET}.${other + 1}`],
              ),
            )
            await made.redirectInbound(peer, LAB_P2P_PORT, LAB_PROXY_PORT)
          }
        }),
      )
    }
    // The helpers also relay the API, so every peer has one, even with nothing to delay.
    await inBatches(made.peerNamespaces, HELPER_START_CONCURRENCY, async (namespace, peer) => {
      helperOf[peer] = await startHelper(helpers, namespace, {
        peer,
        host: made.addressOf(peer),
        proxyPort: LAB_PROXY_PORT,
        targetPort: LAB_P2P_PORT,
        delayMs: useNetem ? 0 : (link?.delayMs ?? 0),
        jitterMs: useNetem ? 0 : (link?.jitterMs ?? 0),
        seed: (init.seed * 1_000 + peer) >>> 0,
        socketPath: socketPathOf(peer),
        subnet: LAB_SUBNET,
        shadowSubnet: LAB_SHADOW_SUBNET,
      })
    })
  } catch (error) {
    cleanUpNow()
    throw error
  }
  const net = network

  const checkPeer = (peer: number) => {
    if (!Number.isInteger(peer) || peer < 0 || peer >= init.peers) {
      throw new Error(`peer ${String(peer)} is not one of 0..${init.peers - 1}`)
    }
  }
  const listenAddress = (peer: number) => {
    checkPeer(peer)
    return `/ip4/${net.addressOf(peer)}/tcp/${LAB_P2P_PORT}`
  }
  let torn: Promise<void> | undefined
  const links: NamespaceLabNetwork = {
    emulation,
    listenAddress,
    dialAddress: (peer, peerId) => `${listenAddress(peer)}/p2p/${peerId}`,
    commandPrefix(peer) {
      checkPeer(peer)
      return ['ip', 'netns', 'exec', net.peerNamespaces[peer]!]
    },
    apiUrl(peer, apiPort) {
      checkPeer(peer)
      checkPort(apiPort)
      const key = `${peer}:${apiPort}`
      let entry = apiServers.get(key)
      if (entry === undefined) {
        entry = startApiBridge(socketPathOf(peer), apiPort)
        apiServers.set(key, entry)
      }
      return entry.then((bridge) => bridge.url)
    },
    serviceAddress(peer, port) {
      checkPeer(peer)
      checkPort(port, 'service port')
      const key = `${peer}:${port}`
      let entry = services.get(key)
      if (entry === undefined) {
        const host = net.addressOf(peer)
        entry = (async () => {
          if (proxied) {
            const proxyPort = await helperOf[peer]!.proxyPort(port)
            await net.redirectInbound(peer, port, proxyPort)
          }
          return { host, port }
        })()
        services.set(key, entry)
      }
      return entry
    },
    async partition(groups) {
      checkGroups(groups, init.peers)
      const pairs: [number[], number[]][] = []
      for (let a = 0; a < groups.length; a++) {
        for (let b = a + 1; b < groups.length; b++) pairs.push([groups[a]!, groups[b]!])
      }
      // A new partition replaces the one before (as on loopback). Resets, not silent drops: both
      // ends learn at once that the link is gone.
      await net.healPartitions()
      for (const pair of pairs) await net.partition(pair, 'reject')
    },
    heal: () => net.healPartitions(),
    namespaceOf(peer) {
      checkPeer(peer)
      return net.peerNamespaces[peer]!
    },
    droppedPackets: async (peer) => (await net.lossCounters(peer)).dropped,
    teardown() {
      torn ??= (async () => {
        const servers = await Promise.allSettled([...apiServers.values()])
        apiServers.clear()
        for (const result of servers) {
          if (result.status === 'fulfilled') result.value.server.close()
        }
        const exits = helpers.map(
          (helper) =>
            new Promise<void>((resolve) => {
              if (helper.exitCode !== null || helper.signalCode !== null) resolve()
              else helper.once('exit', () => resolve())
            }),
        )
        cleanUpNow()
        await Promise.all(exits)
      })()
      return torn
    },
  }
  return links
}

/** The namespace network, with what tests and reports may look at. */
export interface NamespaceLabNetwork extends LabNetwork {
  namespaceOf(peer: number): string
  /** Packets the loss rules dropped on the peer's eth0 so far. */
  droppedPackets(peer: number): Promise<number>
}

function checkPort(port: number, what = 'api port'): void {
  if (!Number.isInteger(port) || port < 1 || port > 65_535) {
    throw new Error(`${what} ${String(port)} is not a TCP port`)
  }
  if (port === LAB_P2P_PORT || port === LAB_PROXY_PORT) {
    throw new Error(
      `${what} ${port} is taken by the lab's links (${LAB_P2P_PORT}: libp2p, ${LAB_PROXY_PORT}: proxy)`,
    )
  }
}

/** A running proxy process of one namespace. */
interface Helper {
  child: ChildProcess
  /** Has the helper proxy one more port of its peer; resolves to the proxy's port. */
  proxyPort(target: number): Promise<number>
}

function startHelper(
  helpers: ChildProcess[],
  namespace: string,
  config: ProxyProcessConfig,
): Promise<Helper> {
  const child = spawn(
    'ip',
    ['netns', 'exec', namespace, process.execPath, '--no-warnings', PROXY_PROCESS, JSON.stringify(config)],
    { stdio: ['pipe', 'pipe', 'pipe'] },
  )
  helpers.push(child)
  let stderr = ''
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
    stderr = (stderr + chunk).slice(-2_000)
  })
  child.stdin!.on('error', () => {})
  const waiting = new Map<number, { resolve: (port: number) => void; reject: (error: Error) => void }>()
  const exited = () => new Error(`the link proxy in ${namespace} exited: ${stderr.trim()}`)
  let ready: (() => void) | undefined
  let pending = ''
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
    pending += chunk
    for (let end = pending.indexOf('\n'); end !== -1; end = pending.indexOf('\n')) {
      const line = pending.slice(0, end)
      pending = pending.slice(end + 1)
      if (line === 'ready') {
        ready?.()
        continue
      }
      let answer: { target: number; listening?: number; error?: string }
      try {
        answer = JSON.parse(line)
      } catch {
        continue // not an answer of ours
      }
      const waiter = waiting.get(answer.target)
      waiting.delete(answer.target)
      if (answer.listening !== undefined) waiter?.resolve(answer.listening)
      else waiter?.reject(new Error(`the link proxy in ${namespace}: ${answer.error}`))
    }
  })
  child.once('exit', () => {
    for (const waiter of waiting.values()) waiter.reject(exited())
    waiting.clear()
  })
  const helper: Helper = {
    child,
    proxyPort: (target) =>
      new Promise((resolve, reject) => {
        if (child.exitCode !== null || child.signalCode !== null) return reject(exited())
        waiting.set(target, { resolve, reject })
        child.stdin!.write(`${JSON.stringify({ target })}\n`)
      }),
  }
  return new Promise((resolve, reject) => {
    const timer = setTimeout(
      () =>
        reject(new Error(`the link proxy in ${namespace} was not ready within ${PROXY_READY_TIMEOUT_MS} ms`)),
      PROXY_READY_TIMEOUT_MS,
    )
    ready = () => {
      clearTimeout(timer)
      resolve(helper)
    }
    child.once('exit', (code, signal) => {
      clearTimeout(timer)
      reject(new Error(`the link proxy in ${namespace} exited (${code ?? signal}): ${stderr.trim()}`))
    })
  })
}

/** Runs `work` over the items, at most `concurrency` at a time; rejects at the first failure. */
async function inBatches<T>(
  items: readonly T[],
  concurrency: number,
  work: (item: T, index: number) => Promise<void>,
): Promise<void> {
  let next = 0
  let failed = false
  const worker = async () => {
    while (next < items.length && !failed) {
      const index = next++
      try {
        await work(items[index]!, index)
      } catch (error) {
        failed = true
        throw error
      }
    }
  }
  await Promise.all(Array.from({ length: Math.min(concurrency, items.length) }, worker))
}

/** A loopback TCP listener of this process that carries HTTP to a daemon's API through the helper's socket. */
function startApiBridge(socketPath: string, apiPort: number): Promise<{ server: Server; url: string }> {
  const server = createServer({ allowHalfOpen: true }, (client) => {
    const relay = connect({ path: socketPath, allowHalfOpen: true })
    relay.write(`${apiPort}\n`)
    client.pipe(relay)
    relay.pipe(client)
    client.on('error', () => relay.destroy())
    relay.on('error', () => {
      if (!client.destroyed) client.resetAndDestroy()
    })
    client.on('close', () => relay.destroy())
    relay.on('close', () => client.destroy())
  })
  return new Promise((resolve, reject) => {
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const address = server.address()
      const port = typeof address === 'object' && address !== null ? address.port : 0
      resolve({ server, url: `http://127.0.0.1:${port}` })
    })
  })
}

// ---- loopback ------------------------------------------------------------------------------------

async function createLoopbackLinks(init: LabNetworkInit): Promise<LabNetwork> {
  const link: LinkConditions = init.link ?? { delayMs: 0, jitterMs: 0, lossPercent: 0 }
  const emulation: LinkEmulation = isPlainLink(init.link) ? 'none' : 'loopback-proxy'
  const peers = init.peers
  const proxy = new LinkProxy({
    delayMs: link.delayMs,
    jitterMs: link.jitterMs,
    random: seededRandom(init.seed),
  })
  const cleanUpNow = () => {
    liveCleanups.delete(cleanUpNow)
    void proxy.close()
  }
  liveCleanups.add(cleanUpNow)
  installExitHandlers()

  const listenPorts: number[] = []
  // pairPorts[from][to]; from = peers is "dialer unknown".
  const pairPorts: number[][] = []
  try {
    listenPorts.push(...(await freePorts(peers)))
    for (let from = 0; from <= peers; from++) {
      const row: number[] = []
      for (let to = 0; to < peers; to++) {
        row.push(
          from === to
            ? 0
            : await proxy.listen({
                listenHost: '127.0.0.1',
                listenPort: 0,
                targetHost: '127.0.0.1',
                targetPort: listenPorts[to]!,
                ...(from < peers ? { from } : {}),
                to,
              }),
        )
      }
      pairPorts.push(row)
    }
  } catch (error) {
    cleanUpNow()
    throw error
  }

  const checkPeer = (peer: number, what = 'peer') => {
    if (!Number.isInteger(peer) || peer < 0 || peer >= peers) {
      throw new Error(`${what} ${String(peer)} is not one of 0..${peers - 1}`)
    }
  }
  let unknownDialerHandedOut = false
  const services = new Map<string, Promise<{ host: string; port: number }>>()
  let torn: Promise<void> | undefined
  return {
    emulation,
    listenAddress(peer) {
      checkPeer(peer)
      return `/ip4/127.0.0.1/tcp/${listenPorts[peer]}`
    },
    dialAddress(peer, peerId, from) {
      checkPeer(peer)
      if (from === undefined || from === peer) {
        unknownDialerHandedOut = true
        return `/ip4/127.0.0.1/tcp/${pairPorts[peers]![peer]}/p2p/${peerId}`
      }
      checkPeer(from, 'dialer')
      return `/ip4/127.0.0.1/tcp/${pairPorts[from]![peer]}/p2p/${peerId}`
    },
    commandPrefix(peer) {
      checkPeer(peer)
      return []
    },
    async apiUrl(peer, apiPort) {
      checkPeer(peer)
      if (!Number.isInteger(apiPort) || apiPort < 1 || apiPort > 65_535) {
        throw new Error(`api port ${String(apiPort)} is not a TCP port`)
      }
      return `http://127.0.0.1:${apiPort}`
    },
    serviceAddress(peer, port, dialer) {
      checkPeer(peer)
      if (dialer !== undefined) checkPeer(dialer, 'dialer')
      if (!Number.isInteger(port) || port < 1 || port > 65_535) {
        return Promise.reject(new Error(`service port ${String(port)} is not a TCP port`))
      }
      if (dialer === undefined || dialer === peer) unknownDialerHandedOut = true
      const from = dialer === undefined || dialer === peer ? undefined : dialer
      const key = `${from ?? '?'}:${peer}:${port}`
      let entry = services.get(key)
      if (entry === undefined) {
        entry = proxy
          .listen({
            listenHost: '127.0.0.1',
            listenPort: 0,
            targetHost: '127.0.0.1',
            targetPort: port,
            ...(from !== undefined ? { from } : {}),
            to: peer,
          })
          .then((listening) => ({ host: '127.0.0.1', port: listening }))
        services.set(key, entry)
      }
      return entry
    },
    async partition(groups) {
      const groupOf = checkGroups(groups, peers)
      if (unknownDialerHandedOut) {
        throw new Error(
          'partition on loopback: the proxy must know who dials whom; give each peer the addresses of dialAddress(peer, peerId, dialer)',
        )
      }
      proxy.setBlocked((from, to) => from !== undefined && separated(groupOf, from, to))
    },
    async heal() {
      proxy.setBlocked(() => false)
    },
    teardown() {
      torn ??= (async () => {
        liveCleanups.delete(cleanUpNow)
        await proxy.close()
      })()
      return torn
    },
  }
}

/** Distinct free loopback ports (all held open together, so none is handed out twice). */
async function freePorts(count: number): Promise<number[]> {
  const servers: Server[] = []
  try {
    const ports: number[] = []
    for (let i = 0; i < count; i++) {
      const server = createServer()
      servers.push(server)
      ports.push(
        await new Promise<number>((resolve, reject) => {
          server.once('error', reject)
          server.listen(0, '127.0.0.1', () => {
            const address = server.address()
            resolve(typeof address === 'object' && address !== null ? address.port : 0)
          })
        }),
      )
    }
    return ports
  } finally {
    await Promise.all(servers.map((server) => new Promise<void>((resolve) => server.close(() => resolve()))))
  }
}

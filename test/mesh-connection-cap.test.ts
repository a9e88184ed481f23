/**
 * The connection cap: mesh nodes that all bootstrap from one seed and learn each other by peer
 * exchange keep a bounded number of neighbours instead of connecting everyone to everyone, stay one
 * connected graph, deliver gossip to all, and top up from the peers they remember when neighbours die.
 * Real libp2p nodes over loopback TCP.
 */
import { afterEach, describe, expect, it } from 'vitest'
import { chooseTrimVictims } from '../src/mesh/connector.ts'
import { createMeshNode, type MeshNode, maxConnectionsOf } from '../src/mesh/node.ts'
import { meshTopic } from '../src/mesh/topics.ts'
import { eventually } from './helpers/eventually.ts'

const MESH = 'cap'
const TOPIC = meshTopic(MESH, 'ns')
const TARGET = 4
const MAX = 6
const COUNT = 14
const te = new TextEncoder()
const td = new TextDecoder()

let running: MeshNode[] = []
afterEach(async () => {
  await Promise.allSettled(running.map((n) => n.stop()))
  running = []
})

interface Capped {
  node: MeshNode
  received: Set<string>
}

async function startNode(bootstrap: string[]): Promise<Capped> {
  const received = new Set<string>()
  const node = await createMeshNode({
    meshName: MESH,
    mdns: false,
    loopbackTesting: true,
    bootstrap,
    maxConnections: MAX,
    // Short grace and maintain period so the test sees trims and top-ups within seconds.
    connector: { targetConnections: TARGET, graceMs: 1_500, maintainIntervalMs: 300, redialMaxMs: 2_000 },
    // Frequent peer exchange: every node learns more of the mesh than its first neighbours' sample.
    peerExchange: { intervalMs: 1_000 },
  })
  running.push(node)
  node.subscribe(TOPIC, (msg) => received.add(td.decode(msg.data)))
  return { node, received }
}

function neighbours(node: MeshNode): Set<string> {
  return new Set(node.peers().map(String))
}

/** True when the nodes' connections (among themselves) form one connected graph. */
function isConnected(nodes: readonly Capped[]): boolean {
  const ids = new Map(nodes.map((n) => [n.node.peerId.toString(), n.node] as const))
  const start = nodes[0]!.node.peerId.toString()
  const seen = new Set([start])
  const queue = [start]
  while (queue.length > 0) {
    const node = ids.get(queue.shift()!)!
    for (const next of neighbours(node)) {
      if (ids.has(next) && !seen.has(next)) {
        seen.add(next)
        queue.push(next)
      }
    }
  }
  return seen.size === nodes.length
}

function describeCounts(nodes: readonly Capped[]): string {
  return nodes.map((n) => n.node.peers().length).join(',')
}

/**
 * Publishes until every node but the author got the message (gossip meshes may still be forming just
 * after a join or a loss). Identical bytes within gossipsub's seen TTL are a no-op, so each attempt
 * carries its own number; any of them counts.
 */
async function deliverToAll(author: Capped, nodes: readonly Capped[], text: string): Promise<void> {
  const others = nodes.filter((n) => n !== author)
  const got = (n: Capped): boolean => [...n.received].some((m) => m.startsWith(text))
  let attempt = 0
  await eventually(
    async () => {
      if (others.every(got)) return true
      await author.node.publish(TOPIC, te.encode(`${text} #${attempt++}`))
      return false
    },
    {
      timeout: 30_000,
      interval: 1_000,
      message: () =>
        `"${text}" reaches every node; missing on ${others.filter((n) => !got(n)).length} of ${others.length}`,
    },
  )
}

describe('mesh connection cap', () => {
  it('ranks well-connected, inbound, newer peers first for trimming', () => {
    const victims = chooseTrimVictims(
      [
        { peer: 'newcomer', degree: 1, direction: 'inbound', openedAt: 300 },
        { peer: 'hub-like', degree: 9, direction: 'outbound', openedAt: 100 },
        { peer: 'busy-in-old', degree: 6, direction: 'inbound', openedAt: 100 },
        { peer: 'busy-in-new', degree: 6, direction: 'inbound', openedAt: 200 },
        { peer: 'busy-out', degree: 6, direction: 'outbound', openedAt: 250 },
        { peer: 'unknown', direction: 'inbound', openedAt: 400 },
      ],
      4,
    )
    expect(victims).toEqual(['hub-like', 'busy-in-new', 'busy-in-old', 'busy-out'])
    expect(chooseTrimVictims([{ peer: 'a', direction: 'inbound', openedAt: 1 }], 0)).toEqual([])
  })

  it('derives the maximum from the target unless given, and refuses nonsense', async () => {
    expect(maxConnectionsOf({})).toBe(12)
    expect(maxConnectionsOf({ connector: { targetConnections: 4 } })).toBe(6)
    expect(maxConnectionsOf({ maxConnections: 1024 })).toBe(1024)
    await expect(createMeshNode({ mdns: false, maxConnections: 0 })).rejects.toThrow(/maxConnections/)
    await expect(createMeshNode({ mdns: false, connector: { targetConnections: 2.5 } })).rejects.toThrow(
      /targetConnections/,
    )
  })

  it('trims a node that everyone dials to its maximum, but not a hub, whose maximum is its client count', async () => {
    const grace = { graceMs: 300, maintainIntervalMs: 100 }
    // A hub as attachMesh configures it: maxConnections 1024, no redial; a mesh node: the defaults.
    const hub = await createMeshNode({
      mdns: false,
      loopbackTesting: true,
      peerExchange: false,
      maxConnections: 1024,
      connector: { redial: false, ...grace },
    })
    const seed = await createMeshNode({ mdns: false, loopbackTesting: true, connector: grace })
    running.push(hub, seed)
    const clients: MeshNode[] = []
    for (let i = 0; i < COUNT; i++) {
      const client = await createMeshNode({ mdns: false, loopbackTesting: true, peerExchange: false })
      running.push(client)
      clients.push(client)
      await client.dial(hub.addresses()[0]!)
      await client.dial(seed.addresses()[0]!)
    }
    // Every hub connection 1 s old: past its grace, with several trim passes since.
    const settled = () => hub.libp2p.getConnections().every((c) => Date.now() - c.timeline.open > 1_000)
    await eventually(() => seed.peers().length === maxConnectionsOf({}) && settled(), {
      timeout: 20_000,
      message: () =>
        `the mesh node trims ${COUNT} peers to ${maxConnectionsOf({})}; has ${seed.peers().length}`,
    })
    expect(hub.peers().length).toBe(COUNT)
  })

  it(`keeps ${COUNT} nodes that bootstrap from one seed at most ${MAX} neighbours each, connected, delivering`, async () => {
    const seed = await startNode([])
    const seedAddress = seed.node.addresses()[0]!.toString()
    const nodes: Capped[] = [seed]
    // A few at a time, as peers join a real mesh; all bootstrap from the seed.
    for (let i = 1; i < COUNT; i += 3) {
      const batch = Array.from({ length: Math.min(3, COUNT - i) }, () => startNode([seedAddress]))
      nodes.push(...(await Promise.all(batch)))
    }
    const hardLimit = MAX + 8
    let worst = 0
    await eventually(
      () => {
        const counts = nodes.map((n) => n.node.peers().length)
        worst = Math.max(worst, ...counts)
        return counts.every((c) => c >= 2 && c <= MAX) && isConnected(nodes)
      },
      {
        timeout: 45_000,
        interval: 100,
        message: () => `every node has 2..${MAX} neighbours in one graph; counts ${describeCounts(nodes)}`,
      },
    )
    // Newcomers may push a node over its maximum only within libp2p's headroom, until trimmed.
    expect(worst).toBeLessThanOrEqual(hardLimit)
    // Nobody is connected to everyone: the cap, not the mesh size, bounds the neighbours.
    expect(nodes.every((n) => n.node.peers().length < COUNT - 1)).toBe(true)

    await deliverToAll(nodes[COUNT - 1]!, nodes, 'from the last node')

    // Kill every neighbour of one node: it tops up from the peers it remembers.
    const lonely = nodes[COUNT - 1]!
    await eventually(() => lonely.node.knownPeers().length > lonely.node.peers().length, {
      timeout: 20_000,
      message: 'the node remembers peers beyond its neighbours',
    })
    const doomed = new Set(neighbours(lonely.node))
    const killed = nodes.filter((n) => doomed.has(n.node.peerId.toString()))
    expect(killed.length).toBeGreaterThan(0)
    await Promise.all(killed.map((n) => n.node.stop()))
    const survivors = nodes.filter((n) => !killed.includes(n))
    await eventually(
      () => {
        const now = neighbours(lonely.node)
        return now.size >= 1 && [...now].every((p) => !doomed.has(p))
      },
      {
        timeout: 30_000,
        message: () => `the node redials others after losing all ${doomed.size} neighbours`,
      },
    )
    await eventually(() => isConnected(survivors) && survivors.every((n) => n.node.peers().length <= MAX), {
      timeout: 30_000,
      interval: 100,
      message: () => `the ${survivors.length} survivors form one graph; counts ${describeCounts(survivors)}`,
    })
    await deliverToAll(lonely, survivors, 'after the loss')
  }, 120_000)
})

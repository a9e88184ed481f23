/** The dashboard's pure helpers (src/daemon/dashboard/model.js), run in Node as the browser runs them. */
import { describe, expect, it } from 'vitest'

interface Peer {
  peerId: string
  connected: boolean
}
interface GraphNode {
  id: string
  x: number
  y: number
  role: string
  connected?: boolean
}
interface Model {
  parseMetrics(text: string): Array<{ name: string; labels: Record<string, string>; value: number }>
  meshTotals(samples: unknown[]): Record<string, number>
  rates(
    previous: { at: number; totals: Record<string, number> } | undefined,
    current: { at: number; totals: Record<string, number> },
  ): { seconds: number; perSecond: Record<string, number | undefined> } | undefined
  layoutGraph(
    input: { selfId: string; topology: string; hubIds?: string[]; peers: Peer[] },
    size?: number,
  ): { nodes: GraphNode[]; edges: Array<{ to: GraphNode; connected: boolean }> }
  hubPeerIds(addresses: string[]): string[]
  writableFromPage(contentType: string): boolean
  siblingBody(sibling: { encoding: string; value: unknown }): string | Uint8Array
  shortId(peerId: string): string
  prepend<T>(list: T[], item: T, limit: number): T[]
  resolveCommand(ns: string, key: string, index: number): string
}

// A path in a variable: the module is plain JavaScript for the browser, with no type declarations.
const MODEL_PATH = '../src/daemon/dashboard/model.js'
const model = (await import(MODEL_PATH)) as Model

const SCRAPE = `# HELP hearsay_sync_rounds_total Anti-entropy sessions, by outcome
# TYPE hearsay_sync_rounds_total counter
hearsay_sync_rounds_total{outcome="completed"} 12
hearsay_sync_rounds_total{outcome="failed"} 1
hearsay_gossip_messages_total{direction="published"} 40
hearsay_gossip_messages_total{direction="received"} 30
hearsay_protocol_bytes_total{protocol="gossip",direction="sent"} 1000
hearsay_protocol_bytes_total{protocol="sync",direction="sent"} 24
hearsay_merged_entries_total{via="gossip"} 5
hearsay_merged_entries_total{via="sync"} 7
hearsay_peer_label{peer="a \\"quoted\\" one"} 3
not a sample line
hearsay_bad_value NaNx
`

describe('dashboard model', () => {
  it('reads Prometheus text into samples and sums the counters it shows', () => {
    const samples = model.parseMetrics(SCRAPE)
    expect(samples.find((s) => s.name === 'hearsay_peer_label')?.labels.peer).toBe('a \\"quoted\\" one')
    expect(samples.some((s) => s.name === 'not')).toBe(false)
    const totals = model.meshTotals(samples)
    expect(totals).toMatchObject({
      syncCompleted: 12,
      syncFailed: 1,
      gossipPublished: 40,
      gossipReceived: 30,
      bytesSent: 1024,
      mergedEntries: 12,
    })
  })

  it('turns two scrapes into per-second rates, and gives none across a restart', () => {
    expect(model.rates(undefined, { at: 1000, totals: { a: 1 } })).toBeUndefined()
    const measured = model.rates(
      { at: 1000, totals: { a: 10, b: 50 } },
      { at: 3000, totals: { a: 30, b: 5 } },
    )
    expect(measured?.seconds).toBe(2)
    expect(measured?.perSecond).toEqual({ a: 10, b: undefined })
    expect(model.rates({ at: 1000, totals: {} }, { at: 1000, totals: {} })).toBeUndefined()
  })

  it('lays out this peer in the middle and the others around it, hubs and clients named', () => {
    const peers = [
      { peerId: 'peer-b', connected: true },
      { peerId: 'peer-a', connected: false },
    ]
    const mesh = model.layoutGraph({ selfId: 'self', topology: 'mesh', peers }, 200)
    expect(mesh.nodes[0]).toMatchObject({ id: 'self', x: 100, y: 100, role: 'self' })
    expect(mesh.nodes.slice(1).map((n) => [n.id, n.role, n.connected])).toEqual([
      ['peer-a', 'peer', false],
      ['peer-b', 'peer', true],
    ])
    for (const node of mesh.nodes.slice(1)) {
      expect(Math.hypot(node.x - 100, node.y - 100)).toBeCloseTo(52, 5)
    }
    expect(mesh.edges.map((e) => e.connected)).toEqual([false, true])
    const client = model.layoutGraph({
      selfId: 'self',
      topology: 'hub-client',
      hubIds: model.hubPeerIds(['/ip4/10.0.0.1/tcp/7601/p2p/peer-a', '/dns4/hub.example/tcp/7601']),
      peers,
    })
    expect(client.nodes.map((n) => n.role)).toEqual(['self', 'hub', 'peer'])
    const hub = model.layoutGraph({ selfId: 'self', topology: 'hub', peers })
    expect(hub.nodes.map((n) => n.role)).toEqual(['hub', 'client', 'client'])
  })

  it('knows which values a page may write back, and their bytes', () => {
    expect(model.writableFromPage('application/json')).toBe(true)
    expect(model.writableFromPage('application/octet-stream')).toBe(true)
    expect(model.writableFromPage('text/plain; charset=utf-8')).toBe(false)
    expect(model.writableFromPage('application/x-www-form-urlencoded')).toBe(false)
    expect(model.siblingBody({ encoding: 'json', value: { mode: 'eco' } })).toBe('{"mode":"eco"}')
    expect(model.siblingBody({ encoding: 'utf8', value: 'héllo' })).toBe('héllo')
    expect(model.resolveCommand('default', 'greeting', 1)).toBe("hearsay resolve 'greeting' --pick 2")
    expect(model.resolveCommand('home', "it's", 0)).toBe(`hearsay resolve 'it'\\''s' --pick 1 -n home`)
    expect([...(model.siblingBody({ encoding: 'base64', value: 'AAH/' }) as Uint8Array)]).toEqual([0, 1, 255])
  })

  it('shortens ids and keeps logs bounded', () => {
    expect(model.shortId('12D3KooWAbcdefghijklmnop')).toBe('12D3Ko…klmnop')
    expect(model.shortId('short')).toBe('short')
    expect(model.prepend([2, 1], 3, 2)).toEqual([3, 2])
  })
})

/**
 * The mesh transport layer on real TCP over 127.0.0.1 (mDNS off: no multicast on the host).
 * Every wait is a poll with a deadline; every node is stopped in afterEach.
 */
import { chmod, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { lpStream } from '@libp2p/utils'
import { multiaddr } from '@multiformats/multiaddr'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { KEY_FILE_NAME } from '../src/mesh/constants.ts'
import { loadOrCreateIdentity } from '../src/mesh/identity.ts'
import {
  createMeshNode,
  type MeshMessage,
  type MeshNode,
  type MeshNodeInit,
  mdnsServiceTag,
} from '../src/mesh/node.ts'
import { decodePexFrame, encodePexFrame } from '../src/mesh/peer-exchange.ts'
import { meshTopic, meshTopicPattern, parseMeshTopic, topicAllowlist } from '../src/mesh/topics.ts'
import { eventually } from './helpers/eventually.ts'

const enc = new TextEncoder()
const dec = new TextDecoder()

let nodes: MeshNode[] = []
let dirs: string[] = []

async function node(init: MeshNodeInit = {}): Promise<MeshNode> {
  const n = await createMeshNode({ mdns: false, loopbackTesting: true, meshName: 'test', ...init })
  nodes.push(n)
  return n
}

async function tempDir(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'hearsay-mesh-'))
  dirs.push(d)
  return d
}

/** Polls `check` until it holds; fails naming `what` after `ms`. */
const until = (what: string, check: () => boolean | Promise<boolean>, ms = 10_000): Promise<true> =>
  eventually(check, { timeout: ms, interval: 10, message: what })

const connected = (a: MeshNode, b: MeshNode): boolean => a.peers().some((p) => p.equals(b.peerId))

afterEach(async () => {
  await Promise.all(nodes.map((n) => n.stop()))
  nodes = []
  await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })))
  dirs = []
})

describe('identity', () => {
  it('creates a 0600 key once and loads the same identity after a restart', async () => {
    const dir = await tempDir()
    const first = await loadOrCreateIdentity({ dataDir: join(dir, 'data') })
    expect(first.created).toBe(true)
    const st = await stat(first.path)
    expect(st.mode & 0o777).toBe(0o600)

    const a = await node({ privateKey: first.privateKey })
    expect(a.peerId.equals(first.peerId)).toBe(true)
    await a.stop()

    const second = await loadOrCreateIdentity({ dataDir: join(dir, 'data') })
    expect(second.created).toBe(false)
    expect(second.peerId.equals(first.peerId)).toBe(true)
    const b = await node({ privateKey: second.privateKey })
    expect(b.peerId.toString()).toBe(first.peerId.toString())
  })

  it('reports a corrupt key file with its path and never replaces it', async () => {
    const dir = await tempDir()
    const path = join(dir, KEY_FILE_NAME)
    await writeFile(path, 'not a key', { mode: 0o600 })
    await expect(loadOrCreateIdentity({ dataDir: dir })).rejects.toMatchObject({
      name: 'CorruptKeyFileError',
      path,
    })
    expect(await readFile(path, 'utf8')).toBe('not a key')

    await writeFile(path, new Uint8Array(0), { mode: 0o600 })
    await expect(loadOrCreateIdentity({ dataDir: dir })).rejects.toMatchObject({
      name: 'CorruptKeyFileError',
    })
  })

  it('refuses a key file other users can read', async () => {
    const dir = await tempDir()
    const { path } = await loadOrCreateIdentity({ dataDir: dir })
    await chmod(path, 0o644)
    await expect(loadOrCreateIdentity({ dataDir: dir })).rejects.toMatchObject({
      name: 'InsecureKeyFileError',
      path,
    })
  })
})

describe('topics', () => {
  it('names, parses and allowlists namespace topics', () => {
    const t = meshTopic('home', 'notes')
    expect(t).toBe('hearsay/home/notes/v3')
    expect(parseMeshTopic(t)).toEqual({ mesh: 'home', namespace: 'notes', version: 3 })
    expect(() => meshTopic('home', 'a/b')).toThrow(expect.objectContaining({ name: 'TopicNotAllowedError' }))

    const allow = topicAllowlist([meshTopicPattern('home'), 'extra/topic', /^x$/g])
    expect(allow.has(t)).toBe(true)
    expect(allow.has('hearsay/office/notes/v1')).toBe(false)
    expect(allow.has('hearsay/home/notes/v1/more')).toBe(false)
    expect(allow.has('extra/topic')).toBe(true)
    // a g-flagged pattern must not alternate answers (RegExp lastIndex)
    expect([allow.has('x'), allow.has('x'), allow.has('x')]).toEqual([true, true, true])

    expect(mdnsServiceTag()).toBe('_hearsay._udp.local')
    expect(mdnsServiceTag('home')).toBe('_hearsay-home._udp.local')
    // dotted or long names are hashed into one valid DNS label
    expect(mdnsServiceTag('a.b')).toMatch(/^_hearsay-[0-9a-f]{16}\._udp\.local$/)
    expect(mdnsServiceTag('x'.repeat(64)).split('.')[0]!.length).toBeLessThanOrEqual(63)
  })
})

describe('peer-exchange frames', () => {
  it('round-trips and enforces its bounds', async () => {
    const id = peerIdFromPrivateKey(await generateKeyPair('Ed25519'))
    const frame = encodePexFrame([{ id, addrs: [multiaddr(`/ip4/10.0.0.7/tcp/4001/p2p/${id}`)] }])
    const back = decodePexFrame(frame, { maxPeers: 4, maxAddrsPerPeer: 2 })
    expect(back).toHaveLength(1)
    expect(back[0]!.id.equals(id)).toBe(true)
    expect(back[0]!.addrs.map(String)).toEqual(['/ip4/10.0.0.7/tcp/4001'])

    const bad = (s: string) => () => decodePexFrame(enc.encode(s), { maxPeers: 1, maxAddrsPerPeer: 1 })
    const frameError = expect.objectContaining({ name: 'PeerExchangeFrameError' })
    expect(bad('{')).toThrow(frameError)
    expect(bad('{"v":2,"peers":[]}')).toThrow(frameError)
    expect(bad(`{"v":1,"peers":[{"id":"${id}","addrs":[]},{"id":"${id}","addrs":[]}]}`)).toThrow(frameError)
    expect(bad('{"v":1,"peers":[{"id":"nope","addrs":[]}]}')).toThrow(frameError)
    // an unparseable address only loses that address; a peer left without addresses is dropped
    expect(
      decodePexFrame(enc.encode(`{"v":1,"peers":[{"id":"${id}","addrs":["/bogus"]}]}`), {
        maxPeers: 1,
        maxAddrsPerPeer: 1,
      }),
    ).toEqual([])
  })
})

describe('mesh node', () => {
  const topic = meshTopic('test', 'ns')
  let received: Map<MeshNode, MeshMessage[]>

  beforeEach(() => {
    received = new Map()
  })

  const collect = (n: MeshNode, validate?: Parameters<MeshNode['subscribe']>[2]): void => {
    received.set(n, [])
    n.subscribe(topic, (m) => received.get(n)!.push(m), validate)
  }
  const texts = (n: MeshNode): string[] => (received.get(n) ?? []).map((m) => dec.decode(m.data))

  it('publishing with no peers does not throw', async () => {
    const a = await node()
    collect(a)
    await expect(a.publish(topic, enc.encode('alone'))).resolves.toEqual({ recipients: 0 })
    // the same bytes again are a no-op, not PublishError.Duplicate
    await expect(a.publish(topic, enc.encode('alone'))).resolves.toEqual({ recipients: 0 })
    // a topic nobody (not even us) subscribes to
    await expect(a.publish(meshTopic('test', 'other'), enc.encode('x'))).resolves.toEqual({ recipients: 0 })
  })

  it('refuses topics outside the allowlist and oversized messages', async () => {
    const a = await node({ maxMessageBytes: 16 })
    expect(() => a.subscribe('hearsay/other-mesh/ns/v1', () => {})).toThrow(
      expect.objectContaining({ name: 'TopicNotAllowedError' }),
    )
    await expect(a.publish('random', enc.encode('x'))).rejects.toMatchObject({ name: 'TopicNotAllowedError' })
    await expect(a.publish(topic, new Uint8Array(17))).rejects.toMatchObject({ name: 'MessageTooLargeError' })
    a.subscribe(topic, () => {})
    expect(() => a.subscribe(topic, () => {})).toThrow(
      expect.objectContaining({ name: 'AlreadySubscribedError' }),
    )
  })

  it('carries a message from A to C across a line A-B-C, and peer exchange links A and C', async () => {
    const [a, b, c] = [await node(), await node(), await node()]
    for (const n of [a, b, c]) collect(n)
    await a.dial(b.addresses()[0]!)
    await b.dial(c.addresses()[0]!)

    // only A-B and B-C were dialled: peer exchange must make A and C meet
    await until('A and C to connect directly', () => connected(a, c))

    await until(
      'gossip meshes to form',
      () => a.topicPeers(topic).length === 2 && c.topicPeers(topic).length === 2,
    )
    const t0 = performance.now()
    await a.publish(topic, enc.encode('hello from A'))
    await until('C to receive the message', () => texts(c).includes('hello from A'))
    const latencyMs = performance.now() - t0
    await until('B to receive the message', () => texts(b).includes('hello from A'))
    expect(texts(a)).toEqual([]) // emitSelf is off
    expect(received.get(c)![0]!.id).toMatch(/^[A-Za-z0-9+/]+=*$/)
    // loose bound: a CPU-starved CI box still makes this in far less than a second
    expect(latencyMs).toBeLessThan(1_000)

    expect(await a.ping(c.peerId)).toBeGreaterThanOrEqual(0)
    const status = a.status()
    // 2, or 3 when A and C dialled each other at the same moment (both learned of the other)
    expect(status.connections.length).toBeGreaterThanOrEqual(2)
    expect(status.topics).toEqual([{ topic, subscribers: 2, meshPeers: 2 }])
  })

  it("a validator's reject stops delivery and forwarding and lowers the sender's score", async () => {
    // no peer exchange: the line must stay a line so everything A sends to C passes through B
    const [a, b, c] = [
      await node({ peerExchange: false }),
      await node({ peerExchange: false }),
      await node({ peerExchange: false }),
    ]
    collect(a)
    collect(b, (m) => (dec.decode(m.data).startsWith('bad') ? 'reject' : 'accept'))
    collect(c)
    await a.dial(b.addresses()[0]!)
    await b.dial(c.addresses()[0]!)
    await until('meshes', () => b.topicPeers(topic).length === 2 && a.topicPeers(topic).length === 1)
    await until('C to see B subscribed', () => c.topicPeers(topic).length === 1)
    expect(connected(a, c)).toBe(false)

    await a.publish(topic, enc.encode('bad 1'))
    await a.publish(topic, enc.encode('good 1'))
    // 'bad 1' travelled before 'good 1' on the same streams: once C has the good one, a forwarded bad
    // one would already be there too
    await until('C to receive the good message', () => texts(c).includes('good 1'))
    expect(texts(b)).toEqual(['good 1'])
    expect(texts(c)).toEqual(['good 1'])
    await until('B to penalise A', () => b.score(a.peerId) < 0)
  })

  it('a throwing validator ignores the message and a throwing handler is reported', async () => {
    const errors: string[] = []
    const a = await node({ peerExchange: false })
    const b = await node({ peerExchange: false, onError: (_err, ctx) => errors.push(ctx.where) })
    received.set(b, [])
    b.subscribe(
      topic,
      (m) => {
        received.get(b)!.push(m)
        if (dec.decode(m.data) === 'boom') throw new Error('handler bug')
      },
      (m) => {
        if (dec.decode(m.data) === 'throw') throw new Error('validator bug')
        return 'accept'
      },
    )
    collect(a)
    await a.dial(b.addresses()[0]!)
    await until('mesh', () => a.topicPeers(topic).length === 1)
    await a.publish(topic, enc.encode('throw'))
    await a.publish(topic, enc.encode('boom'))
    await until('B to get boom', () => texts(b).includes('boom'))
    expect(texts(b)).toEqual(['boom'])
    await until('errors reported', () => errors.includes('validator') && errors.includes('message handler'))
    expect(b.score(a.peerId)).toBeGreaterThanOrEqual(0) // ignore, not reject
  })

  it('redials a known peer that restarts on the same address', async () => {
    const key = await generateKeyPair('Ed25519')
    const b = await node({ peerExchange: false })
    const c1 = await node({ privateKey: key, peerExchange: false })
    const addr = c1.addresses()[0]!
    await b.dial(addr)
    await until('B-C connection', () => connected(b, c1))

    await c1.stop()
    await until('B to notice', () => !b.peers().some((p) => p.equals(c1.peerId)))
    const listen = addr.toString().replace(/\/p2p\/.*$/, '')
    const c2 = await node({ privateKey: key, peerExchange: false, listen: [listen] })
    // first redial after ~1 s (±20 %), then ~2 s: no dial from us, B must come back on its own
    await until('B to redial C', () => connected(b, c2), 8_000)
  })

  it('keeps gossiping to a peer after the connection carrying the gossip stream closes', async () => {
    const a = await node({ peerExchange: false })
    const c = await node({ peerExchange: false })
    collect(a)
    collect(c)
    await a.dial(c.addresses()[0]!)
    await until('mesh', () => a.topicPeers(topic).length === 1)
    // a second connection, as when both sides dial each other at once
    await c.libp2p.dial(a.addresses()[0]!, { force: true })
    await until('two connections', () => a.libp2p.getConnections(c.peerId).length === 2)
    const gs = a.libp2p.services.pubsub as unknown as { streamsOutbound: Map<string, { rawStream: unknown }> }
    const out = gs.streamsOutbound.get(c.peerId.toString())!
    const carrier = a.libp2p
      .getConnections(c.peerId)
      .find((conn) => conn.streams.some((s) => s === out.rawStream))!
    await carrier.close()
    await until('a new outbound gossip stream', () => gs.streamsOutbound.has(c.peerId.toString()))
    await a.publish(topic, enc.encode('still here'))
    await until('C to receive', () => texts(c).includes('still here'))
  })

  it('dials bootstrap peers at start and validates bootstrap addresses', async () => {
    const hub = await node({ peerExchange: false })
    await expect(node({ bootstrap: ['/ip4/127.0.0.1/tcp/1'] })).rejects.toMatchObject({
      name: 'InvalidAddressError',
    })
    const a = await node({ peerExchange: false, bootstrap: [hub.addresses()[0]!.toString()] })
    await until('A to reach its bootstrap peer', () => connected(a, hub))
    expect(a.knownPeers().some((p) => p.equals(hub.peerId))).toBe(true)
    // dial() also takes an address without /p2p/: noise tells us who answered
    const b = await node({ peerExchange: false })
    const bare = b
      .addresses()[0]!
      .toString()
      .replace(/\/p2p\/.*$/, '')
    expect((await a.dial(bare)).equals(b.peerId)).toBe(true)
    await expect(a.dial('not a multiaddr')).rejects.toMatchObject({ name: 'InvalidAddressError' })
  })

  it('hangUp stops redialling', async () => {
    const a = await node({ peerExchange: false })
    const b = await node({ peerExchange: false })
    await a.dial(b.addresses()[0]!)
    await until('A to remember B', () => a.knownPeers().some((p) => p.equals(b.peerId)))
    await a.hangUp(b.peerId)
    expect(connected(a, b)).toBe(false)
    expect(a.knownPeers().some((p) => p.equals(b.peerId))).toBe(false)
  })

  it('block keeps a peer away in both directions until unblock', async () => {
    const a = await node({ peerExchange: false })
    const b = await node({ peerExchange: false })
    await a.dial(b.addresses()[0]!)
    await a.block(b.peerId)
    expect(connected(a, b)).toBe(false)
    await expect(a.dial(b.addresses()[0]!)).rejects.toThrow()
    await b.dial(a.addresses()[0]!).catch(() => {})
    await until('the inbound attempt to be refused', () => !connected(b, a))
    expect(connected(a, b)).toBe(false)
    a.unblock(b.peerId)
    await a.dial(b.addresses()[0]!)
    expect(connected(a, b)).toBe(true)
  })

  it('a private mesh refuses peers outside its allowlist', async () => {
    const insider = await node({ peerExchange: false })
    const outsider = await node({ peerExchange: false })
    const gate = await node({ peerExchange: false, allowPeers: [insider.peerId.toString()] })
    await insider.dial(gate.addresses()[0]!)
    // the gate refuses the outsider once noise has proved who it is; the outsider's dial may still
    // resolve (its side of the upgrade can finish first) but the connection does not survive
    await outsider.dial(gate.addresses()[0]!).catch(() => {})
    await until('the outsider connection to be closed', () => !connected(outsider, gate))
    await expect(gate.dial(outsider.addresses()[0]!)).rejects.toThrow()
    expect(connected(gate, insider)).toBe(true)
    expect(connected(gate, outsider)).toBe(false)
  })

  it('serves a custom stream protocol with length-prefixed frames', async () => {
    const a = await node({ peerExchange: false })
    const b = await node({ peerExchange: false })
    const proto = '/hearsay/test-echo/1.0.0'
    await b.handleProtocol(proto, async (stream) => {
      const lp = lpStream(stream, { maxDataLength: 1024 })
      const frame = await lp.read()
      await lp.write(frame)
      await stream.close()
    })
    const seen: string[] = []
    await a.watchProtocol(proto, { onConnect: (peer) => seen.push(peer.toString()) })
    await a.dial(b.addresses()[0]!)
    await until('identify to report the protocol', () => seen.length === 1)

    const stream = await a.openStream(b.peerId, proto)
    const lp = lpStream(stream, { maxDataLength: 1024 })
    await lp.write(enc.encode('ping'))
    expect(dec.decode((await lp.read()).subarray())).toBe('ping')
    await stream.close()
    // an over-long frame is refused by the reader's bound
    const s2 = await a.openStream(b.peerId, proto)
    const lp2 = lpStream(s2, { maxDataLength: 1024 })
    await lp2.write(new Uint8Array(2048))
    await expect(lp2.read()).rejects.toBeDefined()
    expect(seen).toEqual([b.peerId.toString()])
  })
})

// mDNS is tested in test/mesh-mdns.test.ts: real peers as processes inside a namespace made with `ip netns`.

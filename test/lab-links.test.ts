import { type ChildProcess, execFileSync, spawn } from 'node:child_process'
import { connect, createServer, type Server, type Socket } from 'node:net'
import { performance } from 'node:perf_hooks'
import { afterEach, describe, expect, it } from 'vitest'
import { LinkProxy } from '../src/lab/link-proxy.ts'
import {
  checkLink,
  DelaySchedule,
  LinkSpecError,
  netemArgs,
  resolveLink,
  seededRandom,
  shadowAddress,
} from '../src/lab/link-schedule.ts'
import { checkGroups, createLabNetwork, type NamespaceLabNetwork, separated } from '../src/lab/links.ts'
import { hasNetem, listNamespaces } from '../src/lab/netns.ts'
import type { LabNetwork } from '../src/lab/types.ts'
import { eventually } from './helpers/eventually.ts'

// ---- pure parts --------------------------------------------------------------------------------

describe('delay schedule', () => {
  it('holds each chunk for the delay plus a jitter within ± jitter', () => {
    const values = [0, 0.5, 0.999]
    let call = 0
    const schedule = new DelaySchedule(40, 10, () => values[call++ % values.length]!)
    // Far apart arrivals: no chunk is held back by the one before.
    expect(schedule.releaseAt(0)).toBe(30)
    expect(schedule.releaseAt(1_000)).toBe(1_040)
    expect(schedule.releaseAt(2_000)).toBeCloseTo(2_049.98, 5)
  })

  it('never lets a chunk leave before the one ahead of it (no reordering of a stream)', () => {
    const random = seededRandom(7)
    const schedule = new DelaySchedule(20, 15, random)
    let previous = Number.NEGATIVE_INFINITY
    for (let now = 0; now < 500; now += 0.7) {
      const release = schedule.releaseAt(now)
      expect(release).toBeGreaterThanOrEqual(previous)
      expect(release).toBeGreaterThanOrEqual(now + 5)
      previous = release
    }
  })

  it('with jitter larger than the delay, never releases before arrival', () => {
    const schedule = new DelaySchedule(2, 10, () => 0)
    expect(schedule.releaseAt(100)).toBe(100)
  })

  it('seeded randomness repeats per seed', () => {
    const a = seededRandom(42)
    const b = seededRandom(42)
    const first = Array.from({ length: 5 }, () => a())
    expect(Array.from({ length: 5 }, () => b())).toEqual(first)
    for (const value of first) {
      expect(value).toBeGreaterThanOrEqual(0)
      expect(value).toBeLessThan(1)
    }
  })
})

describe('link resolution', () => {
  it('resolves presets by name', () => {
    expect(resolveLink('edge')).toEqual({ delayMs: 40, jitterMs: 10, lossPercent: 1, preset: 'edge' })
    expect(resolveLink('lan')).toMatchObject({ delayMs: 0.5, jitterMs: 0, lossPercent: 0 })
  })

  it('lets custom values override a preset, or stand alone', () => {
    expect(resolveLink({ preset: 'wifi', lossPercent: 0 })).toEqual({
      delayMs: 5,
      jitterMs: 2,
      lossPercent: 0,
      preset: 'wifi',
    })
    expect(resolveLink({ delayMs: 12, rateKbit: 512 })).toEqual({
      delayMs: 12,
      jitterMs: 0,
      lossPercent: 0,
      rateKbit: 512,
    })
  })

  it('names the field of a bad link', () => {
    expect(() => resolveLink('moon')).toThrow(/link\.preset: unknown preset "moon" \(known: lan, wifi/)
    expect(() => resolveLink('toString')).toThrow(LinkSpecError)
    expect(() => resolveLink({ delayMs: -1 })).toThrow(/link\.delayMs: must be a number ≥ 0/)
    expect(() => resolveLink({ lossPercent: 101 })).toThrow(/link\.lossPercent: must be at most 100/)
    expect(() => resolveLink({ rateKbit: 0 })).toThrow(/link\.rateKbit/)
    expect(() => checkLink({ delayMs: Number.NaN, jitterMs: 0, lossPercent: 0 })).toThrow(/link\.delayMs/)
  })

  it('writes netem arguments for a link', () => {
    expect(netemArgs({ delayMs: 40, jitterMs: 10, lossPercent: 1, rateKbit: 800 })).toEqual([
      'netem',
      'delay',
      '40ms',
      '10ms',
      'loss',
      '1%',
      'rate',
      '800kbit',
    ])
  })

  it('maps a dialer to its stand-in address, and nothing else', () => {
    expect(shadowAddress('10.78.0.7', '10.78.0', '10.79.0')).toBe('10.79.0.7')
    expect(shadowAddress('::ffff:10.78.0.12', '10.78.0', '10.79.0')).toBe('10.79.0.12')
    expect(shadowAddress('10.78.1.7', '10.78.0', '10.79.0')).toBeUndefined()
    expect(shadowAddress('127.0.0.1', '10.78.0', '10.79.0')).toBeUndefined()
  })

  it('checks partition groups', () => {
    const groupOf = checkGroups([[0, 1], [2]], 4)
    expect(separated(groupOf, 0, 2)).toBe(true)
    expect(separated(groupOf, 1, 0)).toBe(false)
    expect(separated(groupOf, 3, 0)).toBe(false) // in no group: reaches everyone
    expect(() => checkGroups([[0], [0]], 2)).toThrow(/peer 0 is in two groups/)
    expect(() => checkGroups([[5]], 2)).toThrow(/peer 5 is not one of 0\.\.1/)
  })
})

// ---- real sockets on loopback ------------------------------------------------------------------

const cleanups: (() => Promise<void> | void)[] = []
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})

function listen(server: Server, port = 0, host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject)
    server.listen(port, host, () => {
      const address = server.address()
      resolve(typeof address === 'object' && address !== null ? address.port : 0)
    })
  })
}

/** An echo server on loopback; closed after the test. */
async function echoServer(port = 0): Promise<{ port: number; sockets: Set<Socket> }> {
  const sockets = new Set<Socket>()
  const server = createServer({ allowHalfOpen: true }, (socket) => {
    sockets.add(socket)
    socket.on('error', () => {})
    socket.on('close', () => sockets.delete(socket))
    socket.pipe(socket)
  })
  const bound = await listen(server, port)
  cleanups.push(
    () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy()
        server.close(() => resolve())
      }),
  )
  return { port: bound, sockets }
}

interface Client {
  socket: Socket
  received: () => Buffer
  closed: () => boolean
  error: () => Error | undefined
}

function dial(port: number): Client {
  const socket = connect({ host: '127.0.0.1', port, noDelay: true })
  const chunks: Buffer[] = []
  let closed = false
  let error: Error | undefined
  socket.on('data', (chunk: Buffer) => chunks.push(chunk))
  socket.on('error', (err) => {
    error = err
  })
  socket.on('close', () => {
    closed = true
  })
  cleanups.push(() => {
    socket.destroy()
  })
  return { socket, received: () => Buffer.concat(chunks), closed: () => closed, error: () => error }
}

function portOf(multiaddr: string): number {
  const match = /\/tcp\/(\d+)/.exec(multiaddr)
  if (match === null) throw new Error(`no tcp port in ${multiaddr}`)
  return Number(match[1])
}

describe('link proxy', () => {
  it('passes bytes both ways, in order, under jitter, holding each chunk at least delay − jitter', async () => {
    const echo = await echoServer()
    const proxy = new LinkProxy({ delayMs: 30, jitterMs: 10, random: seededRandom(1) })
    cleanups.push(() => proxy.close())
    const port = await proxy.listen({
      listenHost: '127.0.0.1',
      listenPort: 0,
      targetHost: '127.0.0.1',
      targetPort: echo.port,
      to: 0,
    })
    const client = dial(port)
    await new Promise<void>((resolve) => client.socket.once('connect', () => resolve()))
    // Many small writes, each its own chunk, so jitter would reorder them if anything could.
    const lines = Array.from({ length: 300 }, (_, i) => `line ${i}\n`)
    const sentAt = performance.now()
    for (const line of lines) client.socket.write(line)
    const expected = lines.join('')
    let firstByteAt: number | undefined
    client.socket.once('data', () => {
      firstByteAt = performance.now()
    })
    await eventually(() => client.received().length >= expected.length, {
      timeout: 30_000,
      message: 'every byte echoed back through the proxy',
    })
    expect(client.received().toString()).toBe(expected)
    // Out and back: two holds of at least delay − jitter = 20 ms each.
    expect(firstByteAt! - sentAt).toBeGreaterThanOrEqual(40)
    expect(proxy.stats.minHeldMs).toBeGreaterThanOrEqual(20)
    expect(proxy.stats.bytes).toBe(expected.length * 2)

    // A half close travels through too: the echo server ends in turn.
    client.socket.end()
    await eventually(() => client.closed(), {
      timeout: 10_000,
      message: 'the connection closed after both ends',
    })
    await eventually(() => proxy.openConnections === 0, 10_000)
  })

  it('resets the client when the target refuses', async () => {
    const free = await echoServer()
    // Close it again so its port refuses.
    await cleanups.pop()!()
    const proxy = new LinkProxy({ delayMs: 0, jitterMs: 0, random: Math.random })
    cleanups.push(() => proxy.close())
    const port = await proxy.listen({
      listenHost: '127.0.0.1',
      listenPort: 0,
      targetHost: '127.0.0.1',
      targetPort: free.port,
      to: 0,
    })
    const client = dial(port)
    await eventually(() => client.closed(), 10_000)
    expect(proxy.openConnections).toBe(0)
  })
})

describe('links on loopback', () => {
  async function loopbackRun(peers: number, delayMs: number): Promise<LabNetwork> {
    const network = await createLabNetwork({
      peers,
      namespaces: false,
      seed: 1,
      link: { delayMs, jitterMs: 0, lossPercent: 0 },
    })
    cleanups.push(() => network.teardown())
    for (let peer = 0; peer < peers; peer++) await echoServer(portOf(network.listenAddress(peer)))
    return network
  }

  it('delays through the dial address, partitions by cutting and refusing, and heals', async () => {
    const network = await loopbackRun(3, 15)
    expect(network.emulation).toBe('loopback-proxy')
    expect(network.commandPrefix(1)).toEqual([])
    expect(await network.apiUrl(1, 7700)).toBe('http://127.0.0.1:7700')
    const address = network.dialAddress(1, 'QmPeerOne', 0)
    expect(address).toMatch(/^\/ip4\/127\.0\.0\.1\/tcp\/\d+\/p2p\/QmPeerOne$/)
    expect(address).not.toBe(network.dialAddress(1, 'QmPeerOne', 2)) // one listener per dialer

    const before = dial(portOf(address))
    const sentAt = performance.now()
    before.socket.write('hello')
    await eventually(() => before.received().toString() === 'hello', 10_000)
    expect(performance.now() - sentAt).toBeGreaterThanOrEqual(30) // two one-way delays of 15 ms

    // A service of peer 2 (an echo on a port of its own), reached by peer 0 through the link.
    const serviceEcho = await echoServer()
    const service = await network.serviceAddress!(2, serviceEcho.port, 0)
    const serviceClient = dial(service.port)
    serviceClient.socket.write('svc')
    await eventually(() => serviceClient.received().toString() === 'svc', 10_000)

    const sameSide = dial(portOf(network.dialAddress(2, 'QmPeerTwo', 1)))
    sameSide.socket.write('x')
    await eventually(() => sameSide.received().toString() === 'x', 10_000)

    await network.partition([[0], [1, 2]])
    await eventually(() => before.closed(), {
      timeout: 10_000,
      message: 'the open connection across the cut closed',
    })
    const refused = dial(portOf(address))
    refused.socket.write('lost')
    await eventually(() => refused.closed(), {
      timeout: 10_000,
      message: 'a new connection across the cut refused',
    })
    expect(refused.received().length).toBe(0)
    await eventually(() => serviceClient.closed(), {
      timeout: 10_000,
      message: 'the service connection was cut',
    })
    // Within a group the link holds.
    expect(sameSide.closed()).toBe(false)
    sameSide.socket.write('y')
    await eventually(() => sameSide.received().toString() === 'xy', 10_000)

    await network.heal()
    const after = dial(portOf(address))
    after.socket.write('again')
    await eventually(() => after.received().toString() === 'again', 10_000)

    await network.teardown()
    await eventually(() => after.closed() && sameSide.closed(), {
      timeout: 10_000,
      message: 'teardown closed every connection',
    })
    const afterTeardown = dial(portOf(address))
    await eventually(() => afterTeardown.error() !== undefined, 10_000)
    expect((afterTeardown.error() as NodeJS.ErrnoException).code).toBe('ECONNREFUSED')
    await network.teardown() // twice is fine
  })

  it('refuses loss, rate and partitions it cannot make, with the reason', async () => {
    await expect(
      createLabNetwork({
        peers: 2,
        namespaces: false,
        seed: 1,
        link: { delayMs: 0, jitterMs: 0, lossPercent: 1 },
      }),
    ).rejects.toThrow(/link\.lossPercent: packet loss and rate limits need network namespaces/)
    await expect(
      createLabNetwork({
        peers: 2,
        namespaces: false,
        seed: 1,
        link: { delayMs: 0, jitterMs: 0, lossPercent: 0, rateKbit: 100 },
      }),
    ).rejects.toThrow(/link\.rateKbit/)
    await expect(createLabNetwork({ peers: 0, namespaces: false, seed: 1 })).rejects.toThrow(/peers: must be/)

    const network = await loopbackRun(2, 0)
    expect(network.emulation).toBe('none')
    network.dialAddress(1, 'QmPeerOne') // dialer unknown
    await expect(network.partition([[0], [1]])).rejects.toThrow(/the proxy must know who dials whom/)
    expect(() => network.listenAddress(2)).toThrow(/peer 2 is not one of 0\.\.1/)
  })
})

// ---- network namespaces (root) -----------------------------------------------------------------

const ECHO_PEER = `
const net = require('node:net'), http = require('node:http')
const [host, port] = process.argv.slice(-2)
net.createServer((s) => { console.log('from ' + s.remoteAddress); s.on('error', () => {}); s.pipe(s) }).listen(Number(port), host, () => {
  http.createServer((req, res) => res.end('api of peer 1')).listen(7700, '127.0.0.1', () => {
    http.createServer((req, res) => res.end('service of peer 1 to ' + req.socket.remoteAddress)).listen(7701, '0.0.0.0', () => console.log('ready'))
  })
})
`

/** Dials host:port, does `rounds` small round trips, prints {ok, rttMs} or {error}. */
const ROUND_TRIPPER = `
const net = require('node:net')
const [host, port, rounds] = process.argv.slice(-3)
const s = net.connect({ host, port: Number(port), noDelay: true })
let round = 0, got = '', started = 0, minRtt = Infinity, sentAt = 0
const next = () => { sentAt = performance.now(); s.write('ping ' + round + '\\n') }
s.on('connect', () => { started = performance.now(); next() })
s.on('data', (d) => {
  got += d
  if (got.endsWith('ping ' + round + '\\n')) {
    minRtt = Math.min(minRtt, performance.now() - sentAt)
    if (++round === Number(rounds)) { console.log(JSON.stringify({ ok: true, minRttMs: minRtt })); process.exit(0) }
    else next()
  }
})
s.on('error', (e) => { console.log(JSON.stringify({ error: e.code ?? e.message })); process.exit(0) })
setTimeout(() => { console.log(JSON.stringify({ error: 'timeout' })); process.exit(0) }, 60000)
`

function run(command: string[]): Promise<{ stdout: string; code: number | null; pid: number }> {
  const child = spawn(command[0]!, command.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] })
  let stdout = ''
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
    stdout += chunk
  })
  return new Promise((resolve) => child.once('exit', (code) => resolve({ stdout, code, pid: child.pid! })))
}

function hostPort(multiaddr: string): [string, string] {
  const match = /^\/ip4\/([\d.]+)\/tcp\/(\d+)/.exec(multiaddr)
  if (match === null) throw new Error(`not an ip4/tcp address: ${multiaddr}`)
  return [match[1]!, match[2]!]
}

describe('links in network namespaces', () => {
  it('is root here (as in CI)', () => {
    expect(process.getuid?.()).toBe(0)
  })

  it('without root, says so before creating anything', async () => {
    const links = new URL('../src/lab/links.ts', import.meta.url).pathname
    const script = `import { createLabNetwork } from ${JSON.stringify(links)}
try { await createLabNetwork({ peers: 2, namespaces: true, seed: 1 }); console.log('created') }
catch (error) { console.log(error.message) }`
    const { stdout, pid } = await run([
      'setpriv',
      '--reuid=65534',
      '--regid=65534',
      '--clear-groups',
      process.execPath,
      '--no-warnings',
      '--input-type=module',
      '-e',
      script,
    ])
    expect(stdout).toMatch(/network namespaces are not possible here: network namespaces need root/)
    expect(stdout).toMatch(/or without namespaces \(loopback/)
    // setpriv execs node in place: the lab's names would carry this pid.
    expect(listNamespaces().filter((name) => name.startsWith(`hsl${pid}x`))).toEqual([])
  })

  it('carries two peers through the proxy with delay, loss by iptables and partitions; teardown removes all', async () => {
    const link = { delayMs: 10, jitterMs: 5, lossPercent: 20 }
    const network = (await createLabNetwork({
      peers: 2,
      namespaces: true,
      seed: 3,
      link,
    })) as NamespaceLabNetwork
    cleanups.push(() => network.teardown())
    const netem = hasNetem()
    expect(network.emulation).toBe(netem ? 'netem' : 'netns-proxy')
    const namespaces = [network.namespaceOf(0), network.namespaceOf(1)]
    expect(listNamespaces()).toEqual(expect.arrayContaining(namespaces))

    const [host, port] = hostPort(network.listenAddress(1))
    const peer: ChildProcess = spawn(
      network.commandPrefix(1)[0]!,
      [...network.commandPrefix(1).slice(1), process.execPath, '-e', ECHO_PEER, host, port],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    )
    cleanups.push(() => {
      peer.kill('SIGKILL')
    })
    let peerOutput = ''
    await new Promise<void>((resolve, reject) => {
      peer.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
        peerOutput += chunk
        if (peerOutput.includes('ready')) resolve()
      })
      peer.once('exit', (code) => reject(new Error(`echo peer exited (${code})`)))
    })

    const dialAddress = network.dialAddress(1, 'QmPeerOne')
    expect(dialAddress).toBe(`${network.listenAddress(1)}/p2p/QmPeerOne`)
    const [dialHost, dialPort] = hostPort(dialAddress)
    const roundTrips = async (rounds: number) => {
      const { stdout } = await run([
        ...network.commandPrefix(0),
        process.execPath,
        '-e',
        ROUND_TRIPPER,
        dialHost,
        dialPort,
        String(rounds),
      ])
      return JSON.parse(stdout.trim().split('\n').pop()!) as { ok?: true; minRttMs?: number; error?: string }
    }
    const result = await roundTrips(40)
    expect(result.error).toBeUndefined()
    expect(result.ok).toBe(true)
    // The proxy (or netem) holds each direction at least delay − jitter.
    expect(result.minRttMs!).toBeGreaterThanOrEqual(2 * (link.delayMs - link.jitterMs))
    if (!netem) {
      // Through the proxy, from peer 0's stand-in address, so the peer still tells its dialers apart.
      expect(peerOutput).toContain('from 10.79.0.1')
      const dropped = (await network.droppedPackets(0)) + (await network.droppedPackets(1))
      expect(dropped).toBeGreaterThan(0)
    }

    // The lab process reaches the daemon's API on peer 1's loopback.
    const api = await network.apiUrl(1, 7700)
    expect(await (await fetch(`${api}/`)).text()).toBe('api of peer 1')

    // A service other than libp2p (the HTTP hub's API, say) goes through the link too.
    const service = await network.serviceAddress!(1, 7701, 0)
    const { stdout: served } = await run([
      ...network.commandPrefix(0),
      process.execPath,
      '-e',
      `fetch('http://${service.host}:${service.port}/').then(async (r) => console.log(await r.text()))`,
    ])
    expect(served.trim()).toBe(`service of peer 1 to ${netem ? '10.78.0.1' : '10.79.0.1'}`)

    await network.partition([[0], [1]])
    expect((await roundTrips(1)).error).toBeDefined()
    // A partition replaces the one before: peer 0 alone in a group cuts nothing.
    await network.partition([[0]])
    expect((await roundTrips(1)).ok).toBe(true)
    await network.partition([[1], [0]])
    expect((await roundTrips(1)).error).toBeDefined()
    await network.heal()
    expect((await roundTrips(1)).ok).toBe(true)

    await network.teardown()
    await network.teardown()
    const left = listNamespaces()
    for (const namespace of namespaces) expect(left).not.toContain(namespace)
    expect(execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' })).not.toContain(
      namespaces[0]!.split('-')[0],
    )
    await eventually(() => peer.exitCode !== null || peer.signalCode !== null, {
      timeout: 10_000,
      message: 'the process inside the namespace is gone',
    })
  }, 120_000)

  it('limits the rate with tbf on the egress of each peer', async () => {
    const network = (await createLabNetwork({
      peers: 2,
      namespaces: true,
      seed: 4,
      link: { delayMs: 0, jitterMs: 0, lossPercent: 0, rateKbit: 800 },
    })) as NamespaceLabNetwork
    cleanups.push(() => network.teardown())
    if (hasNetem()) {
      expect(network.emulation).toBe('netem')
      return
    }
    expect(network.emulation).toBe('netns-proxy')
    for (const peer of [0, 1]) {
      const qdiscs = execFileSync(
        'ip',
        ['netns', 'exec', network.namespaceOf(peer), 'tc', 'qdisc', 'show', 'dev', 'eth0'],
        {
          encoding: 'utf8',
        },
      )
      expect(qdiscs).toMatch(/qdisc tbf .*rate 800Kbit/)
    }
  })

  it('cleans up on SIGINT, and the namespaces of a killed run go at the next start', async () => {
    const links = new URL('../src/lab/links.ts', import.meta.url).pathname
    const script = `import { createLabNetwork } from ${JSON.stringify(links)}
const network = await createLabNetwork({ peers: 2, namespaces: true, seed: 1, link: { delayMs: 5, jitterMs: 0, lossPercent: 0 } })
console.log(network.namespaceOf(0))
setInterval(() => {}, 1000)`
    const startRun = async () => {
      const child = spawn(process.execPath, ['--no-warnings', '--input-type=module', '-e', script], {
        stdio: ['ignore', 'pipe', 'pipe'],
      })
      cleanups.push(() => {
        child.kill('SIGKILL')
      })
      const namespace = await new Promise<string>((resolve, reject) => {
        child.stdout.setEncoding('utf8').once('data', (line: string) => resolve(line.trim()))
        child.once('exit', (code) => reject(new Error(`the run exited (${code})`)))
      })
      const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
      return { child, namespace, exited }
    }

    const interrupted = await startRun()
    expect(listNamespaces()).toContain(interrupted.namespace)
    interrupted.child.kill('SIGINT')
    await interrupted.exited
    expect(interrupted.child.signalCode).toBe('SIGINT') // the signal still ends the run
    expect(listNamespaces()).not.toContain(interrupted.namespace)

    const killed = await startRun()
    killed.child.kill('SIGKILL')
    await killed.exited
    expect(listNamespaces()).toContain(killed.namespace) // nothing could clean up
    const next = await createLabNetwork({ peers: 1, namespaces: true, seed: 2 })
    cleanups.push(() => next.teardown())
    expect(listNamespaces()).not.toContain(killed.namespace)
  }, 120_000)
})

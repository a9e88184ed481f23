/**
 * `?ack=N` (HearsayPeer.replicatedTo, as the HTTP API calls it) on real peers over TCP, with a link
 * made silent by a relay that drops every byte while the connection stays open.
 */
import { afterAll, afterEach, describe, expect, it } from 'vitest'
import { api, type DaemonProcess, removeHomes, startDaemon, stopAllDaemons } from './helpers/daemon.ts'
import { expectCleanLog } from './helpers/log-check.ts'
import { connected, eventually, startTestPeer, type TestPeer } from './helpers/mesh-peers.ts'
import { type SilentRelay, startSilentRelay } from './helpers/silent-relay.ts'

const te = new TextEncoder()
let peers: TestPeer[] = []
let relays: SilentRelay[] = []

afterEach(async () => {
  await Promise.all(peers.map((p) => p.stop()))
  await Promise.all(relays.map((r) => r.close()))
  peers = []
  relays = []
})

async function peer(): Promise<TestPeer> {
  // Periodic anti-entropy far apart: every session in these tests is one the test caused.
  const p = await startTestPeer({ syncIntervalMs: 60_000 })
  peers.push(p)
  return p
}

const portOf = (address: string) => Number(/\/tcp\/(\d+)/.exec(address)![1])

/** A writer connected to a reachable peer directly and to a peer behind a relay, then silenced. */
async function silentPartition() {
  const [writer, reachable, silent] = [await peer(), await peer(), await peer()]
  const relay = await startSilentRelay(portOf(silent.address))
  relays.push(relay)
  await writer.peer.dial(reachable.address)
  await writer.peer.dial(relay.address(silent.mesh.peerId))
  expect(await eventually(() => connected(writer, reachable) && connected(writer, silent), 10_000)).toBe(true)
  // Both links carry data before the silence.
  const first = await writer.peer.namespace('ns').put('before', te.encode('1'), 'text/plain')
  expect(
    await writer.peer.replicatedTo('ns', first.replica, first.counter, 2, AbortSignal.timeout(10_000)),
  ).toBe(2)
  relay.silence()
  return { writer, reachable, silent }
}

async function timedAck(writer: TestPeer, key: string, count: number, timeoutMs: number) {
  const write = await writer.peer.namespace('ns').put(key, te.encode(key), 'text/plain')
  const started = performance.now()
  const replicated = await writer.peer.replicatedTo(
    'ns',
    write.replica,
    write.counter,
    count,
    AbortSignal.timeout(timeoutMs),
  )
  return { replicated, elapsedMs: performance.now() - started }
}

describe('?ack during a silent partition', () => {
  it('counts the reachable holder at once instead of waiting out the silent peer', async () => {
    const { writer, silent } = await silentPartition()
    const { replicated, elapsedMs } = await timedAck(writer, 'k1', 1, 6000)
    expect(replicated).toBe(1)
    // Reached (200) well before the timeout, not at it.
    expect(elapsedMs).toBeLessThan(3000)
    expect(connected(writer, silent)).toBe(true) // the link still looks open
  })

  it('answers at the timeout with the known holders, even while a longer wait holds a session open', async () => {
    const { writer, silent } = await silentPartition()
    // A first request whose push to the silent peer hangs, and a second that would share that session.
    const long = timedAck(writer, 'long', 2, 9000)
    await new Promise((resolve) => setTimeout(resolve, 200))
    const { replicated, elapsedMs } = await timedAck(writer, 'short', 2, 1000)
    expect(replicated).toBe(1)
    expect(elapsedMs).toBeGreaterThanOrEqual(990)
    expect(elapsedMs).toBeLessThan(2500)
    expect(connected(writer, silent)).toBe(true)
    expect((await long).replicated).toBe(1)
  })
})

describe('?ack with no peer connected yet', () => {
  it('waits for a peer that connects within the timeout', async () => {
    const writer = await peer()
    const write = await writer.peer.namespace('ns').put('k', te.encode('v'), 'text/plain')
    const answer = writer.peer.replicatedTo(
      'ns',
      write.replica,
      write.counter,
      1,
      AbortSignal.timeout(15_000),
    )
    let answered = false
    void answer.then(() => {
      answered = true
    })
    // Still waiting a moment later: no peer, no answer.
    await new Promise((resolve) => setTimeout(resolve, 300))
    expect(answered).toBe(false)
    const laptop = await peer()
    await laptop.peer.dial(writer.address)
    expect(await answer).toBe(1)
    expect(laptop.peer.namespace('ns').get('k')).toBeDefined()
  })

  it('answers 0 at the timeout when nobody comes', async () => {
    const writer = await peer()
    const write = await writer.peer.namespace('ns').put('k', te.encode('v'), 'text/plain')
    const started = performance.now()
    expect(
      await writer.peer.replicatedTo('ns', write.replica, write.counter, 3, AbortSignal.timeout(800)),
    ).toBe(0)
    expect(performance.now() - started).toBeGreaterThanOrEqual(790)
  })
})

describe('?ack through the HTTP API, daemons with a silent link', () => {
  afterAll(async () => {
    await stopAllDaemons()
    removeHomes()
  })

  it('200 as soon as the reachable peer holds the write, 202 at the timeout with the count', async () => {
    const [writer, reachable, silent] = await Promise.all([startDaemon(), startDaemon(), startDaemon()])
    const relay = await startSilentRelay(portOf(silent.addresses[0]!))
    relays.push(relay)
    const dial = (address: string) =>
      api(writer.url, '/v1/peers', {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ address }),
      })
    expect((await dial(reachable.addresses[0]!)).status).toBe(200)
    expect((await dial(relay.address(silent.peerId))).status).toBe(200)
    const put = (key: string, query: string) =>
      api(writer.url, `/v1/ns/default/kv/${key}?${query}`, { method: 'PUT', body: key })
    expect((await put('before', 'ack=2&timeout=10000')).status).toBe(200)
    relay.silence()

    let started = performance.now()
    const one = await put('one', 'ack=1&timeout=6000')
    expect(one.status).toBe(200)
    expect(one.json.ack).toEqual({ requested: 1, replicated: 1, reached: true, timeoutMs: 6000 })
    expect(performance.now() - started).toBeLessThan(3000)

    started = performance.now()
    const two = await put('two', 'ack=2&timeout=1000')
    expect(two.status).toBe(202)
    expect(two.json.ack).toEqual({ requested: 2, replicated: 1, reached: false, timeoutMs: 1000 })
    expect(two.headers.get('x-hearsay-replicated')).toBe('1')
    expect(performance.now() - started).toBeLessThan(2500)

    const peers = (await api(writer.url, '/v1/peers')).json
    expect(JSON.stringify(peers)).toContain(silent.peerId)
    for (const [name, daemon] of Object.entries({ writer, reachable, silent }) as Array<
      [string, DaemonProcess]
    >)
      expectCleanLog(daemon.stderr(), name)
  })
})

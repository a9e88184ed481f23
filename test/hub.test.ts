/**
 * The client-server shape with real daemon processes: one `hearsay hub` and three `hearsay up --hub`
 * clients on loopback (mDNS off). Clients never connect to each other; every write travels
 * client → hub → clients, and a client that was away catches up from the hub.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { loadConfig } from '../src/daemon/config.ts'
import { DaemonStartError } from '../src/daemon/errors.ts'
import {
  api,
  type DaemonProcess,
  removeHomes,
  runCli,
  startDaemon,
  stopAllDaemons,
  until,
} from './helpers/daemon.ts'
import { expectCleanLog } from './helpers/log-check.ts'

let hub: DaemonProcess
let clients: DaemonProcess[]

const kv = (key: string) => `/v1/ns/default/kv/${key}`

async function valueOn(peer: DaemonProcess, key: string): Promise<string | undefined> {
  const res = await api(peer.url, kv(key))
  return res.status === 200 ? res.text : undefined
}

async function connectedPeers(peer: DaemonProcess): Promise<string[]> {
  const peers: Array<{ peerId: string; connected: boolean }> = (await api(peer.url, '/v1/peers')).json.peers
  return peers.filter((p) => p.connected).map((p) => p.peerId)
}

function startClient(home?: string): Promise<DaemonProcess> {
  return startDaemon({ home, args: ['--hub', hub.addresses[0]] })
}

async function hubSees(count: number): Promise<void> {
  await until(async () => ((await connectedPeers(hub)).length >= count ? true : undefined), {
    message: `hub connected to ${count} clients`,
    timeoutMs: 10_000,
  })
}

beforeAll(async () => {
  hub = await startDaemon({ command: 'hub' })
  if (!hub.meshAttached || hub.addresses.length === 0)
    throw new Error('needs the mesh: the hub has no address')
  clients = await Promise.all([startClient(), startClient(), startClient()])
  await hubSees(3)
})

afterAll(async () => {
  await stopAllDaemons()
  removeHomes()
})

describe('hub mode with real daemons (one hub, three clients)', () => {
  it('/v1/status and the ready line show the topology', async () => {
    expect(hub.topology).toBe('hub')
    const hubStatus = (await api(hub.url, '/v1/status')).json
    expect(hubStatus.topology).toBe('hub')
    expect(hubStatus.mesh).toMatchObject({ mdns: false, bootstrap: [], hubs: [] })
    for (const client of clients) {
      expect(client.topology).toBe('hub-client')
      const status = (await api(client.url, '/v1/status')).json
      expect(status.topology).toBe('hub-client')
      expect(status.mesh).toMatchObject({ mdns: false, bootstrap: [], hubs: [hub.addresses[0]] })
    }
    const [hubText, clientText] = await Promise.all([
      runCli(['status'], { home: hub.home }),
      runCli(['status'], { home: clients[0].home }),
    ])
    expect(hubText.stdout).toMatch(/topology\s+hub: client peers/)
    expect(clientText.stdout).toContain(`hub client of ${hub.addresses[0]}`)
  })

  it('a write on one client is read on the others, which only ever connect to the hub', async () => {
    const [writer, ...readers] = clients
    await api(writer.url, kv('greeting'), { method: 'PUT', body: 'via the hub' })
    for (const reader of readers) {
      expect(await until(() => valueOn(reader, 'greeting'), { message: 'write reaches a client' })).toBe(
        'via the hub',
      )
    }
    // And back the other way, from a reader to every other client.
    await api(readers[1].url, kv('reply'), { method: 'PUT', body: 'heard you' })
    for (const peer of [writer, readers[0]]) {
      expect(await until(() => valueOn(peer, 'reply'), { message: 'reply reaches a client' })).toBe(
        'heard you',
      )
    }
    for (const client of clients) expect(await connectedPeers(client)).toEqual([hub.peerId])
    expect((await connectedPeers(hub)).sort()).toEqual(clients.map((c) => c.peerId).sort())
  })

  it('a client that restarts catches up from the hub', async () => {
    const [writer, other, away] = clients
    await api(writer.url, kv('before'), { method: 'PUT', body: 'seen' })
    await until(() => valueOn(away, 'before'), { message: 'the client holds the key before it goes' })
    await away.stop()
    await until(async () => ((await connectedPeers(hub)).includes(away.peerId) ? undefined : true), {
      message: 'the hub sees the client leave',
    })
    // While it is away: a new key, an overwrite and a delete, from two different clients.
    await api(writer.url, kv('missed'), { method: 'PUT', body: 'while you were away' })
    await api(other.url, kv('greeting'), { method: 'PUT', body: 'updated' })
    await api(writer.url, kv('before'), { method: 'DELETE' })
    await until(async () => ((await valueOn(hub, 'missed')) === undefined ? undefined : true), {
      message: 'the hub holds the new key',
    })

    const back = await startClient(away.home)
    clients[2] = back
    expect(back.peerId).toBe(away.peerId)
    expect(await until(() => valueOn(back, 'missed'), { message: 'catch-up of the new key' })).toBe(
      'while you were away',
    )
    await until(async () => ((await valueOn(back, 'greeting')) === 'updated' ? true : undefined), {
      message: 'catch-up of the overwrite',
    })
    await until(async () => ((await api(back.url, kv('before'))).status === 404 ? true : undefined), {
      message: 'catch-up of the delete',
    })
    expect(await connectedPeers(back)).toEqual([hub.peerId])
  })

  it('no daemon logged an error or an unhandled rejection', () => {
    expectCleanLog(hub.stderr(), 'hub')
    for (const [i, client] of clients.entries()) expectCleanLog(client.stderr(), `client ${i}`)
  })
})

describe('hub settings', () => {
  const homes: string[] = []
  const dataDir = () => {
    const dir = mkdtempSync(join(tmpdir(), 'hearsay-hub-config-'))
    homes.push(dir)
    return dir
  }
  afterAll(() => {
    for (const dir of homes) rmSync(dir, { recursive: true, force: true })
  })
  const address = '/ip4/10.0.0.2/tcp/7601/p2p/12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN'

  it('HEARSAY_HUB is comma-separated and makes a hub client; --hub repeats', () => {
    const second = address.replace('10.0.0.2', '10.0.0.3')
    const fromEnv = loadConfig({ dataDir: dataDir(), env: { HEARSAY_HUB: `${address}, ${second}` } })
    expect(fromEnv.config.hub).toEqual([address, second])
    expect(fromEnv.sources.hub).toBe('env')
    const fromFlags = loadConfig({ dataDir: dataDir(), flags: { hub: [address, second] }, env: {} })
    expect(fromFlags.config.hub).toEqual([address, second])
    const asHub = loadConfig({ dataDir: dataDir(), env: {}, isHub: true })
    expect(asHub.config.isHub).toBe(true)
  })

  it('refuses contradictory topologies, naming where each setting came from', () => {
    const attempt = (init: Omit<Parameters<typeof loadConfig>[0], 'dataDir'>) => () =>
      loadConfig({ dataDir: dataDir(), env: {}, ...init })
    expect(attempt({ flags: { hub: [address] }, isHub: true })).toThrow(/hub \(--hub\) lists hubs/)
    expect(attempt({ flags: { hub: [address], bootstrap: [address] } })).toThrow(
      /bootstrap \(--bootstrap\) cannot be used with hub/,
    )
    expect(attempt({ env: { HEARSAY_BOOTSTRAP: address }, isHub: true })).toThrow(
      /bootstrap \(HEARSAY_BOOTSTRAP\) cannot be used with hearsay hub/,
    )
    expect(attempt({ env: { HEARSAY_HUB: address, HEARSAY_MDNS: 'on' } })).toThrow(/mdns \(HEARSAY_MDNS\)/)
    expect(attempt({ flags: { mdns: true }, isHub: true })).toThrow(DaemonStartError)
    expect(attempt({ flags: { hub: ['/ip4/10.0.0.2/tcp/7601'] } })).toThrow(/must end in \/p2p\/<peer id>/)
    // mDNS left at its default, or turned off, is simply off in both shapes.
    expect(attempt({ flags: { hub: [address], mdns: false } })).not.toThrow()
    expect(attempt({ isHub: true })).not.toThrow()
  })

  it('the CLI exits 7 with CONFIG_INVALID on a contradiction', async () => {
    const result = await runCli(['hub', '--hub', address, '--api-port', '0'])
    expect(result.code).toBe(7)
    expect(result.stderr).toContain('CONFIG_INVALID')
    expect(result.stderr).toContain('hearsay up --hub <address>')
  })
})

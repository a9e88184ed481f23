/**
 * The web dashboard driven in a real headless Chromium (Debian's `chromium`, which .ci/run installs
 * where missing) against real daemons on loopback. Screenshots go to $DASHBOARD_ARTIFACTS, else
 * test/artifacts/dashboard; docs/images/dashboard-*.png are copies of them.
 */
import { existsSync, mkdirSync } from 'node:fs'
import { request } from 'node:http'
import { join } from 'node:path'
import puppeteer, { type Browser, type Page } from 'puppeteer-core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type AccessPolicy, accessProblem } from '../src/daemon/access.ts'
import { loadConfig } from '../src/daemon/config.ts'
import { type RunningDaemon, startDaemon as startInProcess } from '../src/daemon/daemon.ts'
import { createLogger } from '../src/daemon/logger.ts'
import { contentSecurityPolicy } from '../src/daemon/routes-dashboard.ts'
import type { HearsayMesh } from '../src/peer/attach-mesh.ts'
import {
  api,
  type DaemonProcess,
  giveSharedKey,
  removeHomes,
  startDaemon,
  stopAllDaemons,
  tempHome,
  until,
} from './helpers/daemon.ts'
import { eventually } from './helpers/eventually.ts'

/** The page's document, as the functions run inside the browser see it (this file has no DOM types). */
declare const document: {
  querySelector(selector: string): unknown
  querySelectorAll(selector: string): { length: number }
}

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium'
const ARTIFACTS =
  process.env.DASHBOARD_ARTIFACTS ?? new URL('./artifacts/dashboard/', import.meta.url).pathname
/** Generous: two cores shared with the browser and three daemons. */
const UI_TIMEOUT_MS = 30_000

let a: DaemonProcess
let b: DaemonProcess
let c: DaemonProcess
let browser: Browser
let page: Page
const pageErrors: string[] = []
/** Daemons run in this process, stopped at the end even when a test fails half-way. */
const inProcess: RunningDaemon[] = []

/** A daemon in this process (its own start code, real HTTP, libp2p over loopback TCP, SQLite). */
async function inProcessDaemon(): Promise<RunningDaemon> {
  const home = tempHome('hearsay-dashboard-')
  giveSharedKey(home)
  const { config } = loadConfig({
    dataDir: home,
    flags: { apiPort: '0', listen: ['/ip4/127.0.0.1/tcp/0'], mdns: false, loopbackTesting: true },
    env: {},
  })
  const daemon = await startInProcess(config, { logger: createLogger({ level: 'silent', format: 'json' }) })
  inProcess.push(daemon)
  return daemon
}

async function connectedCount(daemon: DaemonProcess): Promise<number> {
  return (await api(daemon.url, '/v1/status')).json.peers.connected
}

beforeAll(async () => {
  if (!existsSync(CHROMIUM)) {
    throw new Error(
      `no Chromium at ${CHROMIUM}: install Debian's chromium package (.ci/run does) or set CHROMIUM_PATH`,
    )
  }
  mkdirSync(ARTIFACTS, { recursive: true })
  a = await startDaemon()
  ;[b, c] = await Promise.all([
    startDaemon({ args: ['--bootstrap', a.addresses[0]] }),
    startDaemon({ args: ['--bootstrap', a.addresses[0]] }),
  ])
  await until(async () => ((await connectedCount(a)) >= 2 ? true : undefined), {
    message: 'A connected to B and C',
    timeoutMs: 30_000,
  })
  browser = await puppeteer.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--headless=new', '--disable-gpu', '--disable-dev-shm-usage'],
    protocolTimeout: 120_000,
  })
  page = await browser.newPage()
  await page.setViewport({ width: 1400, height: 1000 })
  page.on('pageerror', (error) => pageErrors.push(String(error)))
  page.setDefaultTimeout(UI_TIMEOUT_MS)
}, 120_000)

afterAll(async () => {
  await browser?.close()
  await Promise.all(inProcess.map((daemon) => daemon.stop()))
  await stopAllDaemons()
  removeHomes()
})

async function screenshot(name: string): Promise<void> {
  await page.screenshot({ path: join(ARTIFACTS, `dashboard-${name}.png`), fullPage: true })
}

const live = () => page.waitForSelector('#link[data-state="live"]')

describe('the dashboard in a real browser', { timeout: 120_000 }, () => {
  it('loads from the daemon and shows this peer and its connected peers', async () => {
    const response = await page.goto(`${a.url}/`, { waitUntil: 'domcontentloaded' })
    expect(response?.status()).toBe(200)
    await live()
    await page.waitForSelector(`[data-self="${a.peerId}"]`)
    for (const peer of [b, c]) {
      await page.waitForSelector(`tr[data-peer="${peer.peerId}"][data-connected="true"]`)
      await page.waitForSelector(`[data-graph-peer="${peer.peerId}"]`)
      // Per-peer lag from GET /v1/ns/{ns}/replication: a count, or ? before its context is known.
      await page.waitForSelector(`tr[data-peer="${peer.peerId}"] td[data-they-lack]`)
    }
    expect(pageErrors).toEqual([])
    await screenshot('overview')
  })

  it('shows a write made on another peer, live and in the key list', async () => {
    const key = 'rooms/kitchen'
    const put = await api(b.url, `/v1/ns/default/kv/${key}`, {
      method: 'PUT',
      headers: { 'content-type': 'application/json' },
      body: '{"celsius":21.5,"by":"B"}',
    })
    expect(put.status).toBe(200)
    const change = await page.waitForSelector(`#changes li[data-change-key="${key}"][data-origin="remote"]`)
    expect(await change!.evaluate((li) => li.textContent)).toContain('21.5')
    await page.waitForSelector(`.key-list li[data-key="${key}"]`)
    // The key opens with its value and its one sibling.
    await page.click(`.key-list li[data-key="${key}"] a`)
    const detail = await page.waitForSelector(`[data-detail="${key}"] li[data-sibling="0"]`)
    expect(await detail!.evaluate((li) => li.textContent)).toContain('"by": "B"')
    await screenshot('changes')
  })

  it('browses keys by prefix, a page at a time', async () => {
    for (let i = 0; i < 55; i++) {
      const res = await api(a.url, `/v1/ns/default/kv/sensors/${String(i).padStart(2, '0')}`, {
        method: 'PUT',
        headers: { 'content-type': 'application/json' },
        body: String(i),
      })
      expect(res.status).toBe(200)
    }
    await page.click('#prefix', { count: 3 })
    await page.type('#prefix', 'sensors/')
    await page.keyboard.press('Enter')
    await page.waitForFunction(
      () =>
        document.querySelectorAll('#namespace .key-list li[data-key^="sensors/"]').length === 50 &&
        document.querySelector('#namespace .key-list li[data-key="rooms/kitchen"]') === null,
    )
    // The writes went out as gossip (batched): the rates panel reads /metrics again as changes arrive.
    await page.waitForFunction(
      () =>
        Number(
          (document.querySelector('tr[data-metric="gossipPublished"]') as { dataset?: { total?: string } })
            ?.dataset?.total,
        ) >= 1,
    )
    await page.click('#next-page')
    await page.waitForFunction(
      () =>
        document.querySelectorAll('#namespace .key-list li[data-key^="sensors/"]').length === 5 &&
        document.querySelector('#namespace .key-list li[data-key="sensors/54"]') !== null,
    )
  })

  it('shows a conflict after concurrent writes across a blocked link, and clears it when a sibling is kept from the page', async () => {
    const key = 'config/mode'
    // A fourth daemon in this process, so the test can block its links at the mesh.
    const d = await inProcessDaemon()
    const link = async () => {
      await d.peer.dial(a.addresses[0])
      return (d.peer.attachedMesh as HearsayMesh).insight.connectedPeers().includes(a.peerId)
    }
    await eventually(link, { timeout: 60_000, interval: 200, message: 'D connected to A' })
    await page.waitForSelector(`tr[data-peer="${d.peerId}"][data-connected="true"]`)
    const write = (url: string, mode: string) =>
      api(url, `/v1/ns/default/kv/${key}`, {
        method: 'PUT',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ mode }),
      })

    // Block: D refuses every connection to or from the others (it may have met B and C through A);
    // the page sees D go.
    const mesh = d.peer.attachedMesh as HearsayMesh
    for (const other of [a, b, c]) await mesh.block(other.peerId)
    await page.waitForSelector(`tr[data-peer="${d.peerId}"][data-connected="false"]`, { timeout: 60_000 })
    await page.waitForSelector(`#events li[data-event="peer-disconnected"]`)
    expect((await write(a.url, 'eco')).status).toBe(200)
    expect((await write(d.url, 'boost')).status).toBe(200)
    // A knows D's context from their sync: D lacks A's write.
    await page.waitForFunction(
      (selector) =>
        Number(
          (document.querySelector(selector) as { dataset?: { theyLack?: string } })?.dataset?.theyLack,
        ) >= 1,
      { timeout: 60_000 },
      `tr[data-peer="${d.peerId}"] td[data-they-lack]`,
    )
    await screenshot('lag')

    // Heal: unblock and dial again; the two sync and both writes are kept as siblings.
    for (const other of [a, b, c]) mesh.unblock(other.peerId)
    await eventually(link, { timeout: 60_000, interval: 200, message: 'D connected to A again' })
    await page.waitForSelector(`#conflicts li[data-conflict="${key}"]`, { timeout: 60_000 })
    await page.click(`#conflicts li[data-conflict="${key}"] a`)
    await page.waitForSelector(`[data-detail="${key}"] li[data-sibling="1"] button[data-keep]`)
    // The explanation says why one sibling shows, and where each write is held.
    const explain = await page.waitForSelector(`[data-detail="${key}"] #explain`)
    expect(await explain!.evaluate((div) => div.textContent)).toContain('written concurrently')
    await page.waitForSelector(`[data-detail="${key}"] li[data-sibling] .why`)
    // The healing connection and its sync came through the event stream.
    await page.waitForSelector(`#events li[data-event="peer-connected"]`)
    await page.waitForSelector(`#events li[data-event="sync-completed"]`)
    await screenshot('conflict')

    // Keep D's value.
    const index = await page.$$eval(`[data-detail="${key}"] li[data-sibling]`, (items) =>
      items.findIndex((li) => li.textContent?.includes('"boost"')),
    )
    expect(index).toBeGreaterThanOrEqual(0)
    await page.click(`[data-detail="${key}"] li[data-sibling="${index}"] button[data-keep]`)
    await page.waitForSelector('#no-conflicts')
    await page.waitForFunction(
      (selector) => document.querySelector(selector) === null,
      {},
      `#conflicts li[data-conflict="${key}"]`,
    )
    await page.waitForFunction(
      (selector) => document.querySelectorAll(selector).length === 1,
      {},
      `[data-detail="${key}"] li[data-sibling]`,
    )
    await screenshot('resolved')
    // The resolution is a real write: every peer ends with D's value alone.
    for (const url of [a.url, b.url, d.url]) {
      await until(
        async () => {
          const read = await api(url, `/v1/ns/default/kv/${key}?siblings=1`)
          return read.status === 200 &&
            read.json.siblings.length === 1 &&
            read.json.siblings[0].value.mode === 'boost'
            ? true
            : undefined
        },
        { message: `the kept value at ${url}`, timeoutMs: 30_000 },
      )
    }
    expect(pageErrors).toEqual([])
  })

  it('switches to another namespace, with its own keys and live changes', async () => {
    expect((await api(a.url, '/v1/ns/second/kv/only/here', { method: 'PUT', body: 'x' })).status).toBe(200)
    // A namespace joined after the page loaded shows up on the next read (here: Refresh).
    await page.click('header .refresh')
    await page.waitForSelector('#ns option[data-ns="second"]')
    await page.select('#ns', 'second')
    await page.click('#prefix', { count: 3 })
    await page.keyboard.press('Backspace')
    await page.keyboard.press('Enter')
    await page.waitForSelector('#namespace .key-list li[data-key="only/here"]')
    await api(b.url, '/v1/ns/second/kv/from/b', { method: 'PUT', body: 'y' })
    await page.waitForSelector('#changes li[data-change-key="from/b"]')
    await page.select('#ns', 'default')
    await page.waitForSelector('#namespace .key-list li[data-key="rooms/kitchen"]')
    await page.waitForFunction(() => document.querySelector('#changes li[data-change-key="from/b"]') === null)
  })

  it('takes a token from the URL fragment once and sends it as a bearer token, streams included', async () => {
    // A loopback daemon ignores the header; what counts here is what the page sends, and that its
    // fetch-based event streams (EventSource cannot send headers) work.
    const tokenPage = await browser.newPage()
    try {
      const sent: Array<{ path: string; authorization?: string }> = []
      tokenPage.on('request', (outgoing) => {
        const url = new URL(outgoing.url())
        if (url.pathname.startsWith('/v1/') || url.pathname === '/metrics')
          sent.push({ path: url.pathname, authorization: outgoing.headers().authorization })
      })
      await tokenPage.goto(`${a.url}/#token=test-token-0123456789`, { waitUntil: 'domcontentloaded' })
      await tokenPage.waitForSelector('#link[data-state="live"]', { timeout: UI_TIMEOUT_MS })
      expect(await tokenPage.evaluate('location.hash')).toBe('')
      await api(c.url, '/v1/ns/default/kv/with/token', {
        method: 'PUT',
        headers: { 'content-type': 'application/json' },
        body: '"streamed"',
      })
      await tokenPage.waitForSelector('#changes li[data-change-key="with/token"]', { timeout: UI_TIMEOUT_MS })
      expect(sent.map((request) => request.path)).toEqual(
        expect.arrayContaining(['/v1/status', '/v1/events', '/v1/ns/default/watch']),
      )
      for (const request of sent)
        expect(request.authorization, request.path).toBe('Bearer test-token-0123456789')
    } finally {
      await tokenPage.close()
    }
  })

  it('shows a daemon that went away, and reconnects when it is back', async () => {
    const port = new URL(a.url).port
    const home = a.home
    await a.stop()
    await page.waitForSelector('#link[data-state="offline"]')
    await page.waitForSelector('#offline')
    await screenshot('offline')
    a = await startDaemon({ home, args: ['--api-port', port] })
    expect(a.url).toBe(`http://127.0.0.1:${port}`)
    await live()
    await page.waitForFunction(() => document.querySelector('#offline') === null)
    // Fresh reads after the reconnect: this peer's (new) uptime and a write made since.
    await api(a.url, '/v1/ns/default/kv/after/restart', { method: 'PUT', body: 'back' })
    await page.waitForSelector('#changes li[data-change-key="after/restart"]')
  })
})

describe('the dashboard under the API access rules', () => {
  function rawGet(path: string, headers: Record<string, string>) {
    const url = new URL(a.url)
    return new Promise<{ status: number; body: string; headers: Record<string, unknown> }>(
      (resolve, reject) => {
        const req = request(
          { host: url.hostname, port: url.port, path, headers, setHost: headers.host === undefined },
          (res) => {
            let body = ''
            res.setEncoding('utf8').on('data', (chunk: string) => {
              body += chunk
            })
            res.on('end', () => resolve({ status: res.statusCode!, body, headers: res.headers }))
          },
        )
        req.on('error', reject)
        req.end()
      },
    )
  }

  it('refuses the page and its files to a foreign Host or Origin, like the API', async () => {
    const own = await rawGet('/', {})
    expect(own.status).toBe(200)
    expect(own.headers['content-security-policy']).toContain("script-src 'self' 'sha256-")
    for (const path of ['/', '/ui/app.js', '/ui/lib/preact.mjs']) {
      const host = await rawGet(path, { host: 'attacker.example:7600' })
      expect(host.status, path).toBe(403)
      expect(JSON.parse(host.body).error.code).toBe('FORBIDDEN_HOST')
      const origin = await rawGet(path, { origin: 'http://attacker.example' })
      expect(origin.status, path).toBe(403)
      expect(JSON.parse(origin.body).error.code).toBe('FORBIDDEN_ORIGIN')
      const crossSite = await rawGet(path, { 'sec-fetch-site': 'cross-site' })
      expect(crossSite.status, path).toBe(403)
    }
    expect((await rawGet('/ui/../access.ts', {})).status).toBe(404)
    expect((await rawGet('/ui/nothing.js', {})).status).toBe(404)
  })

  it('serves the static files without the token a non-loopback bind requires, and nothing else', () => {
    const exposed: AccessPolicy = { checkHost: false, allowedHosts: [], token: 'secret-token-0123456789' }
    const check = (template: string, headers: Record<string, string> = {}) =>
      accessProblem({ method: 'GET', template, headers: { host: '10.0.0.2:7600', ...headers } }, exposed)
    expect(check('/')).toBeUndefined()
    expect(check('/ui/:file')).toBeUndefined()
    expect(check('/v1/status')?.code).toBe('UNAUTHORIZED')
    expect(check('/v1/ns/:ns/watch')?.code).toBe('UNAUTHORIZED')
    expect(check('/v1/status', { authorization: 'Bearer secret-token-0123456789' }) ?? 'allowed').toBe(
      'allowed',
    )
    expect(check('/', { origin: 'http://attacker.example' })?.code).toBe('FORBIDDEN_ORIGIN')
  })

  it('allows the page exactly its own import map as inline script', () => {
    const policy = contentSecurityPolicy(
      '<script type="importmap">{"imports":{}}</script><script>alert(1)</script>',
    )
    expect(policy).toMatch(/script-src 'self' 'sha256-[A-Za-z0-9+/=]{44}';/)
    expect(policy).toContain("default-src 'none'")
    expect(policy).toContain("frame-ancestors 'none'")
  })
})

describe('the dashboard of a hub and its clients', { timeout: 120_000 }, () => {
  it('draws the hub as the hub on a client, and the clients as clients on the hub', async () => {
    const hub = await startDaemon({ command: 'hub' })
    const clients = await Promise.all([
      startDaemon({ args: ['--hub', hub.addresses[0]] }),
      startDaemon({ args: ['--hub', hub.addresses[0]] }),
    ])
    await until(async () => ((await connectedCount(hub)) >= 2 ? true : undefined), {
      message: 'the hub connected to both clients',
      timeoutMs: 30_000,
    })
    await page.goto(`${clients[0].url}/`, { waitUntil: 'domcontentloaded' })
    await live()
    await page.waitForSelector(`g.node.hub.up[data-graph-peer="${hub.peerId}"]`)
    await page.goto(`${hub.url}/`, { waitUntil: 'domcontentloaded' })
    await live()
    await page.waitForSelector(`g.node.hub[data-graph-peer="${hub.peerId}"]`)
    for (const client of clients)
      await page.waitForSelector(`g.node.client.up[data-graph-peer="${client.peerId}"]`)
    await screenshot('hub')
    expect(pageErrors).toEqual([])
  })
})

/**
 * A service registry on hearsay: service instances on several peers register under
 * `services/<name>/<instance>` with a TTL and renew it; a client on any peer watches the prefix and
 * balances requests across the live instances (round-robin, or least-outstanding). An instance that
 * dies stops renewing and leaves the rotation when its TTL runs out; a peer cut off from the others
 * stops receiving renewals, so each side keeps serving the instances it can still reach.
 *
 *   npm run example:registry [-- --strategy least-outstanding]
 *
 * Expiry: with TTL keys (`PUT …?ttl=2s`) the daemon deletes the key on every peer at its deadline and
 * the watch says `op: "delete"`. A daemon without them answers 400 INVALID_PARAMETER, or ignores the
 * parameter; the example then expires instances itself from the `renewedAt` heartbeat in each value.
 * It prints which path ran.
 */
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { parseArgs } from 'node:util'
import { call, eventually, type Peer, runExample } from '../lib/local-mesh.ts'

const NS = '/v1/ns/registry'
const SERVICE = 'api'
const PREFIX = `services/${SERVICE}/`
const TTL_MS = 2_000
const RENEW_EVERY_MS = 500

const { values } = parseArgs({ options: { strategy: { type: 'string', default: 'round-robin' } } })
const strategy = values.strategy === 'least-outstanding' ? 'least-outstanding' : 'round-robin'

/**
 * TTL keys are supported when a key written with `?ttl=1s` is gone after its deadline; a 400
 * INVALID_PARAMETER, or a key that outlives it (the parameter ignored), means they are not.
 */
async function detectTtlKeys(peer: Peer): Promise<boolean> {
  const probe = `${NS}/kv/${PREFIX}_probe-${process.pid}`
  const response = await fetch(`${peer.url}${probe}?ttl=1s`, {
    method: 'PUT',
    headers: { 'content-type': 'application/json' },
    body: '{}',
  })
  const answer = (await response.json().catch(() => undefined)) as { error?: { code?: string } } | undefined
  if (response.status === 400 && answer?.error?.code === 'INVALID_PARAMETER') return false
  if (!response.ok) throw new Error(`probe PUT answered ${response.status}`)
  const expired = await eventually(
    'probe key expired',
    async () => ((await fetch(peer.url + probe)).status === 404 ? true : undefined),
    3_000,
  ).catch(() => false)
  if (!expired) await fetch(peer.url + probe, { method: 'DELETE' })
  return expired
}

interface Instance {
  name: string
  stop(): Promise<void>
}

/** A service instance: a small HTTP server that answers its name, registered on its local peer. */
async function startInstance(name: string, peer: Peer, ttlKeys: boolean): Promise<Instance> {
  const server: Server = createServer((_request, response) => {
    // A little work, so that least-outstanding has something to balance.
    setTimeout(() => response.end(name), 5 + Math.floor(Math.random() * 20))
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const addr = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  let renewing = false
  const register = async () => {
    // One renewal at a time: while the local daemon does not answer, renewals do not pile up.
    if (renewing) return
    renewing = true
    const path = `${NS}/kv/${PREFIX}${name}${ttlKeys ? `?ttl=${TTL_MS}ms` : ''}`
    // The local daemon may be briefly unreachable; the next renewal retries.
    await call(peer, 'PUT', path, { addr, renewedAt: Date.now() }).catch(() => undefined)
    renewing = false
  }
  await register()
  const timer = setInterval(register, RENEW_EVERY_MS)
  let stopped = false
  return {
    name,
    async stop() {
      if (stopped) return
      stopped = true
      clearInterval(timer)
      server.closeAllConnections()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    },
  }
}

interface Live {
  addr: string
  renewedAt: number
  outstanding: number
}

/** Watches the service's prefix on one peer and balances requests across the live instances. */
class RegistryClient {
  private readonly live = new Map<string, Live>()
  private readonly abort = new AbortController()
  private sweep?: NodeJS.Timeout
  private next = 0

  private readonly peer: Peer
  private readonly ttlKeys: boolean

  constructor(peer: Peer, ttlKeys: boolean) {
    this.peer = peer
    this.ttlKeys = ttlKeys
  }

  async start(): Promise<void> {
    const response = await fetch(`${this.peer.url}${NS}/watch?prefix=${encodeURIComponent(PREFIX)}`, {
      signal: this.abort.signal,
    })
    if (response.status !== 200) throw new Error(`watch answered ${response.status}`)
    void this.follow(response).catch(() => undefined)
    // What was registered before the watch began.
    const page = await call(this.peer, 'GET', `${NS}/kv?prefix=${encodeURIComponent(PREFIX)}&limit=1000`)
    for (const item of page.items) this.apply(item.key, 'put', item.value)
    if (!this.ttlKeys) {
      this.sweep = setInterval(() => {
        for (const [name, live] of this.live) if (Date.now() - live.renewedAt > TTL_MS) this.live.delete(name)
      }, 100)
    }
  }

  stop(): void {
    clearInterval(this.sweep)
    this.abort.abort()
  }

  private async follow(response: Response): Promise<void> {
    const decoder = new TextDecoder()
    let buffer = ''
    for await (const chunk of response.body!) {
      buffer += decoder.decode(chunk, { stream: true })
      for (let end = buffer.indexOf('\n\n'); end >= 0; end = buffer.indexOf('\n\n')) {
        const block = buffer.slice(0, end)
        buffer = buffer.slice(end + 2)
        const lines = block.split('\n')
        const data = lines.find((line) => line.startsWith('data: '))
        if (!lines.includes('event: change') || data === undefined) continue
        const change = JSON.parse(data.slice(6))
        this.apply(change.key, change.op, change.value)
      }
    }
  }

  private apply(key: string, op: string, value: unknown): void {
    const name = key.slice(PREFIX.length)
    if (name.startsWith('_probe')) return
    if (op === 'delete') {
      this.live.delete(name)
      return
    }
    const registration = value as { addr?: unknown; renewedAt?: unknown }
    if (typeof registration?.addr !== 'string' || typeof registration.renewedAt !== 'number') return
    if (!this.ttlKeys && Date.now() - registration.renewedAt > TTL_MS) return
    const known = this.live.get(name)
    this.live.set(name, {
      addr: registration.addr,
      renewedAt: registration.renewedAt,
      outstanding: known?.outstanding ?? 0,
    })
  }

  names(): string[] {
    return [...this.live.keys()].sort()
  }

  async waitFor(expected: string[], what: string, timeoutMs = 15_000): Promise<void> {
    const want = JSON.stringify(expected)
    await eventually(
      what,
      async () => (JSON.stringify(this.names()) === want ? true : undefined),
      timeoutMs,
    ).catch((error: Error) => {
      error.message += ` (live: ${this.names().join(', ') || 'none'})`
      throw error
    })
  }

  /** Picks an instance: round-robin over the live ones in name order, or the least busy one. */
  private pick(): [string, Live] | undefined {
    const names = this.names()
    if (names.length === 0) return undefined
    if (strategy === 'least-outstanding') {
      const fewest = Math.min(...names.map((name) => this.live.get(name)!.outstanding))
      const candidates = names.filter((name) => this.live.get(name)!.outstanding === fewest)
      const name = candidates[this.next++ % candidates.length]!
      return [name, this.live.get(name)!]
    }
    const name = names[this.next++ % names.length]!
    return [name, this.live.get(name)!]
  }

  async request(): Promise<string> {
    const chosen = this.pick()
    if (chosen === undefined) return '(none live)'
    const [name, live] = chosen
    live.outstanding++
    try {
      const response = await fetch(live.addr, { signal: AbortSignal.timeout(2_000) })
      return await response.text()
    } catch {
      return `${name}✗`
    } finally {
      live.outstanding--
    }
  }

  async showRotation(requests: number): Promise<void> {
    const answers: string[] = []
    if (strategy === 'least-outstanding') {
      answers.push(...(await Promise.all(Array.from({ length: requests }, () => this.request()))))
    } else {
      for (let i = 0; i < requests; i++) answers.push(await this.request())
    }
    console.log(`  live: ${this.names().join(', ')}   rotation: ${answers.join(' → ')}`)
  }
}

// Run last: the classes above must be initialized first.
await runExample(['east', 'west', 'edge'], async (mesh) => {
  const [east, west, edge] = mesh.peers as [Peer, Peer, Peer]
  const ttlKeys = await detectTtlKeys(edge)
  console.log(
    ttlKeys
      ? `registry: TTL keys (the daemons expire registrations; ttl ${TTL_MS} ms)`
      : `registry: client-side expiry (this daemon has no TTL keys: instances not renewed within ${TTL_MS} ms are dropped)`,
  )
  console.log(`balancing: ${strategy}`)

  const instances = [
    await startInstance('api-1', east, ttlKeys),
    await startInstance('api-2', west, ttlKeys),
    await startInstance('api-3', edge, ttlKeys),
    await startInstance('api-4', west, ttlKeys),
  ]
  const client = new RegistryClient(edge, ttlKeys)
  await client.start()
  try {
    await client.waitFor(['api-1', 'api-2', 'api-3', 'api-4'], 'all four instances in rotation')
    await client.showRotation(8)

    await instances[1]!.stop()
    console.log('api-2 (on west) is killed: it stops answering and renewing')
    await client.waitFor(['api-1', 'api-3', 'api-4'], 'api-2 leaves the rotation', TTL_MS * 6)
    console.log('✓ api-2 left the rotation when its TTL ran out')
    await client.showRotation(6)

    // Freezing west's daemon cuts it off as a partition would: no packet from it reaches the others.
    west.process.kill('SIGSTOP')
    console.log('west is cut off from the mesh (its daemon frozen: nothing in, nothing out)')
    await client.waitFor(['api-1', 'api-3'], 'edge serves the instances it can reach', TTL_MS * 6)
    console.log('✓ partition: edge keeps serving api-1, api-3')
    await client.showRotation(4)

    west.process.kill('SIGCONT')
    console.log('west is back')
    await client.waitFor(['api-1', 'api-3', 'api-4'], 'api-4 rejoins', TTL_MS * 10)
    console.log('✓ healed: api-4 is back in rotation')
    await client.showRotation(6)
  } finally {
    west.process.kill('SIGCONT')
    client.stop()
    await Promise.all(instances.map((instance) => instance.stop()))
  }
})

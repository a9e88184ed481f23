/**
 * A neighbour floods a daemon with valid signed gossip batches, as fast as hearsay's own stack can
 * publish them (a separate process). The per-neighbour rate limit must throttle it, and the
 * daemon's HTTP API must stay responsive meanwhile.
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { afterAll, describe, expect, it } from 'vitest'
import {
  api,
  type DaemonProcess,
  removeHomes,
  sharedSwarmKeyFile,
  startDaemon,
  stopAllDaemons,
} from './helpers/daemon.ts'
import { expectCleanLog } from './helpers/log-check.ts'

const FLOODER = new URL('./fixtures/flooder.ts', import.meta.url).pathname
const BATCHES = Number(process.env.FLOOD_BATCHES ?? 20_000)
const children: ChildProcess[] = []

afterAll(async () => {
  for (const child of children) child.kill('SIGKILL')
  await stopAllDaemons()
  removeHomes()
})

interface GossipTotals {
  received: number
  throttled: number
  ignored: number
  rejected: number
}

async function gossipTotals(daemon: DaemonProcess): Promise<GossipTotals> {
  const text = (await api(daemon.url, '/metrics')).text
  const read = (direction: string) =>
    Number(
      new RegExp(`hearsay_gossip_messages_total\\{direction="${direction}"\\} (\\d+)`).exec(text)?.[1] ?? 0,
    )
  return {
    received: read('received'),
    throttled: read('throttled'),
    ignored: read('ignored'),
    rejected: read('rejected'),
  }
}

function startFlooder(victim: string, namespace: string): { child: ChildProcess; lines: string[] } {
  const child = spawn(
    process.execPath,
    [FLOODER, victim, 'default', namespace, String(BATCHES), sharedSwarmKeyFile()],
    {
      stdio: ['pipe', 'pipe', 'pipe'],
    },
  )
  children.push(child)
  const lines: string[] = []
  let buffer = ''
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
    buffer += chunk
    const parts = buffer.split('\n')
    buffer = parts.pop()!
    lines.push(...parts)
  })
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => lines.push(`stderr: ${chunk}`))
  return { child, lines }
}

const percentile = (values: number[], p: number) => {
  const sorted = [...values].sort((x, y) => x - y)
  return sorted[Math.min(sorted.length - 1, Math.floor((sorted.length * p) / 100))] ?? 0
}

describe('a neighbour flooding valid gossip', () => {
  it('is throttled, and /healthz answers promptly throughout', { timeout: 180_000 }, async () => {
    const victim = await startDaemon()
    const namespace = 'flood'
    expect((await api(victim.url, `/v1/ns/${namespace}/kv/start`, { method: 'PUT', body: 'x' })).status).toBe(
      200,
    )

    const { child, lines } = startFlooder(victim.addresses[0]!, namespace)
    const deadline = Date.now() + 120_000
    while (!lines.includes('ready') && Date.now() < deadline) {
      if (child.exitCode !== null) throw new Error(`flooder exited: ${lines.join('\n')}`)
      await new Promise((resolve) => setTimeout(resolve, 20))
    }
    expect(lines).toContain('ready')

    // Poll /healthz back to back while the flood lasts and until the victim has dealt with it.
    const latencies: number[] = []
    let sent: { sent: number; ms: number } | undefined
    let totals = await gossipTotals(victim)
    let settledSince = 0
    while (Date.now() < deadline) {
      const started = performance.now()
      const health = await api(victim.url, '/healthz')
      latencies.push(performance.now() - started)
      expect(health.status).toBe(200)
      const done = lines.find((line) => line.startsWith('{'))
      if (done !== undefined) sent ??= JSON.parse(done)
      if (sent !== undefined) {
        const next = await gossipTotals(victim)
        const seen = next.received + next.throttled + next.ignored + next.rejected
        if (seen >= sent.sent || (next.received === totals.received && next.throttled === totals.throttled)) {
          settledSince ||= Date.now()
          if (seen >= sent.sent || Date.now() - settledSince > 10_000) {
            totals = next
            break
          }
        } else settledSince = 0
        totals = next
      }
      await new Promise((resolve) => setTimeout(resolve, 10))
    }
    child.stdin!.end()
    const report = {
      batches: BATCHES,
      publishMs: sent?.ms,
      ...totals,
      healthzP50Ms: Math.round(percentile(latencies, 50)),
      healthzP99Ms: Math.round(percentile(latencies, 99)),
      healthzMaxMs: Math.round(Math.max(...latencies)),
      healthzSamples: latencies.length,
    }
    console.log(`flood: ${JSON.stringify(report)}`)
    expect(sent?.sent).toBe(BATCHES)
    expect(totals.throttled, `victim log:\n${victim.stderr().slice(-3000)}`).toBeGreaterThan(0)
    expect(totals.received).toBeLessThan(BATCHES)
    expectCleanLog(victim.stderr(), 'victim')
  })
})

import { spawn } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import type { LabResults, RunResult } from '../src/lab/types.ts'
import { eventually } from './helpers/eventually.ts'

/**
 * `hearsay lab run` through the real CLI process: every shape with three peers as daemon processes on
 * loopback, the hub killed for a second and restarted. The mesh ignores the hub events (it has none)
 * and is the control. One run serves both checks, to keep the file short on a loaded machine.
 */

const CLI = new URL('../src/cli/main.ts', import.meta.url).pathname
const dir = mkdtempSync(join(tmpdir(), 'hearsay-lab-test-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

const VALUE_BYTES = 64

function runCli(
  args: string[],
  timeoutMs: number,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--no-warnings', CLI, ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let stdout = ''
    let stderr = ''
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      stdout += chunk
    })
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
      stderr += chunk
    })
    // The lab bounds itself; this is the test's own last resort (SIGINT: the lab's cleanup runs).
    const timer = setTimeout(() => child.kill('SIGINT'), timeoutMs)
    child.once('exit', (code) => {
      clearTimeout(timer)
      resolve({ code, stdout, stderr })
    })
  })
}

function visibleWhileDown(run: RunResult): number[] {
  const window = run.availability.find((entry) => entry.event === 'kill-hub')!
  return run.timeline
    .filter((s) => s.tMs > window.fromMs + 250 && s.tMs <= window.toMs)
    .map((s) => s.visibleFraction)
}

describe('hearsay lab run', () => {
  it('runs every shape with a hub kill: all writes visible, none lost; the hub shapes stall while the mesh goes on', async () => {
    const scenarioPath = join(dir, 'scenario.json')
    writeFileSync(
      scenarioPath,
      JSON.stringify({
        name: 'ci',
        shapes: ['mesh', 'hub', 'http-hub'],
        n: [3],
        workload: {
          writers: 2,
          ratePerSecond: 20,
          keys: 5,
          valueBytes: VALUE_BYTES,
          durationMs: 3000,
          readFraction: 0.1,
        },
        timeline: [
          { atMs: 1000, kind: 'kill-hub' },
          { atMs: 2000, kind: 'restart-hub' },
        ],
        settleMs: 30_000,
        visibleBoundMs: 1000,
      }),
    )
    const out = join(dir, 'out')
    const { code, stderr } = await runCli(['lab', 'run', scenarioPath, '--out', out], 170_000)
    expect(code, stderr).toBe(0)
    const results = JSON.parse(readFileSync(join(out, 'results.json'), 'utf8')) as LabResults
    expect(readFileSync(join(out, 'results.md'), 'utf8')).toContain('| mesh | 3 | processes | none |')
    expect(results.runs.map((run) => run.shape)).toEqual(['mesh', 'hub', 'http-hub'])

    for (const run of results.runs) {
      const label = `${run.shape}: ${JSON.stringify(run.writes)}`
      expect(run.crashes, label).toEqual([])
      expect(run.writes.acknowledged, label).toBeGreaterThan(0)
      // Every acknowledged write visible on every peer by the end, nothing lost.
      expect(run.writes.lost, label).toBe(0)
      expect(run.latency.count, label).toBe(run.writes.acknowledged)
      expect(run.latency.p50, label).toBeGreaterThan(0)
      expect(run.latency.max, label).toBeGreaterThanOrEqual(run.latency.p99)
      expect(run.latency.cdf[run.latency.cdf.length - 1]![1], label).toBe(1)
      expect(run.reads.attempted, label).toBeGreaterThan(0)
      expect(run.timeline.length, label).toBeGreaterThan(10)
      expect(run.timeline[run.timeline.length - 1]!.visibleFraction, label).toBe(1)
      // Each peer received at least the payload of the writes of the others.
      const payload = (writer: number) => run.writes.acknowledged * VALUE_BYTES * (writer < 2 ? 0.5 : 1) // two writers, half the writes each
      for (const peer of run.peers.filter((p) => p.role !== 'hub')) {
        expect(peer.bytesReceived, `${run.shape} peer ${peer.index}`).toBeGreaterThan(
          payload(peer.index) * 0.9,
        )
      }
    }

    const [mesh, hub, httpHub] = results.runs as [RunResult, RunResult, RunResult]
    // The mesh has no hub: it goes on; nothing waits for the restart.
    expect(Math.min(...visibleWhileDown(mesh))).toBeGreaterThan(0.5)
    expect(mesh.convergence).toEqual([])
    // The libp2p hub: clients accept writes while the hub is down, but nothing reaches the other clients.
    const hubDown = hub.availability.find((entry) => entry.event === 'kill-hub')!
    expect(hubDown.writesAccepted).toBeGreaterThan(0)
    const stalled = visibleWhileDown(hub)
    expect(Math.min(...stalled)).toBeLessThan(Math.min(...visibleWhileDown(mesh)))
    expect(Math.min(...stalled)).toBeLessThan(1)
    expect(hub.writes.notSeenWithinBound).toBeGreaterThan(0)
    expect(hub.convergence.find((entry) => entry.event === 'restart-hub')?.convergedAfterMs).not.toBeNull()
    expect(hub.peers.find((peer) => peer.role === 'hub')!.bytesSent).toBeGreaterThan(0)
    // The HTTP hub: writes are refused while it is down; what it acknowledged survives the kill.
    const httpDown = httpHub.availability.find((entry) => entry.event === 'kill-hub')!
    expect(httpDown.writesRefused).toBeGreaterThan(0)
    // The window ends at the restarted daemon's ready line; it serves a moment before printing it.
    expect(httpDown.writesAccepted).toBeLessThanOrEqual(2)
    expect(httpDown.writesRefused).toBeGreaterThan(httpDown.writesAccepted * 4)
    expect(httpHub.writes.refused).toBeGreaterThan(0)
    expect(httpHub.peers.find((peer) => peer.role === 'hub')!.bytesSent).toBeGreaterThan(
      httpHub.writes.acknowledged * VALUE_BYTES * 3,
    )
  }, 180_000)

  it('plays churn and a partition on the HTTP hub: cut-off clients are refused, then catch up', async () => {
    const out = join(dir, 'churn')
    const { code, stderr } = await runCli(
      [
        'lab',
        'run',
        '--shapes',
        'http-hub',
        '--n',
        '4',
        '--writers',
        '4',
        '--duration',
        '3s',
        '--read-fraction',
        '0.2',
        '--event',
        'late-join@0.5s:3',
        '--event',
        'partition@1s:0,1/2,3',
        '--event',
        'heal@2s',
        '--event',
        'leave@2.2s:1',
        '--event',
        'join@2.6s:1',
        '--out',
        out,
      ],
      90_000,
    )
    expect(code, stderr).toBe(0)
    const [run] = (JSON.parse(readFileSync(join(out, 'results.json'), 'utf8')) as LabResults).runs as [
      RunResult,
    ]
    expect(run.crashes).toEqual([])
    expect(run.writes.lost).toBe(0)
    const partition = run.availability.find((entry) => entry.event === 'partition')!
    const cut = partition.perPeer!.filter((peer) => peer.index >= 2)
    const kept = partition.perPeer!.filter((peer) => peer.index < 2)
    expect(cut.reduce((total, peer) => total + peer.writesAccepted, 0)).toBe(0)
    expect(cut.reduce((total, peer) => total + peer.writesRefused, 0)).toBeGreaterThan(0)
    expect(kept.reduce((total, peer) => total + peer.writesAccepted, 0)).toBeGreaterThan(0)
    expect(run.convergence.map((entry) => entry.event)).toEqual(['late-join', 'heal', 'join'])
    for (const entry of run.convergence) expect(entry.convergedAfterMs, entry.event).not.toBeNull()
  }, 100_000)

  it('stops every daemon it started on Ctrl-C', async () => {
    const child = spawn(
      process.execPath,
      [
        '--no-warnings',
        CLI,
        'lab',
        'run',
        '--shapes',
        'mesh',
        '--n',
        '2',
        '--duration',
        '60s',
        '--out',
        join(dir, 'interrupted'),
      ],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    )
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)))
    let stderr = ''
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
      stderr += chunk
    })
    try {
      await eventually(() => stderr.includes('warm-up done'), {
        timeout: 60_000,
        message: () => `warm-up; stderr:\n${stderr}`,
      })
      // The daemons are the lab's children (each in its own process group); others come and go (ss).
      const daemons = readFileSync(`/proc/${child.pid}/task/${child.pid}/children`, 'utf8')
        .trim()
        .split(/\s+/)
        .map(Number)
        .filter((pid) => {
          try {
            // A child between fork and exec still shows the lab's own command line: only `up` counts.
            return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').includes('up')
          } catch {
            return false
          }
        })
      expect(daemons).toHaveLength(2)
      child.kill('SIGINT')
      expect(await exited).toBe(130)
      const gone = (pid: number) => {
        try {
          return readFileSync(`/proc/${pid}/stat`, 'utf8').includes(') Z ')
        } catch {
          return true
        }
      }
      await eventually(() => daemons.every(gone), { timeout: 15_000, message: 'every daemon gone' })
    } finally {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGINT')
    }
  }, 90_000)

  it('refuses an invalid scenario before anything starts, naming the field', async () => {
    const { code, stderr } = await runCli(['lab', 'run', '--n', '1', '--out', join(dir, 'never')], 30_000)
    expect(code).toBe(2)
    expect(stderr).toContain('invalid scenario: n: a run needs at least 2 peers, got 1')
    const meshOnly = await runCli(['lab', 'run', '--shapes', 'mesh', '--event', 'kill-hub@1s'], 30_000)
    expect(meshOnly.code).toBe(2)
    expect(meshOnly.stderr).toContain('kill-hub in a mesh-only scenario')
  }, 60_000)
})

import { spawn } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { Replica } from '../src/replica/replica.ts'
import { openSqliteStore } from '../src/store/sqlite.ts'
import { seededRandom, testSeed } from './helpers/seed.ts'

const WRITER = new URL('./fixtures/crash-writer.ts', import.meta.url).pathname
const ROUNDS = 20

interface RoundResult {
  acked: string[]
  counterAcks: number
}

/** Runs the writer until it has acknowledged `target` writes, then SIGKILLs it mid-stream. */
function runAndKill(path: string, prefix: string, target: number): Promise<RoundResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [WRITER, path, prefix], { stdio: ['ignore', 'pipe', 'pipe'] })
    const acked: string[] = []
    let counterAcks = 0
    let buffered = ''
    let stderr = ''
    let killed = false
    const deadline = setTimeout(() => {
      child.kill('SIGKILL')
      reject(new Error(`writer did not reach ${target} acks within 30 s; stderr: ${stderr}`))
    }, 30_000)
    child.stderr.on('data', (chunk) => {
      stderr += chunk
    })
    child.stdout.on('data', (chunk: Buffer) => {
      buffered += chunk.toString()
      const lines = buffered.split('\n')
      buffered = lines.pop() ?? ''
      for (const line of lines) {
        if (line.startsWith('ack ')) acked.push(line.slice(4))
        else if (line.startsWith('counter ')) counterAcks++
      }
      if (!killed && acked.length + counterAcks >= target) {
        killed = true
        child.kill('SIGKILL')
      }
    })
    child.on('exit', (_code, signal) => {
      clearTimeout(deadline)
      if (signal !== 'SIGKILL') reject(new Error(`writer exited on its own (${signal}); stderr: ${stderr}`))
      // Lines already written to the pipe before the kill are acknowledged writes too.
      else {
        for (const line of buffered.split('\n')) {
          if (line.startsWith('ack ')) acked.push(line.slice(4))
          else if (line.startsWith('counter ')) counterAcks++
        }
        resolve({ acked, counterAcks })
      }
    })
  })
}

describe('crash safety of the SQLite replica', () => {
  const dir = mkdtempSync(join(tmpdir(), 'hearsay-crash-'))
  afterAll(() => rmSync(dir, { recursive: true, force: true }))

  it(`keeps every acknowledged write across ${ROUNDS} SIGKILLs at random moments`, async () => {
    const seed = testSeed('crash', 'HEARSAY_CRASH_SEED')
    const random = seededRandom(seed)
    const path = join(dir, 'crash.db')
    const allAcked: string[] = []
    let counterAcks = 0
    const replicaIds = new Set<string>()
    for (let round = 0; round < ROUNDS; round++) {
      const target = 1 + Math.floor(random() * 400)
      const result = await runAndKill(path, `r${round}`, target)
      allAcked.push(...result.acked)
      counterAcks += result.counterAcks

      const store = openSqliteStore({ path })
      try {
        const replica = Replica.open({ namespace: 'crash', store })
        replicaIds.add(replica.replicaId)
        const missing = allAcked.filter((key) => replica.get(key) === undefined)
        expect(missing, `seed ${seed}, round ${round}: acknowledged writes lost`).toEqual([])
        // Every acknowledged increment survived (unacknowledged ones may have too).
        expect(replica.counter('acks'), `seed ${seed}, round ${round}`).toBeGreaterThanOrEqual(counterAcks)
        // The dot counter never goes back: the next write gets a fresh dot.
        const before = replica.versionVector().get(replica.replicaId) ?? 0
        const ack = await replica.put('probe', new Uint8Array([round]), 'application/octet-stream')
        expect(ack.counter).toBe(before + 1)
      } finally {
        store.close()
      }
    }
    expect(allAcked.length).toBeGreaterThan(ROUNDS)
    // Restarts keep the replica's identity.
    expect(replicaIds.size).toBe(1)
  }, 180_000)
})

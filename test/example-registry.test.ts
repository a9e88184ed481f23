/**
 * `npm run example:registry` runs to completion, bounded, as a user would run it: instances on three
 * peers register with a TTL, a client balances across them, a killed instance leaves the rotation, a
 * cut-off peer's instance leaves and comes back after the heal. NEEDS THE MESH.
 */
import { spawn } from 'node:child_process'
import { afterAll, describe, expect, it } from 'vitest'
import { cleanEnv } from './helpers/daemon.ts'

const running = new Set<ReturnType<typeof spawn>>()
afterAll(() => {
  for (const child of running) child.kill('SIGKILL')
})

function runRegistry(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const main = new URL('../examples/service-registry/main.ts', import.meta.url).pathname
  const child = spawn(process.execPath, [main, ...args], {
    env: cleanEnv(),
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  running.add(child)
  let stdout = ''
  let stderr = ''
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
    stdout += chunk
  })
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
    stderr += chunk
  })
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL')
      reject(
        new Error(`the registry example did not finish within 80 s\nstdout:\n${stdout}\nstderr:\n${stderr}`),
      )
    }, 80_000)
    child.once('close', (code) => {
      clearTimeout(timer)
      running.delete(child)
      resolve({ code, stdout, stderr })
    })
  })
}

describe('service registry example (needs the mesh)', () => {
  it('balances across live instances as they come, die, and are cut off', { timeout: 90_000 }, async () => {
    const result = await runRegistry([])
    expect([result.code, result.stderr]).toEqual([0, ''])
    expect(result.stdout).toMatch(/registry: (TTL keys|client-side expiry)/)
    expect(result.stdout).toContain('rotation: api-1 → api-2 → api-3 → api-4 → api-1 → api-2 → api-3 → api-4')
    expect(result.stdout).toContain('✓ api-2 left the rotation when its TTL ran out')
    expect(result.stdout).toContain('✓ partition: edge keeps serving api-1, api-3')
    expect(result.stdout).toContain('✓ healed: api-4 is back in rotation')
    // After api-2 died, no request went to it.
    const afterKill = result.stdout.slice(result.stdout.indexOf('api-2 (on west) is killed'))
    expect(afterKill).not.toMatch(/rotation:.*api-2/)
  })
})

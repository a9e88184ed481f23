/**
 * `npm run example:registry` runs to completion, bounded, as a user would run it: instances on three
 * peers register with a TTL, a client balances across them, a killed instance leaves the rotation, a
 * cut-off peer's instance leaves and comes back after the heal. NEEDS THE MESH.
 */
import { afterAll, describe, expect, it } from 'vitest'
import { killExamples, runExample } from './helpers/run-example.ts'

afterAll(killExamples)

describe('service registry example (needs the mesh)', () => {
  it('balances across live instances as they come, die, and are cut off', { timeout: 90_000 }, async () => {
    const result = await runExample('service-registry/main.ts', [], 80_000)
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

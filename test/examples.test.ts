/**
 * `npm run demo` and every example run to completion, bounded, as a user would run them.
 * NEEDS THE MESH: each one starts three peers and waits for them to converge; with a stub
 * attachMesh that returns no mesh they exit 1 saying the peers run without a mesh.
 */
import { afterAll, describe, expect, it } from 'vitest'
import { killExamples, runExample } from './helpers/run-example.ts'

afterAll(killExamples)

// One at a time: each example starts three daemons, and fifteen starting at once on a busy two-core
// machine miss their start deadline.
describe('demo and examples (needs the mesh)', () => {
  it('npm run demo: a write, a delete, siblings and their resolution converge on three peers', async () => {
    const result = await runExample('demo.ts')
    expect(result.stderr).toBe('')
    expect(result.code).toBe(0)
    expect(result.stdout).toContain('alpha sees 2 siblings')
    expect(result.stdout).toContain('✓ all three peers converged')
  })

  it('shared counter: concurrent increments on three peers add up everywhere', async () => {
    const result = await runExample('shared-counter.ts')
    expect([result.code, result.stderr]).toEqual([0, ''])
    expect(result.stdout.match(/✓ \w+ +counts 70/g)).toHaveLength(3)
  })

  it('sensor telemetry: every peer reads the latest reading of every device', async () => {
    const result = await runExample('sensor-telemetry.ts')
    expect([result.code, result.stderr]).toEqual([0, ''])
    expect(result.stdout.match(/✓ dashboard on/g)).toHaveLength(3)
  })

  it('presence and chat: every user sees every message and every arrival and departure', async () => {
    const result = await runExample('presence-chat.ts')
    expect([result.code, result.stderr]).toEqual([0, ''])
    expect(result.stdout).toContain('✓ chat: every user received all three messages')
    expect(result.stdout).toContain('✓ presence: carol left; online now: alice, bob')
  })

  it('local mesh script: three connected peers (--check)', async () => {
    const result = await runExample('local-mesh.ts', ['--check'])
    expect([result.code, result.stderr]).toEqual([0, ''])
    expect(result.stdout).toContain('✓ every peer is connected to the mesh')
  })
})

/**
 * A short, seeded run of the fuzz harness (test/fuzz/): 20,000 generated and mutated inputs over
 * every decoder and pure entry point, with zero untyped errors and zero hangs. `npm run fuzz` runs
 * the same harness for a million inputs.
 */
import { describe, expect, it } from 'vitest'
import { formatReport, runFuzz } from './fuzz/harness.ts'
import { TARGETS } from './fuzz/targets.ts'

const SEED = Number(process.env.HEARSAY_FUZZ_SEED ?? 20_261_130)
const INPUTS = 20_000

describe('fuzz', () => {
  it(`every decoder refuses bad input with its typed error only (seed ${SEED}, ${INPUTS} inputs)`, async () => {
    const report = await runFuzz({ seed: SEED, inputs: INPUTS, seconds: 150 })
    console.log(formatReport(report))
    expect(report.failures, formatReport(report)).toEqual([])
    expect(report.inputs).toBe(INPUTS)
    for (const target of TARGETS) {
      const stats = report.targets[target.name]
      // Every target saw its share, and some inputs got past its decoder (the seeds are valid).
      expect(stats.inputs, target.name).toBeGreaterThanOrEqual(Math.floor(INPUTS / TARGETS.length))
      expect(stats.accepted, target.name).toBeGreaterThan(0)
      expect(stats.refused, target.name).toBeGreaterThan(0)
    }
  }, 180_000)
})

import { rmSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import { whyNoNamespaces } from './chaos/netns.ts'
import { runChaos } from './chaos/runner.ts'

/**
 * The short chaos run of CI (`npm run chaos` runs the same runner, longer, with any seed): 5 real
 * daemons in network namespaces, 45 s of seeded partitions, packet loss, rate limits, SIGKILLs and
 * SIGTERMs under a workload, then a heal. The hard invariants must hold: no lost acknowledged write,
 * no resurrected delete, counters and sets within what was acknowledged, equal reads, digests and
 * version vectors within 75 s of the heal, no crash. Timing figures (heal to equal digests, late
 * `?ack` answers) and error-level log lines are printed, not asserted.
 */

const SEED = 3
const unavailable = whyNoNamespaces()

describe('chaos', () => {
  it(`keeps every hard invariant through a seeded run of faults (seed ${SEED})`, {
    timeout: 240_000,
  }, async () => {
    if (unavailable !== undefined) {
      throw new Error(`the chaos run needs network namespaces, and ${unavailable}`)
    }
    const result = await runChaos({
      peers: 5,
      durationS: 45,
      seed: SEED,
      convergeTimeoutS: 75,
      log: () => {},
    })
    process.stdout.write(`${result.summary}\n`)
    const hard = result.violations.filter((violation) => violation.hard)
    // Kept only when there is something to look into (soft violations keep it for `npm run chaos`).
    if (hard.length === 0) rmSync(result.runDir, { recursive: true, force: true })
    expect(hard, `replay with npm run chaos -- --duration 45 --seed ${SEED}`).toEqual([])
    // The run did what it says: faults of every kind, and writes acknowledged through them.
    expect(Object.keys(result.figures.faults).sort()).toEqual(['kill', 'loss', 'partition', 'rate'])
    expect(result.figures.ops.put?.ok).toBeGreaterThan(50)
    expect(result.figures.healToEqualReadsMs).toBeDefined()
  })
})

/**
 * The history check, short and seeded: three real daemons, two client sessions on each, a partition
 * or a restart, then the heal; the recorded history must keep every guarantee of docs/consistency.md.
 * The long run is `npm run check:history -- --duration S --seed N`.
 */
import { afterAll, describe, expect, it } from 'vitest'
import { removeHomes, stopAllDaemons } from './helpers/daemon.ts'
import { checkHistory } from './history/checker.ts'
import { runHistory } from './history/harness.ts'

afterAll(async () => {
  await stopAllDaemons()
  removeHomes()
})

describe('history check against real daemons', () => {
  it('a seeded run with faults keeps every stated guarantee', { timeout: 90_000 }, async () => {
    const { history, figures } = await runHistory({ seed: 20261130, durationMs: 15_000 })
    const violations = checkHistory(history)
    expect(violations).toEqual([])
    // The run did exercise what it checks.
    expect(figures.partitions + figures.restarts).toBeGreaterThan(0)
    for (const kind of ['read', 'put', 'delete', 'incr', 'set-add', 'set-remove']) {
      expect(figures.byKind[kind] ?? 0).toBeGreaterThan(0)
    }
    expect(
      history.ops.some((op) => op.kind === 'put' && op.ifMatch !== undefined && op.outcome === 'ok'),
    ).toBe(true)
    expect(history.finals).toHaveLength(3)
  })
})

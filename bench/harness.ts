/** Small helpers shared by the benchmarks: timing, seeded randomness, tables. */

export function now(): number {
  return performance.now()
}

/** mulberry32: a tiny seeded PRNG, so every run does the same work. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

/** Runs `fn` `runs` times after one warm-up and returns the median duration in ms. */
export async function medianMs(runs: number, fn: () => unknown | Promise<unknown>): Promise<number> {
  await fn()
  const times: number[] = []
  for (let i = 0; i < runs; i++) {
    const start = now()
    await fn()
    times.push(now() - start)
  }
  times.sort((a, b) => a - b)
  return times[Math.floor(times.length / 2)]
}

export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return Number.NaN
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]
}

export function formatNumber(n: number, digits = 0): string {
  return n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits })
}

export interface Row {
  name: string
  hearsay: string
  baseline: string
  ratio: string
  goal: string
  met: boolean | undefined
}

export function printTable(title: string, baselineName: string, rows: Row[]): void {
  console.log(`\n### ${title}\n`)
  console.log(`| measure | hearsay | ${baselineName} | ratio | goal | met |`)
  console.log('|---|---:|---:|---:|---|---|')
  for (const row of rows) {
    const met = row.met === undefined ? '' : row.met ? 'yes' : 'NO'
    console.log(`| ${row.name} | ${row.hearsay} | ${row.baseline} | ${row.ratio} | ${row.goal} | ${met} |`)
  }
}

export function peakRssMiB(): number {
  return process.resourceUsage().maxRSS / 1024
}

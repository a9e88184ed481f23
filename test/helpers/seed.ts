/**
 * The seed of a randomised test: `process.env[variable]` when set, otherwise a fresh one. The seed
 * is printed, with the variable that repeats the run, so every failure can be replayed.
 */
export function testSeed(label: string, variable: string): number {
  const given = process.env[variable]
  const seed = given === undefined ? Date.now() % 1_000_000 : Number(given)
  if (!Number.isSafeInteger(seed)) throw new Error(`${variable} must be an integer, got ${given}`)
  console.info(`[${label}] seed ${seed} (${variable}=${seed} repeats this run)`)
  return seed
}

/** A small seeded PRNG (mulberry32) returning numbers in [0, 1). */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0
  return () => {
    state = (state + 0x6d2b79f5) >>> 0
    let t = Math.imul(state ^ (state >>> 15), state | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

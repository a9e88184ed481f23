/**
 * mulberry32: a small, fast seeded generator of floats in [0, 1). Enough for loss draws, jitter and
 * workloads, and repeatable per seed. Its own module so light processes (the lab's link proxy) can use
 * it without loading a transport.
 */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0
  return () => {
    state = (state + 0x6d2b79f5) >>> 0
    let t = state
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

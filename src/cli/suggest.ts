/** "Did you mean" for mistyped command and option names. */

/**
 * Edit distance counting insertions, deletions, substitutions and swaps of two neighbouring letters
 * (the commonest typo: `tpye`), as in the optimal string alignment distance.
 */
export function levenshtein(a: string, b: string): number {
  let before: number[] = []
  let previous = Array.from({ length: b.length + 1 }, (_, i) => i)
  for (let i = 1; i <= a.length; i++) {
    const current = [i]
    for (let j = 1; j <= b.length; j++) {
      const substitution = previous[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1)
      current[j] = Math.min(previous[j] + 1, current[j - 1] + 1, substitution)
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1])
        current[j] = Math.min(current[j], before[j - 2] + 1)
    }
    before = previous
    previous = current
  }
  return previous[b.length]
}

/**
 * The known name closest to `typed`, if it is close enough to be a typo: at most a third of the
 * longer name's letters differ (so `stauts` finds `status`, and `x` finds nothing). A prefix of
 * exactly one name (`wat` for `watch`) counts too.
 */
export function closest(typed: string, known: readonly string[]): string | undefined {
  let best: string | undefined
  let bestDistance = Number.POSITIVE_INFINITY
  for (const name of known) {
    const distance = levenshtein(typed.toLowerCase(), name)
    if (distance < bestDistance) {
      best = name
      bestDistance = distance
    }
  }
  if (best !== undefined && bestDistance <= Math.max(1, Math.floor(Math.max(typed.length, best.length) / 3)))
    return best
  const prefixed = typed.length >= 2 ? known.filter((name) => name.startsWith(typed)) : []
  return prefixed.length === 1 ? prefixed[0] : undefined
}

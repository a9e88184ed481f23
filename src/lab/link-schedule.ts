import { LINK_PRESETS, type LinkConditions } from './types.ts'

export { seededRandom } from '../seeded-random.ts'

/**
 * When each chunk of one direction of a TCP stream leaves the lab's link emulator. A chunk arriving
 * at `now` leaves at `now + delay ± jitter`, but never before the chunk ahead of it: a byte stream
 * must not be reordered, so jitter only ever stretches the gaps (as a real queue would).
 */
export class DelaySchedule {
  private lastRelease = Number.NEGATIVE_INFINITY
  private readonly delayMs: number
  private readonly jitterMs: number
  private readonly random: () => number

  /** `random` returns a number in [0, 1), injected so tests and seeded runs are repeatable. */
  constructor(delayMs: number, jitterMs: number, random: () => number) {
    this.delayMs = delayMs
    this.jitterMs = jitterMs
    this.random = random
  }

  /** The time (same clock as `now`) the chunk arriving at `now` may be written out. */
  releaseAt(now: number): number {
    const jitter = this.jitterMs === 0 ? 0 : (this.random() * 2 - 1) * this.jitterMs
    const wanted = now + Math.max(0, this.delayMs + jitter)
    this.lastRelease = Math.max(this.lastRelease, wanted)
    return this.lastRelease
  }
}

/** A link as a scenario may write it: a preset name, or values (over a preset's, if one is named). */
export type LinkSpec = string | (Partial<LinkConditions> & { preset?: string })

/** Thrown for a link that cannot be made; `field` names the offending field. */
export class LinkSpecError extends Error {
  override readonly name = 'LinkSpecError'
  readonly field: string
  constructor(field: string, message: string) {
    super(`link.${field}: ${message}`)
    this.field = field
  }
}

/** Resolves a preset name or custom values to full, checked link conditions. */
export function resolveLink(spec: LinkSpec): LinkConditions & { preset?: string } {
  const input = typeof spec === 'string' ? { preset: spec } : spec
  let base: LinkConditions = { delayMs: 0, jitterMs: 0, lossPercent: 0 }
  if (input.preset !== undefined) {
    const preset = Object.hasOwn(LINK_PRESETS, input.preset) ? LINK_PRESETS[input.preset] : undefined
    if (preset === undefined) {
      throw new LinkSpecError(
        'preset',
        `unknown preset "${input.preset}" (known: ${Object.keys(LINK_PRESETS).join(', ')})`,
      )
    }
    base = preset
  }
  const resolved: LinkConditions & { preset?: string } = {
    delayMs: input.delayMs ?? base.delayMs,
    jitterMs: input.jitterMs ?? base.jitterMs,
    lossPercent: input.lossPercent ?? base.lossPercent,
    ...((input.rateKbit ?? base.rateKbit) !== undefined ? { rateKbit: input.rateKbit ?? base.rateKbit } : {}),
    ...(input.preset !== undefined ? { preset: input.preset } : {}),
  }
  checkLink(resolved)
  return resolved
}

/** Throws a LinkSpecError naming the first field out of range. */
export function checkLink(link: LinkConditions): void {
  const finite = (field: keyof LinkConditions, value: number | undefined, max: number) => {
    if (value === undefined) return
    if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) {
      throw new LinkSpecError(field, `must be a number ≥ 0 (got ${String(value)})`)
    }
    if (value > max) throw new LinkSpecError(field, `must be at most ${max} (got ${value})`)
  }
  finite('delayMs', link.delayMs, 60_000)
  finite('jitterMs', link.jitterMs, 60_000)
  finite('lossPercent', link.lossPercent, 100)
  finite('rateKbit', link.rateKbit, 10_000_000)
  if (link.rateKbit === 0) throw new LinkSpecError('rateKbit', 'must be > 0 (omit it for no limit)')
}

/** Whether the link adds nothing (no delay, jitter, loss or rate limit). */
export function isPlainLink(link: LinkConditions | undefined): boolean {
  return (
    link === undefined ||
    (link.delayMs === 0 && link.jitterMs === 0 && link.lossPercent === 0 && link.rateKbit === undefined)
  )
}

/** The `tc qdisc … netem` arguments for a link (one direction, on a peer's egress). */
export function netemArgs(link: LinkConditions): string[] {
  const args = ['netem', 'delay', `${link.delayMs}ms`]
  if (link.jitterMs > 0) args.push(`${link.jitterMs}ms`)
  if (link.lossPercent > 0) args.push('loss', `${link.lossPercent}%`)
  if (link.rateKbit !== undefined) args.push('rate', `${link.rateKbit}kbit`)
  return args
}

/** The shadow address of a peer address (its dialer's stand-in on this namespace's loopback), if it is one. */
export function shadowAddress(
  clientAddress: string,
  subnet: string,
  shadowSubnet: string,
): string | undefined {
  const address = clientAddress.startsWith('::ffff:') ? clientAddress.slice(7) : clientAddress
  return address.startsWith(`${subnet}.`) ? `${shadowSubnet}${address.slice(subnet.length)}` : undefined
}

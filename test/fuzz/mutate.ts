import type { Rng } from './rng.ts'

/**
 * Byte-level mutations of valid inputs: bit flips, interesting byte values, truncation, extension,
 * deletion and duplication of ranges, splicing with another valid input, and LEB128 varints at
 * their extremes (the largest safe integer and beyond, overlong and unterminated encodings)
 * written over or into the bytes.
 */

const INTERESTING_BYTES = [0x00, 0x01, 0x02, 0x7f, 0x80, 0x81, 0xfe, 0xff]

function leb128(value: bigint): number[] {
  const out: number[] = []
  let v = value
  do {
    let byte = Number(v & 0x7fn)
    v >>= 7n
    if (v > 0n) byte |= 0x80
    out.push(byte)
  } while (v > 0n)
  return out
}

/** Varints a decoder must bound: limits, 2^31, 2^32, 2^53 and beyond, overlong, unterminated. */
export const EXTREME_VARINTS: readonly number[][] = [
  ...[0n, 1n, 0x7fn, 0x80n, 0x3fffn, 0x4000n, 1024n, 65_536n, 4n * 1024n * 1024n + 1n]
    .concat([2n ** 31n - 1n, 2n ** 31n, 2n ** 32n - 1n, 2n ** 32n, 2n ** 53n - 1n, 2n ** 53n, 2n ** 64n - 1n])
    .map(leb128),
  [0x80, 0x00],
  [0x80, 0x80, 0x80, 0x80, 0x00],
  [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01],
  Array.from({ length: 16 }, () => 0xff),
]

type Mutation = (rng: Rng, input: Uint8Array, others: readonly Uint8Array[]) => Uint8Array

const at = (rng: Rng, input: Uint8Array) => rng.int(input.length + 1)

/** A copy, never a view: a Buffer's `slice` shares memory and would corrupt the seed. */
const copy = (input: Uint8Array) => new Uint8Array(input)

function concat(...parts: ArrayLike<number>[]): Uint8Array {
  let length = 0
  for (const part of parts) length += part.length
  const out = new Uint8Array(length)
  let offset = 0
  for (const part of parts) {
    out.set(part, offset)
    offset += part.length
  }
  return out
}

const MUTATIONS: Mutation[] = [
  // Flip one bit.
  (rng, input) => {
    if (input.length === 0) return input
    const out = copy(input)
    out[rng.int(out.length)] ^= 1 << rng.int(8)
    return out
  },
  // An interesting byte value somewhere.
  (rng, input) => {
    if (input.length === 0) return Uint8Array.of(rng.pick(INTERESTING_BYTES))
    const out = copy(input)
    out[rng.int(out.length)] = rng.pick(INTERESTING_BYTES)
    return out
  },
  // A random byte somewhere.
  (rng, input) => {
    if (input.length === 0) return input
    const out = copy(input)
    out[rng.int(out.length)] = rng.next() & 0xff
    return out
  },
  // Truncate.
  (rng, input) => input.subarray(0, rng.int(input.length)),
  // Extend with random bytes.
  (rng, input) => concat(input, rng.bytes(1 + rng.int(16))),
  // Delete a range.
  (rng, input) => {
    const from = at(rng, input)
    const to = Math.min(input.length, from + 1 + rng.int(8))
    return concat(input.subarray(0, from), input.subarray(to))
  },
  // Duplicate a range in place.
  (rng, input) => {
    const from = at(rng, input)
    const to = Math.min(input.length, from + 1 + rng.int(32))
    return concat(input.subarray(0, to), input.subarray(from, to), input.subarray(to))
  },
  // Splice: a prefix of this input, the rest of another valid one.
  (rng, input, others) => {
    if (others.length === 0) return input
    const other = rng.pick(others)
    return concat(input.subarray(0, at(rng, input)), other.subarray(at(rng, other)))
  },
  // Insert an extreme varint.
  (rng, input) => {
    const cut = at(rng, input)
    return concat(input.subarray(0, cut), rng.pick(EXTREME_VARINTS), input.subarray(cut))
  },
  // Overwrite with an extreme varint (keeps the length where it can).
  (rng, input) => {
    const varint = rng.pick(EXTREME_VARINTS)
    const cut = at(rng, input)
    return concat(input.subarray(0, cut), varint, input.subarray(Math.min(input.length, cut + varint.length)))
  },
]

/** One to four stacked mutations of `input`; `others` are valid inputs of the same format to splice in. */
export function mutate(rng: Rng, input: Uint8Array, others: readonly Uint8Array[]): Uint8Array {
  let out = input
  // Half the time a single mutation, which keeps most of the structure valid and reaches deeper.
  const count = rng.chance(0.5) ? 1 : 2 + rng.int(3)
  for (let i = 0; i < count; i++) out = rng.pick(MUTATIONS)(rng, out, others)
  return out
}

import { DecodeError } from './errors.ts'

/**
 * Byte-level writer and reader: unsigned LEB128 varints (up to 2^53), zigzag for signed deltas,
 * length-prefixed bytes and UTF-8 strings. The reader checks every bound and throws only DecodeError.
 */

const textEncoder = new TextEncoder()
const textDecoder = new TextDecoder('utf-8', { fatal: true })

export class Writer {
  private buffer: Uint8Array
  private offset = 0

  constructor(initialSize = 64) {
    this.buffer = new Uint8Array(initialSize)
  }

  private ensure(extra: number): void {
    const needed = this.offset + extra
    if (needed <= this.buffer.length) return
    let size = this.buffer.length * 2
    while (size < needed) size *= 2
    const next = new Uint8Array(size)
    next.set(this.buffer.subarray(0, this.offset))
    this.buffer = next
  }

  byte(value: number): void {
    this.ensure(1)
    this.buffer[this.offset++] = value
  }

  uint(value: number): void {
    this.ensure(8)
    while (value >= 0x80) {
      this.buffer[this.offset++] = (value % 0x80) | 0x80
      value = Math.floor(value / 0x80)
    }
    this.buffer[this.offset++] = value
  }

  /** Signed integer, zigzag-encoded so small magnitudes stay small. */
  int(value: number): void {
    this.uint(value >= 0 ? value * 2 : -value * 2 - 1)
  }

  bytes(value: Uint8Array): void {
    this.uint(value.length)
    this.raw(value)
  }

  raw(value: Uint8Array): void {
    this.ensure(value.length)
    this.buffer.set(value, this.offset)
    this.offset += value.length
  }

  string(value: string): void {
    // Worst case 3 bytes per UTF-16 unit; encodeInto avoids an intermediate copy.
    const max = value.length * 3
    this.ensure(max + 5)
    if (max < 0x80) {
      const start = this.offset + 1
      const { written } = textEncoder.encodeInto(value, this.buffer.subarray(start))
      this.buffer[this.offset] = written
      this.offset = start + written
    } else {
      this.bytes(textEncoder.encode(value))
    }
  }

  float64(value: number): void {
    this.ensure(8)
    new DataView(this.buffer.buffer, this.buffer.byteOffset).setFloat64(this.offset, value)
    this.offset += 8
  }

  get length(): number {
    return this.offset
  }

  finish(): Uint8Array {
    return this.buffer.slice(0, this.offset)
  }

  /** What was written so far, without copying: valid until the next write. */
  view(): Uint8Array {
    return this.buffer.subarray(0, this.offset)
  }
}

/** Sorted disjoint ranges as (gap from the previous range, length) pairs: small numbers either way. */
export function writeRanges(writer: Writer, flat: readonly number[]): void {
  writer.uint(flat.length / 2)
  let previous = 0
  for (let i = 0; i < flat.length; i += 2) {
    writer.uint(flat[i] - previous - 1)
    writer.uint(flat[i + 1] - flat[i])
    previous = flat[i + 1]
  }
}

/** Reads what writeRanges wrote, refusing more than `maxRanges` ranges or bounds beyond 2^53. */
export function readRanges(reader: Reader, field: string, maxRanges: number): number[] {
  const count = reader.count(`${field} ranges`, maxRanges, 2)
  const flat = new Array<number>(count * 2)
  let previous = 0
  for (let i = 0; i < count; i++) {
    const lo = previous + reader.uint(`${field} gap`) + 1
    const hi = lo + reader.uint(`${field} length`)
    if (!Number.isSafeInteger(hi)) throw new DecodeError('invalid-field', `${field} range beyond 2^53`)
    flat[i * 2] = lo
    flat[i * 2 + 1] = hi
    previous = hi
  }
  return flat
}

export class Reader {
  private offset = 0
  private readonly bytesIn: Uint8Array

  constructor(bytes: Uint8Array) {
    this.bytesIn = bytes
  }

  get remaining(): number {
    return this.bytesIn.length - this.offset
  }

  get position(): number {
    return this.offset
  }

  byte(field: string): number {
    if (this.offset >= this.bytesIn.length)
      throw new DecodeError('truncated', `${field} at byte ${this.offset}`)
    return this.bytesIn[this.offset++]
  }

  uint(field: string): number {
    let result = 0
    let scale = 1
    for (let i = 0; i < 8; i++) {
      const b = this.byte(field)
      result += (b & 0x7f) * scale
      if (b < 0x80) {
        if (!Number.isSafeInteger(result)) throw new DecodeError('invalid-varint', `${field} exceeds 2^53`)
        return result
      }
      scale *= 0x80
    }
    throw new DecodeError('invalid-varint', `${field} is longer than 8 bytes`)
  }

  int(field: string): number {
    const z = this.uint(field)
    return z % 2 === 0 ? z / 2 : -(z + 1) / 2
  }

  /** A count of items that each take at least `minBytes`: refuses counts the frame cannot hold. */
  count(field: string, max: number, minBytes = 1): number {
    const n = this.uint(field)
    if (n > max) throw new DecodeError('too-many-items', `${field}: ${n} > limit ${max}`)
    if (n * minBytes > this.remaining) throw new DecodeError('truncated', `${field}: ${n} items do not fit`)
    return n
  }

  bytes(
    field: string,
    max: number,
    reason: 'value-too-large' | 'key-too-long' | 'string-too-long',
  ): Uint8Array {
    const n = this.uint(field)
    if (n > max) throw new DecodeError(reason, `${field}: ${n} bytes > limit ${max}`)
    if (n > this.remaining) throw new DecodeError('truncated', `${field}: ${n} bytes, ${this.remaining} left`)
    const out = this.bytesIn.subarray(this.offset, this.offset + n)
    this.offset += n
    return out
  }

  /** Exactly `n` raw bytes (a signature, a hash): a view, copy it to keep it. */
  fixed(field: string, n: number): Uint8Array {
    if (n > this.remaining) throw new DecodeError('truncated', `${field}: ${n} bytes, ${this.remaining} left`)
    const out = this.bytesIn.subarray(this.offset, this.offset + n)
    this.offset += n
    return out
  }

  string(field: string, max: number, reason: 'key-too-long' | 'string-too-long' = 'string-too-long'): string {
    const raw = this.bytes(field, max, reason)
    try {
      return textDecoder.decode(raw)
    } catch {
      throw new DecodeError('invalid-utf8', field)
    }
  }

  float64(field: string): number {
    if (this.remaining < 8) throw new DecodeError('truncated', field)
    const value = new DataView(this.bytesIn.buffer, this.bytesIn.byteOffset + this.offset, 8).getFloat64(0)
    this.offset += 8
    return value
  }

  end(): void {
    if (this.remaining !== 0)
      throw new DecodeError('trailing-bytes', `${this.remaining} bytes after the frame`)
  }
}

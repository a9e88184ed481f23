/** Bounds every decoder enforces; a frame that exceeds one is refused before anything is allocated for it. */
export interface CodecLimits {
  /** Whole frame, bytes. 4 MiB: a few thousand full-size entries; anti-entropy chunks stay far below. */
  maxFrameBytes: number
  /** A key, UTF-8 bytes (internal prefix included). 1 KiB, like most key-value stores' practical limit. */
  maxKeyBytes: number
  /** A value, bytes. 1 MiB: larger blobs belong in a blob store with the key holding a reference. */
  maxValueBytes: number
  /** Entries in one frame. */
  maxEntries: number
  /** Distinct replica ids or content types in one frame. */
  maxStrings: number
  /** A replica id or content type, UTF-8 bytes. */
  maxStringBytes: number
  /** Causal-context ranges in one frame. */
  maxRanges: number
}

export const DEFAULT_LIMITS: Readonly<CodecLimits> = Object.freeze({
  maxFrameBytes: 4 * 1024 * 1024,
  maxKeyBytes: 1024,
  maxValueBytes: 1024 * 1024,
  maxEntries: 100_000,
  maxStrings: 65_536,
  maxStringBytes: 256,
  maxRanges: 1_000_000,
})

export function withLimits(overrides: Partial<CodecLimits> = {}): CodecLimits {
  return { ...DEFAULT_LIMITS, ...overrides }
}

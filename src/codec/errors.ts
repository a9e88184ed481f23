/** Why a frame was refused: stable codes that callers and metrics match on. */
export type DecodeReason =
  | 'truncated'
  | 'trailing-bytes'
  | 'unknown-version'
  | 'unknown-frame-type'
  | 'frame-too-large'
  | 'too-many-items'
  | 'key-too-long'
  | 'value-too-large'
  | 'string-too-long'
  | 'invalid-utf8'
  | 'invalid-varint'
  | 'invalid-field'

/** The only error that decoding untrusted bytes may throw. */
export class DecodeError extends Error {
  override readonly name = 'DecodeError'
  readonly reason: DecodeReason

  constructor(reason: DecodeReason, detail: string) {
    super(`cannot decode frame (${reason}): ${detail}`)
    this.reason = reason
  }
}

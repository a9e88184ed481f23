import { HearsayError } from '../errors.ts'

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

/** The only error that decoding untrusted bytes may throw; its code is the reason. */
export class DecodeError extends HearsayError<DecodeReason> {
  override readonly name = 'DecodeError'
  /** The code, by the name metrics and callers know it under. */
  readonly reason: DecodeReason

  constructor(reason: DecodeReason, detail: string) {
    super(reason, `cannot decode frame (${reason}): ${detail}`)
    this.reason = reason
  }
}

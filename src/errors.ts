/**
 * The one error convention of hearsay: every layer throws a subclass of HearsayError with a
 * string-literal union of codes. Callers match on `instanceof` and then on `code` (typed, so a
 * misspelt code does not compile), never on the message text, which is for people.
 */
export class HearsayError<Code extends string = string> extends Error {
  override name = 'HearsayError'
  readonly code: Code

  constructor(code: Code, message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.code = code
  }
}

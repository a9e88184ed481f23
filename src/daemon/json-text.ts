/**
 * A JSON validity check that never recurses: one pass over the text with an explicit stack of
 * open containers, bounded by `maxDepth`. The API embeds a stored JSON value as its raw text only
 * when this check passes, so no value (from a client or from a peer) can make a response or a watch
 * event recurse deeper than the bound (JSON.stringify and most clients' parsers recurse).
 *
 * Deterministic and pure: the same text gives the same answer on every peer and every version.
 * Grammar: RFC 8259, the same language `JSON.parse` accepts.
 */

/** Deepest nesting of arrays and objects a JSON value may have (serde_json's default, too). */
export const MAX_JSON_DEPTH = 128

export type JsonTextProblem =
  | { kind: 'too-deep'; limit: number; offset: number }
  | { kind: 'invalid'; reason: string; offset: number }

/** Undefined when `text` is one valid JSON value nested at most `maxDepth` deep; else what is wrong. */
export function jsonTextProblem(text: string, maxDepth = MAX_JSON_DEPTH): JsonTextProblem | undefined {
  // Containers still open: true for an object, false for an array.
  const open: boolean[] = []
  let i = 0
  const n = text.length
  const invalid = (reason: string): JsonTextProblem => ({ kind: 'invalid', reason, offset: i })
  const skipSpace = () => {
    while (i < n) {
      const c = text.charCodeAt(i)
      if (c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09) i++
      else break
    }
  }
  /** Scans a string starting at its opening quote; false if malformed. */
  const scanString = (): boolean => {
    i++
    while (i < n) {
      const c = text.charCodeAt(i)
      if (c === 0x22) {
        i++
        return true
      }
      if (c < 0x20) return false
      if (c === 0x5c) {
        const e = text.charCodeAt(i + 1)
        if (e === 0x75) {
          for (let k = 2; k < 6; k++) if (!isHex(text.charCodeAt(i + k))) return false
          i += 6
        } else if (
          e === 0x22 ||
          e === 0x5c ||
          e === 0x2f ||
          e === 0x62 ||
          e === 0x66 ||
          e === 0x6e ||
          e === 0x72 ||
          e === 0x74
        ) {
          i += 2
        } else return false
      } else i++
    }
    return false
  }
  const scanNumber = (): boolean => {
    if (text.charCodeAt(i) === 0x2d) i++
    const first = text.charCodeAt(i)
    if (first === 0x30) i++
    else if (first >= 0x31 && first <= 0x39) while (isDigit(text.charCodeAt(i))) i++
    else return false
    if (text.charCodeAt(i) === 0x2e) {
      i++
      if (!isDigit(text.charCodeAt(i))) return false
      while (isDigit(text.charCodeAt(i))) i++
    }
    const e = text.charCodeAt(i)
    if (e === 0x65 || e === 0x45) {
      i++
      const sign = text.charCodeAt(i)
      if (sign === 0x2b || sign === 0x2d) i++
      if (!isDigit(text.charCodeAt(i))) return false
      while (isDigit(text.charCodeAt(i))) i++
    }
    return true
  }

  // Expecting a value; after it, either the end, a comma or a closing bracket.
  for (;;) {
    skipSpace()
    if (i >= n) return invalid('unexpected end of text, a value was expected')
    const c = text.charCodeAt(i)
    if (c === 0x5b || c === 0x7b) {
      if (open.length >= maxDepth) return { kind: 'too-deep', limit: maxDepth, offset: i }
      open.push(c === 0x7b)
      i++
      skipSpace()
      const close = text.charCodeAt(i)
      if ((c === 0x5b && close === 0x5d) || (c === 0x7b && close === 0x7d)) {
        open.pop()
        i++
      } else if (c === 0x7b) {
        if (close !== 0x22 || !scanString()) return invalid('an object key must be a string')
        skipSpace()
        if (text.charCodeAt(i) !== 0x3a) return invalid('":" expected after an object key')
        i++
        continue
      } else continue
    } else if (c === 0x22) {
      if (!scanString()) return invalid('malformed string')
    } else if (c === 0x2d || isDigit(c)) {
      if (!scanNumber()) return invalid('malformed number')
    } else if (text.startsWith('true', i)) i += 4
    else if (text.startsWith('false', i)) i += 5
    else if (text.startsWith('null', i)) i += 4
    else return invalid('unexpected character, a value was expected')

    // A value ended: close containers while their closing bracket follows, or go on after a comma.
    for (;;) {
      skipSpace()
      if (open.length === 0) return i >= n ? undefined : invalid('unexpected text after the value')
      const inObject = open[open.length - 1]
      const next = text.charCodeAt(i)
      if (next === (inObject ? 0x7d : 0x5d)) {
        open.pop()
        i++
        continue
      }
      if (next !== 0x2c) return invalid(inObject ? '"," or "}" expected' : '"," or "]" expected')
      i++
      if (inObject) {
        skipSpace()
        if (text.charCodeAt(i) !== 0x22 || !scanString()) return invalid('an object key must be a string')
        skipSpace()
        if (text.charCodeAt(i) !== 0x3a) return invalid('":" expected after an object key')
        i++
      }
      break
    }
  }
}

function isDigit(c: number): boolean {
  return c >= 0x30 && c <= 0x39
}

function isHex(c: number): boolean {
  return (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x46) || (c >= 0x61 && c <= 0x66)
}

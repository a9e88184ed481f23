/** Small text formatting helpers for human output (the --json output never goes through these). */

/** One line showing a value from the API's JSON form (`encoding` + `value`). */
export function preview(
  item: { encoding?: string; value?: unknown; contentType?: string },
  max = 80,
): string {
  let text: string
  if (item.encoding === 'json') text = JSON.stringify(item.value)
  else if (item.encoding === 'utf8') text = JSON.stringify(item.value)
  else if (item.encoding === 'base64') {
    const bytes = Math.floor((String(item.value).length * 3) / 4)
    return `<${bytes} bytes ${item.contentType ?? ''}>`.replace(' >', '>')
  } else text = ''
  return text.length > max ? `${text.slice(0, max - 1)}…` : text
}

export function duration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)} ms`
  const seconds = Math.floor(ms / 1000)
  if (seconds < 60) return `${seconds} s`
  const minutes = Math.floor(seconds / 60)
  if (minutes < 60) return `${minutes} min ${seconds % 60} s`
  const hours = Math.floor(minutes / 60)
  if (hours < 48) return `${hours} h ${minutes % 60} min`
  return `${Math.floor(hours / 24)} d ${hours % 24} h`
}

export function bytes(n: number): string {
  if (n < 1024) return `${n} B`
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`
  if (n < 1024 * 1024 * 1024) return `${(n / 1024 / 1024).toFixed(1)} MiB`
  return `${(n / 1024 / 1024 / 1024).toFixed(2)} GiB`
}

/** Columns padded to their widest cell; the last column is not padded. */
export function table(rows: string[][]): string[] {
  const widths: number[] = []
  for (const row of rows) {
    for (let i = 0; i < row.length; i++) widths[i] = Math.max(widths[i] ?? 0, row[i].length)
  }
  return rows.map((row) =>
    row
      .map((cell, i) => (i === row.length - 1 ? cell : cell.padEnd(widths[i])))
      .join('  ')
      .trimEnd(),
  )
}

/** `12D3KooWAbc…xyz` for narrow columns. */
export function shortId(id: string, keep = 8): string {
  return id.length <= keep * 2 + 1 ? id : `${id.slice(0, keep + 4)}…${id.slice(-keep)}`
}

/** Help fits an 80-column terminal. */
export const HELP_WIDTH = 80

/** Words of `text` in lines of at most `width` characters (a longer word gets a line of its own). */
export function wrap(text: string, width: number): string[] {
  const lines: string[] = []
  let line = ''
  for (const word of text.split(/\s+/).filter((w) => w !== '')) {
    if (line !== '' && line.length + 1 + word.length > width) {
      lines.push(line)
      line = word
    } else line = line === '' ? word : `${line} ${word}`
  }
  if (line !== '') lines.push(line)
  return lines.length === 0 ? [''] : lines
}

/**
 * Two help columns (`  --flag <value>   description`) within HELP_WIDTH: descriptions wrap under their
 * column; a left cell wider than `maxLeft` puts its description on the lines below it.
 */
export function helpRows(rows: Array<[string, string]>, maxLeft = 28): string[] {
  const column = Math.min(maxLeft, Math.max(...rows.map(([left]) => left.length))) + 2
  const out: string[] = []
  for (const [left, right] of rows) {
    const text = wrap(right, HELP_WIDTH - column)
    if (left.length + 2 > column) out.push(left)
    else out.push(`${left.padEnd(column)}${text.shift()}`)
    for (const rest of text) out.push(`${' '.repeat(column)}${rest}`)
  }
  return out
}

/** Free text (details in help) within HELP_WIDTH: long lines wrap, keeping their indent. */
export function wrapBlock(text: string): string {
  return text
    .split('\n')
    .flatMap((line) => {
      if (line.length <= HELP_WIDTH) return [line]
      const indent = /^\s*/.exec(line)![0]
      return wrap(line, HELP_WIDTH - indent.length - 2).map((part, i) =>
        i === 0 ? `${indent}${part}` : `${indent}  ${part}`,
      )
    })
    .join('\n')
}

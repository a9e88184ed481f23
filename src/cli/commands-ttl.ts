import { createInterface } from 'node:readline'
import { keyPath, nsPath } from './client.ts'
import type { Command, CommandContext, OptionSpec } from './command.ts'
import { ackOptions, ackOutcome, ackProgress, ackQuery, need } from './commands.ts'
import { CliError, EXIT } from './exit-codes.ts'

/** Expiring keys (`put --ttl`, `touch`) and delete by prefix (`del --prefix`). */

export const ttlOption: Record<string, OptionSpec> = {
  ttl: {
    type: 'string',
    value: '<duration>',
    description: 'expire the value this long after the write: 30s, 10m, 2h, 500ms (1s to 30 days)',
  },
}

export const prefixDeleteOptions: Record<string, OptionSpec> = {
  prefix: {
    type: 'string',
    value: '<p>',
    description: 'delete every key under this prefix, as one operation',
  },
  all: { type: 'boolean', description: 'with an empty or no prefix: delete every key of the namespace' },
  yes: { type: 'boolean', short: 'y', description: 'do not ask before a prefix delete' },
}

/** Adds `ttl=` (when --ttl was given) to a query string that is empty or starts with `?`. */
export function withTtl(context: CommandContext, query: string): string {
  const ttl = context.values.ttl
  if (ttl === undefined) return query
  if (typeof ttl !== 'string' || !/^\d+(ms|s|m|h)$/.test(ttl)) {
    throw new CliError(EXIT.USAGE, '--ttl must be a whole number with a unit: ms, s, m or h (e.g. 30s)')
  }
  return `${query === '' ? '?' : `${query}&`}ttl=${ttl}`
}

/** Keys per page, and most pages, a count before a prefix delete reads (the API's page limit). */
const COUNT_PAGE = 1_000
const MAX_COUNT_PAGES = 1_000

/** How many keys are under `prefix` now (a lower bound past MAX_COUNT_PAGES pages). */
async function countKeys(context: CommandContext, prefix: string): Promise<{ count: number; more: boolean }> {
  let count = 0
  let cursor: string | undefined
  for (let page = 0; page < MAX_COUNT_PAGES; page++) {
    const params = new URLSearchParams({ prefix, values: '0', limit: String(COUNT_PAGE) })
    if (cursor !== undefined) params.set('cursor', cursor)
    const { body } = await context
      .client()
      .json<{ items: unknown[]; cursor?: string }>(`${nsPath(context.ns)}/kv?${params}`)
    count += body.items.length
    cursor = body.cursor
    if (cursor === undefined) return { count, more: false }
  }
  return { count, more: true }
}

/** Reads one answer line from stdin (a terminal or a pipe); empty at end of input. */
function ask(context: CommandContext, question: string): Promise<string> {
  return new Promise((resolve) => {
    const lines = createInterface({ input: context.io.stdin, terminal: false })
    context.io.stderr.write(question)
    let answered = false
    lines.once('line', (line) => {
      answered = true
      lines.close()
      resolve(line.trim())
    })
    lines.once('close', () => {
      if (!answered) resolve('')
    })
  })
}

/** `hearsay del --prefix p [--all] [--yes]`. */
export async function deletePrefix(context: CommandContext): Promise<number> {
  if (context.positionals.length > 0) throw new CliError(EXIT.USAGE, 'give a key or --prefix, not both')
  const prefix = typeof context.values.prefix === 'string' ? context.values.prefix : ''
  const all = context.values.all === true
  if (prefix === '' && !all)
    throw new CliError(EXIT.USAGE, 'an empty prefix would delete every key: add --all to mean it')
  if (prefix !== '' && all) throw new CliError(EXIT.USAGE, 'give --prefix or --all, not both')
  const what = all ? `every key of namespace ${context.ns}` : `the keys under "${prefix}"`
  if (context.values.yes !== true) {
    const { count, more } = await countKeys(context, prefix)
    if (count === 0) {
      context.err(`nothing to delete: no key under "${prefix}"`)
      return EXIT.OK
    }
    const answer = await ask(context, `delete ${more ? 'more than ' : ''}${count} key(s), ${what}? [y/N] `)
    if (!/^y(es)?$/i.test(answer)) {
      context.err('nothing deleted')
      return EXIT.OK
    }
  }
  const query = ackQuery(context)
  const params = all ? 'all=1' : `prefix=${encodeURIComponent(prefix)}`
  const done = ackProgress(context)
  const { status, body } = await context
    .client()
    .json<{ deleted: number; ack?: { requested: number; replicated: number } }>(
      `${nsPath(context.ns)}/kv${query === '' ? '?' : `${query}&`}${params}`,
      { method: 'DELETE' },
    )
    .finally(done)
  if (context.json) context.printJson(body)
  else context.out(`deleted  ${body.deleted} key(s)`)
  return ackOutcome(context, status, body)
}

export const touchCommand: Command = {
  name: 'touch',
  args: '<key>',
  summary: 'renew an expiring key: rewrite its value with a new --ttl',
  details: `A new write of the value a read shows now, with a new TTL counted from this write.

  hearsay touch session/42 --ttl 30m`,
  namespaced: true,
  client: true,
  // A getter: commands.ts and this file import each other, so its options are read at run time.
  get options() {
    return { ...ttlOption, ...ackOptions }
  },
  async run(context) {
    const [key] = need(context, 1, 'key')
    if (context.values.ttl === undefined) throw new CliError(EXIT.USAGE, 'touch needs --ttl (e.g. --ttl 30s)')
    const query = withTtl(context, ackQuery(context))
    const done = ackProgress(context)
    const { status, body } = await context
      .client()
      .json<{ etag: string; expiresAt?: string; ack?: { requested: number; replicated: number } }>(
        `${nsPath(context.ns)}/kv/${keyPath(key)}/touch${query}`,
        { method: 'POST' },
      )
      .finally(done)
    if (context.json) context.printJson(body)
    else context.out(`ok  ${key}  expires ${body.expiresAt}`)
    return ackOutcome(context, status, body)
  },
}

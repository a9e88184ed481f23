import { type DaemonResponse, isConnectionLost, nsPath } from './client.ts'
import type { Command, CommandContext } from './command.ts'
import { CliError, EXIT } from './exit-codes.ts'
import { preview } from './format.ts'

/**
 * `hearsay watch`: follows a namespace's Server-Sent Events. It remembers the last event id (a resume
 * token), reconnects by itself after an `overflow`, and on exit prints how to resume where it stopped.
 */

export interface SseEvent {
  event: string
  id?: string
  data: string
}

/** Splits an SSE byte stream into events (comments and `retry:` lines are skipped). */
export async function* parseSse(body: AsyncIterable<Uint8Array>): AsyncGenerator<SseEvent> {
  const decoder = new TextDecoder()
  let buffer = ''
  for await (const chunk of body) {
    buffer += decoder.decode(chunk, { stream: true })
    for (;;) {
      const end = buffer.indexOf('\n\n')
      if (end < 0) break
      const block = buffer.slice(0, end)
      buffer = buffer.slice(end + 2)
      const event: SseEvent = { event: 'message', data: '' }
      let hasData = false
      for (const line of block.split('\n')) {
        if (line === '' || line.startsWith(':')) continue
        const colon = line.indexOf(':')
        const field = colon < 0 ? line : line.slice(0, colon)
        const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '')
        if (field === 'event') event.event = value
        else if (field === 'id') event.id = value
        else if (field === 'data') {
          event.data = hasData ? `${event.data}\n${value}` : value
          hasData = true
        }
      }
      if (hasData) yield event
    }
  }
}

interface ChangeData {
  type: string
  op: string
  key: string
  element?: string
  origin: string
  value?: unknown
  encoding?: string
  contentType?: string
  siblings?: number
}

function describe(data: ChangeData): string {
  const origin = data.origin === 'local' ? '' : `  (${data.origin})`
  switch (data.type) {
    case 'register':
      if (data.op === 'delete') return `del   ${data.key}${origin}`
      return `put   ${data.key} = ${preview(data)}${(data.siblings ?? 1) > 1 ? ` (${data.siblings} siblings)` : ''}${origin}`
    case 'counter':
      return `count ${data.key} = ${data.value}${origin}`
    default:
      return `${data.op === 'add' ? 'sadd ' : 'srem '} ${data.key} ${data.element}${origin}`
  }
}

export const watchCommand: Command = {
  name: 'watch',
  args: '[prefix]',
  summary: 'print changes as they happen (resumable with --since)',
  details: `Prints one line per change, from this peer or any other. Each change that ends a commit
carries a resume token; on exit (Ctrl-C) the command prints the last one, and
--since <token> replays everything that changed after it before following live changes.
--json prints one JSON object per event: {"event","id"?,"data"}.

  hearsay watch sensors/
  hearsay watch --since c1.AQ… --count 10`,
  namespaced: true,
  client: true,
  options: {
    since: { type: 'string', value: '<token>', description: 'replay changes after this resume token first' },
    count: { type: 'string', value: '<n>', description: 'exit after n changes' },
  },
  async run(context) {
    const prefix = context.positionals[0] ?? ''
    const countText = context.values.count as string | undefined
    if (countText !== undefined && !/^\d+$/.test(countText))
      throw new CliError(EXIT.USAGE, '--count must be a whole number')
    const limit = countText === undefined ? Number.POSITIVE_INFINITY : Number(countText)
    let since = (context.values.since as string | undefined) ?? ''
    let seen = 0
    const controller = new AbortController()
    let interrupted = false
    const onSignal = () => {
      interrupted = true
      controller.abort()
    }
    process.once('SIGINT', onSignal)
    process.once('SIGTERM', onSignal)
    try {
      if (limit === 0) return EXIT.OK
      // Watching is interest in a namespace: join it (a GET of the stream never does).
      await context.client().request(nsPath(context.ns), { method: 'PUT', signal: controller.signal })
      for (;;) {
        const outcome = await follow(
          context,
          prefix,
          since,
          controller.signal,
          (id) => {
            since = id
          },
          () => ++seen >= limit,
        )
        if (outcome === 'overflow') {
          if (!context.json) context.err('fell behind; resuming from the last event')
          continue
        }
        if (outcome === 'done' || interrupted) {
          if (since !== '' && !context.json && interrupted)
            context.err(`resume with: hearsay watch${prefix === '' ? '' : ` ${prefix}`} --since ${since}`)
          return EXIT.OK
        }
        throw new CliError(
          EXIT.NO_DAEMON,
          `the daemon ${outcome === 'shutdown' ? 'stopped' : 'closed the stream'}${since === '' ? '' : `; resume with --since ${since}`}`,
        )
      }
    } finally {
      process.off('SIGINT', onSignal)
      process.off('SIGTERM', onSignal)
    }
  },
}

type Outcome = 'done' | 'overflow' | 'shutdown' | 'closed'

async function follow(
  context: CommandContext,
  prefix: string,
  since: string,
  signal: AbortSignal,
  onId: (id: string) => void,
  onChange: () => boolean,
): Promise<Outcome> {
  const params = new URLSearchParams()
  if (prefix !== '') params.set('prefix', prefix)
  if (since !== '') params.set('since', since)
  const query = params.toString()
  let response: DaemonResponse
  try {
    response = await context
      .client()
      .request(`${nsPath(context.ns)}/watch${query === '' ? '' : `?${query}`}`, {
        headers: { accept: 'text/event-stream' },
        signal,
        stream: true,
      })
  } catch (error) {
    if (signal.aborted) return 'done'
    throw error
  }
  try {
    for await (const event of parseSse(response.body)) {
      if (event.id !== undefined) onId(event.id)
      if (context.json)
        context.printJson({
          event: event.event,
          ...(event.id === undefined ? {} : { id: event.id }),
          data: JSON.parse(event.data),
        })
      const data = JSON.parse(event.data)
      switch (event.event) {
        case 'change':
          if (!context.json) context.out(describe(data))
          if (onChange()) return 'done'
          break
        case 'ready':
          if (!context.json && context.io.stderr.isTTY === true) {
            const replay = data.replayed > 0 ? `replayed ${data.replayed} change(s); ` : ''
            context.err(
              `${replay}watching ${context.ns}${prefix === '' ? '' : ` ${prefix}*`} (Ctrl-C to stop)`,
            )
          }
          break
        case 'reset':
          if (!context.json)
            context.err('the token is older than this peer can replay: re-read the keys you follow')
          break
        case 'overflow':
          return 'overflow'
        case 'shutdown':
          return 'shutdown'
      }
    }
  } catch (error) {
    if (signal.aborted) return 'done'
    if (isConnectionLost(error)) return 'closed'
    throw error
  }
  return signal.aborted ? 'done' : 'closed'
}

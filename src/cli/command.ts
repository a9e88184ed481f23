import type { ParseArgsOptionDescriptor } from 'node:util'
import type { Env } from '../daemon/paths.ts'
import { DaemonClient, findDaemon } from './client.ts'

/** What every command is and gets. */

export interface Io {
  stdout: NodeJS.WritableStream & { isTTY?: boolean }
  stderr: NodeJS.WritableStream & { isTTY?: boolean }
  stdin: NodeJS.ReadableStream & { isTTY?: boolean }
  env: Env
}

export interface OptionSpec extends ParseArgsOptionDescriptor {
  description: string
  /** Placeholder in help, e.g. `<ms>`. */
  value?: string
}

export interface Command {
  name: string
  /** Positional arguments as shown in help, e.g. `<key> [value]`. */
  args: string
  summary: string
  /** More help: examples, details. */
  details?: string
  options?: Record<string, OptionSpec>
  /** Takes --ns. */
  namespaced?: boolean
  /** Talks to the daemon (takes --api and --data-dir). */
  client?: boolean
  hidden?: boolean
  run(context: CommandContext): Promise<number>
}

export interface CommandContext {
  positionals: string[]
  values: Record<string, string | boolean | string[] | undefined>
  io: Io
  json: boolean
  ns: string
  /** The daemon client, found on first use (throws CliError when no daemon runs). */
  client(): DaemonClient
  out(line: string): void
  err(line: string): void
  printJson(value: unknown): void
}

export function commandContext(
  io: Io,
  positionals: string[],
  values: CommandContext['values'],
  defaults: { ns: string },
): CommandContext {
  let client: DaemonClient | undefined
  return {
    positionals,
    values,
    io,
    json: values.json === true,
    ns: typeof values.ns === 'string' ? values.ns : defaults.ns,
    client() {
      client ??= new DaemonClient(
        findDaemon({
          dataDir: values['data-dir'] as string | undefined,
          api: values.api as string | undefined,
          token: values.token as string | undefined,
          env: io.env,
        }),
      )
      return client
    },
    out: (line) => io.stdout.write(`${line}\n`),
    err: (line) => io.stderr.write(`${line}\n`),
    printJson: (value) => io.stdout.write(`${JSON.stringify(value)}\n`),
  }
}

#!/usr/bin/env node
import { readFileSync, realpathSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import type { Command, Io, OptionSpec } from './command.ts'
import { commandContext } from './command.ts'
import {
  connectCommand,
  counterCommand,
  delCommand,
  getCommand,
  incrCommand,
  joinCommand,
  lsCommand,
  peersCommand,
  putCommand,
  saddCommand,
  smembersCommand,
  sremCommand,
  statusCommand,
  watchCommand,
} from './commands.ts'
import { touchCommand } from './commands-ttl.ts'
import { CliError, EXIT, isDiskFull } from './exit-codes.ts'
import { inviteCommand } from './invite.ts'
import { hubCommand, initCommand, upCommand } from './up.ts'

/**
 * `hearsay`: runs a peer (`init`, `up`, `hub`) and talks to the running one over its local HTTP API
 * (everything else). Runs as `node src/cli/main.ts` or, built, as `dist/cli/main.js`.
 */

const DEFAULT_NS = 'default'

const openapiCommand: Command = {
  name: 'openapi',
  args: '',
  summary: 'print the OpenAPI document of the HTTP API',
  hidden: true,
  async run(context) {
    const { openApiDocument } = await import('../daemon/openapi.ts')
    context.io.stdout.write(`${JSON.stringify(openApiDocument(), null, 2)}\n`)
    return EXIT.OK
  },
}

const COMMANDS: Command[] = [
  initCommand,
  upCommand,
  hubCommand,
  putCommand,
  getCommand,
  delCommand,
  touchCommand,
  lsCommand,
  watchCommand,
  incrCommand,
  counterCommand,
  saddCommand,
  sremCommand,
  smembersCommand,
  peersCommand,
  connectCommand,
  inviteCommand,
  joinCommand,
  statusCommand,
  openapiCommand,
]

const COMMON_OPTIONS: Record<string, OptionSpec> = {
  'data-dir': {
    type: 'string',
    value: '<dir>',
    description: 'data dir (default: $HEARSAY_HOME, else the per-user data path)',
  },
  json: { type: 'boolean', description: 'machine-readable output (JSON)' },
  help: { type: 'boolean', short: 'h', description: 'show help' },
}
const CLIENT_OPTIONS: Record<string, OptionSpec> = {
  api: {
    type: 'string',
    value: '<url>',
    description: "the daemon's API URL (default: found in the data dir; env HEARSAY_API)",
  },
  token: {
    type: 'string',
    value: '<token>',
    description: 'API bearer token (default: the data dir api.token; env HEARSAY_API_TOKEN)',
  },
}
const NS_OPTIONS: Record<string, OptionSpec> = {
  ns: {
    type: 'string',
    short: 'n',
    value: '<namespace>',
    description: 'namespace (default: $HEARSAY_NAMESPACE or "default")',
  },
}

function optionsOf(command: Command): Record<string, OptionSpec> {
  return {
    ...(command.options ?? {}),
    ...(command.namespaced ? NS_OPTIONS : {}),
    ...(command.client ? CLIENT_OPTIONS : {}),
    ...COMMON_OPTIONS,
  }
}

function version(): string {
  try {
    return JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')).version
  } catch {
    return 'unknown'
  }
}

export function mainHelp(): string {
  const visible = COMMANDS.filter((command) => !command.hidden)
  const width = Math.max(...visible.map((command) => `${command.name} ${command.args}`.length))
  return `hearsay ${version()}: an edge peer-to-peer gossip mesh

Usage: hearsay <command> [options]

Commands:
${visible.map((command) => `  ${`${command.name} ${command.args}`.padEnd(width)}  ${command.summary}`).join('\n')}

Options for every command: --data-dir <dir>, --json, -h/--help.
Client commands also take --api <url> and, for data, -n/--ns <namespace>.
"hearsay <command> --help" shows a command's options.

Exit codes: 0 ok, 1 failure, 2 usage, 3 no daemon, 4 not found, 5 rejected (bad input),
6 ack timeout (written here, not yet on enough peers), 7 daemon could not start.
Docs: docs/cli.md, docs/api.md, docs/configuration.md`
}

export function commandHelp(command: Command): string {
  const options = optionsOf(command)
  const rows = Object.entries(options).map(([name, spec]) => {
    const short = spec.short === undefined ? '    ' : `-${spec.short}, `
    const negate = spec.type === 'boolean' && name === 'mdns' ? '--[no-]' : '--'
    return [`  ${short}${negate}${name}${spec.value === undefined ? '' : ` ${spec.value}`}`, spec.description]
  })
  const width = Math.max(...rows.map(([left]) => left.length))
  return `Usage: hearsay ${command.name}${command.args === '' ? '' : ` ${command.args}`} [options]

${command.summary}
${command.details === undefined ? '' : `\n${command.details}\n`}
Options:
${rows.map(([left, right]) => `${left.padEnd(width)}  ${right}`).join('\n')}`
}

/** parseArgs takes "-3" for an option; numbers are escaped here and restored after parsing. */
const NEGATIVE = /^-\d+(\.\d+)?$/
const ESCAPE = '\u0000neg:'

export async function main(argv: string[], io: Io): Promise<number> {
  const [name, ...rest] = argv
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    const topic = name === 'help' ? COMMANDS.find((command) => command.name === rest[0]) : undefined
    io.stdout.write(`${topic === undefined ? mainHelp() : commandHelp(topic)}\n`)
    return name === undefined ? EXIT.USAGE : EXIT.OK
  }
  if (name === '--version' || name === '-v' || name === 'version') {
    io.stdout.write(`${version()}\n`)
    return EXIT.OK
  }
  const command = COMMANDS.find((candidate) => candidate.name === name)
  if (command === undefined) {
    io.stderr.write(`hearsay: unknown command "${name}"; see hearsay --help\n`)
    return EXIT.USAGE
  }

  let parsed: ReturnType<typeof parseArgs>
  try {
    parsed = parseArgs({
      args: rest.map((arg) => (NEGATIVE.test(arg) ? ESCAPE + arg : arg)),
      options: optionsOf(command),
      allowPositionals: true,
      allowNegative: true,
      strict: true,
    })
  } catch (error) {
    io.stderr.write(`hearsay ${name}: ${(error as Error).message}\nsee hearsay ${name} --help\n`)
    return EXIT.USAGE
  }
  if (parsed.values.help === true) {
    io.stdout.write(`${commandHelp(command)}\n`)
    return EXIT.OK
  }
  const positionals = parsed.positionals.map((arg) =>
    arg.startsWith(ESCAPE) ? arg.slice(ESCAPE.length) : arg,
  )
  const values = parsed.values as Record<string, string | boolean | string[] | undefined>
  const context = commandContext(io, positionals, values, { ns: io.env.HEARSAY_NAMESPACE || DEFAULT_NS })
  try {
    return await command.run(context)
  } catch (thrown) {
    // init and join write the data dir: a full disk there is one line, not a stack trace.
    const error =
      !(thrown instanceof CliError) && isDiskFull(thrown)
        ? new CliError(
            EXIT.START_FAILED,
            `no space left on the device: ${(thrown as Error).message}`,
            'DISK_FULL',
          )
        : thrown
    if (error instanceof CliError) {
      if (context.json) {
        io.stderr.write(
          `${JSON.stringify({ error: { code: error.code ?? exitName(error.exitCode), message: error.message } })}\n`,
        )
      } else {
        io.stderr.write(
          `hearsay ${name}: ${error.code === undefined ? '' : `${error.code}: `}${error.message}\n`,
        )
      }
      return error.exitCode
    }
    io.stderr.write(`hearsay ${name}: unexpected error: ${(error as Error).stack ?? error}\n`)
    return EXIT.FAILURE
  }
}

function exitName(code: number): string {
  return Object.entries(EXIT).find(([, value]) => value === code)?.[0] ?? 'FAILURE'
}

/** True when this file is the program (run directly or through npm's bin symlink), not imported. */
function isEntryPoint(): boolean {
  if (process.argv[1] === undefined) return false
  try {
    return realpathSync(process.argv[1]) === realpathSync(fileURLToPath(import.meta.url))
  } catch {
    return false
  }
}

if (isEntryPoint()) {
  // `hearsay ls | head`: a reader that went away is not an error worth a stack trace.
  process.stdout.on('error', (error: NodeJS.ErrnoException) => {
    if (error.code === 'EPIPE') process.exit(process.exitCode ?? 0)
    throw error
  })
  const code = await main(process.argv.slice(2), {
    stdout: process.stdout,
    stderr: process.stderr,
    stdin: process.stdin,
    env: process.env,
  })
  process.exitCode = code
  // `up` and `hub` leave timers and sockets of the stopped node behind; every other command ends on its own.
  if (process.argv[2] === 'up' || process.argv[2] === 'hub') process.exit(code)
}

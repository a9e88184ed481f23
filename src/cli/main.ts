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
import { INSIGHT_COMMANDS } from './commands-insight.ts'
import { OPS_COMMANDS } from './commands-ops.ts'
import { touchCommand } from './commands-ttl.ts'
import { completionCommand } from './completion.ts'
import { doctorCommand } from './doctor.ts'
import { CliError, EXIT, isDiskFull } from './exit-codes.ts'
import { helpRows, wrapBlock } from './format.ts'
import { inviteCommand } from './invite.ts'
import { closest } from './suggest.ts'
import { hubCommand, initCommand, upCommand } from './up.ts'

/**
 * `hearsay`: runs a peer (`init`, `up`, `hub`) and talks to the running one over its local HTTP API
 * (everything else). Runs as `node src/cli/main.ts` or, built, as `dist/cli/main.js`.
 */

const DEFAULT_NS = 'default'

const openapiCommand: Command = {
  name: 'openapi',
  args: '',
  summary: 'print the OpenAPI document of the HTTP API (JSON)',
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
  ...OPS_COMMANDS,
  ...INSIGHT_COMMANDS,
  peersCommand,
  connectCommand,
  inviteCommand,
  joinCommand,
  statusCommand,
  doctorCommand,
  completionCommand(() => COMMANDS, optionsOf),
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
    description: "the daemon's API, host:port or URL (default: found in the data dir; env HEARSAY_API)",
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
  const rows = visible.map((command): [string, string] => [
    `  ${command.name}${command.args === '' ? '' : ` ${command.args}`}`,
    command.summary,
  ])
  return `hearsay ${version()}: an edge peer-to-peer gossip mesh

Usage: hearsay <command> [options]

Commands:
${helpRows(rows, 26).join('\n')}

Options for every command: --data-dir <dir>, --json, -h/--help.
Client commands also take --api <url> and, for data, -n/--ns <namespace>.
"hearsay <command> --help" shows a command's options.

Exit codes: 0 ok, 1 failure, 2 usage, 3 no daemon, 4 not found,
5 rejected (bad input), 6 ack timeout (written here, not yet on enough peers),
7 daemon could not start.
Docs: docs/cli.md, docs/api.md, docs/configuration.md`
}

export function commandHelp(command: Command): string {
  const options = optionsOf(command)
  const rows = Object.entries(options).map(([name, spec]): [string, string] => {
    const short = spec.short === undefined ? '    ' : `-${spec.short}, `
    const negate = spec.type === 'boolean' && name === 'mdns' ? '--[no-]' : '--'
    return [`  ${short}${negate}${name}${spec.value === undefined ? '' : ` ${spec.value}`}`, spec.description]
  })
  const usage = `Usage: hearsay ${command.name}${command.args === '' ? '' : ` ${command.args}`} [options]`
  return wrapBlock(`${usage}

${command.summary}
${command.details === undefined ? '' : `\n${command.details}\n`}
Options:
${helpRows(rows).join('\n')}`)
}

/** The option names of a command, for "did you mean". */
function optionNames(command: Command): string[] {
  return Object.keys(optionsOf(command))
}

/** parseArgs takes "-3" for an option; numbers are escaped here and restored after parsing. */
const NEGATIVE = /^-\d+(\.\d+)?$/
const ESCAPE = '\u0000neg:'

export async function main(argv: string[], io: Io): Promise<number> {
  const [name, ...rest] = argv
  const json = argv.includes('--json')
  /** A bad command line: one line (or a JSON error with --json) and exit 2. */
  const usage = (code: string, message: string, hint: string, prefix = `hearsay ${name}`): number => {
    if (json) io.stderr.write(`${JSON.stringify({ error: { code, message } })}\n`)
    else io.stderr.write(`${prefix}: ${message}\n${hint}\n`)
    return EXIT.USAGE
  }
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
    const known = COMMANDS.map((candidate) => candidate.name)
    if (name.startsWith('-')) {
      // `hearsay --api host:port status`: options come after the command.
      const later = rest.find((arg) => known.includes(arg))
      const message =
        later === undefined
          ? `"${name}" is not a command; options go after the command`
          : `options go after the command: hearsay ${later} ${argv.filter((arg) => arg !== later).join(' ')}`
      return usage('USAGE', message, 'see hearsay --help', 'hearsay')
    }
    const guess = closest(name, known)
    const message = `unknown command "${name}"${guess === undefined ? '' : `; did you mean "${guess}"?`}`
    return usage('UNKNOWN_COMMAND', message, 'see hearsay --help', 'hearsay')
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
    const hint = `see hearsay ${name} --help`
    const { code, message } = error as { code?: string; message: string }
    if (code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION') {
      const option = /'(-[^']*)'/.exec(message)?.[1] ?? ''
      const bare = option.replace(/^--?(no-)?/, '').split('=')[0]
      const guess = closest(bare, optionNames(command))
      return usage(
        'UNKNOWN_OPTION',
        `unknown option ${option}${guess === undefined ? '' : `; did you mean --${guess}?`}`,
        hint,
      )
    }
    return usage('USAGE', message, hint)
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

/** Runs the command line of this process and sets its exit code (bin/hearsay.cjs calls this). */
export async function runAsProgram(): Promise<void> {
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

if (isEntryPoint()) await runAsProgram()

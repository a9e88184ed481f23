import type { Command, OptionSpec } from './command.ts'
import { CliError, EXIT } from './exit-codes.ts'

/**
 * `hearsay completion bash|zsh|fish`: a shell completion script generated from the command table, so
 * it never lists a command or option the program does not have.
 */

export const SHELLS = ['bash', 'zsh', 'fish'] as const
export type Shell = (typeof SHELLS)[number]

export interface CompletionSource {
  commands: Command[]
  optionsOf(command: Command): Record<string, OptionSpec>
}

function flags(name: string, spec: OptionSpec): string[] {
  return [`--${name}`, ...(spec.short === undefined ? [] : [`-${spec.short}`])]
}

export function bashCompletion(source: CompletionSource): string {
  const names = source.commands.map((command) => command.name).join(' ')
  const cases = source.commands
    .map((command) => {
      const options = Object.entries(source.optionsOf(command)).flatMap(([name, spec]) => flags(name, spec))
      return `    ${command.name}) opts="${options.join(' ')}" ;;`
    })
    .join('\n')
  return `# hearsay completion for bash: eval "$(hearsay completion bash)" (e.g. in ~/.bashrc)
_hearsay() {
  local cur opts
  cur="\${COMP_WORDS[COMP_CWORD]}"
  if [ "$COMP_CWORD" -eq 1 ]; then
    COMPREPLY=($(compgen -W "${names} --help --version" -- "$cur"))
    return 0
  fi
  case "\${COMP_WORDS[1]}" in
${cases}
    *) opts="" ;;
  esac
  if [[ "$cur" == -* ]]; then
    COMPREPLY=($(compgen -W "$opts" -- "$cur"))
  else
    COMPREPLY=($(compgen -f -- "$cur"))
  fi
  return 0
}
complete -F _hearsay hearsay
`
}

/** zsh _arguments specs treat `[ ] :` specially; descriptions lose them. */
function zshText(text: string): string {
  return text.replace(/[[\]:\\]/g, ' ').replace(/'/g, "'\\''")
}

export function zshCompletion(source: CompletionSource): string {
  const described = source.commands
    .map((command) => `    '${command.name}:${zshText(command.summary)}'`)
    .join('\n')
  const cases = source.commands
    .map((command) => {
      const specs = Object.entries(source.optionsOf(command)).flatMap(([name, spec]) =>
        flags(name, spec).map((flag) => {
          const argument = spec.type === 'string' ? `:${zshText(spec.value ?? 'value')}: ` : ''
          const repeat = spec.multiple === true ? '*' : ''
          return `'${repeat}${flag}[${zshText(spec.description)}]${argument}'`
        }),
      )
      return `    ${command.name}) _arguments ${specs.join(' ')} '*:file:_files' ;;`
    })
    .join('\n')
  return `#compdef hearsay
# hearsay completion for zsh: eval "$(hearsay completion zsh)" (e.g. in ~/.zshrc, after compinit)
_hearsay() {
  local -a commands
  commands=(
${described}
  )
  if (( CURRENT == 2 )); then
    _describe 'command' commands
    return
  fi
  local command=$words[2]
  shift words
  (( CURRENT-- ))
  case $command in
${cases}
  esac
}
compdef _hearsay hearsay
`
}

function fishText(text: string): string {
  return text.replace(/\\/g, '\\\\').replace(/'/g, "\\'")
}

export function fishCompletion(source: CompletionSource): string {
  const lines = [
    '# hearsay completion for fish: hearsay completion fish > ~/.config/fish/completions/hearsay.fish',
    'complete -c hearsay -f',
  ]
  for (const command of source.commands) {
    lines.push(
      `complete -c hearsay -n __fish_use_subcommand -a ${command.name} -d '${fishText(command.summary)}'`,
    )
  }
  for (const command of source.commands) {
    for (const [name, spec] of Object.entries(source.optionsOf(command))) {
      const short = spec.short === undefined ? '' : ` -s ${spec.short}`
      const argument = spec.type === 'string' ? ' -r' : ''
      lines.push(
        `complete -c hearsay -n '__fish_seen_subcommand_from ${command.name}' -l ${name}${short}${argument} -d '${fishText(spec.description)}'`,
      )
    }
  }
  return `${lines.join('\n')}\n`
}

export function completionScript(shell: Shell, source: CompletionSource): string {
  switch (shell) {
    case 'bash':
      return bashCompletion(source)
    case 'zsh':
      return zshCompletion(source)
    case 'fish':
      return fishCompletion(source)
  }
}

export function completionCommand(
  commands: () => Command[],
  optionsOf: (command: Command) => Record<string, OptionSpec>,
): Command {
  return {
    name: 'completion',
    args: '<bash|zsh|fish>',
    summary: 'print a shell completion script',
    details: `  eval "$(hearsay completion bash)"     # in ~/.bashrc
  eval "$(hearsay completion zsh)"      # in ~/.zshrc, after compinit
  hearsay completion fish > ~/.config/fish/completions/hearsay.fish`,
    async run(context) {
      const [shell] = context.positionals
      if (!SHELLS.includes(shell as Shell)) {
        throw new CliError(
          EXIT.USAGE,
          `${shell === undefined ? 'missing shell' : `unknown shell "${shell}"`}: give one of ${SHELLS.join(', ')}`,
        )
      }
      context.io.stdout.write(
        completionScript(shell as Shell, {
          commands: commands().filter((command) => !command.hidden),
          optionsOf,
        }),
      )
      return EXIT.OK
    },
  }
}

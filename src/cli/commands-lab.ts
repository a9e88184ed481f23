import type { ScenarioFlags } from '../lab/scenario.ts'
import { LAB_USAGE } from '../lab/usage.ts'
import type { Command, OptionSpec } from './command.ts'

/** `hearsay lab`: the P2P versus client-server lab (docs/experiments.md). */

const option = (value: string, description: string): OptionSpec => ({ type: 'string', value, description })

export const labCommand: Command = {
  name: 'lab',
  args: 'run [file] | report <dir>',
  summary: 'run a mesh / hub / HTTP-hub experiment and report it (docs/experiments.md)',
  details: `${LAB_USAGE}

Flags override the scenario file (or make a scenario without one):
  hearsay lab run --shapes mesh,http-hub --n 4,8 --duration 10s \\
    --event kill-hub@3s --event restart-hub@6s
  hearsay lab run examples/lab/partition.json --out /tmp/partition
Events (--event kind@time[:peers]): leave@2s:1  join@4s:1  late-join@3s:2
  partition@2s:0,1/2,3  heal@5s  kill-hub@3s  restart-hub@6s`,
  options: {
    name: option('<name>', 'scenario name (results folder name)'),
    shapes: option('<list>', 'mesh,hub,http-hub (default: all three)'),
    n: option('<list>', 'peer counts, e.g. 4,8,16 (default 4)'),
    mode: option('<mode>', 'processes (default) or in-process'),
    link: option('<preset>', 'lan, wifi, edge, satellite or none'),
    delay: option('<ms>', 'one-way delay per link'),
    jitter: option('<ms>', 'jitter (±) per link'),
    loss: option('<percent>', 'packet loss per link'),
    'link-rate': option('<kbit/s>', 'rate limit per link'),
    writers: option('<count>', 'peers that write (default 2)'),
    'write-rate': option('<ops/s>', 'operations per second, all writers together (default 20)'),
    keys: option('<count>', 'keys per writer (default 10)'),
    'value-bytes': option('<bytes>', 'bytes per value (default 64)'),
    duration: option('<time>', 'write phase, e.g. 10s (default 5s)'),
    'read-fraction': option('<0..1>', 'share of operations that are reads (default 0)'),
    event: {
      type: 'string',
      multiple: true,
      value: '<kind@time[:peers]>',
      description: 'a timeline event. Repeatable.',
    },
    settle: option(
      '<time>',
      'after the write phase, wait at most this long for every write to be visible (default 10s)',
    ),
    bound: option(
      '<time>',
      'a write not visible everywhere within this counts as not seen in time (default 1s)',
    ),
    seed: option('<n>', 'seed of the workload (default 1)'),
    out: option('<dir>', 'results folder (default lab-results/<name>-<time>)'),
    compare: { type: 'boolean', description: 'with report: lay two result folders side by side' },
  },
  async run(context) {
    const values = context.values as ScenarioFlags & { json?: boolean; compare?: boolean }
    // The lab pulls in libp2p: loaded only when run, so other commands start fast.
    const { labMain } = await import('../lab/main.ts')
    return labMain(context.positionals, values, context.io)
  },
}

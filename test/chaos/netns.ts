import { execFile, execFileSync } from 'node:child_process'
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

/**
 * The network of a chaos run: one namespace per peer, each with a veth pair to a bridge in one more
 * namespace, all created by the run. Nothing touches the host's interfaces: veths are created
 * directly inside the run's namespaces (`ip -n`), addresses (10.77.0.0/24) exist only there, and the
 * faults are iptables rules and tbf qdiscs inside the peer namespaces, on their `eth0` only (the
 * runner's relay to each daemon's API goes over the namespace's loopback, never faulted).
 *
 * Names are `hsc<pid>x<random>-…`, so parallel runs never collide and a later run can remove what
 * a killed run left behind (its pid is gone).
 */

export const SUBNET = '10.77.0'
export const NAME_PATTERN = /^hsc(\d+)x[0-9a-f]+-/
const PARTITION_CHAIN = 'CHAOS_PART'
const LOSS_CHAIN = 'CHAOS_LOSS'

export interface Network {
  prefix: string
  peerNamespaces: string[]
  addressOf(peer: number): string
  /** Blocks traffic between the groups, both ways: silently (drop) or with TCP resets (reject). */
  partition(groups: [number[], number[]], mode: 'drop' | 'reject'): Promise<void>
  healPartitions(): Promise<void>
  setLoss(peer: number, probability: number): Promise<void>
  clearLoss(peer: number): Promise<void>
  setRate(peer: number, kbit: number): Promise<void>
  clearRate(peer: number): Promise<void>
  healAll(): Promise<void>
  teardown(): void
}

/** Why this machine cannot make the run's namespaces, or undefined if it can. */
export function whyNoNamespaces(): string | undefined {
  if (process.getuid?.() !== 0) return 'network namespaces need root (this run is not root)'
  for (const tool of ['ip', 'iptables', 'iptables-restore', 'tc']) {
    try {
      execFileSync('sh', ['-c', `command -v ${tool}`], { stdio: 'ignore' })
    } catch {
      return `\`${tool}\` is not installed`
    }
  }
  const probe = `hsc${process.pid}x${randomHex()}-probe`
  try {
    execFileSync('ip', ['netns', 'add', probe], { stdio: 'pipe' })
  } catch (error) {
    return `\`ip netns add\` failed: ${(error as Error).message.split('\n')[0]}`
  }
  try {
    execFileSync('ip', ['netns', 'exec', probe, 'iptables', '-L', 'INPUT'], { stdio: 'pipe' })
  } catch (error) {
    return `iptables does not work inside a namespace: ${(error as Error).message.split('\n')[0]}`
  } finally {
    execFileSync('ip', ['netns', 'delete', probe], { stdio: 'ignore' })
  }
  return undefined
}

/** Set in the runner re-run inside a user namespace, so it does not try again. */
export const IN_USER_NAMESPACE = 'CHAOS_IN_USER_NAMESPACE'

/**
 * Without root, a user namespace (with its own network, mount and pid namespaces) makes the run as
 * its mapped root: `ip netns`, veths, iptables and tc all work there, inside a private /run, and the
 * kernel kills everything in it when the runner, its pid 1, exits. Returns the command prefix that
 * runs a command that way, or undefined when this machine does not allow it.
 */
export function userNamespacePrefix(): string[] | undefined {
  if (process.env[IN_USER_NAMESPACE] === '1') return undefined
  const prefix = [
    'unshare',
    '--user',
    '--map-root-user',
    '--net',
    '--mount',
    '--pid',
    '--fork',
    '--mount-proc',
    '--kill-child=SIGTERM',
    'sh',
    '-c',
    'mount -t tmpfs chaos /run && mkdir -p /run/netns && exec "$@"',
    'sh',
  ]
  try {
    execFileSync(
      prefix[0]!,
      [...prefix.slice(1), 'sh', '-c', 'ip netns add probe && ip netns exec probe iptables -L INPUT'],
      {
        stdio: 'ignore',
        timeout: 10_000,
      },
    )
    return prefix
  } catch {
    return undefined
  }
}

function randomHex(): string {
  return Math.floor(Math.random() * 0xffffff)
    .toString(16)
    .padStart(6, '0')
}

function ipSync(args: string[], input?: string): void {
  execFileSync('ip', args, { stdio: [input === undefined ? 'ignore' : 'pipe', 'ignore', 'pipe'], input })
}

function ipAsync(args: string[], input?: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = execFile('ip', args, { timeout: 10_000 }, (error, _stdout, stderr) => {
      if (error) reject(new Error(`ip ${args.join(' ')}: ${stderr || error.message}`))
      else resolve()
    })
    if (input !== undefined) child.stdin!.end(input)
  })
}

/** The process ids inside a namespace. */
function namespacePids(name: string): number[] {
  try {
    const out = execFileSync('ip', ['netns', 'pids', name], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    })
    return out
      .split('\n')
      .map((line) => Number(line.trim()))
      .filter((pid) => Number.isInteger(pid) && pid > 0)
  } catch {
    return []
  }
}

function deleteNamespace(name: string): void {
  // Only processes a chaos run started live in these namespaces.
  for (const pid of namespacePids(name)) {
    try {
      process.kill(pid, 'SIGKILL')
    } catch {
      // Already gone.
    }
  }
  try {
    ipSync(['netns', 'delete', name])
  } catch {
    // Already gone.
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM'
  }
}

/** The run dir of a chaos run: under the temp dir, named after the runner's pid. */
export function makeRunDir(): string {
  return mkdtempSync(join(tmpdir(), `hearsay-chaos-${process.pid}-`))
}

/** Removes run dirs left by chaos runs whose process is gone; those kept on purpose hold history.json. */
function removeLeftoverRunDirs(): void {
  for (const name of readdirSync(tmpdir())) {
    const match = /^hearsay-chaos-(\d+)-/.exec(name)
    if (match === null || isAlive(Number(match[1]))) continue
    const dir = join(tmpdir(), name)
    if (!existsSync(join(dir, 'history.json'))) rmSync(dir, { recursive: true, force: true })
  }
}

/** Removes namespaces (and the processes in them) and run dirs left by chaos runs whose process is gone. */
export function removeLeftovers(): string[] {
  removeLeftoverRunDirs()
  let names: string[]
  try {
    names = execFileSync('ip', ['netns', 'list'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] })
      .split('\n')
      .map((line) => line.split(' ')[0]!.trim())
  } catch {
    return []
  }
  const removed: string[] = []
  for (const name of names) {
    const match = NAME_PATTERN.exec(name)
    if (match === null || isAlive(Number(match[1]))) continue
    deleteNamespace(name)
    removed.push(name)
  }
  return removed
}

export function createNetwork(peers: number): Network {
  const prefix = `hsc${process.pid}x${randomHex()}`
  const bridge = `${prefix}-br`
  const peerNamespaces = Array.from({ length: peers }, (_, i) => `${prefix}-p${i}`)
  const created: string[] = []
  const addressOf = (peer: number) => `${SUBNET}.${peer + 1}`
  const teardown = () => {
    for (const name of [...created].reverse()) deleteNamespace(name)
    created.length = 0
  }
  try {
    ipSync(['netns', 'add', bridge])
    created.push(bridge)
    ipSync(['-n', bridge, 'link', 'add', 'br0', 'type', 'bridge'])
    ipSync(['-n', bridge, 'link', 'set', 'br0', 'up'])
    peerNamespaces.forEach((ns, i) => {
      ipSync(['netns', 'add', ns])
      created.push(ns)
      ipSync(['-n', ns, 'link', 'set', 'lo', 'up'])
      ipSync(['-n', ns, 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', `v${i}`, 'netns', bridge])
      ipSync(['-n', bridge, 'link', 'set', `v${i}`, 'master', 'br0'])
      ipSync(['-n', bridge, 'link', 'set', `v${i}`, 'up'])
      ipSync(['-n', ns, 'addr', 'add', `${addressOf(i)}/24`, 'dev', 'eth0'])
      ipSync(['-n', ns, 'link', 'set', 'eth0', 'up'])
      ipSync(
        ['netns', 'exec', ns, 'iptables-restore'],
        [
          '*filter',
          `:${PARTITION_CHAIN} - [0:0]`,
          `:${LOSS_CHAIN} - [0:0]`,
          `-A INPUT -i eth0 -j ${PARTITION_CHAIN}`,
          `-A INPUT -i eth0 -j ${LOSS_CHAIN}`,
          `-A OUTPUT -o eth0 -j ${PARTITION_CHAIN}`,
          `-A OUTPUT -o eth0 -j ${LOSS_CHAIN}`,
          'COMMIT',
          '',
        ].join('\n'),
      )
    })
  } catch (error) {
    teardown()
    throw error
  }

  const rules = (ns: string, lines: string[]) =>
    ipAsync(
      ['netns', 'exec', ns, 'iptables-restore', '--noflush'],
      ['*filter', ...lines, 'COMMIT', ''].join('\n'),
    )
  const flush = (ns: string, chain: string) => ipAsync(['netns', 'exec', ns, 'iptables', '-F', chain])
  const lossRule = (probability: number) =>
    `-A ${LOSS_CHAIN} -m statistic --mode random --probability ${probability} -j DROP`

  const network: Network = {
    prefix,
    peerNamespaces,
    addressOf,
    async partition(groups, mode) {
      const [left, right] = groups
      const block = (from: number[], to: number[]) =>
        Promise.all(
          from.map((peer) =>
            rules(
              peerNamespaces[peer]!,
              to.flatMap((other) =>
                mode === 'drop'
                  ? [
                      `-A ${PARTITION_CHAIN} -s ${addressOf(other)} -j DROP`,
                      `-A ${PARTITION_CHAIN} -d ${addressOf(other)} -j DROP`,
                    ]
                  : [
                      `-A ${PARTITION_CHAIN} -p tcp -s ${addressOf(other)} -j REJECT --reject-with tcp-reset`,
                      `-A ${PARTITION_CHAIN} -p tcp -d ${addressOf(other)} -j REJECT --reject-with tcp-reset`,
                      `-A ${PARTITION_CHAIN} -s ${addressOf(other)} -j DROP`,
                      `-A ${PARTITION_CHAIN} -d ${addressOf(other)} -j DROP`,
                    ],
              ),
            ),
          ),
        )
      await Promise.all([block(left, right), block(right, left)])
    },
    async healPartitions() {
      await Promise.all(peerNamespaces.map((ns) => flush(ns, PARTITION_CHAIN)))
    },
    async setLoss(peer, probability) {
      const ns = peerNamespaces[peer]!
      await flush(ns, LOSS_CHAIN)
      await rules(ns, [lossRule(probability)])
    },
    async clearLoss(peer) {
      await flush(peerNamespaces[peer]!, LOSS_CHAIN)
    },
    async setRate(peer, kbit) {
      // tbf on the egress of the peer's veth: a token bucket with a bounded queue (queued packets wait,
      // the rest drop). This kernel has no netem, so there is no fixed-delay emulation.
      await ipAsync([
        'netns',
        'exec',
        peerNamespaces[peer]!,
        'tc',
        'qdisc',
        'replace',
        'dev',
        'eth0',
        'root',
        'tbf',
        'rate',
        `${kbit}kbit`,
        'burst',
        '16kb',
        'latency',
        '200ms',
      ])
    },
    async clearRate(peer) {
      await ipAsync([
        'netns',
        'exec',
        peerNamespaces[peer]!,
        'tc',
        'qdisc',
        'del',
        'dev',
        'eth0',
        'root',
      ]).catch(() => {
        // No qdisc of ours on it: nothing to clear.
      })
    },
    async healAll() {
      await network.healPartitions()
      await Promise.all(peerNamespaces.map((ns) => flush(ns, LOSS_CHAIN)))
      await Promise.all(peerNamespaces.map((_, peer) => network.clearRate(peer)))
    },
    teardown,
  }
  return network
}

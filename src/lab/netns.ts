import { execFile, execFileSync } from 'node:child_process'

/**
 * Network namespaces for runs of real processes: one namespace per peer, each with a veth pair to a
 * bridge in one more namespace, all created by the run. Nothing touches the host's interfaces: veths
 * are created directly inside the run's namespaces (`ip -n`), addresses exist only there, and the
 * faults are iptables rules and tc qdiscs inside the peer namespaces, on their `eth0` only (a relay
 * to a daemon's API goes over the namespace's loopback, never faulted).
 *
 * Names are `<tag><pid>x<random>-…`, so parallel runs never collide and a later run can remove what
 * a killed run left behind (its pid is gone). The chaos test and the lab use different tags.
 */

const PARTITION_CHAIN = 'HS_PART'
/** Loss on both directions of eth0 (a packet between two peers meets it twice). */
const LOSS_CHAIN = 'HS_LOSS'
/** Loss on eth0's egress only (a packet between two peers meets it once). */
const EGRESS_LOSS_CHAIN = 'HS_ELOSS'

export interface NamespaceNetworkOptions {
  /** Short name tag of this kind of run (`hsc`: chaos, `hsl`: lab). */
  tag: string
  /** The first three octets of the peers' /24, e.g. `10.77.0`; peer i is `.i+1`. */
  subnet: string
}

export interface Network {
  prefix: string
  peerNamespaces: string[]
  addressOf(peer: number): string
  /** Blocks traffic between the groups, both ways: silently (drop) or with TCP resets (reject). */
  partition(groups: [number[], number[]], mode: 'drop' | 'reject'): Promise<void>
  healPartitions(): Promise<void>
  /** Drops a share of the packets entering and leaving the peer's eth0. */
  setLoss(peer: number, probability: number): Promise<void>
  clearLoss(peer: number): Promise<void>
  /** Drops a share of the packets leaving the peer's eth0 only. */
  setEgressLoss(peer: number, probability: number): Promise<void>
  setRate(peer: number, kbit: number): Promise<void>
  clearRate(peer: number): Promise<void>
  /** Runs `tc qdisc replace dev eth0 root <args>` in the peer's namespace. */
  setRootQdisc(peer: number, args: string[]): Promise<void>
  /** Sends TCP connections that enter the peer's eth0 for `fromPort` to local port `toPort` instead. */
  redirectInbound(peer: number, fromPort: number, toPort: number): Promise<void>
  /** Adds addresses (/32) to the loopback of the peer's namespace. */
  addLoopbackAddresses(peer: number, addresses: string[]): Promise<void>
  /** iptables packet counters of the peer's loss chains (both ways and egress). */
  lossCounters(peer: number): Promise<{ dropped: number }>
  healAll(): Promise<void>
  teardown(): void
}

/** The tools a namespace run needs. */
export const NAMESPACE_TOOLS = ['ip', 'iptables', 'iptables-restore', 'tc'] as const

/** Why this machine cannot make a run's namespaces, or undefined if it can. Creates nothing that stays. */
export function whyNoNamespaces(tag = 'hsp'): string | undefined {
  if (process.getuid?.() !== 0) return 'network namespaces need root (this process is not root)'
  for (const tool of NAMESPACE_TOOLS) {
    try {
      execFileSync('sh', ['-c', `command -v ${tool}`], { stdio: 'ignore' })
    } catch {
      return `\`${tool}\` is not installed`
    }
  }
  const probe = `${tag}${process.pid}x${randomHex()}-probe`
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

/** Whether the kernel has the netem qdisc (tried on the loopback of a throwaway namespace). */
export function hasNetem(tag = 'hsp'): boolean {
  const probe = `${tag}${process.pid}x${randomHex()}-netem`
  try {
    execFileSync('ip', ['netns', 'add', probe], { stdio: 'ignore' })
  } catch {
    return false
  }
  try {
    execFileSync(
      'ip',
      ['netns', 'exec', probe, 'tc', 'qdisc', 'add', 'dev', 'lo', 'root', 'netem', 'delay', '1ms'],
      {
        stdio: 'ignore',
      },
    )
    return true
  } catch {
    return false
  } finally {
    execFileSync('ip', ['netns', 'delete', probe], { stdio: 'ignore' })
  }
}

export function randomHex(): string {
  return Math.floor(Math.random() * 0xffffff)
    .toString(16)
    .padStart(6, '0')
}

function ipSync(args: string[], input?: string): void {
  execFileSync('ip', args, { stdio: [input === undefined ? 'ignore' : 'pipe', 'ignore', 'pipe'], input })
}

function ipAsync(args: string[], input?: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = execFile('ip', args, { timeout: 10_000 }, (error, stdout, stderr) => {
      if (error) reject(new Error(`ip ${args.join(' ')}: ${stderr || error.message}`))
      else resolve(stdout)
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

/** Kills the processes in a namespace (only a run's own processes live there) and deletes it. */
export function deleteNamespace(name: string): void {
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

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM'
  }
}

/** The namespaces on this machine. */
export function listNamespaces(): string[] {
  try {
    return execFileSync('ip', ['netns', 'list'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] })
      .split('\n')
      .map((line) => line.split(' ')[0]!.trim())
      .filter((name) => name !== '')
  } catch {
    return []
  }
}

/** The pattern of the namespace names a tag's runs make; group 1 is the pid of the run. */
export function namePattern(tag: string): RegExp {
  return new RegExp(`^${tag}(\\d+)x[0-9a-f]+-`)
}

/** Removes namespaces (and the processes in them) left by runs of this tag whose process is gone. */
export function removeLeftoverNamespaces(tag: string): string[] {
  const pattern = namePattern(tag)
  const removed: string[] = []
  for (const name of listNamespaces()) {
    const match = pattern.exec(name)
    if (match === null || isAlive(Number(match[1]))) continue
    deleteNamespace(name)
    removed.push(name)
  }
  return removed
}

export function createNamespaceNetwork(peers: number, options: NamespaceNetworkOptions): Network {
  const prefix = `${options.tag}${process.pid}x${randomHex()}`
  const bridge = `${prefix}-br`
  const peerNamespaces = Array.from({ length: peers }, (_, i) => `${prefix}-p${i}`)
  const created: string[] = []
  const addressOf = (peer: number) => `${options.subnet}.${peer + 1}`
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
          `:${EGRESS_LOSS_CHAIN} - [0:0]`,
          `-A INPUT -i eth0 -j ${PARTITION_CHAIN}`,
          `-A INPUT -i eth0 -j ${LOSS_CHAIN}`,
          `-A OUTPUT -o eth0 -j ${PARTITION_CHAIN}`,
          `-A OUTPUT -o eth0 -j ${LOSS_CHAIN}`,
          `-A OUTPUT -o eth0 -j ${EGRESS_LOSS_CHAIN}`,
          'COMMIT',
          '',
        ].join('\n'),
      )
    })
  } catch (error) {
    teardown()
    throw error
  }

  const exec = (ns: string, args: string[], input?: string) => ipAsync(['netns', 'exec', ns, ...args], input)
  const rules = (ns: string, lines: string[]) =>
    exec(ns, ['iptables-restore', '--noflush'], ['*filter', ...lines, 'COMMIT', ''].join('\n'))
  const flush = (ns: string, chain: string) => exec(ns, ['iptables', '-F', chain])
  const lossRule = (chain: string, probability: number) =>
    `-A ${chain} -m statistic --mode random --probability ${probability} -j DROP`

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
      await rules(ns, [lossRule(LOSS_CHAIN, probability)])
    },
    async clearLoss(peer) {
      await flush(peerNamespaces[peer]!, LOSS_CHAIN)
      await flush(peerNamespaces[peer]!, EGRESS_LOSS_CHAIN)
    },
    async setEgressLoss(peer, probability) {
      const ns = peerNamespaces[peer]!
      await flush(ns, EGRESS_LOSS_CHAIN)
      await rules(ns, [lossRule(EGRESS_LOSS_CHAIN, probability)])
    },
    async setRate(peer, kbit) {
      // tbf on the egress of the peer's veth: a token bucket with a bounded queue (queued packets
      // wait, the rest drop).
      await network.setRootQdisc(peer, ['tbf', 'rate', `${kbit}kbit`, 'burst', '16kb', 'latency', '200ms'])
    },
    async clearRate(peer) {
      await exec(peerNamespaces[peer]!, ['tc', 'qdisc', 'del', 'dev', 'eth0', 'root']).catch(() => {
        // No qdisc of ours on it: nothing to clear.
      })
    },
    async setRootQdisc(peer, args) {
      await exec(peerNamespaces[peer]!, ['tc', 'qdisc', 'replace', 'dev', 'eth0', 'root', ...args])
    },
    async redirectInbound(peer, fromPort, toPort) {
      await exec(peerNamespaces[peer]!, [
        'iptables',
        '-t',
        'nat',
        '-A',
        'PREROUTING',
        '-i',
        'eth0',
        '-p',
        'tcp',
        '--dport',
        String(fromPort),
        '-j',
        'REDIRECT',
        '--to-ports',
        String(toPort),
      ])
    },
    async addLoopbackAddresses(peer, addresses) {
      if (addresses.length === 0) return
      await ipAsync(
        ['-n', peerNamespaces[peer]!, '-batch', '-'],
        addresses.map((address) => `addr add ${address}/32 dev lo\n`).join(''),
      )
    },
    async lossCounters(peer) {
      let dropped = 0
      for (const chain of [LOSS_CHAIN, EGRESS_LOSS_CHAIN]) {
        const out = await exec(peerNamespaces[peer]!, ['iptables', '-L', chain, '-n', '-v', '-x'])
        for (const line of out.split('\n')) {
          const fields = line.trim().split(/\s+/)
          if (fields[2] === 'DROP') dropped += Number(fields[0])
        }
      }
      return { dropped }
    },
    async healAll() {
      await network.healPartitions()
      await Promise.all(peerNamespaces.map((_, peer) => network.clearLoss(peer)))
      await Promise.all(peerNamespaces.map((_, peer) => network.clearRate(peer)))
    },
    teardown,
  }
  return network
}

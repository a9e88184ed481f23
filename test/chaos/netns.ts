import { execFileSync } from 'node:child_process'
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import {
  createNamespaceNetwork,
  isAlive,
  type Network,
  namePattern,
  removeLeftoverNamespaces,
  whyNoNamespaces as whyNoNamespacesTagged,
} from '../../src/lab/netns.ts'

/**
 * The network of a chaos run: the namespaces of src/lab/netns.ts (one per peer on a bridge, faults by
 * iptables and tbf on each peer's eth0), under the chaos tag and subnet 10.77.0.0/24.
 */

export type { Network }
export const SUBNET = '10.77.0'
const TAG = 'hsc'
export const NAME_PATTERN = namePattern(TAG)

/** Why this machine cannot make the run's namespaces, or undefined if it can. */
export function whyNoNamespaces(): string | undefined {
  return whyNoNamespacesTagged(TAG)
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
  return removeLeftoverNamespaces(TAG)
}

export function createNetwork(peers: number): Network {
  return createNamespaceNetwork(peers, { tag: TAG, subnet: SUBNET })
}

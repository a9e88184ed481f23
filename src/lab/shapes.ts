import type { LabShape } from './types.ts'

/**
 * The three shapes as topologies: which daemons run, how they find each other, and which daemon each
 * of the n peers (writers and watchers) talks to. Peers are 0..n-1; in the hub shapes the hub is
 * daemon n.
 *
 * - `mesh`: n `hearsay up` daemons, each bootstrapped to all the others (gossip + anti-entropy).
 * - `hub`: `hearsay hub` plus n `hearsay up --hub` clients; clients talk libp2p to the hub only.
 * - `http-hub`: one `hearsay up` daemon and n HTTP clients in the lab process that PUT to it and
 *   read its SSE watch: plain request/response client-server, no libp2p between clients and hub.
 */
export interface ShapePlan {
  shape: LabShape
  n: number
  /** Daemon indexes to run (peers and, in the hub shapes, the hub n). */
  daemons: number[]
  hub: number | undefined
  /** Peers of the link network: in the hub shapes the hub is peer n. */
  networkPeers: number
  /** Each peer is a daemon of its own (false: an HTTP client of the hub). */
  peersAreDaemons: boolean
  /** The daemon whose API peer i uses (its own daemon, or the hub). */
  daemonOf(peer: number): number
  command(daemon: number): 'up' | 'hub'
  /** How a daemon finds the others, given the address a dialer dials a daemon at. */
  topologyArgs(daemon: number, dialAddress: (target: number, dialer: number) => string): string[]
}

export function planShape(shape: LabShape, n: number): ShapePlan {
  const peers = Array.from({ length: n }, (_, i) => i)
  switch (shape) {
    case 'mesh':
      return {
        shape,
        n,
        daemons: peers,
        hub: undefined,
        networkPeers: n,
        peersAreDaemons: true,
        daemonOf: (peer) => peer,
        command: () => 'up',
        topologyArgs: (daemon, dial) =>
          peers.filter((other) => other !== daemon).flatMap((other) => ['--bootstrap', dial(other, daemon)]),
      }
    case 'hub':
      return {
        shape,
        n,
        daemons: [n, ...peers],
        hub: n,
        networkPeers: n + 1,
        peersAreDaemons: true,
        daemonOf: (peer) => peer,
        command: (daemon) => (daemon === n ? 'hub' : 'up'),
        topologyArgs: (daemon, dial) => (daemon === n ? [] : ['--hub', dial(n, daemon)]),
      }
    case 'http-hub':
      return {
        shape,
        n,
        daemons: [n],
        hub: n,
        networkPeers: n + 1,
        peersAreDaemons: false,
        daemonOf: () => n,
        command: () => 'up',
        topologyArgs: () => [],
      }
  }
}

/** A partition's groups as network peers: in the hub shapes the hub sits with the first group. */
export function networkGroups(plan: ShapePlan, groups: number[][]): number[][] {
  if (plan.hub === undefined) return groups
  return groups.map((group, i) => (i === 0 ? [...group, plan.hub!] : group))
}

/**
 * The lab's shared vocabulary: a scenario (what to run), the link conditions it runs under, and the
 * results it writes. The scenario parser, the runners, the link emulation and the report renderer
 * all speak these types; results.json is `LabResults` as JSON.
 */

/** `mesh`: gossip mesh. `hub`: every peer talks libp2p to one hub daemon only. `http-hub`: clients
 * use one daemon's HTTP API and SSE watch only (no libp2p between clients and the hub). */
export type LabShape = 'mesh' | 'hub' | 'http-hub'
export const LAB_SHAPES: readonly LabShape[] = ['mesh', 'hub', 'http-hub']

/** One direction of a link between two peers. */
export interface LinkConditions {
  /** One-way delay added to every packet (or chunk), ms. */
  delayMs: number
  /** Uniform jitter, ± ms, around the delay. */
  jitterMs: number
  /** Packets (or chunks) lost, 0..100 %. */
  lossPercent: number
  /** Rate limit, kbit/s; undefined = unlimited. */
  rateKbit?: number
}

export const LINK_PRESETS: Readonly<Record<string, LinkConditions>> = {
  lan: { delayMs: 0.5, jitterMs: 0, lossPercent: 0 },
  wifi: { delayMs: 5, jitterMs: 2, lossPercent: 0.5 },
  edge: { delayMs: 40, jitterMs: 10, lossPercent: 1 },
  satellite: { delayMs: 300, jitterMs: 0, lossPercent: 0 },
}

/** How the link conditions were made, as the report states it. */
export type LinkEmulation =
  | 'none' // no link conditions (plain links; partitions still possible)
  | 'netem' // tc netem in network namespaces
  | 'netns-proxy' // namespaces; loss by iptables statistic, rate by tbf, delay/jitter by the lab's proxy
  | 'loopback-proxy' // no namespaces (no root): delay/jitter/partitions by the lab's proxy only
  | 'memory' // in-process: the in-memory transport's delay and loss

export interface Workload {
  /** How many peers write (peers 0..writers-1; in the hub shapes, clients, never the hub). */
  writers: number
  /** Writes per second, all writers together. */
  ratePerSecond: number
  /** Distinct keys written (round robin). */
  keys: number
  /** Bytes per value. */
  valueBytes: number
  /** Length of the write phase, ms. */
  durationMs: number
  /** Share of operations that are reads (0..1); the rest are writes. */
  readFraction: number
}

export type TimelineEvent =
  | { atMs: number; kind: 'leave'; peers: number[] } // stopped (SIGTERM), data kept
  | { atMs: number; kind: 'join'; peers: number[] } // started again after a leave
  | { atMs: number; kind: 'late-join'; peers: number[] } // started for the first time at atMs
  | { atMs: number; kind: 'partition'; groups: number[][] }
  | { atMs: number; kind: 'heal' }
  | { atMs: number; kind: 'kill-hub' } // SIGKILL of the hub (hub shapes; ignored by mesh)
  | { atMs: number; kind: 'restart-hub' }

export interface Scenario {
  name: string
  shapes: LabShape[]
  /** Peer counts; each shape runs once per n. In the hub shapes n counts the clients (the hub is extra). */
  n: number[]
  /** Peers as separate daemon processes, or all in this one process (large n). */
  mode: 'processes' | 'in-process'
  /** Undefined: plain links. */
  link?: LinkConditions & { preset?: string }
  workload: Workload
  timeline: TimelineEvent[]
  /** After the write phase: how long to wait for every write to be seen everywhere. */
  settleMs: number
  /** A write not seen on every live peer within this bound counts as `notSeenWithinBound`. */
  visibleBoundMs: number
  seed: number
}

export interface LatencySummary {
  count: number
  p50: number
  p90: number
  p99: number
  max: number
  /** [ms, fraction of writes visible on every live peer within ms], increasing, at most 200 points. */
  cdf: [number, number][]
}

export interface PeerFigures {
  index: number
  role: 'peer' | 'hub' | 'client'
  bytesSent: number
  bytesReceived: number
  /** Undefined where the runner cannot count messages. */
  messagesSent?: number
  messagesReceived?: number
  cpuMs: number
  rssBytes: number
  /** Where the byte figures come from, e.g. 'tcp-socket' (kernel counters of libp2p sockets) or 'http-socket'. */
  bytesSource?: string
}

export interface TimelineSample {
  tMs: number
  writesIssued: number
  writesAccepted: number
  /** Of the writes accepted so far, the fraction visible on every live peer. */
  visibleFraction: number
  /** Fraction of live peers whose namespace digest equals the most common one. */
  peersEqualFraction: number
}

export interface RunResult {
  shape: LabShape
  n: number
  mode: Scenario['mode']
  transport: 'tcp' | 'memory'
  emulation: LinkEmulation
  latency: LatencySummary
  writes: {
    attempted: number
    acknowledged: number
    refused: number
    lost: number
    notSeenWithinBound: number
  }
  reads: { attempted: number; served: number; failed: number }
  /** Every peer; in hub shapes the hub is role 'hub' (index -1). */
  peers: PeerFigures[]
  /** After each heal, hub restart, join or late join: how long until every live peer was equal. */
  convergence: {
    event: TimelineEvent['kind']
    atMs: number
    convergedAfterMs: number | null
    /** When the event took effect (e.g. the restarted daemon was ready); convergedAfterMs counts from here. */
    effectiveAtMs?: number
    /** From effectiveAtMs until a digest sample found every live peer equal; null if none did. */
    digestsEqualAfterMs?: number | null
  }[]
  /** While a fault holds (hub down, partition): what peers could still do. */
  availability: {
    event: TimelineEvent['kind']
    fromMs: number
    toMs: number
    writesAccepted: number
    writesRefused: number
    readsServed: number
    readsFailed: number
    /** The same, per peer (client index; the writers and readers of the window). */
    perPeer?: {
      index: number
      writesAccepted: number
      writesRefused: number
      readsServed: number
      readsFailed: number
    }[]
  }[]
  /** Sampled every 250 ms over the run. */
  timeline: TimelineSample[]
  durationMs: number
  /** Peers that exited unexpectedly, with the tail of their log. */
  crashes: { index: number; code: number | null; signal: string | null; logTail: string }[]
  /** Per peer: acknowledged writes its watch never showed by the end (0 everywhere when nothing is lost). */
  unseenByPeer?: number[]
  /** Timeline events that could not be played (a peer that did not start again in time), with why. */
  failedEvents?: string[]
  /** When each timeline event really took effect (a busy runner may be late); plots mark these. */
  firedEvents?: { kind: TimelineEvent['kind']; atMs: number; firedAtMs: number }[]
  /** What the runner could not measure or emulate as asked, in words; the report lists them. */
  notes?: string[]
  /** The lab process itself where every peer shares it (in-process mode): CPU over the run and peak RSS. */
  process?: { cpuMs: number; rssBytes: number }
}

export interface LabResults {
  version: 1
  scenario: Scenario
  startedAt: string
  machine: { cpus: number; node: string; kernel: string }
  runs: RunResult[]
}

/** Tells the user how a run is going (one live progress line). */
export type LabProgress = (line: string) => void

/**
 * The network of a process run (src/lab/links.ts). Peers 0..n-1, and in the hub shapes the hub is
 * peer n. On loopback without root it still delays and partitions through the lab's proxy.
 */
export interface LabNetwork {
  emulation: LinkEmulation
  /** The multiaddr peer i's daemon listens on (its `--listen`). */
  listenAddress(peer: number): string
  /**
   * The multiaddr other peers dial to reach peer i (their `--bootstrap` / `--hub`). `dialer`: the peer
   * that is given the address; on loopback the proxy only knows who dials whom (and so can partition)
   * when it is passed. Lab peers run with mDNS off (docs/lab-links.md).
   */
  dialAddress(peer: number, peerId: string, dialer?: number): string
  /** What to put before peer i's command to run it in its place (e.g. `ip netns exec …`); [] on loopback. */
  commandPrefix(peer: number): string[]
  /** The base URL this (lab) process reaches peer i's HTTP API at, given the port the daemon serves on. */
  apiUrl(peer: number, apiPort: number): Promise<string>
  /**
   * Where `dialer` reaches a TCP service of peer i other than libp2p (e.g. the HTTP hub's API) over
   * the link, with its conditions and partitions. In namespaces the service listens on the peer's
   * address (or 0.0.0.0) inside its namespace; on loopback on 127.0.0.1, at a port of its own.
   */
  serviceAddress?(peer: number, port: number, dialer?: number): Promise<{ host: string; port: number }>
  /** Cuts the links between the groups (replacing any partition before); peers in no group reach all. */
  partition(groups: number[][]): Promise<void>
  heal(): Promise<void>
  /** Removes everything the network made; safe to call twice and from an exit handler. */
  teardown(): Promise<void>
}

export interface LabNetworkInit {
  peers: number
  link?: LinkConditions
  seed: number
  /** Use network namespaces (needs root and `ip`); false: loopback with the lab's proxy. */
  namespaces: boolean
}

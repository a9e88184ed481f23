import { DEFAULT_TARGET_CONNECTIONS } from '../mesh/constants.ts'
import {
  DEFAULT_API_HOST,
  DEFAULT_API_MAX_CONNECTIONS,
  DEFAULT_API_PORT,
  DEFAULT_LISTEN,
  DEFAULT_MESH,
  DEFAULT_NAMESPACES,
  DEFAULT_SHUTDOWN_TIMEOUT_MS,
  DEFAULT_SSE_HEARTBEAT_MS,
  DEFAULT_WATCH_QUEUE_BYTES,
} from './constants.ts'

/**
 * Every daemon setting, named once with its flag, environment variable, type, default and
 * description. The config loader (config.ts), `hearsay up --help` and docs/configuration.md follow
 * this table. (A module of its own with no heavy imports, so the CLI's help stays fast.)
 */

export interface Settings {
  apiHost: string
  apiPort: number
  listen: string[]
  bootstrap: string[]
  hub: string[]
  mdns: boolean
  meshPeers: number
  mesh: string
  namespaces: string[]
  swarmKeyFile: string
  open: boolean
  allowPeers: string[]
  storage: 'sqlite' | 'memory'
  synchronous: 'FULL' | 'NORMAL'
  logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent'
  logFormat: 'auto' | 'json' | 'pretty'
  requireIfMatch: boolean
  loopbackTesting: boolean
  shutdownTimeoutMs: number
  sseHeartbeatMs: number
  // API access and resource limits
  apiAllowedHosts: string[]
  apiMaxConnections: number
  watchQueueBytes: number
}

export interface DaemonConfig extends Settings {
  dataDir: string
  /** Run as a hub for client peers (`hearsay hub`): a command, not a setting, so one config.json serves both. */
  isHub?: boolean
}

/**
 * How this peer is wired: `mesh` (peer-to-peer, the default), `hub` (the server of the client-server
 * shape) or `hub-client` (talks to its hubs only). The protocol is the same in all three.
 */
export type Topology = 'mesh' | 'hub' | 'hub-client'

export function topologyOf(config: Pick<DaemonConfig, 'hub' | 'isHub'>): Topology {
  if (config.isHub === true) return 'hub'
  return config.hub.length > 0 ? 'hub-client' : 'mesh'
}

export type SettingSource = 'default' | 'file' | 'flag' | 'env'

type Kind = 'string' | 'port' | 'boolean' | 'list' | 'enum' | 'milliseconds' | 'count'

export interface Setting {
  key: keyof Settings
  flag: string
  env: string
  kind: Kind
  values?: readonly string[]
  default: Settings[keyof Settings]
  description: string
}

export const SETTINGS: readonly Setting[] = [
  {
    key: 'apiHost',
    flag: 'api-host',
    env: 'HEARSAY_API_HOST',
    kind: 'string',
    default: DEFAULT_API_HOST,
    description:
      'Address the HTTP API binds to. Beyond loopback every request needs the bearer token in <data dir>/api.token.',
  },
  {
    key: 'apiPort',
    flag: 'api-port',
    env: 'HEARSAY_API_PORT',
    kind: 'port',
    default: DEFAULT_API_PORT,
    description: 'HTTP API port; 0 picks a free port (printed at start and written to the lock file).',
  },
  {
    key: 'listen',
    flag: 'listen',
    env: 'HEARSAY_LISTEN',
    kind: 'list',
    default: DEFAULT_LISTEN,
    description: 'libp2p multiaddrs to listen on for other peers.',
  },
  {
    key: 'bootstrap',
    flag: 'bootstrap',
    env: 'HEARSAY_BOOTSTRAP',
    kind: 'list',
    default: [],
    description: 'Multiaddrs of peers to dial at start and stay connected to (with /p2p/<peer id>).',
  },
  {
    key: 'hub',
    flag: 'hub',
    env: 'HEARSAY_HUB',
    kind: 'list',
    default: [],
    description:
      'Hub client: talk only to these hubs (multiaddrs with /p2p/<peer id>, from `hearsay hub`); no mDNS, no bootstrap.',
  },
  {
    key: 'mdns',
    flag: 'mdns',
    env: 'HEARSAY_MDNS',
    kind: 'boolean',
    default: true,
    description: 'Find peers on the local network with multicast DNS.',
  },
  {
    key: 'meshPeers',
    flag: 'mesh-peers',
    env: 'HEARSAY_MESH_PEERS',
    kind: 'count',
    default: DEFAULT_TARGET_CONNECTIONS,
    description:
      'Neighbours a mesh peer keeps: it dials the peers it discovers until it has this many, and closes connections beyond 1.5 times as many. Not for a hub, which takes all its clients.',
  },
  {
    key: 'mesh',
    flag: 'mesh',
    env: 'HEARSAY_MESH',
    kind: 'string',
    default: DEFAULT_MESH,
    description: 'Name of the mesh: peers replicate only with peers of the same mesh.',
  },
  {
    key: 'namespaces',
    flag: 'namespace',
    env: 'HEARSAY_NAMESPACES',
    kind: 'list',
    default: DEFAULT_NAMESPACES,
    description: 'Namespaces to join at start (writing to another namespace joins it too).',
  },
  {
    key: 'swarmKeyFile',
    flag: 'swarm-key',
    env: 'HEARSAY_SWARM_KEY_FILE',
    kind: 'string',
    default: '',
    description:
      'Mesh key file (libp2p pnet pre-shared key): only peers with the same key connect. Default: <data dir>/swarm.key, created at first start unless the mesh is open.',
  },
  {
    key: 'open',
    flag: 'open',
    env: 'HEARSAY_OPEN',
    kind: 'boolean',
    default: false,
    description:
      'Open mesh: no mesh key, anyone on the network can connect and replicate. Without it a peer with no key creates one (a new private mesh).',
  },
  {
    key: 'allowPeers',
    flag: 'allow-peer',
    env: 'HEARSAY_ALLOW_PEERS',
    kind: 'list',
    default: [],
    description: 'Private mesh: only these peer ids may connect (default: anyone).',
  },
  {
    key: 'storage',
    flag: 'storage',
    env: 'HEARSAY_STORAGE',
    kind: 'enum',
    values: ['sqlite', 'memory'],
    default: 'sqlite',
    description: 'sqlite keeps data in <data dir>/hearsay.db; memory keeps nothing across restarts.',
  },
  {
    key: 'synchronous',
    flag: 'synchronous',
    env: 'HEARSAY_SYNCHRONOUS',
    kind: 'enum',
    values: ['FULL', 'NORMAL'],
    default: 'FULL',
    description:
      'SQLite durability: FULL survives power loss, NORMAL only a process crash (docs/storage.md).',
  },
  {
    key: 'logLevel',
    flag: 'log-level',
    env: 'HEARSAY_LOG_LEVEL',
    kind: 'enum',
    values: ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'],
    default: 'info',
    description: 'Least severe log level written (debug logs every request).',
  },
  {
    key: 'logFormat',
    flag: 'log-format',
    env: 'HEARSAY_LOG_FORMAT',
    kind: 'enum',
    values: ['auto', 'json', 'pretty'],
    default: 'auto',
    description: 'Log lines as JSON, or short text lines; auto is text on a terminal and JSON otherwise.',
  },
  {
    key: 'requireIfMatch',
    flag: 'require-if-match',
    env: 'HEARSAY_REQUIRE_IF_MATCH',
    kind: 'boolean',
    default: false,
    description: 'Refuse (428) a PUT or DELETE of an existing key that does not send If-Match.',
  },
  {
    key: 'loopbackTesting',
    flag: 'loopback-testing',
    env: 'HEARSAY_LOOPBACK_TESTING',
    kind: 'boolean',
    default: false,
    description: 'Relax per-IP connection limits for many peers on 127.0.0.1 (tests and the demo only).',
  },
  {
    key: 'shutdownTimeoutMs',
    flag: 'shutdown-timeout',
    env: 'HEARSAY_SHUTDOWN_TIMEOUT_MS',
    kind: 'milliseconds',
    default: DEFAULT_SHUTDOWN_TIMEOUT_MS,
    description: 'Grace for in-flight requests on SIGINT/SIGTERM before connections are closed, ms.',
  },
  {
    key: 'sseHeartbeatMs',
    flag: 'sse-heartbeat',
    env: 'HEARSAY_SSE_HEARTBEAT_MS',
    kind: 'milliseconds',
    default: DEFAULT_SSE_HEARTBEAT_MS,
    description: 'Interval of keep-alive comments on idle watch streams, ms.',
  },
  // ---- API access and resource limits (docs/api.md "Access") ----
  {
    key: 'apiAllowedHosts',
    flag: 'api-allowed-host',
    env: 'HEARSAY_API_ALLOWED_HOSTS',
    kind: 'list',
    default: [],
    description:
      'Host names the API answers to besides localhost, 127.x and [::1] (e.g. a name in /etc/hosts); others get 403.',
  },
  {
    key: 'apiMaxConnections',
    flag: 'api-max-connections',
    env: 'HEARSAY_API_MAX_CONNECTIONS',
    kind: 'count',
    default: DEFAULT_API_MAX_CONNECTIONS,
    description: 'Connections the API serves at once, watch streams included; more are closed at once.',
  },
  {
    key: 'watchQueueBytes',
    flag: 'watch-queue-bytes',
    env: 'HEARSAY_WATCH_QUEUE_BYTES',
    kind: 'count',
    default: DEFAULT_WATCH_QUEUE_BYTES,
    description:
      'Bytes of events queued for one slow watch client before it is cut off with an overflow event (it resumes).',
  },
]

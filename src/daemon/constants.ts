/**
 * Every number and name the daemon uses, each with where it comes from. Configuration overrides the
 * ones a user may want to change (see src/daemon/config.ts and docs/configuration.md).
 */

/** Loopback: the API has no authentication, so only local applications may reach it by default. */
export const DEFAULT_API_HOST = '127.0.0.1'

/**
 * A fixed default port so `curl localhost:7600/...` works from the docs; 0 picks a free one (tests, the
 * demo and anyone running several peers on one machine).
 */
export const DEFAULT_API_PORT = 7600

/**
 * A fixed p2p port, so the address other peers put in their bootstrap list survives restarts; on all
 * interfaces, because mDNS discovery and LAN peers need to reach it.
 */
export const DEFAULT_LISTEN = ['/ip4/0.0.0.0/tcp/7601']

export const DEFAULT_MESH = 'default'

/** Namespaces every peer joins at start; others are joined by writing to them (or `PUT /v1/ns/{ns}`). */
export const DEFAULT_NAMESPACES = ['default']

/** Namespace the CLI uses when none is given. */
export const DEFAULT_NAMESPACE = 'default'

// ---- files in the data dir ------------------------------------------------------------------------

export const CONFIG_FILE = 'config.json'
export const DATABASE_FILE = 'hearsay.db'
/** A private mesh's pre-shared key, used when present (every peer of the mesh needs the same file). */
export const SWARM_KEY_FILE = 'swarm.key'
/** Lock and discovery in one: `{pid, url, ...}`; the CLI finds the API URL here. */
export const LOCK_FILE = 'daemon.lock'
/** A lock file that cannot be parsed and is older than this was left by a crash mid-write. */
export const UNREADABLE_LOCK_GRACE_MS = 5_000

// ---- HTTP limits ----------------------------------------------------------------------------------

/** Largest JSON request body (counters, sets, peers): these bodies are tiny; 64 KiB is generous. */
export const MAX_JSON_BODY_BYTES = 64 * 1024

/** Largest value of a PUT: the codec's per-value limit (1 MiB, src/codec/limits.ts). */
export const MAX_VALUE_BYTES = 1024 * 1024

/** Elements in one set request. */
export const MAX_SET_ELEMENTS_PER_REQUEST = 1_000

/** Listing page size: default, and the most one page may hold. */
export const DEFAULT_LIST_LIMIT = 100
export const MAX_LIST_LIMIT = 1_000

/** `?ack=N`: more peers than a small edge mesh holds would only ever time out. */
export const MAX_ACK_PEERS = 64
/** `?timeout=` for an ack wait when none is given, and the most allowed. */
export const DEFAULT_ACK_TIMEOUT_MS = 5_000
export const MAX_ACK_TIMEOUT_MS = 60_000

/** How long `POST /v1/peers` waits for a dial (libp2p's own dial timeout is shorter). */
export const DIAL_REQUEST_TIMEOUT_MS = 15_000

/**
 * SSE comment sent on an idle watch stream: keeps proxies and NATs from closing it, and lets the
 * daemon notice a client that went away. 15 s is what most SSE servers use.
 */
export const DEFAULT_SSE_HEARTBEAT_MS = 15_000

/**
 * Events queued for one slow watch client before the daemon gives up on it: the stream ends with an
 * `overflow` event and the client resumes with `since` (it loses nothing, it just re-reads).
 */
export const MAX_WATCH_QUEUE = 10_000

/**
 * Text queued for one slow watch client (setting `watchQueueBytes`) before it is cut off the same
 * way: 8 MiB holds several 1 MiB values (1.4 MiB each as base64), and ten stalled watchers cost at
 * most ~80 MiB instead of growing with every write.
 */
export const DEFAULT_WATCH_QUEUE_BYTES = 8 * 1024 * 1024

/**
 * Connections the API serves at once (setting `apiMaxConnections`), watch streams included; beyond
 * it a new connection is closed at once and the existing ones keep working.
 */
export const DEFAULT_API_MAX_CONNECTIONS = 256

/**
 * A request body that sends nothing for this long is abandoned: 408, connection closed. Generous for
 * a 1 MiB value on a slow link (it only has to keep moving), short enough that stalled uploads
 * cannot pile up.
 */
export const BODY_IDLE_TIMEOUT_MS = 5_000

/**
 * After answering a request whose body we stopped reading (408, 503), how long the connection may
 * go on delivering bytes we drop before it is closed: long enough for the client to read the answer.
 */
export const BODY_LINGER_MS = 2_000

/**
 * Request body bytes held in memory across all requests at once: 64 values of 1 MiB arriving
 * together. Beyond it a request is answered 503 SERVER_BUSY (with Retry-After), so clients that
 * trickle bodies cannot make the daemon hold apiMaxConnections × 1 MiB.
 */
export const MAX_BUFFERED_BODY_BYTES = 64 * 1024 * 1024

/** Longest time to receive a request's headers (slow-header clients), as node:http counts it. */
export const HEADERS_TIMEOUT_MS = 10_000

/**
 * A watch stream whose client has read nothing for this long is closed (two heartbeats): it holds
 * memory for nothing, and the client resumes from its last event id.
 */
export const STREAM_STALL_TIMEOUT_MS = 30_000

/** Longest time to receive a whole request (headers and body); node's default is 300 s. */
export const REQUEST_TIMEOUT_MS = 60_000

/** The bearer token a non-loopback API requires, in the data dir (mode 0600). */
export const API_TOKEN_FILE = 'api.token'

/**
 * Grace for in-flight requests at shutdown; after it, connections are closed. The store is flushed
 * either way, so nothing acknowledged depends on it.
 */
export const DEFAULT_SHUTDOWN_TIMEOUT_MS = 5_000

/** Node's default is 5 s; autocannon-style clients and CLIs reconnect cheaply either way. */
export const KEEP_ALIVE_TIMEOUT_MS = 5_000

/** Prefix of a watch resume token: bumps if the token's encoding ever changes. */
export const SINCE_TOKEN_PREFIX = 'c1.'

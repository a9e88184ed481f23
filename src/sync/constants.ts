/** The anti-entropy protocol id; the version in it changes only with an incompatible frame format. */
export const SYNC_PROTOCOL = '/hearsay/sync/2.0.0'

/** Version byte at the start of every sync frame. */
export const SYNC_FRAME_VERSION = 2

/** Largest DELTAS frame we produce: big enough to amortise framing, small enough to interleave. */
export const DEFAULT_CHUNK_BYTES = 256 * 1024

/** Largest frame we accept: one chunk plus the codec's own frame bound. */
export const MAX_SYNC_FRAME_BYTES = 4 * 1024 * 1024 + 1024

/** A session that receives no frame for this long is aborted (a slow or stalled peer). */
export const DEFAULT_IDLE_TIMEOUT_MS = 15_000

/** A whole session may not receive more than this: a hostile peer cannot stream forever. */
export const DEFAULT_MAX_SESSION_BYTES = 512 * 1024 * 1024

/** How often a peer syncs with one random connected peer, ms. Repairs what gossip lost within ~this. */
export const DEFAULT_SYNC_INTERVAL_MS = 10_000

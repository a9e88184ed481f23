/** The anti-entropy protocol id; the version in it changes only with an incompatible frame format. */
export const SYNC_PROTOCOL = '/hearsay/sync/3.0.0'

/**
 * Version byte at the start of every sync frame. 3: deltas of codec version 3 and heads with
 * length-prefixed proofs (one signature per commit turn, see codec/proof.ts).
 */
export const SYNC_FRAME_VERSION = 3

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

/** A peer busy with another session of the namespace answers BUSY: try again after this, doubling. */
export const BUSY_RETRY_FIRST_MS = 20

/** The longest pause between two tries after BUSY. */
export const BUSY_RETRY_MAX_MS = 1000

/** Give up after BUSY for this long in all (the periodic round tries again later). */
export const BUSY_RETRY_TOTAL_MS = 30_000

/** Received frames not merged yet past this pause the stream (backpressure on the sender). */
export const MERGE_BACKLOG_PAUSE_BYTES = 2 * 1024 * 1024

/** ... and it reads again once they are down to this (a quarter). */
export const MERGE_BACKLOG_RESUME_BYTES = 512 * 1024

/**
 * A paused stream buffers what the sender's muxer window still lets through (yamux grants up to
 * 16 MiB): the limit while paused, above libp2p's default of 4 MiB so the pause cannot reset it.
 */
export const PAUSED_READ_BUFFER_BYTES = 20 * 1024 * 1024

/**
 * A session that holds its namespace's turn but made no progress (no frame read, no chunk merged)
 * for this long no longer keeps other sessions waiting or BUSY: a peer that stopped answering would
 * otherwise hold anti-entropy with everyone until its idle timeout.
 */
export const TURN_STALL_MS = 1000

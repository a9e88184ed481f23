/**
 * Every number the mesh layer uses, each with where it comes from. Init options override most of them;
 * these are the defaults a new user gets.
 */

// ---- identity -------------------------------------------------------------------------------------

/** File name of the node's private key inside the data dir (libp2p protobuf-marshalled Ed25519 key). */
export const KEY_FILE_NAME = 'peer.key'

/** Mode of the key file: owner read/write only, as ssh does for private keys. */
export const KEY_FILE_MODE = 0o600

/**
 * Largest key file we will read. A protobuf Ed25519 private key is 68 bytes (4 bytes of framing, 64 of
 * key); anything near this bound is not ours. Bounded so a wrong path cannot make us read a huge file.
 */
export const MAX_KEY_FILE_BYTES = 4096

// ---- addresses and discovery -----------------------------------------------------------------------

/** Listen address when the caller gives none: loopback, OS-chosen port. The daemon chooses its own. */
export const DEFAULT_LISTEN = ['/ip4/127.0.0.1/tcp/0']

/**
 * mDNS service tag: DNS-SD style `_hearsay-<mesh>._udp.local` (@libp2p/mdns's default is
 * `_p2p._udp.local`). The mesh name is in it so two meshes on one LAN do not dial each other.
 */
export const MDNS_SERVICE_TAG_PREFIX = '_hearsay'
export const MDNS_SERVICE_TAG_SUFFIX = '._udp.local'

/** A DNS label holds at most 63 bytes (RFC 1035); longer or dotted mesh names are hashed into the tag. */
export const MAX_DNS_LABEL = 63

/** mDNS query interval: @libp2p/mdns's default is 10 s; a LAN of edge devices changes slowly. */
export const MDNS_INTERVAL_MS = 10_000

/** Bootstrap: dial the configured peers this soon after start (@libp2p/bootstrap default is 1 s). */
export const BOOTSTRAP_DELAY_MS = 100

// ---- connection manager ---------------------------------------------------------------------------

/**
 * libp2p accepts only 5 inbound connections per second per remote host by default
 * (`inboundConnectionThreshold`). On loopback every peer is 127.0.0.1, so tests with more than a
 * handful of peers hang on dials. With `loopbackTesting` we raise it to
 * this; it is a rate, so a high value costs nothing when there is no burst.
 */
export const LOOPBACK_INBOUND_CONNECTION_THRESHOLD = 10_000

/** `maxIncomingPendingConnections` with `loopbackTesting` (libp2p default 10): the same burst argument. */
export const LOOPBACK_MAX_INCOMING_PENDING_CONNECTIONS = 1_000

/**
 * Neighbours a mesh peer keeps. Every connection costs idle CPU on both ends (libp2p's liveness ping,
 * gossipsub heartbeat work and IHAVE gossip, identify, periodic anti-entropy sessions) and the mesh
 * used to connect everyone to everyone, so the idle cost of N peers grew with N². gossipsub needs
 * D = Dhi = 3 neighbours per topic; 8 leaves a margin for anti-entropy partners and for losing a few
 * neighbours at once. The connector dials discovered peers only while below the target and tops up to
 * it when neighbours leave.
 */
export const DEFAULT_TARGET_CONNECTIONS = 8

/**
 * Peers kept at most, as a multiple of the target (8 → 12): beyond it the connector closes the least
 * useful connections once they are past their grace period. The gap between target and maximum is
 * hysteresis: a peer that accepted a few newcomers does not cut anyone until it is well above target.
 */
export const MAX_CONNECTIONS_PER_TARGET = 1.5

/**
 * Inbound connections libp2p still accepts above the maximum (its `maxConnections` is our maximum plus
 * this). Refusing at the maximum would lock newcomers out of a full bootstrap peer: they would never
 * get the peer exchange that tells them whom else to dial. The excess is trimmed after its grace.
 */
export const CONNECTION_HEADROOM = 8

/**
 * A new connection is never trimmed before this age: long enough for identify, peer exchange and the
 * anti-entropy session a connect starts (a loopback or LAN exchange takes milliseconds; 10 s covers a
 * busy 2-core host).
 */
export const CONNECTION_GRACE_MS = 10_000

/**
 * How often the connector checks its neighbour count: tops up below the target, trims above the
 * maximum. A cheap walk over the connection list; jittered ±20 %.
 */
export const CONNECTION_MAINTAIN_MS = 5_000

/**
 * A peer whose connection closed within this long is dialled by top-up only when no other known peer
 * is left: it may well have closed the connection for being over its maximum.
 */
export const RECENT_DISCONNECT_MS = 60_000

/**
 * Dial timeout. libp2p's default is 10 s; a loopback or LAN dial takes ~20-35 ms (measured), a dial
 * across the internet a few hundred, so 10 s only ever waits for dead peers. 5 s keeps stale addresses
 * from holding dial slots. The 2-core CPU-starved case (many nodes in one process) still fits.
 */
export const DIAL_TIMEOUT_MS = 5_000

// ---- yamux ----------------------------------------------------------------------------------------

/**
 * Largest yamux receive window per stream. yamux 8 grows a stream's window up to 16 MiB, but a libp2p 3
 * stream resets itself when more than 4 MiB (`maxReadBufferLength`, and lpStream's `maxBufferSize`) sits
 * unread. So a reader that pause()s to apply back-pressure could still be overrun by up to 16 MiB in
 * flight, and reset (measured: "Read buffer overflow - 5505276 > 4194304"). A 1 MiB cap keeps everything
 * in flight under the buffer limit; it bounds one stream to 1 MiB per RTT (20 MiB/s at 50 ms), plenty
 * for deltas.
 */
export const YAMUX_MAX_STREAM_WINDOW = 1024 * 1024

// ---- gossipsub ------------------------------------------------------------------------------------

/**
 * Mesh degree. gossipsub defaults are D=6, Dlo=4, Dhi=12, sized for Ethereum-scale networks. The cost of
 * gossip is CPU and bytes per message copy: a peer receives about one copy per mesh neighbour, each
 * decrypted, demultiplexed, decoded and hashed before gossipsub drops it as a duplicate. Measured with
 * `npm run bench -- copies` (docs/performance.md), one-write batches at 200/s, all connected to all:
 * D=4 → 3.2 copies per reader at N=4 and 4.4 at N=8; D=3 → 2.4 and 2.8, with ~25 % fewer bytes
 * and CPU. D=2 (Dlo 1) goes to ~1.1 copies but a mesh of degree 1-3 splits easily, and Dout would
 * have to be 0 (no outbound quota against eclipse by inbound connections). Dlo=2 is the repair
 * threshold. Dhi=3 prunes a peer's mesh back to D as soon as it grows past it: at N=8 copies per
 * reader fell 2.7-2.8 → 2.15 and bytes in ~20 % against Dhi=4, every write still delivered (CPU per
 * write unchanged within noise). The heartbeat regrafts within 1 s and anti-entropy repairs what
 * gossip misses.
 */
export const GOSSIP_D = 3
export const GOSSIP_DLO = 2
export const GOSSIP_DHI = 3

/** Dlazy: peers we send IHAVE gossip to each heartbeat (default 6). Equal to D for the same reason. */
export const GOSSIP_DLAZY = 3

/**
 * Dout: outbound quota in the mesh (spec: default 2, must be < Dlo and <= D/2). With Dlo 2 it can be
 * 1: at least one mesh link is one we dialled, so inbound connections alone cannot fill our mesh.
 */
export const GOSSIP_DOUT = 1

/** Dscore: peers kept by score when pruning an oversubscribed mesh (default 4 of D=6, ~2/3 D; 2 of 3). */
export const GOSSIP_DSCORE = 2

/**
 * How many heartbeats of message ids each IHAVE advertises (gossipsub's mcacheGossip, default 3). IHAVE
 * goes every heartbeat to up to Dlazy peers outside the mesh, so with the default each id is announced
 * three times to each of them: at 200 one-write batches/s, ~600 ids of 22 bytes per IHAVE. One
 * heartbeat announces each id once (N=8: ~10 % fewer bytes per reader, docs/performance.md); anti-entropy
 * repairs whatever gossip misses.
 */
export const GOSSIP_HISTORY_GOSSIP = 1

/**
 * Heartbeat interval: gossipsub's default, 1 s (the spec's value). Mesh repair and IHAVE gossip run on
 * it; a faster heartbeat only costs CPU on a 2-core box, and anti-entropy covers what gossip misses.
 */
export const GOSSIP_HEARTBEAT_MS = 1_000

/**
 * How often connected peers are checked for a gossip link gossipsub silently dropped (it forgets a
 * peer whose frame it could not decode, e.g. one over our size limit, but leaves the connection
 * open). Two misses in a row close the connection so the peer can reconnect cleanly.
 */
export const GOSSIP_LINK_CHECK_MS = 5_000

/**
 * Largest message data we publish or accept. A gossip message is a batch of deltas coalesced up to a
 * size bound, so 1 MiB is generous; larger state moves by the sync protocol, not gossip.
 * gossipsub's own default is 4 MiB for the whole RPC frame (it-length-prefixed default).
 */
export const MAX_MESSAGE_BYTES = 1024 * 1024

/** Slack on top of MAX_MESSAGE_BYTES for the RPC frame: protobuf framing, the topic, control messages. */
export const RPC_FRAME_OVERHEAD_BYTES = 64 * 1024

/**
 * Decode limits for one inbound gossipsub RPC (protobuf). gossipsub's defaults are 5000 of each, sized
 * for Ethereum; the 2024-25 advisories show what unbounded or large counts cost (heap growth from one
 * frame). A small mesh with a handful of namespaces needs far less. IHAVE/IWANT bounds are kept at the
 * gossipsub spec's GossipsubMaxIHaveLength (5000) order of magnitude /10 since our message rate is low.
 */
export const DECODE_MAX_SUBSCRIPTIONS = 256
export const DECODE_MAX_MESSAGES = 256
export const DECODE_MAX_IHAVE_IDS = 500
export const DECODE_MAX_IWANT_IDS = 500
/** gossipsub's GossipsubIdontwantMaxMessages. */
export const DECODE_MAX_IDONTWANT_IDS = 512
export const DECODE_MAX_CONTROL_MESSAGES = 256
/** gossipsub's GossipsubPrunePeers (PX peer infos in one PRUNE). */
export const DECODE_MAX_PEER_INFOS = 16

/**
 * Per-peer budget for topic subscriptions gossipsub tracks (it charges topic length + ~1 KiB each;
 * default 1 MiB ≈ 1000 topics). 256 KiB ≈ 250 namespaces per peer: above any real mesh, far below a
 * memory problem.
 */
export const MAX_TOPIC_BYTES_PER_PEER = 256 * 1024

/**
 * Length of the content-derived message id: the first 20 bytes of SHA-256(topic ‖ 0x00 ‖ data).
 * 160 bits keep accidental collisions out of reach (birthday bound 2^80) and, unlike a fast
 * non-cryptographic hash, a peer cannot craft data that collides with another peer's message to get it
 * dropped as a duplicate. Shorter than the default 32-byte id: every IHAVE/IWANT carries these.
 */
export const MESSAGE_ID_BYTES = 20

/**
 * Topic name limits: `hearsay/<mesh>/<namespace>/v<n>`. Mesh and namespace names are 1-64 characters of
 * [A-Za-z0-9._-] so a topic is at most ~140 bytes and needs no escaping anywhere (logs, metrics labels).
 */
export const TOPIC_PREFIX = 'hearsay'
export const MAX_NAME_LENGTH = 64

// ---- peer exchange --------------------------------------------------------------------------------

/** Protocol id of the peer-exchange protocol (ours; libp2p 3 ships no peer exchange for TCP meshes). */
export const PEER_EXCHANGE_PROTOCOL = '/hearsay/peers/1.0.0'

/**
 * Peers listed in one exchange frame. A small mesh is fully described by 32 peers; a big one still
 * converges because every connect exchanges a different sample.
 */
export const PEX_MAX_PEERS = 32

/** Addresses per listed peer: a host has loopback, LAN, maybe a public v4 and a v6 or two. */
export const PEX_MAX_ADDRS_PER_PEER = 8

/** Longest multiaddr string we accept in a frame (a /dns4/.../tcp/.../p2p/... address is ~120 chars). */
export const PEX_MAX_ADDR_CHARS = 256

/** Bound on one exchange frame: 32 peers × 8 addrs × ~100 chars of JSON fits in well under 32 KiB. */
export const PEX_MAX_FRAME_BYTES = 32 * 1024

/** One exchange (open stream, write, read, close) must finish in this; it is one small frame. */
export const PEX_TIMEOUT_MS = 5_000

/** New peers dialled from one received frame: bounded so a hostile peer cannot make us dial a crowd. */
export const PEX_MAX_DIALS_PER_FRAME = 8

/**
 * Re-exchange with one random connected peer this often, so a peer that joined after our last
 * connect still reaches everyone. Only a sample is sent, so this is cheap.
 */
export const PEX_INTERVAL_MS = 30_000

/**
 * Streams of our small protocols per connection: one exchange at a time per direction is the protocol;
 * 2 leaves room for an overlap when a periodic exchange meets an on-connect one.
 */
export const PEX_MAX_STREAMS = 2

// ---- reconnect ------------------------------------------------------------------------------------

/** First redial delay after a disconnect (libp2p's reconnectRetryInterval default is 1 s too). */
export const REDIAL_BASE_MS = 1_000

/**
 * Cap on the redial delay. libp2p's own reconnect queue doubles without a cap and gives up after
 * 5 tries (~31 s); an edge peer that sleeps for minutes must still be found again, so we cap at 60 s and
 * keep trying for REDIAL_MAX_ATTEMPTS.
 */
export const REDIAL_MAX_MS = 60_000

/** Redial attempts before a peer is forgotten: 1+2+4+...+32 s then 60 s steps ≈ 15 minutes. */
export const REDIAL_MAX_ATTEMPTS = 20

/** ±20 % jitter on each delay, so peers that lost the same hub do not redial it in lockstep. */
export const REDIAL_JITTER = 0.2

/** Known peers we remember for redial; the oldest non-connected ones are forgotten first. */
export const MAX_KNOWN_PEERS = 128

// ---- misc -----------------------------------------------------------------------------------------

/** Default timeout for ping when the caller gives no signal (libp2p ping's own default is 10 s). */
export const PING_TIMEOUT_MS = 5_000

/** Default timeout for opening a stream when the caller gives no signal. */
export const OPEN_STREAM_TIMEOUT_MS = 10_000

// ---- scoring and liveness -------------------------------------------------------------------------

/**
 * Peer-score penalty per invalid (validator: 'reject') message on a namespace topic, squared by
 * gossipsub (P4 = count²). With gossipsub's default thresholds (gossip -10, publish -50, graylist -80):
 * 1 rejected message costs -5, 2 cost -20 (no more gossip to that peer), 4 cost -80 (its RPCs are
 * ignored). Without topic score params gossipsub drops a rejected message but penalises nobody.
 */
export const INVALID_MESSAGE_WEIGHT = -5

/** Decay of the invalid-message counter per score decay interval (1 s): half-life ≈ 69 s. */
export const INVALID_MESSAGE_DECAY = 0.99

/**
 * Minimum timeout of libp2p's connection monitor ping (it pings every connection every 10 s and
 * aborts the connection when a ping fails). Its default minimum is 5 s; many nodes on 2 cores can stall
 * that long, and declaring a busy peer dead too eagerly drops good connections, so we double it.
 */
export const CONNECTION_MONITOR_MIN_TIMEOUT_MS = 10_000

/** The same with `loopbackTesting`, where dozens of nodes share one CPU. */
export const LOOPBACK_CONNECTION_MONITOR_MIN_TIMEOUT_MS = 30_000

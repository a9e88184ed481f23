/** Pure helpers of the dashboard: no DOM, no network. */

/** `12D3KooWAbc…xyz9` → `…xyz9` style short form that still tells peers apart. */
export function shortId(peerId) {
  if (typeof peerId !== 'string') return '?'
  return peerId.length <= 14 ? peerId : `${peerId.slice(0, 6)}…${peerId.slice(-6)}`
}

/** "3 s ago", "4 min ago", … for an ISO time or epoch milliseconds; "never" for none. */
export function ago(when, now = Date.now()) {
  if (when === undefined || when === null) return 'never'
  const ms = now - (typeof when === 'number' ? when : Date.parse(when))
  if (!Number.isFinite(ms)) return '?'
  if (ms < 1500) return 'just now'
  if (ms < 90_000) return `${Math.round(ms / 1000)} s ago`
  if (ms < 5_400_000) return `${Math.round(ms / 60_000)} min ago`
  if (ms < 129_600_000) return `${Math.round(ms / 3_600_000)} h ago`
  return `${Math.round(ms / 86_400_000)} d ago`
}

export function bytes(count) {
  if (!Number.isFinite(count)) return '?'
  if (count < 1024) return `${Math.round(count)} B`
  if (count < 1024 * 1024) return `${(count / 1024).toFixed(1)} KiB`
  return `${(count / 1024 / 1024).toFixed(1)} MiB`
}

/**
 * The samples of a Prometheus text exposition: `[{name, labels, value}]`. Comments, and lines that
 * do not parse, are skipped.
 */
export function parseMetrics(text) {
  const samples = []
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)/.exec(line)
    if (match === null) continue
    const labels = {}
    for (const pair of (match[3] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g))
      labels[pair[1]] = pair[2]
    const value = Number(match[4])
    if (Number.isFinite(value)) samples.push({ name: match[1], labels, value })
  }
  return samples
}

/** The sum of a metric's samples whose labels include `where`. */
export function total(samples, name, where = {}) {
  let sum = 0
  for (const sample of samples) {
    if (sample.name !== name) continue
    if (Object.entries(where).every(([label, value]) => sample.labels[label] === value)) sum += sample.value
  }
  return sum
}

/** The counters the dashboard turns into rates, read from one scrape. */
export function meshTotals(samples) {
  return {
    syncCompleted: total(samples, 'hearsay_sync_rounds_total', { outcome: 'completed' }),
    syncFailed: total(samples, 'hearsay_sync_rounds_total', { outcome: 'failed' }),
    gossipPublished: total(samples, 'hearsay_gossip_messages_total', { direction: 'published' }),
    gossipReceived: total(samples, 'hearsay_gossip_messages_total', { direction: 'received' }),
    gossipRejected: total(samples, 'hearsay_gossip_messages_total', { direction: 'rejected' }),
    bytesSent: total(samples, 'hearsay_protocol_bytes_total', { direction: 'sent' }),
    bytesReceived: total(samples, 'hearsay_protocol_bytes_total', { direction: 'received' }),
    mergedEntries: total(samples, 'hearsay_merged_entries_total'),
  }
}

/**
 * Per-second rates between two scrapes `{at, totals}`; undefined until there are two. A counter that
 * went down (the daemon restarted) gives no rate rather than a negative one.
 */
export function rates(previous, current) {
  if (previous === undefined || current === undefined) return undefined
  const seconds = (current.at - previous.at) / 1000
  if (!(seconds > 0)) return undefined
  const out = {}
  for (const [name, value] of Object.entries(current.totals)) {
    const before = previous.totals[name]
    out[name] = before === undefined || value < before ? undefined : (value - before) / seconds
  }
  return { seconds, perSecond: out }
}

/**
 * The peer graph as positions in a `size`×`size` box: this peer in the middle, the others on a
 * circle around it. A hub client draws its hubs as hubs; a hub draws its peers as clients.
 */
export function layoutGraph({ selfId, topology, hubIds = [], peers }, size = 360) {
  const center = size / 2
  const radius = size / 2 - 48
  const nodes = [{ id: selfId, x: center, y: center, role: topology === 'hub' ? 'hub' : 'self', self: true }]
  const sorted = [...peers].sort((a, b) => a.peerId.localeCompare(b.peerId))
  sorted.forEach((peer, index) => {
    const angle = -Math.PI / 2 + (2 * Math.PI * index) / Math.max(sorted.length, 1)
    const role = hubIds.includes(peer.peerId) ? 'hub' : topology === 'hub' ? 'client' : 'peer'
    nodes.push({
      id: peer.peerId,
      x: center + radius * Math.cos(angle),
      y: center + radius * Math.sin(angle),
      role,
      connected: peer.connected === true,
      lag: peer.lag,
    })
  })
  const edges = nodes.slice(1).map((node) => ({ from: nodes[0], to: node, connected: node.connected }))
  return { nodes, edges, size }
}

/** The hub peer ids named by `/p2p/<id>` in hub addresses. */
export function hubPeerIds(addresses = []) {
  return addresses.map((address) => /\/p2p\/([^/]+)$/.exec(address)?.[1]).filter((id) => id !== undefined)
}

/**
 * Content types a web page may not send when it changes data (what an HTML form can send); the API
 * refuses them from a page (docs/api.md, FORBIDDEN_ORIGIN).
 */
const FORM_TYPES = new Set(['', 'application/x-www-form-urlencoded', 'multipart/form-data', 'text/plain'])

export function writableFromPage(contentType) {
  return !FORM_TYPES.has((contentType ?? '').split(';')[0].trim().toLowerCase())
}

/** The bytes (or text) of a sibling as the API described it, to write it back as the value. */
export function siblingBody(sibling) {
  if (sibling.encoding === 'json') return JSON.stringify(sibling.value)
  if (sibling.encoding === 'utf8') return sibling.value
  const raw = atob(sibling.value)
  const out = new Uint8Array(raw.length)
  for (let i = 0; i < raw.length; i++) out[i] = raw.charCodeAt(i)
  return out
}

/** The command that keeps sibling `index` (numbered from 1, as `?siblings=1` lists them). */
export function resolveCommand(ns, key, index) {
  const quoted = `'${key.replaceAll("'", `'\\''`)}'`
  return `hearsay resolve ${quoted} --pick ${index + 1}${ns === 'default' ? '' : ` -n ${ns}`}`
}

/** A value as short display text. */
export function showValue(encoding, value, limit = 400) {
  const text =
    encoding === 'json'
      ? JSON.stringify(value, null, 1)
      : encoding === 'base64'
        ? `(binary, base64) ${value}`
        : String(value)
  return text.length > limit ? `${text.slice(0, limit)}…` : text
}

/** Keeps the newest `limit` items, newest first. */
export function prepend(list, item, limit) {
  const next = [item, ...list]
  return next.length > limit ? next.slice(0, limit) : next
}

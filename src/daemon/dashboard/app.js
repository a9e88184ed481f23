import htm from 'htm'
import { h, render } from 'preact'
import { useEffect, useMemo, useRef, useState } from 'preact/hooks'
import { ApiError, getJson, getJsonIfPresent, getText, keyPath, nsPath, openStream, putValue } from './api.js'
import {
  ago,
  bytes,
  hubPeerIds,
  layoutGraph,
  meshTotals,
  parseMetrics,
  prepend,
  rates,
  resolveCommand,
  shortId,
  showValue,
  siblingBody,
  writableFromPage,
} from './model.js'

/**
 * The hearsay dashboard: one page over the HTTP API. Everything live comes from Server-Sent Events
 * (the namespace's watch stream and the daemon's event stream); reads are made when an event says
 * something changed, never on a timer loop.
 */

const html = htm.bind(h)
const LOG_LIMIT = 60
const PAGE_SIZE = 50
/** Without a conflicts endpoint, conflicts are found by listing: at most this many pages of keys. */
const SCAN_PAGES = 5
const SCAN_PAGE_SIZE = 1000
const METRICS_MIN_GAP_MS = 2000
const REFRESH_DELAY_MS = 250

function errorText(error) {
  if (error instanceof ApiError) return `${error.code}: ${error.message}`
  return error?.message ?? String(error)
}

/**
 * Runs `task` once, `delayMs` after the first call of a burst: events in a burst cost one read.
 * `cancel()` drops a pending run (a view that now shows something else).
 */
function coalesced(task, delayMs) {
  let timer
  const run = () => {
    if (timer !== undefined) return
    timer = setTimeout(() => {
      timer = undefined
      void task()
    }, delayMs)
  }
  run.cancel = () => {
    clearTimeout(timer)
    timer = undefined
  }
  return run
}

/** Subscribes a coalesced `load` to reloads of keys that `wanted(key)` accepts; returns the cleanup. */
function reloadOn(actions, load, wanted) {
  const reload = coalesced(load, REFRESH_DELAY_MS)
  const stop = actions.onReload((key) => {
    if (key === undefined || wanted(key)) reload()
  })
  return () => {
    stop()
    reload.cancel()
  }
}

function useDashboard() {
  const [state, setState] = useState({
    link: 'connecting',
    status: undefined,
    peers: [],
    namespaces: [],
    ns: undefined,
    replication: undefined,
    replicationAvailable: true,
    events: [],
    eventsAvailable: true,
    quietSyncs: 0,
    changes: [],
    rates: undefined,
    conflicts: [],
    conflictsSource: undefined,
    error: undefined,
  })
  const update = (patch) => setState((previous) => ({ ...previous, ...patch }))
  const current = useRef(state)
  current.current = state
  const scrape = useRef({ previous: undefined, last: undefined, at: 0, timer: undefined })
  const listeners = useRef(new Set())

  const actions = useMemo(() => {
    async function loadSystem() {
      try {
        const [status, peers, namespaces] = await Promise.all([
          getJson('/v1/status'),
          getJson('/v1/peers'),
          getJson('/v1/ns'),
        ])
        const names = namespaces.namespaces.map((ns) => ns.name).sort()
        const chosen = current.current.ns
        update({
          status,
          peers: peers.peers,
          namespaces: names,
          ns: chosen !== undefined && names.includes(chosen) ? chosen : (names[0] ?? chosen),
          error: undefined,
        })
      } catch (error) {
        update({ error: errorText(error) })
      }
    }

    async function loadReplication() {
      const ns = current.current.ns
      if (ns === undefined) return
      try {
        const replication = await getJsonIfPresent(`${nsPath(ns)}/replication`)
        update({ replication, replicationAvailable: replication !== undefined })
      } catch (error) {
        update({ replication: undefined, error: errorText(error) })
      }
    }

    async function loadConflicts() {
      const ns = current.current.ns
      if (ns === undefined) return
      try {
        const page = await getJsonIfPresent(`${nsPath(ns)}/conflicts?limit=100`)
        if (page !== undefined) {
          const conflicts = page.conflicts.map((c) => ({
            key: c.key,
            siblings: Array.isArray(c.siblings) ? c.siblings.length : c.siblings,
          }))
          update({ conflicts, conflictsSource: page.cursor ? 'endpoint-more' : 'endpoint' })
          return
        }
        // An older daemon: find keys with siblings by listing (bounded).
        const conflicts = []
        let cursor
        let pages = 0
        do {
          const query = `?values=0&limit=${SCAN_PAGE_SIZE}${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`
          const listing = await getJson(`${nsPath(ns)}/kv${query}`)
          for (const item of listing.items)
            if (item.siblings > 1) conflicts.push({ key: item.key, siblings: item.siblings })
          cursor = listing.cursor
          pages++
        } while (cursor !== undefined && pages < SCAN_PAGES)
        update({ conflicts, conflictsSource: cursor === undefined ? 'scan' : 'scan-partial' })
      } catch (error) {
        update({ error: errorText(error) })
      }
    }

    async function loadMetrics() {
      const sampler = scrape.current
      const wait = sampler.at + METRICS_MIN_GAP_MS - Date.now()
      if (wait > 0) {
        sampler.timer ??= setTimeout(() => {
          sampler.timer = undefined
          void loadMetrics()
        }, wait)
        return
      }
      sampler.at = Date.now()
      try {
        const sample = { at: Date.now(), totals: meshTotals(parseMetrics(await getText('/metrics'))) }
        sampler.previous = sampler.last
        sampler.last = sample
        update({ rates: { totals: sample.totals, ...rates(sampler.previous, sample) } })
      } catch (error) {
        update({ error: errorText(error) })
      }
    }

    const refreshSystem = coalesced(async () => {
      await loadSystem()
      await loadReplication()
      await loadMetrics()
    }, REFRESH_DELAY_MS)
    const refreshConflicts = coalesced(loadConflicts, REFRESH_DELAY_MS)

    return {
      loadSystem,
      loadReplication,
      loadConflicts,
      loadMetrics,
      refreshSystem,
      refreshConflicts,
      async refreshAll() {
        await loadSystem()
        await Promise.all([loadReplication(), loadConflicts(), loadMetrics()])
        for (const listener of listeners.current) listener()
      },
      /** Other views hear "reload": after a reconnect, or a change they show. */
      onReload(listener) {
        listeners.current.add(listener)
        return () => listeners.current.delete(listener)
      },
    }
  }, [])

  // The daemon's event stream: peers and sync sessions.
  useEffect(() => {
    const stream = openStream('/v1/events', {
      events: [
        'ready',
        'peer-connected',
        'peer-disconnected',
        'sync-started',
        'sync-completed',
        'sync-failed',
      ],
      onState: (streamState) => {
        if (streamState === 'missing') update({ eventsAvailable: false })
        else if (streamState === 'open') {
          update({ eventsAvailable: true })
          // With no namespace to watch, this stream alone tells whether the daemon is there.
          if (current.current.link === 'offline' && current.current.ns === undefined) {
            update({ link: 'live' })
            void actions.refreshAll()
          }
        } else if (current.current.ns === undefined) update({ link: 'offline' })
      },
      onEvent: (type, data) => {
        if (type === 'ready' || type === 'sync-started') return
        if (type === 'sync-completed' && data.equal) {
          // Anti-entropy rounds that found nothing to exchange (every few seconds per peer) are
          // counted, not logged: they would push connections and failures out of the log.
          update({ quietSyncs: current.current.quietSyncs + 1 })
        } else update({ events: prepend(current.current.events, { type, ...data }, LOG_LIMIT) })
        actions.refreshSystem()
      },
    })
    return () => stream.close()
  }, [])

  // The watch stream of the namespace on show: changes, conflicts, and whether the daemon is there.
  useEffect(() => {
    let wasOffline = false
    const ns = state.ns
    if (ns === undefined) {
      void actions.refreshAll().then(() => {
        if (current.current.error === undefined) update({ link: 'live' })
        else update({ link: 'offline' })
      })
      return undefined
    }
    update({ changes: [], replication: undefined, conflicts: [] })
    const stream = openStream(`${nsPath(ns)}/watch?since=now`, {
      events: ['ready', 'change', 'conflict', 'reset', 'overflow', 'shutdown', 'left'],
      resume: (id) => `${nsPath(ns)}/watch?since=${encodeURIComponent(id)}`,
      onState: (streamState) => {
        if (streamState === 'open') {
          update({ link: 'live', error: undefined })
          if (wasOffline) void actions.refreshAll()
          wasOffline = false
        } else {
          wasOffline = true
          update({ link: streamState === 'missing' ? 'missing' : 'offline' })
        }
      },
      onEvent: (type, data) => {
        if (type === 'ready' || type === 'reset') {
          void actions.refreshAll()
          return
        }
        if (type !== 'change' && type !== 'conflict') return
        const change = { type, at: Date.now(), ...data }
        update({ changes: prepend(current.current.changes, change, LOG_LIMIT) })
        const conflicts = current.current.conflicts
        const listed = conflicts.some((c) => c.key === data.key)
        const many = (data.siblings ?? 1) > 1
        if (many && !listed) update({ conflicts: [...conflicts, { key: data.key, siblings: data.siblings }] })
        else if (!many && listed) update({ conflicts: conflicts.filter((c) => c.key !== data.key) })
        // Any write moves the lag per peer and the rates: read them again (coalesced).
        actions.refreshSystem()
        for (const listener of listeners.current) listener(data.key)
      },
    })
    return () => stream.close()
  }, [state.ns])

  return { state, update, actions }
}

// ---- views ------------------------------------------------------------------------------------

function LinkBadge({ link }) {
  const text = {
    connecting: 'connecting…',
    live: 'live',
    offline: 'daemon not answering: reconnecting…',
    missing: 'namespace not found',
  }[link]
  return html`<span id="link" class=${`badge link-${link}`} data-state=${link}>${text}</span>`
}

function SelfView({ status }) {
  if (status === undefined) return html`<section class="card" id="self"><h2>This peer</h2><p>…</p></section>`
  return html`<section class="card" id="self">
    <h2>This peer</h2>
    <dl>
      <dt>peer id</dt><dd class="mono" data-self=${status.peerId}>${status.peerId}</dd>
      <dt>version</dt><dd>${status.version}</dd>
      <dt>topology</dt><dd>${status.topology}${status.mesh.hubs.length ? ` (hubs: ${status.mesh.hubs.length})` : ''}</dd>
      <dt>mesh</dt><dd>${status.mesh.name}${status.mesh.private.swarmKey ? ' · private' : ' · open'}${status.mesh.attached ? '' : ' · not attached'}</dd>
      <dt>peers</dt><dd>${status.peers.connected} connected of ${status.peers.known} known</dd>
      <dt>started</dt><dd>${ago(status.startedAt)}</dd>
      <dt>store</dt><dd>${bytes(status.store.sizeBytes ?? status.store.bytes)}</dd>
      <dt>addresses</dt><dd class="mono small">${status.mesh.addresses.map((a) => html`<div>${a}</div>`)}</dd>
    </dl>
  </section>`
}

function MeshGraph({ status, peers, lagByPeer }) {
  if (status === undefined) return null
  const graph = layoutGraph({
    selfId: status.peerId,
    topology: status.topology,
    hubIds: hubPeerIds(status.mesh.hubs),
    peers: peers.map((p) => ({ ...p, lag: lagByPeer.get(p.peerId) })),
  })
  return html`<svg class="graph" viewBox=${`0 0 ${graph.size} ${graph.size}`} role="img" aria-label="peers">
    ${graph.edges.map(
      (edge) => html`<g>
        <line x1=${edge.from.x} y1=${edge.from.y} x2=${edge.to.x} y2=${edge.to.y}
          class=${edge.connected ? 'edge up' : 'edge down'} />
        ${
          edge.to.lag &&
          html`<text class="lag" x=${(edge.from.x + edge.to.x) / 2 + 6} y=${(edge.from.y + edge.to.y) / 2 - 4}>
            ${`↑${edge.to.lag.theyLack ?? '?'} ↓${edge.to.lag.weLack ?? '?'}`}</text>`
        }
      </g>`,
    )}
    ${graph.nodes.map(
      (node) => html`<g class=${`node ${node.role} ${node.self || node.connected ? 'up' : 'down'}`}
        data-graph-peer=${node.id}>
        <circle cx=${node.x} cy=${node.y} r=${node.self ? 22 : 16} />
        <text x=${node.x} y=${node.y + (node.self ? 36 : 30)}>${node.self ? 'this peer' : shortId(node.id)}</text>
        ${node.role !== 'peer' && node.role !== 'self' && html`<text class="role" x=${node.x} y=${node.y + 4}>${node.role}</text>`}
      </g>`,
    )}
  </svg>`
}

function PeerTable({ peers, lagByPeer, replicationAvailable }) {
  if (peers.length === 0) return html`<p class="empty">No other peer known yet.</p>`
  return html`<table class="peers">
    <thead><tr><th>peer</th><th>state</th><th>rtt</th><th>last seen</th>
      ${replicationAvailable && html`<th title="writes of ours it lacks">they lack</th><th title="writes of theirs we lack">we lack</th><th>last sync</th><th>last failure</th>`}
    </tr></thead>
    <tbody>
      ${peers.map((peer) => {
        const lag = lagByPeer.get(peer.peerId)
        return html`<tr data-peer=${peer.peerId} data-connected=${String(peer.connected)}>
          <td class="mono" title=${peer.peerId}>${shortId(peer.peerId)}</td>
          <td><span class=${`dot ${peer.connected ? 'up' : 'down'}`}></span>${lag?.connection?.state ?? (peer.connected ? 'connected' : 'not connected')}</td>
          <td>${typeof (peer.rttMs ?? lag?.rttMs) === 'number' ? `${Math.round(peer.rttMs ?? lag.rttMs)} ms` : ''}</td>
          <td>${peer.connected ? 'now' : ago(peer.lastSeenAt)}</td>
          ${
            replicationAvailable &&
            html`<td class=${lag?.theyLack > 0 ? 'warn' : ''} data-they-lack=${lag?.theyLack ?? ''}>${lagText(lag, 'theyLack')}</td>
              <td class=${lag?.weLack > 0 ? 'warn' : ''} data-we-lack=${lag?.weLack ?? ''}>${lagText(lag, 'weLack')}</td>
              <td>${lag?.lastSync ? html`${ago(lag.lastSync.at)} <span class="small">(${lag.lastSync.reason ?? ''}, ${ms(lag.lastSync.durationMs)}, ${bytes((lag.lastSync.bytesSent ?? 0) + (lag.lastSync.bytesReceived ?? 0))})</span>` : ''}</td>
              <td class="small">${describeFailure(lag?.lastSyncFailure ?? lag?.connection?.lastFailure)}</td>`
          }
        </tr>`
      })}
    </tbody>
  </table>`
}

/** A duration in milliseconds, to the precision that matters. */
function ms(value) {
  if (typeof value !== 'number') return '? ms'
  return value < 10 ? `${value.toFixed(1)} ms` : `${Math.round(value)} ms`
}

/** A lag count; `?` when its context is not known yet (no sync or gossip from it so far). */
function lagText(lag, field) {
  if (lag === undefined) return ''
  return lag[field] === null ? '?' : String(lag[field])
}

function describeFailure(failure) {
  if (failure === undefined || failure === null) return ''
  if (typeof failure === 'string') return failure
  return `${failure.reason ?? failure.message ?? ''}${failure.at ? ` (${ago(failure.at)})` : ''}`
}

function RatesView({ rates: measured }) {
  const per = measured?.perSecond
  const show = (value, unit = '/s') =>
    value === undefined ? '–' : `${value < 10 ? value.toFixed(2) : Math.round(value)}${unit}`
  return html`<section class="card" id="rates">
    <h2>Sync and gossip</h2>
    <table class="rates">
      <thead><tr><th></th><th>total</th><th>rate</th></tr></thead>
      <tbody>
        ${[
          ['sync sessions', 'syncCompleted'],
          ['sync failures', 'syncFailed'],
          ['gossip published', 'gossipPublished'],
          ['gossip received', 'gossipReceived'],
          ['gossip rejected', 'gossipRejected'],
          ['entries merged', 'mergedEntries'],
        ].map(
          ([label, name]) => html`<tr data-metric=${name} data-total=${measured?.totals?.[name] ?? ''}>
            <td>${label}</td><td>${measured?.totals?.[name] ?? '–'}</td><td>${show(per?.[name])}</td></tr>`,
        )}
        <tr data-metric="bytes"><td>bytes sent / received</td>
          <td>${measured ? `${bytes(measured.totals.bytesSent)} / ${bytes(measured.totals.bytesReceived)}` : '–'}</td>
          <td>${per ? `${bytes(per.bytesSent ?? 0)}/s / ${bytes(per.bytesReceived ?? 0)}/s` : '–'}</td></tr>
      </tbody>
    </table>
    <p class="small">From <a href="/metrics">/metrics</a>, read again when events arrive (at most every ${METRICS_MIN_GAP_MS / 1000} s).</p>
  </section>`
}

function EventsView({ events, available, quietSyncs }) {
  return html`<section class="card" id="events">
    <h2>Events</h2>
    ${quietSyncs > 0 && html`<p class="small" id="quiet-syncs">${quietSyncs} sync round${quietSyncs === 1 ? '' : 's'} found both sides equal (not listed).</p>`}
    ${!available && html`<p class="empty">This daemon has no event stream (/v1/events).</p>`}
    ${available && events.length === 0 && html`<p class="empty">No peer or sync event since the page opened.</p>`}
    <ul class="log">
      ${events.map(
        (event) => html`<li data-event=${event.type}>
          <span class="time">${new Date(event.at ?? Date.now()).toLocaleTimeString()}</span>
          <span class=${`tag ${event.type}`}>${event.type}</span>
          <span class="mono">${shortId(event.peerId)}</span>
          ${event.namespace && html` <span>${event.namespace}</span>`}
          ${event.reason && html` <span class="small">${event.reason}</span>`}
          ${event.type === 'sync-completed' && html` <span class="small">${ms(event.durationMs)}, ${event.entriesReceived ?? 0} entries in</span>`}
          ${event.error && html` <span class="small error">${event.error}</span>`}
        </li>`,
      )}
    </ul>
  </section>`
}

function ChangesView({ changes, onPick }) {
  return html`<section class="card" id="changes">
    <h2>Live changes</h2>
    ${changes.length === 0 && html`<p class="empty">Waiting for changes…</p>`}
    <ul class="log">
      ${changes.map(
        (change) => html`<li data-change-key=${change.key} data-origin=${change.origin}>
          <span class="time">${new Date(change.at).toLocaleTimeString()}</span>
          <span class=${`tag ${change.origin}`}>${change.origin}</span>
          <a href="#" onClick=${(e) => {
            e.preventDefault()
            onPick(change.key)
          }}>${change.key}</a>
          <span class="small">${change.type === 'conflict' ? 'conflict' : change.op}</span>
          ${change.siblings > 1 && html`<span class="tag conflict">${change.siblings} siblings</span>`}
          ${change.op === 'put' && change.value !== undefined && html`<span class="value small">${showValue(change.encoding, change.value, 80)}</span>`}
          ${change.type === 'counter' && html`<span class="value small">${change.value}</span>`}
          ${change.type === 'set' && html`<span class="value small">${change.element}</span>`}
        </li>`,
      )}
    </ul>
  </section>`
}

function KeysView({ ns, onPick, selected, actions }) {
  const [prefix, setPrefix] = useState('')
  const [applied, setApplied] = useState('')
  const [cursors, setCursors] = useState([undefined])
  const [page, setPage] = useState({ items: [], cursor: undefined })
  const [error, setError] = useState(undefined)
  const cursor = cursors[cursors.length - 1]
  const latest = useRef(0)

  const load = async () => {
    // Only the newest request's answer is shown: an older one may arrive last.
    const mine = ++latest.current
    try {
      // Without values: a page of large values would cost megabytes on every change; a key's value
      // is read when it is opened.
      const query = new URLSearchParams({ prefix: applied, limit: String(PAGE_SIZE), values: '0' })
      if (cursor !== undefined) query.set('cursor', cursor)
      const listing = await getJson(`${nsPath(ns)}/kv?${query}`)
      if (mine !== latest.current) return
      setPage({ items: listing.items, cursor: listing.cursor })
      setError(undefined)
    } catch (failure) {
      if (mine === latest.current) setError(errorText(failure))
    }
  }
  useEffect(() => {
    void load()
  }, [ns, applied, cursor])
  // Changes to keys of this listing (or new keys) are read again, coalesced.
  useEffect(() => reloadOn(actions, load, (key) => key.startsWith(applied)), [ns, applied, cursor])

  return html`<div class="keys">
    <form onSubmit=${(e) => {
      e.preventDefault()
      setApplied(prefix)
      setCursors([undefined])
    }}>
      <input id="prefix" placeholder="key prefix" value=${prefix} onInput=${(e) => setPrefix(e.target.value)} />
      <button type="submit">Filter</button>
    </form>
    ${error && html`<p class="error">${error}</p>`}
    ${page.items.length === 0 && !error && html`<p class="empty">No keys${applied ? ` under "${applied}"` : ''}.</p>`}
    <ul class="key-list">
      ${page.items.map(
        (item) => html`<li data-key=${item.key} class=${item.key === selected ? 'selected' : ''}>
          <a href="#" onClick=${(e) => {
            e.preventDefault()
            onPick(item.key)
          }}>${item.key}</a>
          ${item.siblings > 1 && html`<span class="tag conflict">${item.siblings} siblings</span>`}
          <span class="small">${item.contentType} · ${ago(item.writtenAt)}</span>
        </li>`,
      )}
    </ul>
    <div class="pager">
      <button disabled=${cursors.length === 1} onClick=${() => setCursors([undefined])}>First</button>
      <button disabled=${cursors.length === 1} onClick=${() => setCursors(cursors.slice(0, -1))}>Previous</button>
      <span class="small">page ${cursors.length}</span>
      <button id="next-page" disabled=${page.cursor === undefined} onClick=${() => setCursors([...cursors, page.cursor])}>Next</button>
    </div>
  </div>`
}

function KeyDetail({ ns, keyName, actions, onResolved }) {
  const [read, setRead] = useState(undefined)
  const [explain, setExplain] = useState(undefined)
  const [message, setMessage] = useState(undefined)
  const latest = useRef(0)

  const load = async (keepMessage = false) => {
    const mine = ++latest.current
    let siblings
    let failure
    try {
      siblings = await getJson(`${keyPath(ns, keyName)}?siblings=1`)
    } catch (error) {
      failure = errorText(error)
    }
    const explained = await loadExplain(ns, keyName)
    if (mine !== latest.current) return
    setRead(siblings)
    setExplain(explained)
    if (failure !== undefined) setMessage(failure)
    else if (!keepMessage) setMessage(undefined)
  }
  useEffect(() => {
    setRead(undefined)
    setExplain(undefined)
    void load()
    return reloadOn(actions, load, (key) => key === keyName)
  }, [ns, keyName])

  const keep = async (sibling) => {
    try {
      await putValue(ns, keyName, siblingBody(sibling), sibling.contentType, read.etag)
      setMessage(`Kept the value written by ${shortId(sibling.replica.split('~')[0])}.`)
      await load(true)
      onResolved()
    } catch (error) {
      setMessage(
        error instanceof ApiError && error.status === 412
          ? 'The key changed since it was read: look again and choose.'
          : errorText(error),
      )
      await load(true)
    }
  }

  return html`<div class="detail" data-detail=${keyName}>
    <h3 class="mono">${keyName}</h3>
    ${message && html`<p class="note" id="detail-message">${message}</p>`}
    ${
      read &&
      html`<p class="small">ETag <span class="mono">${read.etag}</span> · ${read.siblings.length} sibling${read.siblings.length === 1 ? '' : 's'}</p>
      ${read.siblings.length > 1 && html`<p class="warn">Concurrent writes: every sibling is kept until a write that has seen them all replaces them. Choose the value to keep.</p>`}
      <ol class="siblings">
        ${read.siblings.map((sibling, index) => {
          // The explanation lists siblings in its own order: match them by dot.
          const why = explain?.siblings?.find(
            (entry) => entry.dot?.replica === sibling.replica && entry.dot?.counter === sibling.counter,
          )
          return html`<li data-sibling=${index} class=${index === read.winner ? 'winner' : ''}>
            <div class="sibling-head">
              ${index === read.winner ? html`<span class="tag winner">shown</span>` : html`<span class="tag">sibling</span>`}
              <span class="mono small" title=${sibling.replica}>${shortId(sibling.replica.split('~')[0])}</span>
              <span class="small">${sibling.writtenAt} · ${sibling.contentType}</span>
            </div>
            <pre class="value">${showValue(sibling.encoding, sibling.value, 4000)}</pre>
            ${
              why &&
              html`<p class="small why">HLC ${why.hlc?.at ?? ''}${why.hlc?.logical ? ` +${why.hlc.logical}` : ''} · dot ${shortId(why.dot?.replica)}:${why.dot?.counter}${why.peerId ? ` · from ${shortId(why.peerId)}` : ''}
                ${why.heldBy?.length ? ` · held by ${why.heldBy.map(shortId).join(', ')}` : ''}
                ${why.notYetAt?.length ? ` · not yet at ${why.notYetAt.map(shortId).join(', ')}` : ''}</p>`
            }
            ${
              read.siblings.length > 1 &&
              (writableFromPage(sibling.contentType)
                ? html`<button class="keep" data-keep=${index} onClick=${() => keep(sibling)}>Keep this value</button>`
                : html`<p class="small" data-cli=${index}>A ${sibling.contentType} value cannot be written from a web page (the API refuses form content types from pages); keep it with <code>${resolveCommand(ns, keyName, index)}</code></p>`)
            }
          </li>`
        })}
      </ol>`
    }
    ${
      explain
        ? html`<div class="explain" id="explain"><h4>Why this value</h4>
          <p>${typeof explain.why === 'string' ? explain.why : JSON.stringify(explain.why)}</p>
          ${explain.tombstone && html`<p class="small">A delete is involved: by ${shortId(explain.tombstone.peerId)} at ${explain.tombstone.hlc?.at ?? '?'}${explain.tombstone.notYetAt?.length ? `, not yet at ${explain.tombstone.notYetAt.map(shortId).join(', ')}` : ''}.</p>`}
          ${explain.horizon && html`<p class="small">${explain.horizon.note ?? JSON.stringify(explain.horizon)}</p>`}</div>`
        : read && html`<p class="small">No explanation from this daemon (GET …/explain).</p>`
    }
  </div>`
}

async function loadExplain(ns, key) {
  try {
    const explained = await getJson(`${keyPath(ns, key)}/explain`)
    // An older daemon reads `<key>/explain` as a key of its own: only the explain shape counts.
    return Array.isArray(explained?.siblings) && 'why' in explained ? explained : undefined
  } catch {
    return undefined
  }
}

function ConflictsView({ conflicts, source, onPick }) {
  const note = {
    endpoint: '',
    'endpoint-more': 'The first 100 shown.',
    scan: 'Found by listing the keys (this daemon has no conflicts endpoint).',
    'scan-partial': `Found in the first ${SCAN_PAGES * SCAN_PAGE_SIZE} keys (this daemon has no conflicts endpoint).`,
  }[source ?? 'endpoint']
  return html`<section class="card" id="conflicts">
    <h2>Conflicts <span class="count">${conflicts.length}</span></h2>
    ${conflicts.length === 0 && html`<p class="empty" id="no-conflicts">No key has concurrent values.</p>`}
    <ul class="key-list">
      ${conflicts.map(
        (conflict) => html`<li data-conflict=${conflict.key}>
          <a href="#" onClick=${(e) => {
            e.preventDefault()
            onPick(conflict.key)
          }}>${conflict.key}</a> <span class="tag conflict">${conflict.siblings} siblings</span>
        </li>`,
      )}
    </ul>
    ${note && html`<p class="small">${note}</p>`}
  </section>`
}

function App() {
  const { state, update, actions } = useDashboard()
  const [selectedKey, setSelectedKey] = useState(undefined)
  const lagByPeer = useMemo(
    () => new Map((state.replication?.peers ?? []).map((p) => [p.peerId, p])),
    [state.replication],
  )
  // Peers the replication state knows of but /v1/peers does not list (forgotten connections) still show.
  const peers = useMemo(() => {
    const listed = new Set(state.peers.map((p) => p.peerId))
    const extra = (state.replication?.peers ?? [])
      .filter((p) => !listed.has(p.peerId))
      .map((p) => ({ peerId: p.peerId, connected: p.connected, lastSeenAt: p.lastContactAt }))
    return [...state.peers, ...extra]
  }, [state.peers, state.replication])

  return html`<div class="page">
    <header>
      <h1>hearsay</h1>
      <span class="mono">${state.status ? shortId(state.status.peerId) : ''}</span>
      <span>${state.status?.topology ?? ''}</span>
      <${LinkBadge} link=${state.link} />
      <button class="refresh" onClick=${() => actions.refreshAll()} title="read everything again">Refresh</button>
    </header>
    ${
      state.link === 'offline' &&
      html`<div class="banner" id="offline">The daemon at ${location.host} is not answering. The page reconnects by itself when it is back.</div>`
    }
    ${state.error && state.link !== 'offline' && html`<div class="banner error">${state.error}</div>`}
    <main>
      <div class="column">
        <${SelfView} status=${state.status} />
        <section class="card" id="mesh">
          <h2>Mesh</h2>
          <${MeshGraph} status=${state.status} peers=${peers} lagByPeer=${lagByPeer} />
          <${PeerTable} peers=${peers} lagByPeer=${lagByPeer} replicationAvailable=${state.replication !== undefined} />
          ${!state.replicationAvailable && html`<p class="small">Per-peer lag needs GET /v1/ns/{ns}/replication, which this daemon does not have.</p>`}
        </section>
        <${RatesView} rates=${state.rates} />
        <${EventsView} events=${state.events} available=${state.eventsAvailable} quietSyncs=${state.quietSyncs} />
      </div>
      <div class="column wide">
        <section class="card" id="namespace">
          <h2>Namespace
            <select id="ns" value=${state.ns ?? ''} onChange=${(e) => {
              setSelectedKey(undefined)
              update({ ns: e.target.value })
            }}>
              ${state.namespaces.map((name) => html`<option value=${name} data-ns=${name}>${name}</option>`)}
            </select>
          </h2>
          ${state.ns === undefined && html`<p class="empty">This peer has joined no namespace yet.</p>`}
          ${
            state.ns !== undefined &&
            html`<div class="browse">
              <${KeysView} ns=${state.ns} selected=${selectedKey} onPick=${setSelectedKey} actions=${actions} />
              ${selectedKey !== undefined && html`<${KeyDetail} ns=${state.ns} keyName=${selectedKey} actions=${actions} onResolved=${actions.refreshConflicts} />`}
            </div>`
          }
        </section>
        <${ConflictsView} conflicts=${state.conflicts} source=${state.conflictsSource} onPick=${setSelectedKey} />
        <${ChangesView} changes=${state.changes} onPick=${setSelectedKey} />
      </div>
    </main>
  </div>`
}

const root = document.getElementById('root')
root.textContent = ''
render(html`<${App} />`, root)

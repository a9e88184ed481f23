/**
 * The dashboard's only way to the daemon: same-origin requests to the HTTP API (docs/api.md).
 *
 * A daemon whose API listens beyond loopback wants `Authorization: Bearer <token>`. A browser cannot
 * send that on navigation, so the token comes once in the URL fragment (`/#token=…`, never sent to
 * any server), is kept in this tab's sessionStorage and removed from the address bar.
 */

const TOKEN_KEY = 'hearsay.token'

function takeToken() {
  const fragment = new URLSearchParams(location.hash.slice(1))
  const fromUrl = fragment.get('token')
  if (fromUrl) {
    sessionStorage.setItem(TOKEN_KEY, fromUrl)
    fragment.delete('token')
    const rest = fragment.toString()
    history.replaceState(null, '', `${location.pathname}${location.search}${rest ? `#${rest}` : ''}`)
  }
  return sessionStorage.getItem(TOKEN_KEY) ?? undefined
}

export const token = takeToken()

/** An API error with the daemon's code (`KEY_NOT_FOUND`, `PRECONDITION_FAILED`, …) and status. */
export class ApiError extends Error {
  constructor(status, code, message) {
    super(message)
    this.status = status
    this.code = code
  }
}

function headersWith(extra = {}) {
  return token === undefined ? extra : { ...extra, authorization: `Bearer ${token}` }
}

/** One request; resolves to the response, rejects with ApiError for a non-2xx answer. */
export async function request(path, init = {}) {
  const response = await fetch(path, { ...init, headers: headersWith(init.headers) })
  if (!response.ok) {
    let code = 'HTTP_ERROR'
    let message = `${response.status} ${response.statusText}`
    try {
      const body = await response.json()
      if (body?.error) ({ code, message } = body.error)
    } catch {
      // Not the API's JSON error: keep the status line.
    }
    throw new ApiError(response.status, code, message)
  }
  return response
}

export async function getJson(path) {
  return (await request(path)).json()
}

/** GET that answers undefined on 404: for endpoints an older daemon does not have. */
export async function getJsonIfPresent(path) {
  try {
    return await getJson(path)
  } catch (error) {
    if (error instanceof ApiError && error.status === 404 && error.code === 'NOT_FOUND') return undefined
    throw error
  }
}

export async function getText(path) {
  return (await request(path)).text()
}

export const nsPath = (ns) => `/v1/ns/${encodeURIComponent(ns)}`
/** A key's path with every `/` escaped, so a key ending in `/explain` never reads as an explain. */
export const keyPath = (ns, key) => `${nsPath(ns)}/kv/${encodeURIComponent(key)}`

/** Writes `body` (bytes or text) as the value of a key, if it still has the ETag `etag`. */
export async function putValue(ns, key, body, contentType, etag) {
  const response = await request(keyPath(ns, key), {
    method: 'PUT',
    headers: { 'content-type': contentType, 'if-match': `"${etag}"` },
    body,
  })
  return response.json()
}

/**
 * A Server-Sent Events stream that reconnects by itself: the browser's EventSource, or, when a token
 * must be sent (EventSource cannot send headers), a fetch-based reader that does what EventSource
 * does (Last-Event-ID on reconnect, backoff). `onState` hears `open`, `retrying` and `missing` (the
 * daemon answers 404: this daemon has no such stream); `onEvent(type, data, id)` hears every event.
 * `resume(lastEventId)` gives the URL of a new stream that goes on from an event (default: `path`).
 */
export function openStream(path, { onEvent, onState, events, resume = () => path }) {
  if (token === undefined) return nativeStream(path, { onEvent, onState, events, resume })
  return fetchStream(path, { onEvent, onState })
}

function nativeStream(path, { onEvent, onState, events, resume }) {
  let source
  let closed = false
  let retryMs = 1000
  let timer
  let lastEventId = ''
  const connect = () => {
    // The browser resends Last-Event-ID on its own reconnects; a new EventSource needs it in the URL.
    source = new EventSource(lastEventId === '' ? path : resume(lastEventId))
    source.onopen = () => {
      retryMs = 1000
      onState('open')
    }
    for (const type of events) {
      source.addEventListener(type, (message) => {
        let data
        try {
          data = JSON.parse(message.data)
        } catch {
          return
        }
        if (message.lastEventId) lastEventId = message.lastEventId
        onEvent(type, data, message.lastEventId)
      })
    }
    source.onerror = () => {
      if (closed) return
      if (source.readyState === EventSource.CONNECTING) return onState('retrying')
      // CLOSED: the daemon answered, but not with a stream (404, 403, 503 …). Ask why, then retry later.
      source.close()
      void fetch(path)
        .then((response) => {
          void response.body?.cancel()
          return response.status === 404 ? 'missing' : 'retrying'
        })
        .catch(() => 'retrying')
        .then((state) => {
          if (closed) return
          onState(state)
          if (state === 'missing') return
          timer = setTimeout(connect, retryMs)
          retryMs = Math.min(retryMs * 2, 15_000)
        })
    }
  }
  connect()
  return {
    close() {
      closed = true
      clearTimeout(timer)
      source?.close()
    },
  }
}

function fetchStream(path, { onEvent, onState }) {
  let closed = false
  let lastEventId = ''
  let retryMs = 1000
  let controller
  let timer
  const dispatch = (block) => {
    let type = 'message'
    let data = ''
    for (const line of block.split('\n')) {
      if (line.startsWith('id:')) lastEventId = line.slice(3).trim()
      else if (line.startsWith('event:')) type = line.slice(6).trim()
      else if (line.startsWith('data:')) data += line.slice(5).trim()
    }
    if (data === '') return
    try {
      onEvent(type, JSON.parse(data), lastEventId)
    } catch {
      // A malformed event is skipped, as EventSource would hand it on unparsed.
    }
  }
  const connect = async () => {
    controller = new AbortController()
    let missing = false
    try {
      const headers = headersWith(lastEventId === '' ? {} : { 'last-event-id': lastEventId })
      const response = await fetch(path, { headers, signal: controller.signal })
      if (response.status === 404) missing = true
      else if (response.ok && response.body) {
        retryMs = 1000
        onState('open')
        const reader = response.body.pipeThrough(new TextDecoderStream()).getReader()
        let buffer = ''
        for (;;) {
          const { value, done } = await reader.read()
          if (done) break
          buffer += value
          for (let end = buffer.indexOf('\n\n'); end >= 0; end = buffer.indexOf('\n\n')) {
            dispatch(buffer.slice(0, end))
            buffer = buffer.slice(end + 2)
          }
        }
      }
    } catch {
      // Network error or abort: handled below.
    }
    if (closed) return
    onState(missing ? 'missing' : 'retrying')
    if (missing) return
    timer = setTimeout(connect, retryMs)
    retryMs = Math.min(retryMs * 2, 15_000)
  }
  void connect()
  return {
    close() {
      closed = true
      clearTimeout(timer)
      controller?.abort()
    },
  }
}

/**
 * Compare-and-set over HTTP against a real daemon process: the ETag a PUT answers names that write,
 * so a client that sends it back as If-Match never replaces a write it did not see, and a token
 * of another key is refused.
 */
import { connect, type Socket } from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { api, type DaemonProcess, removeHomes, startDaemon, stopAllDaemons } from './helpers/daemon.ts'

let daemon: DaemonProcess

beforeAll(async () => {
  daemon = await startDaemon()
})

afterAll(async () => {
  await stopAllDaemons()
  removeHomes()
})

const kv = (key: string) => `/v1/ns/default/kv/${key}`

interface RawResponse {
  status: number
  headers: Map<string, string>
  body: string
}

/** An open connection with a PUT sent but for its last body byte, so several can finish together. */
async function heldPut(
  url: string,
  path: string,
  body: string,
): Promise<{ socket: Socket; finish(): Promise<RawResponse> }> {
  const { hostname, port } = new URL(url)
  const socket = connect({ host: hostname, port: Number(port) })
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve)
    socket.once('error', reject)
  })
  const bytes = Buffer.from(body)
  socket.write(
    `PUT ${path} HTTP/1.1\r\nhost: ${hostname}:${port}\r\ncontent-type: text/plain\r\n` +
      `content-length: ${bytes.length}\r\nconnection: close\r\n\r\n`,
  )
  socket.write(bytes.subarray(0, bytes.length - 1))
  const chunks: Buffer[] = []
  const ended = new Promise<void>((resolve, reject) => {
    socket.on('data', (chunk: Buffer) => chunks.push(chunk))
    socket.once('end', resolve)
    socket.once('error', reject)
  })
  return {
    socket,
    async finish() {
      socket.write(bytes.subarray(bytes.length - 1))
      await ended
      return parseResponse(Buffer.concat(chunks).toString('utf8'))
    },
  }
}

function parseResponse(text: string): RawResponse {
  const at = text.indexOf('\r\n\r\n')
  const [statusLine, ...lines] = text.slice(0, at).split('\r\n')
  const headers = new Map<string, string>()
  for (const line of lines) {
    const colon = line.indexOf(':')
    headers.set(line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim())
  }
  let body = text.slice(at + 4)
  if (headers.get('transfer-encoding') === 'chunked') body = unchunk(body)
  return { status: Number(statusLine.split(' ')[1]), headers, body }
}

function unchunk(body: string): string {
  let out = ''
  let rest = body
  for (let i = 0; i < 1000 && rest.length > 0; i++) {
    const line = rest.indexOf('\r\n')
    const size = Number.parseInt(rest.slice(0, line), 16)
    if (!(size > 0)) break
    out += rest.slice(line + 2, line + 2 + size)
    rest = rest.slice(line + 2 + size + 2)
  }
  return out
}

describe('If-Match over HTTP', () => {
  it('two PUTs at the same time get different ETags; If-Match with the losing one keeps the other as a sibling', async () => {
    const path = kv('race')
    const [one, two] = await Promise.all([heldPut(daemon.url, path, 'one'), heldPut(daemon.url, path, 'two')])
    // Both bodies complete in the same instant, so the daemon reads both in (usually) one turn.
    const [answerOne, answerTwo] = await Promise.all([one.finish(), two.finish()])
    expect(answerOne.status).toBe(200)
    expect(answerTwo.status).toBe(200)
    const etagOne = answerOne.headers.get('etag')!
    const etagTwo = answerTwo.headers.get('etag')!
    expect(etagOne).toMatch(/^"[A-Za-z0-9_-]+"$/)
    expect(etagOne).not.toBe(etagTwo)
    expect(JSON.parse(answerOne.body).etag).not.toBe(JSON.parse(answerTwo.body).etag)

    // One write superseded the other on this peer; its client never saw the survivor.
    const read = await api(daemon.url, path)
    expect(read.status).toBe(200)
    const survivor = read.text
    expect(['one', 'two']).toContain(survivor)
    const losingEtag = survivor === 'one' ? etagTwo : etagOne

    const three = await api(daemon.url, path, {
      method: 'PUT',
      headers: { 'content-type': 'text/plain', 'if-match': losingEtag },
      body: 'three',
    })
    expect(three.status).toBe(200)
    const siblings = await api(daemon.url, `${path}?siblings=1`)
    expect(siblings.status).toBe(200)
    expect(siblings.json.siblings.map((s: { value: string }) => s.value).sort()).toEqual(
      [survivor, 'three'].sort(),
    )
  })

  it('refuses the ETag of another key with 400 INVALID_IF_MATCH and writes nothing', async () => {
    const a = await api(daemon.url, kv('cas-a'), {
      method: 'PUT',
      headers: { 'content-type': 'text/plain' },
      body: 'A',
    })
    const b = await api(daemon.url, kv('cas-b'), {
      method: 'PUT',
      headers: { 'content-type': 'text/plain' },
      body: 'B',
    })
    expect(a.status).toBe(200)
    expect(b.status).toBe(200)
    for (const etag of [a.headers.get('etag')!, (await api(daemon.url, kv('cas-a'))).headers.get('etag')!]) {
      const put = await api(daemon.url, kv('cas-b'), {
        method: 'PUT',
        headers: { 'content-type': 'text/plain', 'if-match': etag },
        body: 'x',
      })
      expect(put.status).toBe(400)
      expect(put.json.error.code).toBe('INVALID_IF_MATCH')
      const del = await api(daemon.url, kv('cas-b'), { method: 'DELETE', headers: { 'if-match': etag } })
      expect(del.status).toBe(400)
      expect(del.json.error.code).toBe('INVALID_IF_MATCH')
    }
    const after = await api(daemon.url, `${kv('cas-b')}?siblings=1`)
    expect(after.json.siblings.map((s: { value: string }) => s.value)).toEqual(['B'])
    // The daemon still serves.
    expect((await api(daemon.url, '/healthz')).status).toBe(200)
  })
})

/**
 * The clients of the e2e benchmark, all in the measuring process: one writer (HTTP PUT over
 * keep-alive connections) and SSE watch readers. Writes are numbered; key `e2e-<seq>` carries the
 * number so a reader records the first time it sees each one without keeping any map of strings.
 */
import { Agent, type ClientRequest, get, type IncomingMessage, request } from 'node:http'
import { pause } from './e2e-procs.ts'

export const WATCH_PATH = '/v1/ns/default/watch'
export const VALUE_BYTES = 68
const KEY_PATTERN = /"key":"e2e-(\d+)"/
/** The writer's keep-alive connections, and so its most writes in flight. */
export const MAX_CONNECTIONS = 64

export function keyOf(seq: number): string {
  return `e2e-${seq}`
}

/** A 68-byte JSON value whose padding comes from the seeded generator. */
export function jsonValueFor(seq: number, random: () => number): string {
  const head = `{"seq":${seq},"pad":"`
  const tail = '"}'
  let pad = ''
  for (let i = head.length + tail.length; i < VALUE_BYTES; i++)
    pad += String.fromCharCode(97 + Math.floor(random() * 26))
  return head + pad + tail
}

/** One SSE subscriber: the first time it observed each write, and what the stream cost in bytes. */
export class WatchReader {
  readonly name: string
  readonly url: string
  /** performance.now() of the first observation of write `seq`, or undefined. */
  readonly seen: number[] = []
  bytes = 0
  changeEvents = 0
  private req: ClientRequest | undefined
  private closed = false

  /** `query`: appended to the watch path, e.g. `?format=compact`. */
  private readonly query: string

  constructor(name: string, url: string, query = '') {
    this.name = name
    this.url = url
    this.query = query
  }

  /** Opens the stream and resolves at its `ready` event (so nothing written after is missed). */
  open(timeoutMs = 15_000): Promise<void> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.close()
        reject(new Error(`${this.name}: watch not ready within ${timeoutMs} ms`))
      }, timeoutMs)
      // No agent: one dedicated connection per stream. Host is 127.0.0.1 and no Origin is sent.
      this.req = get(
        `${this.url}${WATCH_PATH}${this.query}`,
        { agent: false },
        (response: IncomingMessage) => {
          if (response.statusCode !== 200) {
            clearTimeout(timer)
            response.resume()
            reject(new Error(`${this.name}: watch answered ${response.statusCode}`))
            return
          }
          response.setEncoding('utf8')
          let buffer = ''
          let ready = false
          response.on('data', (chunk: string) => {
            const at = performance.now()
            this.bytes += Buffer.byteLength(chunk)
            buffer += chunk
            let end = buffer.indexOf('\n\n')
            while (end >= 0) {
              const block = buffer.slice(0, end)
              buffer = buffer.slice(end + 2)
              end = buffer.indexOf('\n\n')
              if (block.startsWith('event: change') || block.includes('\nevent: change')) {
                this.changeEvents++
                const match = KEY_PATTERN.exec(block)
                if (match !== null) {
                  const seq = Number(match[1])
                  if (this.seen[seq] === undefined) this.seen[seq] = at
                }
              } else if (!ready && block.includes('event: ready')) {
                ready = true
                clearTimeout(timer)
                resolve()
              }
            }
          })
          response.once('end', () => {
            if (!this.closed) console.error(`${this.name}: watch stream ended`)
          })
        },
      )
      this.req.on('error', (error) => {
        clearTimeout(timer)
        if (!this.closed) reject(error)
      })
    })
  }

  close(): void {
    this.closed = true
    this.req?.destroy()
  }
}

/** The writer: PUTs over a keep-alive agent, recording when each call started and was acknowledged. */
export class Writer {
  readonly startedAt: number[] = []
  readonly ackedAt: number[] = []
  /**
   * Enough keep-alive connections that paced writes never queue in the client (a slow daemon then
   * shows as its own latency); the throughput phase keeps 16 in flight by itself.
   */
  private readonly agent = new Agent({ keepAlive: true, maxSockets: MAX_CONNECTIONS })
  private readonly random: () => number
  private nextSeq = 0
  failed = 0
  lastError: string | undefined

  constructor(random: () => number) {
    this.random = random
  }

  /** Reserves `count` sequence numbers; returns the first. */
  reserve(count: number): number {
    const first = this.nextSeq
    this.nextSeq += count
    return first
  }

  put(baseUrl: string, seq: number): Promise<void> {
    const body = jsonValueFor(seq, this.random)
    return new Promise((resolve) => {
      this.startedAt[seq] = performance.now()
      const req = request(
        `${baseUrl}/v1/ns/default/kv/${keyOf(seq)}`,
        {
          method: 'PUT',
          agent: this.agent,
          headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
          timeout: 30_000,
        },
        (response) => {
          response.resume()
          response.once('end', () => {
            if (response.statusCode === 200) this.ackedAt[seq] = performance.now()
            else this.fail(`PUT answered ${response.statusCode}`)
            resolve()
          })
        },
      )
      req.once('timeout', () => req.destroy(new Error('PUT timed out after 30 s')))
      req.once('error', (error) => {
        this.fail(error.message)
        resolve()
      })
      req.end(body)
    })
  }

  private fail(message: string): void {
    this.failed++
    this.lastError = message
  }

  /**
   * `count` writes paced at `rate` per second (each sent at its due time, not after the previous
   * answer), at most `maxInFlight` outstanding. Resolves when every write has an answer.
   */
  async paced(
    baseUrl: string,
    count: number,
    rate: number,
    maxInFlight = MAX_CONNECTIONS,
  ): Promise<{ first: number }> {
    const first = this.reserve(count)
    const inFlight = new Set<Promise<void>>()
    const start = performance.now()
    for (let i = 0; i < count; i++) {
      const due = start + (i * 1000) / rate
      const wait = due - performance.now()
      if (wait > 1) await pause(wait)
      while (inFlight.size >= maxInFlight) await Promise.race(inFlight)
      const done = this.put(baseUrl, first + i).then(() => {
        inFlight.delete(done)
      })
      inFlight.add(done)
    }
    await Promise.all(inFlight)
    return { first }
  }

  /** `count` writes as fast as `concurrency` in-flight requests allow. */
  async saturate(baseUrl: string, count: number, concurrency: number): Promise<{ first: number }> {
    const first = this.reserve(count)
    let next = 0
    const worker = async () => {
      while (next < count) {
        const seq = first + next++
        await this.put(baseUrl, seq)
      }
    }
    await Promise.all(Array.from({ length: concurrency }, worker))
    return { first }
  }

  close(): void {
    this.agent.destroy()
  }
}

/** Seqs in [first, first+count) that every reader has seen. */
export function seenByAll(readers: WatchReader[], first: number, count: number): number {
  let all = 0
  for (let seq = first; seq < first + count; seq++) if (readers.every((r) => r.seen[seq] !== undefined)) all++
  return all
}

/** Polls until every reader saw every write of the range, or the deadline; returns when it ended. */
export async function waitSeen(
  readers: WatchReader[],
  first: number,
  count: number,
  deadline: number,
): Promise<boolean> {
  // Readers fill seqs roughly in order: remember where each one's unseen part starts.
  const cursors = readers.map(() => first)
  for (;;) {
    let done = true
    for (let r = 0; r < readers.length; r++) {
      while (cursors[r] < first + count && readers[r].seen[cursors[r]] !== undefined) cursors[r]++
      if (cursors[r] < first + count) done = false
    }
    if (done) return true
    if (performance.now() > deadline) return false
    await pause(10)
  }
}

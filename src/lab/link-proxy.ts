import { connect, createServer, type Server, type Socket } from 'node:net'
import { performance } from 'node:perf_hooks'
import { DelaySchedule } from './link-schedule.ts'

/**
 * The lab's link emulator: a TCP forwarder that holds every chunk for the link's delay ± jitter
 * before passing it on, in order, in each direction separately (so a round trip costs two delays).
 * It also cuts and refuses the connections of routes a partition separates. It runs in the lab
 * process on loopback, or as a small process inside a peer's network namespace.
 */

export interface LinkProxyOptions {
  delayMs: number
  jitterMs: number
  /** In [0, 1); one source for all the proxy's connections. */
  random: () => number
  /** Monotonic milliseconds; performance.now() unless a test injects its own. */
  now?: () => number
}

/** One listener: connections to it are forwarded to the target, and known to run `from` → `to`. */
export interface ProxyRoute {
  listenHost: string
  /** 0: any free port. */
  listenPort: number
  targetHost: string
  targetPort: number
  /** The dialling peer, when the route is only handed to one peer; undefined: unknown. */
  from?: number
  /** The peer behind the target. */
  to: number
  /**
   * The local address to connect to the target from, given the client's address; undefined: any.
   * Lets the target tell its dialers apart although every connection comes from the proxy.
   */
  sourceAddressFor?: (clientAddress: string) => string | undefined
}

export interface ProxyStats {
  connections: number
  chunks: number
  bytes: number
  /** The least and most time a chunk spent inside the proxy, ms (by the proxy's clock). */
  minHeldMs: number
  maxHeldMs: number
}

/** Above this many bytes held in one direction, the sender is paused (TCP's own flow control takes over). */
const HIGH_WATER_BYTES = 1 << 20

interface Held {
  data: Buffer
  arrivedAt: number
  releaseAt: number
}

/** One direction of one connection: source chunks leave for the destination at their scheduled time. */
class DelayedDirection {
  private readonly queue: Held[] = []
  private queuedBytes = 0
  private timer: NodeJS.Timeout | undefined
  private sourceEnded = false
  private readonly source: Socket
  private readonly destination: Socket
  private readonly schedule: DelaySchedule
  private readonly now: () => number
  private readonly onRelease: (held: Held, at: number) => void

  constructor(
    source: Socket,
    destination: Socket,
    schedule: DelaySchedule,
    now: () => number,
    onRelease: (held: Held, at: number) => void,
  ) {
    this.source = source
    this.destination = destination
    this.schedule = schedule
    this.now = now
    this.onRelease = onRelease
    source.on('data', (data: Buffer) => this.arrive(data))
    source.on('end', () => {
      this.sourceEnded = true
      this.flush()
    })
    destination.on('drain', () => this.resumeIfRoom())
  }

  private arrive(data: Buffer): void {
    const arrivedAt = this.now()
    this.queue.push({ data, arrivedAt, releaseAt: this.schedule.releaseAt(arrivedAt) })
    this.queuedBytes += data.length
    if (this.queuedBytes > HIGH_WATER_BYTES) this.source.pause()
    this.flush()
  }

  private flush(): void {
    if (this.timer !== undefined) {
      clearTimeout(this.timer)
      this.timer = undefined
    }
    if (this.destination.destroyed) return
    const now = this.now()
    while (this.queue.length > 0 && this.queue[0]!.releaseAt <= now) {
      const held = this.queue.shift()!
      this.queuedBytes -= held.data.length
      this.destination.write(held.data)
      this.onRelease(held, now)
    }
    if (this.queue.length > 0) {
      // A timer may fire a little early by this clock: flush re-checks and re-arms.
      const wait = Math.max(1, Math.ceil(this.queue[0]!.releaseAt - now))
      this.timer = setTimeout(() => this.flush(), wait)
    } else if (this.sourceEnded) {
      this.destination.end()
    }
    this.resumeIfRoom()
  }

  private resumeIfRoom(): void {
    if (this.queuedBytes <= HIGH_WATER_BYTES / 2 && !this.destination.writableNeedDrain) this.source.resume()
  }

  stop(): void {
    if (this.timer !== undefined) clearTimeout(this.timer)
    this.timer = undefined
    this.queue.length = 0
  }
}

interface Live {
  route: ProxyRoute
  /** Ends the connection: with TCP resets (a cut link) or plainly. */
  finish(reset: boolean): void
}

export class LinkProxy {
  private readonly options: LinkProxyOptions
  private readonly now: () => number
  private readonly servers = new Map<Server, ProxyRoute>()
  private readonly live = new Set<Live>()
  private blocked: (from: number | undefined, to: number) => boolean = () => false
  private closed = false
  readonly stats: ProxyStats = {
    connections: 0,
    chunks: 0,
    bytes: 0,
    minHeldMs: Number.POSITIVE_INFINITY,
    maxHeldMs: 0,
  }

  constructor(options: LinkProxyOptions) {
    this.options = options
    this.now = options.now ?? (() => performance.now())
  }

  /** Starts a listener for the route; resolves to the port it listens on. */
  listen(route: ProxyRoute): Promise<number> {
    if (this.closed) return Promise.reject(new Error('the link proxy is closed'))
    const server = createServer({ noDelay: true, allowHalfOpen: true }, (client) =>
      this.accept(route, client),
    )
    this.servers.set(server, route)
    return new Promise((resolve, reject) => {
      server.once('error', reject)
      server.listen(route.listenPort, route.listenHost, () => {
        server.off('error', reject)
        server.on('error', () => {
          // A listener error after start only loses new connections; nothing to crash for.
        })
        const address = server.address()
        resolve(typeof address === 'object' && address !== null ? address.port : route.listenPort)
      })
    })
  }

  /**
   * From now on, connections whose route `isBlocked` says so are reset, both those open now and
   * those that come. Pass `() => false` to heal.
   */
  setBlocked(isBlocked: (from: number | undefined, to: number) => boolean): void {
    this.blocked = isBlocked
    for (const connection of [...this.live]) {
      if (isBlocked(connection.route.from, connection.route.to)) this.cut(connection)
    }
  }

  /** How many connections are open through the proxy now. */
  get openConnections(): number {
    return this.live.size
  }

  /** Closes every listener and connection; safe to call twice. */
  async close(): Promise<void> {
    this.closed = true
    for (const connection of [...this.live]) this.cut(connection)
    const servers = [...this.servers.keys()]
    this.servers.clear()
    await Promise.all(servers.map((server) => new Promise<void>((resolve) => server.close(() => resolve()))))
  }

  private accept(route: ProxyRoute, client: Socket): void {
    if (this.closed || this.blocked(route.from, route.to)) {
      client.on('error', () => {})
      client.resetAndDestroy()
      return
    }
    this.stats.connections++
    const localAddress =
      client.remoteAddress === undefined ? undefined : route.sourceAddressFor?.(client.remoteAddress)
    const upstream = connect({
      host: route.targetHost,
      port: route.targetPort,
      noDelay: true,
      allowHalfOpen: true,
      ...(localAddress !== undefined ? { localAddress } : {}),
    })
    const { delayMs, jitterMs, random } = this.options
    const record = (held: Held, at: number) => {
      this.stats.chunks++
      this.stats.bytes += held.data.length
      const heldMs = at - held.arrivedAt
      this.stats.minHeldMs = Math.min(this.stats.minHeldMs, heldMs)
      this.stats.maxHeldMs = Math.max(this.stats.maxHeldMs, heldMs)
    }
    const directions = [
      new DelayedDirection(client, upstream, new DelaySchedule(delayMs, jitterMs, random), this.now, record),
      new DelayedDirection(upstream, client, new DelaySchedule(delayMs, jitterMs, random), this.now, record),
    ]
    let finished = false
    const connection: Live = {
      route,
      finish: (reset) => {
        if (finished) return
        finished = true
        this.live.delete(connection)
        for (const direction of directions) direction.stop()
        for (const socket of [client, upstream]) {
          if (reset && !socket.destroyed) socket.resetAndDestroy()
          else socket.destroy()
        }
      },
    }
    this.live.add(connection)
    const finish = connection.finish
    // An error on either side (a refused upstream included) resets the other, as a broken link would.
    client.on('error', () => finish(true))
    upstream.on('error', () => finish(true))
    // A side closes cleanly only once both its directions ended; what the other still holds goes on.
    const closed = () => {
      if (client.destroyed && upstream.destroyed) finish(false)
    }
    client.on('close', closed)
    upstream.on('close', closed)
  }

  private cut(connection: Live): void {
    connection.finish(true)
  }
}

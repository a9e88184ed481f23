/**
 * The lab's link emulator inside one peer's network namespace (started with `ip netns exec`):
 * - forwards the TCP connections that iptables redirects from the peer's libp2p port on eth0, holding
 *   each chunk for the link's delay ± jitter (src/lab/link-proxy.ts); it connects to the daemon from
 *   the dialer's shadow address on the loopback, so the daemon still tells its dialers apart (libp2p
 *   limits inbound connections per remote host, gossipsub scores peers per IP);
 * - relays the lab's HTTP requests to the daemon's API on the namespace's loopback: a connection to
 *   the Unix socket (paths are not namespaced, so the lab reaches it from outside) starts with one
 *   line, the API port, then carries the bytes both ways.
 * Prints `ready` once listening; exits on SIGTERM, SIGINT or when its stdin closes (the lab is gone).
 * Each line on stdin, `{"target": <port>}`, asks for one more proxied port (a service of the peer
 * other peers reach through the link); it answers `{"target": <port>, "listening": <proxy port>}`.
 *
 * argv: one JSON object, `ProxyProcessConfig`.
 */
import { rmSync } from 'node:fs'
import { connect, createServer, type Socket } from 'node:net'
import { LinkProxy } from './link-proxy.ts'
import { seededRandom, shadowAddress } from './link-schedule.ts'

export interface ProxyProcessConfig {
  peer: number
  host: string
  proxyPort: number
  targetPort: number
  delayMs: number
  jitterMs: number
  seed: number
  socketPath: string
  /** The peers' subnet and its shadow (first three octets): a dialer at `subnet.x` reaches the daemon from `shadowSubnet.x`. */
  subnet: string
  shadowSubnet: string
}

/** The longest first line an API relay connection may send (a port number). */
const MAX_HEADER_BYTES = 16

function relayApi(client: Socket): void {
  let header = Buffer.alloc(0)
  const onData = (chunk: Buffer) => {
    header = Buffer.concat([header, chunk])
    const end = header.indexOf(10)
    if (end === -1) {
      if (header.length > MAX_HEADER_BYTES) client.destroy()
      return
    }
    client.off('data', onData)
    client.pause()
    const port = Number(header.subarray(0, end).toString('latin1'))
    if (!Number.isInteger(port) || port < 1 || port > 65_535) {
      client.destroy()
      return
    }
    const rest = header.subarray(end + 1)
    const upstream = connect({ host: '127.0.0.1', port, allowHalfOpen: true })
    upstream.once('connect', () => {
      if (rest.length > 0) upstream.write(rest)
      client.pipe(upstream)
      upstream.pipe(client)
      client.resume()
    })
    // The daemon is down (refused) or went away: the lab's client sees its connection reset.
    upstream.on('error', () => client.resetAndDestroy())
    client.on('error', () => upstream.destroy())
    upstream.on('close', () => client.destroy())
    client.on('close', () => upstream.destroy())
  }
  client.on('data', onData)
  client.on('error', () => client.destroy())
}

async function main(): Promise<void> {
  const raw = process.argv[2]
  if (raw === undefined) {
    process.stderr.write('usage: link-proxy-process <json config>\n')
    process.exit(2)
  }
  const config = JSON.parse(raw) as ProxyProcessConfig
  const proxy = new LinkProxy({
    delayMs: config.delayMs,
    jitterMs: config.jitterMs,
    random: seededRandom(config.seed),
  })
  const proxyPort = (listenPort: number, targetPort: number) =>
    proxy.listen({
      listenHost: config.host,
      listenPort,
      targetHost: config.host,
      targetPort,
      to: config.peer,
      sourceAddressFor: (client) => shadowAddress(client, config.subnet, config.shadowSubnet),
    })
  await proxyPort(config.proxyPort, config.targetPort)
  rmSync(config.socketPath, { force: true })
  const relay = createServer({ allowHalfOpen: true }, relayApi)
  await new Promise<void>((resolve, reject) => {
    relay.once('error', reject)
    relay.listen(config.socketPath, resolve)
  })
  const stop = () => {
    relay.close()
    void proxy.close().then(() => process.exit(0))
    setTimeout(() => process.exit(0), 1_000).unref()
  }
  process.on('SIGTERM', stop)
  process.on('SIGINT', stop)
  process.stdin.on('end', stop)
  process.stdin.on('error', stop)
  let pending = ''
  process.stdin.setEncoding('utf8').on('data', (chunk: string) => {
    pending += chunk
    for (let end = pending.indexOf('\n'); end !== -1; end = pending.indexOf('\n')) {
      const line = pending.slice(0, end)
      pending = pending.slice(end + 1)
      let target: number
      try {
        target = Number((JSON.parse(line) as { target?: unknown }).target)
      } catch {
        continue
      }
      proxyPort(0, target).then(
        (listening) => process.stdout.write(`${JSON.stringify({ target, listening })}\n`),
        (error: Error) => process.stdout.write(`${JSON.stringify({ target, error: error.message })}\n`),
      )
    }
  })
  process.stdout.write('ready\n')
}

main().catch((error: unknown) => {
  process.stderr.write(`link proxy: ${(error as Error).message}\n`)
  process.exit(1)
})

/**
 * Runs inside a peer's network namespace (`ip netns exec`): forwards connections from a Unix socket
 * (paths are not namespaced, so the runner reaches it from outside) to the daemon's HTTP API on the
 * namespace's loopback. While the daemon is down it answers 503 with `x-chaos-relay: daemon-down`, so
 * the runner knows the request never reached a daemon.
 *
 * argv: <socket path> <api port>
 */
import { rmSync } from 'node:fs'
import { connect, createServer } from 'node:net'

const [socketPath, port] = process.argv.slice(2)
if (socketPath === undefined || port === undefined) {
  process.stderr.write('usage: relay.ts <socket path> <api port>\n')
  process.exit(2)
}
rmSync(socketPath, { force: true })
const server = createServer((client) => {
  const upstream = connect(Number(port), '127.0.0.1')
  let connected = false
  upstream.once('connect', () => {
    connected = true
    client.pipe(upstream)
    upstream.pipe(client)
  })
  upstream.on('error', () => {
    if (!connected) {
      client.end(
        'HTTP/1.1 503 Service Unavailable\r\nx-chaos-relay: daemon-down\r\ncontent-length: 0\r\nconnection: close\r\n\r\n',
      )
    } else client.destroy()
  })
  client.on('error', () => upstream.destroy())
  client.on('close', () => upstream.destroy())
  upstream.on('close', () => client.destroy())
})
server.listen(socketPath, () => process.stdout.write('ready\n'))
const stop = () => server.close(() => process.exit(0))
process.on('SIGTERM', stop)
process.on('SIGINT', stop)

import { createConnection, createServer, type Server, type Socket } from 'node:net'

/**
 * A TCP relay on 127.0.0.1 in front of one listening peer. Peers that dial the relay's address reach
 * the target; `silence()` then drops every byte in both directions while every socket stays open:
 * a partition the peers cannot see (no reset, no FIN), as when a Wi-Fi link dies or a firewall starts
 * dropping packets. `restore()` forwards again (bytes dropped meanwhile stay lost, as on a real link,
 * so the connections carried over the silence are usually broken for good).
 */
export interface SilentRelay {
  port: number
  /** The relay's multiaddr for the target peer. */
  address(targetPeerId: string): string
  silence(): void
  restore(): void
  close(): Promise<void>
}

export async function startSilentRelay(targetPort: number): Promise<SilentRelay> {
  let silent = false
  const sockets = new Set<Socket>()
  const forward = (from: Socket, to: Socket) => {
    from.on('data', (chunk: Buffer) => {
      if (!silent && !to.destroyed) to.write(chunk)
    })
    from.on('error', () => to.destroy())
    from.on('close', () => {
      sockets.delete(from)
      // A close is a signal the peers would see: carry it only while the link is up.
      if (!silent) to.destroy()
    })
  }
  const server: Server = createServer((client) => {
    const upstream = createConnection({ host: '127.0.0.1', port: targetPort })
    sockets.add(client)
    sockets.add(upstream)
    forward(client, upstream)
    forward(upstream, client)
  })
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => resolve())
  })
  const port = (server.address() as { port: number }).port
  return {
    port,
    address: (targetPeerId) => `/ip4/127.0.0.1/tcp/${port}/p2p/${targetPeerId}`,
    silence: () => {
      silent = true
    },
    restore: () => {
      silent = false
    },
    close: async () => {
      for (const socket of sockets) socket.destroy()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    },
  }
}

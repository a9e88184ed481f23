/**
 * Presence and chat with watch: each user runs on their own peer, follows the `chat` namespace as
 * Server-Sent Events, announces themselves in the `online` set and posts messages as keys. Every
 * user sees every message and every arrival and departure, from whichever peer it came.
 *
 *   npm run example:chat
 *
 * The API calls an application makes:
 *   PUT  /v1/ns/chat                             join the namespace (a watch does not join it)
 *   GET  /v1/ns/chat/watch                       text/event-stream of changes (resumable with ?since=)
 *   POST /v1/ns/chat/set/online   {"add": "alice"} / {"remove": "alice"}
 *   PUT  /v1/ns/chat/kv/messages/{time}-{user}   {"from": "alice", "text": "..."}
 */
import { call, eventually, type Peer, runExample } from './lib/local-mesh.ts'

interface ChangeEvent {
  type: 'register' | 'counter' | 'set'
  op: string
  key: string
  element?: string
  origin: string
  value?: { from: string; text: string }
}

/** A user's view: a watch stream on their own peer, collecting what they see. */
class ChatClient {
  readonly name: string
  readonly peer: Peer
  readonly messages: string[] = []
  readonly online = new Set<string>()
  private readonly controller = new AbortController()
  /** Resolves once this user's screen is live. */
  readonly ready: Promise<void>

  constructor(name: string, peer: Peer) {
    this.name = name
    this.peer = peer
    this.ready = this.follow()
  }

  /** Opens the stream and resolves once the daemon said `ready` (events after that are live). */
  private follow(): Promise<void> {
    return new Promise((resolve, reject) => {
      void (async () => {
        try {
          // Join the namespace first: a watch (a GET) never joins one.
          await call(this.peer, 'PUT', '/v1/ns/chat')
          const response = await fetch(`${this.peer.url}/v1/ns/chat/watch`, {
            signal: this.controller.signal,
          })
          const decoder = new TextDecoder()
          let buffer = ''
          for await (const chunk of response.body!) {
            buffer += decoder.decode(chunk, { stream: true })
            let end = buffer.indexOf('\n\n')
            while (end >= 0) {
              const block = buffer.slice(0, end)
              buffer = buffer.slice(end + 2)
              end = buffer.indexOf('\n\n')
              const event = /^event: (.*)$/m.exec(block)?.[1]
              const data = /^data: (.*)$/m.exec(block)?.[1]
              if (event === 'ready') resolve()
              if (event === 'change' && data !== undefined) this.see(JSON.parse(data))
            }
          }
        } catch (error) {
          if (!this.controller.signal.aborted) reject(error)
        }
      })()
    })
  }

  private see(change: ChangeEvent): void {
    if (change.type === 'set' && change.key === 'online' && change.element !== undefined) {
      if (change.op === 'add') this.online.add(change.element)
      else this.online.delete(change.element)
      console.log(
        `  [${this.name}'s screen] ${change.element} is ${change.op === 'add' ? 'online' : 'offline'}`,
      )
    } else if (change.type === 'register' && change.op === 'put' && change.value !== undefined) {
      this.messages.push(`${change.value.from}: ${change.value.text}`)
      console.log(`  [${this.name}'s screen] ${change.value.from}: ${change.value.text}`)
    }
  }

  async join(): Promise<void> {
    await this.ready
    await call(this.peer, 'POST', '/v1/ns/chat/set/online', { add: this.name })
  }

  async say(text: string): Promise<void> {
    const id = `${Date.now().toString().padStart(15, '0')}-${this.name}`
    await call(this.peer, 'PUT', `/v1/ns/chat/kv/messages/${id}`, { from: this.name, text })
  }

  async leave(): Promise<void> {
    await call(this.peer, 'POST', '/v1/ns/chat/set/online', { remove: this.name })
    this.controller.abort()
  }

  close(): void {
    this.controller.abort()
  }
}

await runExample(['alice-laptop', 'bob-phone', 'carol-tablet'], async (mesh) => {
  const users = ['alice', 'bob', 'carol'].map((name, i) => new ChatClient(name, mesh.peers[i]))
  try {
    // Every screen must be live before anyone announces: a stream opened later starts with what
    // happens after it (no replay without `since`), so an earlier arrival would never show on it.
    await Promise.all(users.map((user) => user.ready))
    for (const user of users) await user.join()
    await eventually('everyone sees everyone online', async () =>
      users.every((user) => user.online.size === users.length) ? true : undefined,
    )
    console.log('✓ presence: every user sees all three online')

    await users[0].say('hi all, anyone at the office?')
    await users[1].say('on my way')
    await users[2].say('already here ☕')
    await eventually('everyone received all three messages', async () =>
      users.every((user) => user.messages.length >= 3) ? true : undefined,
    )
    console.log('✓ chat: every user received all three messages')

    await users[2].leave()
    await eventually('carol shows as offline', async () =>
      users.slice(0, 2).every((user) => !user.online.has('carol')) ? true : undefined,
    )
    const { members } = await call(mesh.peers[0], 'GET', '/v1/ns/chat/set/online')
    console.log(`✓ presence: carol left; online now: ${members.join(', ')}`)
  } finally {
    for (const user of users) user.close()
  }
})

/**
 * `npm run demo`: three peers on this machine, a write on one read on the others, a delete, and two
 * concurrent writes that become siblings until a write that saw both resolves them. Then it stops.
 *
 * Each peer is a real `hearsay up` process with its own data dir; peers find each other through the
 * first one's address (mDNS is off so the demo stays on loopback).
 */
import { call, elapsed, eventually, type Peer, read, runExample } from './lib/local-mesh.ts'

const say = (line = '') => console.log(line)
const key = (name: string) => `/v1/ns/default/kv/${name}`

async function valueOn(peer: Peer, name: string): Promise<unknown> {
  return read(peer, key(name))
}

await runExample(['alpha', 'beta', 'gamma'], async (mesh) => {
  const [alpha, beta, gamma] = mesh.peers
  say('hearsay demo: three peers on loopback')
  for (const peer of mesh.peers) say(`  ${peer.name.padEnd(6)} ${peer.url}  ${peer.peerId}`)
  say()

  // 1. A write on one peer reaches the others.
  let started = performance.now()
  const written = await call(alpha, 'PUT', key('greeting'), { text: 'hello from alpha' })
  say(
    `1. alpha writes greeting = {"text":"hello from alpha"} (durable on alpha, etag ${written.etag.slice(0, 12)}…)`,
  )
  for (const peer of [beta, gamma]) {
    const value = await eventually(`greeting on ${peer.name}`, () => valueOn(peer, 'greeting'))
    say(`   ${peer.name} reads ${JSON.stringify(value)} after ${elapsed(started)}`)
  }

  // 2. A delete travels the same way (as a tombstone).
  started = performance.now()
  await call(beta, 'DELETE', key('greeting'))
  say('2. beta deletes greeting')
  for (const peer of [alpha, gamma]) {
    await eventually(`delete on ${peer.name}`, async () =>
      (await valueOn(peer, 'greeting')) === undefined ? true : undefined,
    )
    say(`   ${peer.name}: greeting is gone after ${elapsed(started)}`)
  }

  // 3. Concurrent writes: both beta and gamma overwrite the version they read. Neither saw the
  //    other's write, so neither wins silently: every peer keeps both as siblings.
  const base = await call(alpha, 'PUT', `${key('color')}?ack=2&timeout=10000`, 'white')
  say(`3. alpha writes color = "white" and waits until ${base.ack.replicated} peers hold it`)
  await Promise.all([
    fetch(beta.url + key('color'), {
      method: 'PUT',
      headers: { 'content-type': 'application/json', 'if-match': base.etag },
      body: '"blue"',
    }),
    fetch(gamma.url + key('color'), {
      method: 'PUT',
      headers: { 'content-type': 'application/json', 'if-match': base.etag },
      body: '"green"',
    }),
  ])
  say('   beta writes "blue" and gamma writes "green", both over "white" (concurrently)')
  const siblings = await eventually('both siblings on alpha', async () => {
    const doc = (await read(alpha, `${key('color')}?siblings=1`)) as {
      siblings: Array<{ value: string }>
      etag: string
      winner: number
    }
    return doc?.siblings.length === 2 ? doc : undefined
  })
  say(
    `   alpha sees ${siblings.siblings.length} siblings: ${siblings.siblings.map((s) => JSON.stringify(s.value)).join(' and ')}`,
  )
  say(
    `   (a plain read returns ${JSON.stringify(siblings.siblings[siblings.winner].value)}, the later one by hybrid clock)`,
  )

  // 4. A write that read both siblings (sends their ETag back) replaces exactly them.
  await fetch(alpha.url + key('color'), {
    method: 'PUT',
    headers: { 'content-type': 'application/json', 'if-match': siblings.etag },
    body: '"teal"',
  })
  say('4. alpha resolves them: writes "teal" with If-Match of the read that saw both')
  for (const peer of mesh.peers) {
    const doc = await eventually(`resolution on ${peer.name}`, async () => {
      const current = (await read(peer, `${key('color')}?siblings=1`)) as {
        siblings: Array<{ value: string }>
      }
      return current?.siblings.length === 1 && current.siblings[0].value === 'teal' ? current : undefined
    })
    say(`   ${peer.name} reads ${JSON.stringify(doc.siblings[0].value)} (1 value)`)
  }

  // 5. Counters add up increments made anywhere.
  await Promise.all(mesh.peers.map((peer) => call(peer, 'POST', '/v1/ns/default/counter/visits', { by: 10 })))
  say('5. each peer adds 10 to the counter "visits"')
  for (const peer of mesh.peers) {
    const total = await eventually(`counter on ${peer.name}`, async () => {
      const { value } = await call(peer, 'GET', '/v1/ns/default/counter/visits')
      return value === 30 ? value : undefined
    })
    say(`   ${peer.name} counts ${total}`)
  }
  say()
  say('✓ all three peers converged; stopping them.')
})

/**
 * The contract of a transport adapter (src/transport/port.ts): what the replication layers rely on.
 * test/transport-tcp.test.ts and test/transport-memory.test.ts run it against each adapter.
 */
import { lpStream } from '@libp2p/utils'
import { afterEach, describe, expect, it } from 'vitest'
import type { MeshNode, MeshNodeInit } from '../src/mesh/node.ts'
import { meshTopic } from '../src/mesh/topics.ts'
import { eventually } from './helpers/eventually.ts'

export type TransportFactory = (init: Omit<MeshNodeInit, 'transport'>) => Promise<MeshNode>

const enc = new TextEncoder()
const dec = new TextDecoder()

export function transportAcceptance(name: string, create: TransportFactory): void {
  describe(`transport acceptance: ${name}`, () => {
    let nodes: MeshNode[] = []
    afterEach(async () => {
      await Promise.allSettled(nodes.map((n) => n.stop()))
      nodes = []
    })
    const node = async (init: Omit<MeshNodeInit, 'transport'> = {}) => {
      const n = await create({ mdns: false, loopbackTesting: true, meshName: 'acceptance', ...init })
      nodes.push(n)
      return n
    }
    const topic = meshTopic('acceptance', 'ns')

    it('dials by address and reports the peer connected on both sides, then disconnected', async () => {
      const a = await node()
      const b = await node()
      const connectedOnB: string[] = []
      const disconnectedOnB: string[] = []
      b.onPeerConnect((p) => connectedOnB.push(p.toString()))
      b.onPeerDisconnect((p) => disconnectedOnB.push(p.toString()))
      expect(b.addresses()[0].toString()).toContain(`/p2p/${b.peerId.toString()}`)
      const remote = await a.dial(b.addresses()[0])
      expect(remote.equals(b.peerId)).toBe(true)
      await eventually(() => connectedOnB.includes(a.peerId.toString()), { message: 'b sees a connect' })
      expect(a.peers().some((p) => p.equals(b.peerId))).toBe(true)
      await a.hangUp(b.peerId)
      await eventually(() => disconnectedOnB.includes(a.peerId.toString()), { message: 'b sees a leave' })
    })

    it('delivers a published message to a subscriber, and a reject stops it there', async () => {
      const a = await node({ peerExchange: false })
      const b = await node({ peerExchange: false })
      const c = await node({ peerExchange: false })
      const onB: string[] = []
      const onC: string[] = []
      a.subscribe(topic, () => {})
      b.subscribe(
        topic,
        (m) => onB.push(dec.decode(m.data)),
        (m) => (dec.decode(m.data) === 'bad' ? 'reject' : 'accept'),
      )
      c.subscribe(topic, (m) => onC.push(dec.decode(m.data)))
      await a.dial(b.addresses()[0])
      await c.dial(b.addresses()[0])
      await eventually(() => a.topicPeers(topic).length === 1 && c.topicPeers(topic).length === 1, {
        message: 'a line a-b-c in the gossip mesh',
      })
      await a.publish(topic, enc.encode('bad'))
      await a.publish(topic, enc.encode('good'))
      await eventually(() => onC.includes('good'), { message: 'good reached c through b' })
      expect(onB).toEqual(['good'])
      expect(onC).toEqual(['good'])
    })

    it('opens a protocol stream to a handler and carries bytes both ways', async () => {
      const a = await node()
      const b = await node()
      const protocol = '/hearsay/acceptance/1.0.0'
      await b.handleProtocol(protocol, (stream) => {
        void (async () => {
          const lp = lpStream(stream)
          const request = await lp.read()
          await lp.write(enc.encode(`echo ${dec.decode(request.subarray())}`))
          await stream.close()
        })()
      })
      const watched: string[] = []
      const unwatch = await a.watchProtocol(protocol, { onConnect: (p) => watched.push(p.toString()) })
      await a.dial(b.addresses()[0])
      await eventually(() => watched.includes(b.peerId.toString()), {
        message: 'a sees b speak the protocol',
      })
      unwatch()
      const stream = await a.openStream(b.peerId, protocol)
      const lp = lpStream(stream)
      await lp.write(enc.encode('hello'))
      expect(dec.decode((await lp.read()).subarray())).toBe('echo hello')
      await stream.close()
    })
  })
}

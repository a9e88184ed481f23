/**
 * The mesh under faults: values thrown or rejected that are not Errors (libp2p streams reject with
 * undefined at times) reach the error callback as Errors with a message, never as a second failure.
 */
import { afterEach, describe, expect, it } from 'vitest'
import { asError, describeThrown } from '../src/mesh/errors.ts'
import { createMeshNode, type MeshNode } from '../src/mesh/node.ts'
import { meshTopic } from '../src/mesh/topics.ts'
import { eventually } from './helpers/mesh-peers.ts'

const enc = new TextEncoder()
let nodes: MeshNode[] = []

afterEach(async () => {
  await Promise.all(nodes.map((n) => n.stop()))
  nodes = []
})

describe('thrown values that are not Errors', () => {
  it('describes any thrown value without throwing', () => {
    expect(describeThrown(undefined)).toMatch(/undefined/)
    expect(describeThrown(null)).toMatch(/null/)
    expect(describeThrown('reset')).toBe('reset')
    expect(describeThrown({ message: 'closed' })).toBe('closed')
    expect(describeThrown({ type: 'close' })).toMatch(/close event/)
    expect(describeThrown(42)).toMatch(/number 42/)
    expect(describeThrown(Object.create(null))).toMatch(/non-error value/)
    const original = new Error('kept')
    expect(asError(original)).toBe(original)
    const wrapped = asError(undefined)
    expect(wrapped).toBeInstanceOf(Error)
    expect(typeof wrapped.message).toBe('string')
  })

  it('a validator and a handler rejecting with undefined reach onError as Errors with a message', async () => {
    const topic = meshTopic('test', 'ns')
    const reported: Array<{ where: string; message: unknown }> = []
    const options = { mdns: false, loopbackTesting: true, meshName: 'test', peerExchange: false } as const
    const a = await createMeshNode(options)
    nodes.push(a)
    const b = await createMeshNode({
      ...options,
      // What attachMesh does with every reported error: read its message.
      onError: (error, context) =>
        reported.push({ where: context.where, message: error.message.slice(0, 80) }),
    })
    nodes.push(b)
    const delivered: string[] = []
    b.subscribe(
      topic,
      (message) => {
        delivered.push(new TextDecoder().decode(message.data))
        throw undefined
      },
      (message) => {
        if (new TextDecoder().decode(message.data) === 'reject-undefined') return Promise.reject(undefined)
        return 'accept'
      },
    )
    a.subscribe(topic, () => {})
    await a.dial(b.addresses()[0]!)
    expect(await eventually(() => a.topicPeers(topic).length === 1, 10_000)).toBe(true)
    await a.publish(topic, enc.encode('reject-undefined'))
    await a.publish(topic, enc.encode('delivered'))
    expect(
      await eventually(
        () => reported.some((r) => r.where === 'validator') && delivered.includes('delivered'),
        10_000,
      ),
    ).toBe(true)
    expect(await eventually(() => reported.some((r) => r.where === 'message handler'), 10_000)).toBe(true)
    for (const report of reported) expect(typeof report.message).toBe('string')
    expect(delivered).toEqual(['delivered'])
  })
})

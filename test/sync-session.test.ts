import { describe, expect, it } from 'vitest'
import { DecodeError } from '../src/codec/index.ts'
import { CausalContext, CrdtDocument, type Delta } from '../src/crdt/index.ts'
import { SYNC_FRAME_VERSION } from '../src/sync/constants.ts'
import { decodeSyncFrame, encodeSyncFrame, type SyncFrame } from '../src/sync/frames.ts'
import { SyncProtocolError, SyncSession } from '../src/sync/session.ts'

const te = new TextEncoder()

/**
 * Runs a session between two documents with no I/O: frames are encoded, decoded and handed over
 * one at a time, as the transport would. Returns the frames each side sent.
 */
function runSession(a: CrdtDocument, b: CrdtDocument, chunkBytes?: number) {
  const initiator = new SyncSession({ role: 'initiator', namespace: 'ns', state: a, chunkBytes })
  const responder = new SyncSession({ role: 'responder', namespace: 'ns', state: b, chunkBytes })
  const toB: Uint8Array[] = initiator.open().map(encodeSyncFrame)
  const toA: Uint8Array[] = []
  const sent = { byA: [...toB], byB: [] as Uint8Array[] }
  let rounds = 0
  while ((toA.length > 0 || toB.length > 0) && rounds++ < 10_000) {
    const forB = toB.shift()
    if (forB !== undefined) {
      const step = responder.receive(decodeSyncFrame(forB))
      if (step.merge) b.merge(step.merge.delta, step.merge.options)
      const out = step.send.map(encodeSyncFrame)
      toA.push(...out)
      sent.byB.push(...out)
    }
    const forA = toA.shift()
    if (forA !== undefined) {
      const step = initiator.receive(decodeSyncFrame(forA))
      if (step.merge) a.merge(step.merge.delta, step.merge.options)
      const out = step.send.map(encodeSyncFrame)
      toB.push(...out)
      sent.byA.push(...out)
    }
  }
  return { initiator, responder, sent }
}

function bytes(frames: Uint8Array[]): number {
  return frames.reduce((sum, f) => sum + f.length, 0)
}

describe('anti-entropy session', () => {
  it('ends in one round trip with a few hundred bytes when states are equal', () => {
    const a = new CrdtDocument({ replica: 'a' })
    for (let i = 0; i < 1000; i++) a.put(`k${i}`, te.encode(`${i}`), 'text/plain')
    const b = new CrdtDocument({ replica: 'b' })
    b.merge(a.snapshot())
    const { initiator, responder, sent } = runSession(a, b)
    expect(initiator.done && responder.done).toBe(true)
    expect(initiator.stats.equal).toBe(true)
    expect(sent.byA).toHaveLength(1)
    expect(sent.byB).toHaveLength(1)
    expect(bytes(sent.byA) + bytes(sent.byB)).toBeLessThan(200)
  })

  it('repairs both directions, removals included, in bounded chunks', () => {
    const a = new CrdtDocument({ replica: 'a' })
    const b = new CrdtDocument({ replica: 'b' })
    for (let i = 0; i < 300; i++) a.put(`a${i}`, new Uint8Array(100), 'application/octet-stream')
    for (let i = 0; i < 200; i++) b.put(`b${i}`, new Uint8Array(100), 'application/octet-stream')
    b.merge(a.snapshot())
    for (let i = 0; i < 50; i++) a.delete(`a${i}`)
    for (let i = 0; i < 20; i++) b.put(`a${i + 100}`, te.encode('overwritten by b'), 'text/plain')
    const { sent } = runSession(a, b, 4096)
    expect(a.digest()).toBe(b.digest())
    expect(a.get('a10')).toBeUndefined()
    expect(b.get('a10')).toBeUndefined()
    expect(new TextDecoder().decode(a.get('a110')!.winner.value)).toBe('overwritten by b')
    for (const frame of [...sent.byA, ...sent.byB]) expect(frame.length).toBeLessThan(4096 + 1024)
    expect(sent.byB.length).toBeGreaterThan(3)
  })

  it('sends little more than the missing entries themselves', () => {
    const a = new CrdtDocument({ replica: 'a' })
    for (let i = 0; i < 5000; i++) a.put(`key/${i}`, te.encode(`{"v":${i}}`), 'application/json')
    const b = new CrdtDocument({ replica: 'b' })
    b.merge(a.snapshot())
    const missing: Delta[] = []
    for (let i = 0; i < 100; i++)
      missing.push(a.put(`key/${i * 7}`, te.encode(`{"v":"new${i}"}`), 'application/json').delta)
    const { sent, initiator } = runSession(b, a)
    expect(b.digest()).toBe(a.digest())
    expect(initiator.stats.entriesReceived).toBe(100)
    const missingEntries = missing.flatMap((delta) => delta.entries)
    const payload = missingEntries.reduce((sum, e) => sum + e.key.length + e.value!.length, 0)
    // Wire bytes in both directions stay within 2x of the bare keys and values of what was missing,
    // plus each entry's 64-byte signature.
    expect(bytes(sent.byA) + bytes(sent.byB)).toBeLessThan(2 * payload + 64 * missingEntries.length + 400)
  })

  it('refuses frames out of turn and chunks that smuggle context', () => {
    const a = new CrdtDocument({ replica: 'a' })
    const responder = new SyncSession({ role: 'responder', namespace: 'ns', state: a })
    expect(() => responder.receive({ type: 'equal' })).toThrow(SyncProtocolError)
    const fresh = new SyncSession({ role: 'responder', namespace: 'ns', state: a })
    expect(() =>
      fresh.receive({ type: 'open', namespace: 'other', digest: 'x', context: new CausalContext() }),
    ).toThrow(expect.objectContaining({ code: 'wrong-namespace' }))

    const initiator = new SyncSession({ role: 'initiator', namespace: 'ns', state: a })
    initiator.open()
    const smuggled: SyncFrame = {
      type: 'deltas',
      final: false,
      delta: { entries: [], context: CausalContext.fromDots([{ replica: 'z', counter: 1 }]) },
    }
    expect(() => initiator.receive(smuggled)).toThrow(expect.objectContaining({ code: 'bad-chunk' }))
    expect(() => initiator.receive({ type: 'error', code: 'busy', message: 'later' })).toThrow(
      expect.objectContaining({ code: 'remote-busy' }),
    )
  })

  it('decodes every truncated or unknown frame to a DecodeError', () => {
    const a = new CrdtDocument({ replica: 'a' })
    a.put('k', te.encode('v'), 'text/plain')
    const frames: SyncFrame[] = [
      { type: 'open', namespace: 'ns', digest: a.digest(), context: a.context() },
      { type: 'equal' },
      { type: 'context', context: a.context() },
      { type: 'deltas', final: true, delta: a.snapshot() },
      {
        type: 'deltas',
        final: true,
        delta: a.snapshot(),
        heads: [
          { replica: 'a', counter: 1, bodyHash: new Uint8Array(32).fill(7), signature: new Uint8Array(64) },
        ],
      },
      { type: 'error', code: 'x', message: 'y' },
    ]
    for (const frame of frames) {
      const encoded = encodeSyncFrame(frame)
      const decoded = decodeSyncFrame(encoded)
      expect(decoded.type).toBe(frame.type)
      if (frame.type === 'deltas' && decoded.type === 'deltas')
        expect(decoded.heads).toEqual(frame.heads ?? [])
      for (let cut = 0; cut < encoded.length; cut++) {
        expect(() => decodeSyncFrame(encoded.subarray(0, cut))).toThrow(DecodeError)
      }
    }
    expect(() => decodeSyncFrame(new Uint8Array([SYNC_FRAME_VERSION + 1, 10]))).toThrow(
      expect.objectContaining({ reason: 'unknown-version' }),
    )
    expect(() => decodeSyncFrame(new Uint8Array([SYNC_FRAME_VERSION, 99]))).toThrow(
      expect.objectContaining({ reason: 'unknown-frame-type' }),
    )
  })
})

import type { Replica } from '../../src/replica/replica.ts'
import { decodeSyncFrame, encodeSyncFrame, type SyncFrame } from '../../src/sync/frames.ts'
import { SyncSession } from '../../src/sync/session.ts'

/**
 * One anti-entropy session between two replicas with no I/O: every frame goes through the real
 * encoding and the real session, one at a time in each direction, and each merge is awaited before
 * the next frame, as the sync service does. `seen` is shown every frame as it arrives.
 */
export async function exchangeReplicas(
  a: Replica,
  b: Replica,
  options: { namespace?: string; chunkBytes?: number; seen?: (frame: SyncFrame) => void } = {},
): Promise<{ initiator: SyncSession; responder: SyncSession }> {
  const namespace = options.namespace ?? 'ns'
  const initiator = new SyncSession({
    role: 'initiator',
    namespace,
    state: a,
    chunkBytes: options.chunkBytes,
  })
  const responder = new SyncSession({
    role: 'responder',
    namespace,
    state: b,
    chunkBytes: options.chunkBytes,
  })
  const through = (frame: SyncFrame): SyncFrame => {
    const decoded = decodeSyncFrame(encodeSyncFrame(frame))
    options.seen?.(decoded)
    return decoded
  }
  const toB: SyncFrame[] = initiator.open()
  const toA: SyncFrame[] = []
  for (let rounds = 0; (toA.length > 0 || toB.length > 0) && rounds < 10_000; rounds++) {
    const forB = toB.shift()
    if (forB !== undefined) {
      const step = responder.receive(through(forB))
      if (step.merge) await b.merge(step.merge.delta, step.merge.options)
      toA.push(...step.send)
    }
    const forA = toA.shift()
    if (forA !== undefined) {
      const step = initiator.receive(through(forA))
      if (step.merge) await a.merge(step.merge.delta, step.merge.options)
      toB.push(...step.send)
    }
  }
  return { initiator, responder }
}

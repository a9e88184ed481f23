/**
 * libp2p's in-memory transport with injectable loss. @libp2p/memory offers latency only, and its
 * links never lose a byte; a lossy link is made here by wrapping each raw connection before the
 * upgrade. The stack above (noise, yamux) expects a reliable byte stream, like TCP: a lost buffer
 * cannot be skipped, so it resets the connection, which is what a lossy path looks like to a TCP
 * peer whose retransmissions fail. Gossip in flight on it is lost; the connector redials and
 * anti-entropy repairs what was lost.
 */
import type { MultiaddrConnection, Transport, Upgrader } from '@libp2p/interface'
import { type MemoryTransportComponents, memory } from '@libp2p/memory'
import { seededRandom } from '../seeded-random.ts'

export { seededRandom }

export interface LinkLoss {
  /** Chance, from 0 to 1, that a buffer sent on a connection is lost (and the connection reset). */
  rate: number
  /** Seed of the loss draws, so a run can be replayed. Default: 1. */
  seed?: number
  /** Told of every lost buffer (tests count them). */
  onLost?: () => void
}

export interface LossyMemoryInit {
  /** Delay of every buffer, in ms. Default: 0. */
  latencyMs?: number
  /** Default: no loss. */
  loss?: LinkLoss
}

/** The error a connection is reset with when the link loses one of its buffers. */
export class LinkLostError extends Error {
  override name = 'LinkLostError'
}

/** Checks a loss setting; throws RangeError for a rate outside [0, 1] or a seed that is not an integer. */
export function checkLinkLoss(loss: LinkLoss): void {
  if (!Number.isFinite(loss.rate) || loss.rate < 0 || loss.rate > 1)
    throw new RangeError(`link loss rate must be between 0 and 1, got ${loss.rate}`)
  if (loss.seed !== undefined && !Number.isSafeInteger(loss.seed))
    throw new RangeError(`link loss seed must be an integer, got ${loss.seed}`)
}

/** The memory transport factory, lossy when `loss.rate` is above 0. */
export function lossyMemory(
  init: LossyMemoryInit = {},
): (components: MemoryTransportComponents) => Transport {
  const base = memory({ latency: init.latencyMs ?? 0 })
  const loss = init.loss
  if (loss === undefined || loss.rate === 0) return base
  checkLinkLoss(loss)
  const random = seededRandom(loss.seed ?? 1)
  const lossy = (maConn: MultiaddrConnection): MultiaddrConnection => {
    // sendData is the one place every outgoing buffer passes (AbstractMessageStream).
    const target = maConn as unknown as {
      sendData(data: unknown): { sentBytes: number; canSendMore: boolean }
    }
    const send = target.sendData.bind(target)
    let lost = false
    target.sendData = (data) => {
      if (!lost && random() < loss.rate) {
        lost = true
        loss.onLost?.()
        // Reset outside the send path: the sender is still inside its write.
        queueMicrotask(() => maConn.abort(new LinkLostError('the link lost a buffer; connection reset')))
      }
      if (lost) return { sentBytes: (data as { byteLength: number }).byteLength, canSendMore: true }
      return send(data)
    }
    return maConn
  }
  const wrapUpgrader = (upgrader: Upgrader): Upgrader =>
    new Proxy(upgrader, {
      get(target, property, receiver) {
        if (property === 'upgradeOutbound' || property === 'upgradeInbound')
          return (maConn: MultiaddrConnection, options: unknown) =>
            Reflect.apply(target[property], target, [lossy(maConn), options])
        const value = Reflect.get(target, property, receiver)
        return typeof value === 'function' ? value.bind(target) : value
      },
    })
  return (components) => {
    const transport = base(components)
    const dial = transport.dial.bind(transport)
    const createListener = transport.createListener.bind(transport)
    transport.dial = (ma, options) => dial(ma, { ...options, upgrader: wrapUpgrader(options.upgrader) })
    transport.createListener = (options) =>
      createListener({ ...options, upgrader: wrapUpgrader(options.upgrader) })
    return transport
  }
}

import { createMemoryTransport } from '../src/transport/port.ts'
import { transportAcceptance } from './transport-acceptance.ts'

transportAcceptance('libp2p in memory', createMemoryTransport)
transportAcceptance('libp2p in memory, 5 ms latency', (init) =>
  createMemoryTransport({ ...init, latencyMs: 5 }),
)

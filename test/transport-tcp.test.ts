import { createTcpTransport } from '../src/transport/port.ts'
import { transportAcceptance } from './transport-acceptance.ts'

transportAcceptance('libp2p over TCP', createTcpTransport)

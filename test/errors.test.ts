import { describe, expect, it } from 'vitest'
import { DecodeError } from '../src/codec/errors.ts'
import { ApiError, DaemonStartError } from '../src/daemon/errors.ts'
import { HearsayError } from '../src/errors.ts'
import {
  CorruptKeyFileError,
  InvalidAddressError,
  MeshError,
  MessageTooLargeError,
  TopicNotAllowedError,
} from '../src/mesh/errors.ts'
import { decodeTicket, InvalidTicketError } from '../src/mesh/invite-ticket.ts'
import { ReplicaError } from '../src/replica/errors.ts'
import { SignatureError } from '../src/replica/signing.ts'
import { StoreError } from '../src/store/types.ts'
import { SyncProtocolError } from '../src/sync/session.ts'

describe('one error convention', () => {
  it('every layer error is a HearsayError with its name, code, message and cause', () => {
    const cause = new Error('disk')
    const errors: Array<[HearsayError, string, string]> = [
      [new ReplicaError('INVALID_KEY', 'bad key', { cause }), 'ReplicaError', 'INVALID_KEY'],
      [new StoreError('STORE_IO', 'io', { cause }), 'StoreError', 'STORE_IO'],
      [new SyncProtocolError('bad-chunk', 'chunk', { cause }), 'SyncProtocolError', 'bad-chunk'],
      [new DaemonStartError('LOCKED', 'locked', { cause }), 'DaemonStartError', 'LOCKED'],
      [new ApiError(400, 'INVALID_KEY', 'bad key', { cause }), 'ApiError', 'INVALID_KEY'],
      [new SignatureError('forged', { cause }), 'SignatureError', 'INVALID_SIGNATURE'],
    ]
    for (const [error, name, code] of errors) {
      expect(error).toBeInstanceOf(HearsayError)
      expect(error).toBeInstanceOf(Error)
      expect(error.name).toBe(name)
      expect(error.code).toBe(code)
      expect(error.cause).toBe(cause)
      expect(String(error)).toBe(`${name}: ${error.message}`)
    }
  })

  it('a decode error carries its reason as its code', () => {
    const error = new DecodeError('truncated', 'ends early')
    expect(error).toBeInstanceOf(HearsayError)
    expect(error.code).toBe('truncated')
    expect(error.reason).toBe('truncated')
    expect(error.message).toBe('cannot decode frame (truncated): ends early')
  })

  it('a sync refusal from the other side is told apart by its code', () => {
    expect(new SyncProtocolError('remote-busy', 'peer refused: busy').remote).toBe(true)
    expect(new SyncProtocolError('quota-exceeded', 'quota').remote).toBe(false)
  })

  it('an API error keeps its status and headers', () => {
    const error = new ApiError(503, 'SERVER_BUSY', 'busy', { headers: { 'retry-after': '1' } })
    expect(error.status).toBe(503)
    expect(error.headers).toEqual({ 'retry-after': '1' })
  })

  it('every mesh failure is a MeshError told apart by its code, keeping its name and fields', () => {
    const cases: Array<[MeshError, string, string]> = [
      [new CorruptKeyFileError('/k', 'empty file'), 'CorruptKeyFileError', 'CORRUPT_KEY_FILE'],
      [new TopicNotAllowedError('t', 'no'), 'TopicNotAllowedError', 'TOPIC_NOT_ALLOWED'],
      [new MessageTooLargeError(17, 16), 'MessageTooLargeError', 'MESSAGE_TOO_LARGE'],
      [new InvalidAddressError('x', 'bad'), 'InvalidAddressError', 'INVALID_ADDRESS'],
    ]
    for (const [error, name, code] of cases) {
      expect(error).toBeInstanceOf(MeshError)
      expect(error).toBeInstanceOf(HearsayError)
      expect(error.name).toBe(name)
      expect(error.code).toBe(code)
    }
    expect(new MessageTooLargeError(17, 16)).toMatchObject({ size: 17, limit: 16 })
    let thrown: unknown
    try {
      decodeTicket('not a ticket')
    } catch (error) {
      thrown = error
    }
    expect(thrown).toBeInstanceOf(InvalidTicketError)
    expect(thrown).toMatchObject({ name: 'InvalidTicketError', code: 'INVALID_TICKET' })
  })
})

/**
 * Compare-and-set through a Replica: the ETag of a write names that write, not the key's state after
 * the commit it landed in, and a token names the key it was issued for.
 */
import { describe, expect, it } from 'vitest'
import { encodeToken } from '../src/codec/stored.ts'
import { CausalContext } from '../src/crdt/index.ts'
import { ReplicaError } from '../src/replica/errors.ts'
import { Replica } from '../src/replica/replica.ts'
import { createMemoryStore } from '../src/store/memory.ts'

const te = new TextEncoder()
const td = new TextDecoder()
const plain = 'text/plain'

function open(): Replica {
  return Replica.open({ namespace: 'ns', store: createMemoryStore(), replicaBase: 'a' })
}

function values(replica: Replica, key: string): string[] {
  return (replica.get(key)?.siblings ?? []).map((sibling) => td.decode(sibling.value)).sort()
}

function refusal(promise: Promise<unknown>): Promise<ReplicaError> {
  return promise.then(
    () => {
      throw new Error('the write was accepted')
    },
    (error: unknown) => {
      expect(error).toBeInstanceOf(ReplicaError)
      return error as ReplicaError
    },
  )
}

describe('Replica If-Match tokens', () => {
  it('gives two writes that share a commit different tokens; each replaces only its own write', async () => {
    const replica = open()
    // Both writes start in the same event-loop turn, so they share one commit.
    const [one, two] = await Promise.all([
      replica.put('k', te.encode('one'), plain),
      replica.put('k', te.encode('two'), plain),
    ])
    expect(one.token).not.toBe(two.token)
    // "two" superseded "one" (same replica, later write). The client of "one" never saw "two".
    expect(values(replica, 'k')).toEqual(['two'])
    await replica.put('k', te.encode('three'), plain, { ifMatch: one.token })
    expect(values(replica, 'k')).toEqual(['three', 'two'])
    // The token of "two" names it: the winner of the two replaces it and keeps "three".
    await replica.put('k', te.encode('four'), plain, { ifMatch: two.token })
    expect(values(replica, 'k')).toEqual(['four', 'three'])
    // A read's token names every sibling it showed.
    await replica.put('k', te.encode('five'), plain, { ifMatch: replica.get('k')!.etag })
    expect(values(replica, 'k')).toEqual(['five'])
  })

  it('a write that left no sibling has the ETag a read of the key shows', async () => {
    const replica = open()
    await replica.put('other', te.encode('o'), plain)
    const first = await replica.put('k', te.encode('one'), plain)
    expect(replica.get('k')!.etag).toBe(first.token)
    await replica.put('other', te.encode('p'), plain)
    const second = await replica.put('k', te.encode('two'), plain)
    expect(replica.get('k')!.etag).toBe(second.token)
  })

  it('a delete with the token of a write removes that write alone', async () => {
    const replica = open()
    const [one] = await Promise.all([
      replica.put('k', te.encode('one'), plain),
      replica.put('k', te.encode('two'), plain),
    ])
    await replica.delete('k', { ifMatch: one.token })
    expect(values(replica, 'k')).toEqual(['two'])
  })

  it('refuses the token of another key, of a counter, and of an old token version', async () => {
    const replica = open()
    const a = await replica.put('a', te.encode('A'), plain)
    await replica.put('b', te.encode('B'), plain)
    const other = await refusal(replica.put('b', te.encode('x'), plain, { ifMatch: a.token }))
    expect(other.code).toBe('INVALID_TOKEN')
    expect(other.message).toContain('another key')
    expect((await refusal(replica.delete('b', { ifMatch: replica.get('a')!.etag }))).code).toBe(
      'INVALID_TOKEN',
    )
    // A counter named like the register is another key (another type).
    const counter = await replica.increment('b', 1)
    expect((await refusal(replica.put('b', te.encode('x'), plain, { ifMatch: counter.token }))).code).toBe(
      'INVALID_TOKEN',
    )
    // Version 1 tokens carried no key.
    const covers = new CausalContext()
    covers.add(replica.replicaId, 2)
    const v2 = Buffer.from(encodeToken('rb', covers), 'base64url')
    const v1 = Buffer.concat([Buffer.from([1]), v2.subarray(5)]).toString('base64url')
    const old = await refusal(replica.put('b', te.encode('x'), plain, { ifMatch: v1 }))
    expect(old.code).toBe('INVALID_TOKEN')
    expect(old.message).toContain('version 1')
    // Nothing was written by the refusals.
    expect(values(replica, 'b')).toEqual(['B'])
    expect(values(replica, 'a')).toEqual(['A'])
  })
})

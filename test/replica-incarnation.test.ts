import { describe, expect, it } from 'vitest'
import {
  chooseReplicaId,
  META_HOME,
  META_REPLICA,
  newReplicaId,
  nextIncarnation,
  replicaBase,
} from '../src/replica/incarnation.ts'

/** A deterministic random source: bytes counting up from `start`. */
function counting(start = 0): (size: number) => Uint8Array {
  let next = start
  return (size) => Uint8Array.from({ length: size }, () => next++ & 0xff)
}

const text = (value: string) => new TextEncoder().encode(value)
const BASE = '12D3KooWBase'

describe('replica incarnations', () => {
  it('derives ids from the injected random source', () => {
    expect(newReplicaId(() => new Uint8Array(10))).toBe('aaaaaaaaaaaaaaaa')
    expect(nextIncarnation(BASE, () => new Uint8Array(5).fill(0xff))).toBe(`${BASE}~77777777`)
  })

  it('a new incarnation keeps the author and replaces the old tag', () => {
    const first = nextIncarnation(BASE, counting(0))
    const second = nextIncarnation(first, counting(1))
    expect(replicaBase(first)).toBe(BASE)
    expect(replicaBase(second)).toBe(BASE)
    expect(second).not.toBe(first)
    expect(second.split('~')).toHaveLength(2)
  })

  it('a new store gets a fresh incarnation of its base, recorded with its home', () => {
    const chosen = chooseReplicaId(BASE, 'home-1', new Map(), counting())
    expect(replicaBase(chosen.replicaId)).toBe(BASE)
    expect(chosen.meta).toEqual([
      [META_REPLICA, text(chosen.replicaId)],
      [META_HOME, text('home-1')],
    ])
  })

  it('a store reopened at home keeps its id and writes nothing', () => {
    const stored = new Map([
      [META_REPLICA, text(`${BASE}~aaaa`)],
      [META_HOME, text('home-1')],
    ])
    expect(chooseReplicaId(BASE, 'home-1', stored, counting())).toEqual({
      replicaId: `${BASE}~aaaa`,
      meta: [],
    })
  })

  it('a store copied elsewhere (its home changed) starts a new incarnation', () => {
    const stored = new Map([
      [META_REPLICA, text(`${BASE}~aaaa`)],
      [META_HOME, text('home-1')],
    ])
    const chosen = chooseReplicaId(BASE, 'home-2', stored, counting(7))
    expect(chosen.replicaId).not.toBe(`${BASE}~aaaa`)
    expect(replicaBase(chosen.replicaId)).toBe(BASE)
    expect(chosen.meta).toEqual([
      [META_REPLICA, text(chosen.replicaId)],
      [META_HOME, text('home-2')],
    ])
  })

  it('a store without an identity keeps its stored id', () => {
    const stored = new Map([[META_REPLICA, text(`${BASE}~aaaa`)]])
    expect(chooseReplicaId(BASE, undefined, stored, counting()).replicaId).toBe(`${BASE}~aaaa`)
  })
})

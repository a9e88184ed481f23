/**
 * The Store port's acceptance suite: every adapter runs it (after automerge-repo's
 * runStorageAdapterTests), so the Replica can rely on the same behaviour from all of them.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import {
  type NamespaceSnapshot,
  type Store,
  type StoreBatch,
  type StoredEntry,
  StoreError,
} from '../src/store/types.ts'

export interface StoreFixture {
  store: Store
  /**
   * Opens a new Store over the same backing data, where the adapter has any. The suite closes the
   * current store before calling it and takes the result as the current store.
   */
  reopen?: () => Store
  /** Closes every store the fixture opened (closing twice is fine) and removes its data. */
  cleanup: () => void
}

const enc = new TextEncoder()
const bytes = (s: string): Uint8Array => enc.encode(s)

function entry(
  replica: string,
  counter: number,
  key: string,
  body = `${replica}:${counter}:${key}`,
): StoredEntry {
  return { replica, counter, key, data: bytes(body) }
}

function batch(parts: Partial<StoreBatch>): StoreBatch {
  return { put: parts.put ?? [], remove: parts.remove ?? [], meta: parts.meta ?? [] }
}

/** Snapshot in a canonical, comparable form (entries sorted by dot, bytes as plain arrays). */
function canon(snapshot: NamespaceSnapshot) {
  const entries = snapshot.entries
    .map((e) => ({ replica: e.replica, counter: e.counter, key: e.key, data: [...e.data] }))
    .sort((a, b) => (a.replica < b.replica ? -1 : a.replica > b.replica ? 1 : a.counter - b.counter))
  const meta = [...snapshot.meta].map(([k, v]) => [k, [...v]]).sort((a, b) => (a[0] < b[0] ? -1 : 1))
  return { entries, meta }
}

function expectStoreError(fn: () => unknown, code: string): StoreError {
  let caught: unknown
  try {
    fn()
  } catch (err) {
    caught = err
  }
  expect(caught).toBeInstanceOf(StoreError)
  expect((caught as StoreError).code).toBe(code)
  expect((caught as StoreError).name).toBe('StoreError')
  return caught as StoreError
}

export function runStoreAcceptanceTests(name: string, setup: () => StoreFixture): void {
  // Probe once so adapters without persistence get no reopen tests at all (rather than skipped ones).
  const probe = setup()
  const canReopen = probe.reopen !== undefined
  probe.cleanup()

  describe(`Store acceptance: ${name}`, () => {
    let fx: StoreFixture
    let store: Store

    beforeEach(() => {
      fx = setup()
      store = fx.store
    })
    afterEach(() => {
      fx.cleanup()
    })

    function reopen(): Store {
      store.close()
      store = fx.reopen!()
      return store
    }

    it('starts empty', () => {
      expect(store.namespaces()).toEqual([])
      const snapshot = store.load('nothing-here')
      expect(snapshot.entries).toEqual([])
      expect(snapshot.meta.size).toBe(0)
      expect(store.sizeBytes()).toBeGreaterThanOrEqual(0)
      expect(typeof store.kind).toBe('string')
    })

    it('round-trips entries and meta', () => {
      const put = [
        entry('alice', 1, 'k1'),
        entry('alice', 2, 'k2'),
        entry('bob', 1, 'k1'),
        entry('bob', 7, 'k3'),
      ]
      store.commit('ns', batch({ put, meta: [['context', bytes('vv')]] }))
      const snapshot = store.load('ns')
      expect(canon(snapshot)).toEqual(canon({ entries: put, meta: new Map([['context', bytes('vv')]]) }))
      expect(store.namespaces()).toEqual(['ns'])
    })

    it('loads entries grouped by replica in ascending counter order', () => {
      store.commit('ns', batch({ put: [entry('r1', 30, 'a'), entry('r2', 2, 'b'), entry('r1', 4, 'c')] }))
      store.commit(
        'ns',
        batch({ put: [entry('r2', 1, 'd'), entry('r1', 10, 'e'), entry('r1', 2 ** 40, 'f')] }),
      )
      const order = store.load('ns').entries.map((e) => `${e.replica}/${e.counter}`)
      const r1 = order.filter((d) => d.startsWith('r1/'))
      const r2 = order.filter((d) => d.startsWith('r2/'))
      expect(r1).toEqual(['r1/4', 'r1/10', 'r1/30', `r1/${2 ** 40}`])
      expect(r2).toEqual(['r2/1', 'r2/2'])
      // Grouped: all of one replica, then all of the other, in either order.
      expect([
        [...r1, ...r2],
        [...r2, ...r1],
      ]).toContainEqual(order)
    })

    it('keeps large counters, unicode names and empty bodies exact', () => {
      const put = [
        {
          replica: 'ρέπλικα-🛰️',
          counter: Number.MAX_SAFE_INTEGER,
          key: 'clé/ключ/鍵',
          data: new Uint8Array(0),
        },
        { replica: 'r', counter: 1, key: '', data: new Uint8Array([0, 255, 0, 1]) },
      ]
      store.commit('ns/ünïcode', batch({ put, meta: [['empty', new Uint8Array(0)]] }))
      const snapshot = store.load('ns/ünïcode')
      expect(canon(snapshot)).toEqual(canon({ entries: put, meta: new Map([['empty', new Uint8Array(0)]]) }))
      expect(snapshot.entries.every((e) => e.data instanceof Uint8Array)).toBe(true)
      expect(store.namespaces()).toEqual(['ns/ünïcode'])
    })

    it('keeps NUL characters in keys, replica ids, namespace and meta names', () => {
      // The Replica's internal keys join parts with NUL; a store that cuts at NUL merges them.
      const put = [
        entry('r\u0000one', 1, 's\u0000member'),
        entry('r\u0000one', 2, 's'),
        entry('r', 3, '\u0000'),
      ]
      store.commit('ns\u0000a', batch({ put, meta: [['m\u0000x', bytes('1')]] }))
      store.commit('ns', batch({ meta: [['m', bytes('2')]] }))
      expect(store.namespaces()).toEqual(['ns', 'ns\u0000a'])
      const snapshot = store.load('ns\u0000a')
      expect(canon(snapshot)).toEqual(canon({ entries: put, meta: new Map([['m\u0000x', bytes('1')]]) }))
      expect([...store.load('ns').meta.keys()]).toEqual(['m'])
      store.commit('ns\u0000a', batch({ remove: [{ replica: 'r\u0000one', counter: 1 }] }))
      expect(
        store
          .load('ns\u0000a')
          .entries.map((e) => e.key)
          .sort(),
      ).toEqual(['\u0000', 's'])
      if (fx.reopen !== undefined) {
        reopen()
        expect(store.namespaces()).toEqual(['ns', 'ns\u0000a'])
        expect(
          store
            .load('ns\u0000a')
            .entries.map((e) => `${e.replica}|${e.key}`)
            .sort(),
        ).toEqual(['r\u0000one|s', 'r|\u0000'])
      }
    })

    it('upserts an entry put twice under the same dot', () => {
      store.commit('ns', batch({ put: [entry('a', 1, 'old-key', 'old')] }))
      store.commit('ns', batch({ put: [entry('a', 1, 'new-key', 'new')] }))
      const { entries } = store.load('ns')
      expect(entries).toHaveLength(1)
      expect(entries[0].key).toBe('new-key')
      expect(entries[0].data).toEqual(bytes('new'))
    })

    it('removes by dot, ignores unknown dots, and lets a remove win within one batch', () => {
      store.commit('ns', batch({ put: [entry('a', 1, 'k'), entry('a', 2, 'k'), entry('b', 1, 'k')] }))
      store.commit('ns', batch({ remove: [{ replica: 'a', counter: 1 }] }))
      expect(canon(store.load('ns')).entries.map((e) => `${e.replica}/${e.counter}`)).toEqual(['a/2', 'b/1'])

      store.commit(
        'ns',
        batch({
          remove: [
            { replica: 'a', counter: 99 },
            { replica: 'nobody', counter: 1 },
          ],
        }),
      )
      expect(store.load('ns').entries).toHaveLength(2)

      store.commit('ns', batch({ put: [entry('c', 5, 'k')], remove: [{ replica: 'c', counter: 5 }] }))
      expect(store.load('ns').entries.some((e) => e.replica === 'c')).toBe(false)
    })

    it('upserts meta and keeps a namespace with only meta', () => {
      store.commit(
        'ns',
        batch({
          meta: [
            ['replica-id', bytes('one')],
            ['context', bytes('c1')],
          ],
        }),
      )
      store.commit('ns', batch({ meta: [['context', bytes('c2')]] }))
      const { entries, meta } = store.load('ns')
      expect(entries).toEqual([])
      expect([...meta.keys()].sort()).toEqual(['context', 'replica-id'])
      expect(meta.get('context')).toEqual(bytes('c2'))
      expect(meta.get('replica-id')).toEqual(bytes('one'))
      expect(store.namespaces()).toEqual(['ns'])
    })

    it('keeps namespaces isolated', () => {
      store.commit('beta', batch({ put: [entry('a', 1, 'k', 'in beta')], meta: [['m', bytes('beta')]] }))
      store.commit('alpha', batch({ put: [entry('a', 1, 'k', 'in alpha')], meta: [['m', bytes('alpha')]] }))
      expect(store.namespaces()).toEqual(['alpha', 'beta'])

      store.commit('alpha', batch({ remove: [{ replica: 'a', counter: 1 }] }))
      expect(store.load('alpha').entries).toEqual([])
      expect(store.load('beta').entries.map((e) => e.data)).toEqual([bytes('in beta')])
      expect(store.load('alpha').meta.get('m')).toEqual(bytes('alpha'))
      expect(store.load('beta').meta.get('m')).toEqual(bytes('beta'))
      expect(store.load('gamma').entries).toEqual([])
    })

    it('drops a namespace from namespaces() once it holds nothing', () => {
      store.commit('ns', batch({ put: [entry('a', 1, 'k')] }))
      store.commit('ns', batch({ remove: [{ replica: 'a', counter: 1 }] }))
      expect(store.namespaces()).toEqual([])
    })

    it('treats an empty batch as a no-op', () => {
      store.commit('ns', batch({}))
      expect(store.namespaces()).toEqual([])
    })

    describe('batch atomicity: a malformed batch applies nothing and leaves the store usable', () => {
      const bad: Array<[string, (good: StoredEntry[]) => StoreBatch]> = [
        ['counter NaN', (good) => batch({ put: [...good, { ...entry('a', 1, 'k'), counter: Number.NaN }] })],
        ['counter 0', (good) => batch({ put: [...good, entry('a', 0, 'k')] })],
        ['fractional counter', (good) => batch({ put: [...good, entry('a', 1.5, 'k')] })],
        ['unsafe counter', (good) => batch({ put: [...good, entry('a', 2 ** 53, 'k')] })],
        ['empty replica', (good) => batch({ put: [...good, entry('', 1, 'k')] })],
        [
          'string data',
          (good) =>
            batch({ put: [...good, { ...entry('a', 9, 'k'), data: 'nope' as unknown as Uint8Array }] }),
        ],
        [
          'number[] data',
          (good) => batch({ put: [...good, { ...entry('a', 9, 'k'), data: [1] as unknown as Uint8Array }] }),
        ],
        [
          'key not a string',
          (good) => batch({ put: [...good, { ...entry('a', 9, 'k'), key: 7 as unknown as string }] }),
        ],
        ['bad remove', (good) => batch({ put: good, remove: [{ replica: 'a', counter: -1 }] })],
        ['bad meta value', (good) => batch({ put: good, meta: [['m', 'x' as unknown as Uint8Array]] })],
        ['empty meta name', (good) => batch({ put: good, meta: [['', bytes('x')]] })],
      ]
      for (const [label, make] of bad) {
        it(label, () => {
          store.commit('ns', batch({ put: [entry('a', 1, 'k', 'before')], meta: [['m', bytes('before')]] }))
          const before = canon(store.load('ns'))
          // Valid puts first, including an overwrite and a new namespace-wide change, then the bad part.
          const good = [entry('a', 1, 'k', 'overwritten?'), entry('z', 3, 'k')]
          expect(() => store.commit('ns', make(good))).toThrow(TypeError)
          expect(canon(store.load('ns'))).toEqual(before)
          expect(() => store.commit('other', make(good))).toThrow(TypeError)
          expect(store.namespaces()).toEqual(['ns'])
          // Still usable.
          store.commit('ns', batch({ put: [entry('z', 3, 'k')] }))
          expect(store.load('ns').entries).toHaveLength(2)
        })
      }

      it('rejects a bad namespace name', () => {
        expect(() => store.commit('', batch({ put: [entry('a', 1, 'k')] }))).toThrow(TypeError)
        expect(store.namespaces()).toEqual([])
      })
    })

    it('copies bytes in and out (no aliasing)', () => {
      const backing = new Uint8Array([100, 1, 2, 3, 200])
      const view = backing.subarray(1, 4)
      const metaValue = new Uint8Array([7, 7])
      store.commit(
        'ns',
        batch({ put: [{ replica: 'a', counter: 1, key: 'k', data: view }], meta: [['m', metaValue]] }),
      )
      view.fill(0)
      metaValue.fill(0)

      const first = store.load('ns')
      expect([...first.entries[0].data]).toEqual([1, 2, 3])
      expect([...first.meta.get('m')!]).toEqual([7, 7])
      first.entries[0].data.fill(9)
      first.meta.get('m')!.fill(9)

      const second = store.load('ns')
      expect([...second.entries[0].data]).toEqual([1, 2, 3])
      expect([...second.meta.get('m')!]).toEqual([7, 7])
      expect(second.entries[0].data).not.toBe(first.entries[0].data)
    })

    it('accepts Buffers as data', () => {
      const buf = Buffer.from('a buffer body')
      store.commit('ns', batch({ put: [{ replica: 'a', counter: 1, key: 'k', data: buf }] }))
      buf.fill(0)
      expect(store.load('ns').entries[0].data).toEqual(new Uint8Array(Buffer.from('a buffer body')))
    })

    it('round-trips a large batch', () => {
      const put: StoredEntry[] = []
      for (let i = 1; i <= 5_000; i++) put.push(entry(`replica-${i % 7}`, i, `key-${i % 101}`))
      store.commit('big', batch({ put }))
      expect(canon(store.load('big'))).toEqual(canon({ entries: put, meta: new Map() }))
    })

    it('reports a size that grows with the data', () => {
      const before = store.sizeBytes()
      const put: StoredEntry[] = []
      for (let i = 1; i <= 500; i++)
        put.push({ replica: 'a', counter: i, key: `k${i}`, data: new Uint8Array(1024) })
      store.commit('ns', batch({ put }))
      expect(store.sizeBytes()).toBeGreaterThan(before + 500 * 1024 * 0.9)
    })

    it('throws STORE_CLOSED on every use after close, and closes idempotently', () => {
      store.commit('ns', batch({ put: [entry('a', 1, 'k')] }))
      store.close()
      store.close()
      expectStoreError(() => store.load('ns'), 'STORE_CLOSED')
      expectStoreError(() => store.commit('ns', batch({ put: [entry('a', 2, 'k')] })), 'STORE_CLOSED')
      expectStoreError(() => store.namespaces(), 'STORE_CLOSED')
      expectStoreError(() => store.sizeBytes(), 'STORE_CLOSED')
    })

    if (canReopen) {
      it('reopens with the same data', () => {
        store.commit(
          'one',
          batch({ put: [entry('a', 1, 'k'), entry('b', 2, 'k')], meta: [['ctx', bytes('1')]] }),
        )
        store.commit('two', batch({ meta: [['only', bytes('meta')]] }))
        store.commit('one', batch({ remove: [{ replica: 'b', counter: 2 }] }))
        const one = canon(store.load('one'))
        const two = canon(store.load('two'))

        reopen()
        expect(store.namespaces()).toEqual(['one', 'two'])
        expect(canon(store.load('one'))).toEqual(one)
        expect(canon(store.load('two'))).toEqual(two)
      })

      it('keeps working after a reopen: upserts, removes, new replicas', () => {
        store.commit('ns', batch({ put: [entry('a', 1, 'k', 'v1'), entry('b', 1, 'k')] }))
        reopen()
        store.commit('ns', batch({ put: [entry('a', 1, 'k', 'v2'), entry('c', 1, 'k')] }))
        store.commit('ns', batch({ remove: [{ replica: 'b', counter: 1 }] }))
        reopen()
        const { entries } = store.load('ns')
        expect(entries.map((e) => `${e.replica}/${e.counter}`).sort()).toEqual(['a/1', 'c/1'])
        expect(entries.find((e) => e.replica === 'a')!.data).toEqual(bytes('v2'))
      })

      it('does not persist a rejected batch', () => {
        store.commit('ns', batch({ put: [entry('a', 1, 'k', 'kept')] }))
        expect(() =>
          store.commit('ns', batch({ put: [entry('a', 1, 'k', 'lost'), entry('a', 0, 'k')] })),
        ).toThrow(TypeError)
        reopen()
        expect(store.load('ns').entries.map((e) => e.data)).toEqual([bytes('kept')])
      })
    }
  })
}

import { spawnSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import {
  chmodSync,
  chownSync,
  closeSync,
  copyFileSync,
  cpSync,
  existsSync,
  linkSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  rmSync,
  statSync,
  truncateSync,
  writeFileSync,
  writeSync,
} from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { DatabaseSync } from 'node:sqlite'
import { pathToFileURL } from 'node:url'
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { APPLICATION_ID, SCHEMA_VERSION } from '../src/store/constants.ts'
import { createMemoryStore } from '../src/store/memory.ts'
import { openSqliteStore, type SqliteStore } from '../src/store/sqlite.ts'
import { type Store, type StoreBatch, type StoredEntry, StoreError } from '../src/store/types.ts'
import { runStoreAcceptanceTests } from './store-acceptance.ts'

runStoreAcceptanceTests('memory', () => {
  const store = createMemoryStore()
  return { store, cleanup: () => store.close() }
})

runStoreAcceptanceTests('sqlite', () => {
  const dir = mkdtempSync(join(tmpdir(), 'hearsay-store-'))
  // A missing parent directory, so every run also covers mkdir -p.
  const path = join(dir, 'data', 'store.db')
  const opened: Store[] = [openSqliteStore({ path })]
  return {
    store: opened[0],
    reopen: () => {
      const store = openSqliteStore({ path })
      opened.push(store)
      return store
    },
    cleanup: () => {
      for (const store of opened) store.close()
      rmSync(dir, { recursive: true, force: true })
    },
  }
})

const enc = new TextEncoder()

function batch(parts: Partial<StoreBatch>): StoreBatch {
  return { put: parts.put ?? [], remove: parts.remove ?? [], meta: parts.meta ?? [] }
}

function entries(n: number, from = 1): StoredEntry[] {
  const out: StoredEntry[] = []
  for (let i = from; i < from + n; i++) {
    out.push({ replica: `replica-${i % 3}`, counter: i, key: `key-${i % 50}`, data: enc.encode(`body ${i}`) })
  }
  return out
}

function catchStoreError(fn: () => unknown): StoreError {
  try {
    fn()
  } catch (err) {
    expect(err).toBeInstanceOf(StoreError)
    return err as StoreError
  }
  throw new Error('expected a StoreError, nothing was thrown')
}

function sha(path: string): string {
  return createHash('sha256').update(readFileSync(path)).digest('hex')
}

/** A raw connection for poking at the file behind the store's back. */
function raw(path: string, fn: (db: DatabaseSync) => void): void {
  const db = new DatabaseSync(path)
  try {
    fn(db)
  } finally {
    db.close()
  }
}

function pragma(db: DatabaseSync, sql: string): unknown {
  return Object.values(db.prepare(sql).get()!)[0]
}

describe('SQLite store', () => {
  let dir: string
  const open: Store[] = []

  function openAt(path: string, init: Partial<Parameters<typeof openSqliteStore>[0]> = {}): SqliteStore {
    const store = openSqliteStore({ path, ...init })
    open.push(store)
    return store
  }

  /** A closed store file holding `n` entries, its WAL folded back into the main file. */
  function filledFile(n: number): string {
    const path = join(dir, 'filled.db')
    const store = openAt(path)
    store.commit('ns', batch({ put: entries(n), meta: [['ctx', enc.encode('context')]] }))
    store.close()
    expect(existsSync(`${path}-wal`)).toBe(false)
    return path
  }

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'hearsay-sqlite-'))
  })
  afterEach(() => {
    for (const store of open.splice(0)) store.close()
    rmSync(dir, { recursive: true, force: true })
  })

  it('has kind sqlite and the absolute path', () => {
    const store = openAt(join(dir, 'a.db'))
    expect(store.kind).toBe('sqlite')
    expect(store.path).toBe(join(dir, 'a.db'))
  })

  it('creates missing parent directories', () => {
    const path = join(dir, 'x', 'y', 'z', 'store.db')
    const store = openAt(path)
    store.commit('ns', batch({ put: entries(3) }))
    expect(statSync(path).isFile()).toBe(true)
  })

  it('opens an existing empty file as a new store', () => {
    const path = join(dir, 'empty.db')
    writeFileSync(path, '')
    const store = openAt(path)
    store.commit('ns', batch({ put: entries(2) }))
    expect(store.load('ns').entries).toHaveLength(2)
  })

  describe('pragmas', () => {
    it('uses WAL, synchronous=FULL and a busy timeout by default', () => {
      const path = join(dir, 'p.db')
      const store = openAt(path)
      expect(store.settings()).toEqual({ journalMode: 'wal', synchronous: 'FULL', busyTimeoutMs: 5000 })
      // WAL mode and the version markers live in the file, so a second connection sees them too.
      raw(path, (db) => {
        expect(pragma(db, 'PRAGMA journal_mode')).toBe('wal')
        expect(pragma(db, 'PRAGMA user_version')).toBe(SCHEMA_VERSION)
        expect(pragma(db, 'PRAGMA application_id')).toBe(APPLICATION_ID)
      })
    })

    it('honours synchronous=NORMAL and a custom busy timeout', () => {
      const store = openAt(join(dir, 'n.db'), { synchronous: 'NORMAL', busyTimeoutMs: 250 })
      expect(store.settings()).toEqual({ journalMode: 'wal', synchronous: 'NORMAL', busyTimeoutMs: 250 })
    })

    it('rejects bad options', () => {
      expect(() => openSqliteStore({ path: '' })).toThrow(TypeError)
      expect(() => openSqliteStore({ path: ':memory:' })).toThrow(TypeError)
      expect(() => openSqliteStore({ path: join(dir, 'o.db'), synchronous: 'OFF' as 'FULL' })).toThrow(
        TypeError,
      )
      expect(() => openSqliteStore({ path: join(dir, 'o.db'), busyTimeoutMs: -1 })).toThrow(TypeError)
    })
  })

  it('keeps the schema readable by hand through the entries_by_name view', () => {
    const path = join(dir, 'v.db')
    const store = openAt(path)
    store.commit('ns', batch({ put: [{ replica: 'peer-a', counter: 4, key: 'k', data: enc.encode('v') }] }))
    raw(path, (db) => {
      const rows = db.prepare('SELECT ns, replica, counter, key FROM entries_by_name').all()
      expect(rows.map((r) => ({ ...r }))).toEqual([{ ns: 'ns', replica: 'peer-a', counter: 4, key: 'k' }])
    })
  })

  it('folds the WAL into the main file on close', () => {
    const path = join(dir, 'w.db')
    const store = openAt(path)
    store.commit('ns', batch({ put: entries(100) }))
    expect(statSync(`${path}-wal`).size).toBeGreaterThan(0)
    expect(store.sizeBytes()).toBeGreaterThanOrEqual(statSync(`${path}-wal`).size)
    store.close()
    expect(existsSync(`${path}-wal`)).toBe(false)
    const again = openAt(path)
    expect(again.load('ns').entries).toHaveLength(100)
  })

  it('sees commits made through another connection to the same file', () => {
    const path = join(dir, 'shared.db')
    const a = openAt(path)
    const b = openAt(path)
    a.commit('ns', batch({ put: [{ replica: 'first', counter: 1, key: 'k', data: enc.encode('1') }] }))
    expect(b.load('ns').entries.map((e) => e.replica)).toEqual(['first'])
    b.commit('ns', batch({ put: [{ replica: 'second', counter: 1, key: 'k', data: enc.encode('2') }] }))
    // 'second' was interned by b: a must learn its id rather than fail or drop the row.
    expect(
      a
        .load('ns')
        .entries.map((e) => e.replica)
        .sort(),
    ).toEqual(['first', 'second'])
    a.commit('ns', batch({ remove: [{ replica: 'second', counter: 1 }] }))
    expect(b.load('ns').entries.map((e) => e.replica)).toEqual(['first'])
  })

  describe('version and corruption checks', () => {
    it('refuses a file written by a newer schema, naming both versions, and leaves it untouched', () => {
      const path = filledFile(10)
      raw(path, (db) => db.exec(`PRAGMA user_version = ${SCHEMA_VERSION + 1}`))
      const before = sha(path)
      const err = catchStoreError(() => openAt(path))
      expect(err.code).toBe('STORE_NEWER_VERSION')
      expect(err.message).toContain(path)
      expect(err.message).toContain(`version ${SCHEMA_VERSION + 1}`)
      expect(err.message).toContain(`version ${SCHEMA_VERSION}`)
      expect(sha(path)).toBe(before)
    })

    it('opens a version 2 file (signatures only) and marks it version 3, its entries unchanged', () => {
      const path = filledFile(10)
      raw(path, (db) => db.exec('PRAGMA user_version = 2'))
      const store = openAt(path)
      expect(store.load('ns').entries).toHaveLength(10)
      store.close()
      raw(path, (db) => expect(pragma(db, 'PRAGMA user_version')).toBe(3))
    })

    it('refuses a version 1 file (entries without signatures) as STORE_CORRUPT and leaves it untouched', () => {
      const path = filledFile(10)
      raw(path, (db) => db.exec('PRAGMA user_version = 1'))
      const before = sha(path)
      const err = catchStoreError(() => openAt(path))
      expect(err.code).toBe('STORE_CORRUPT')
      expect(err.message).toContain('schema version 1')
      expect(err.message).toContain('signatures')
      expect(sha(path)).toBe(before)
    })

    it('refuses garbage bytes as STORE_CORRUPT and leaves them untouched', () => {
      const path = join(dir, 'garbage.db')
      const garbage = Buffer.alloc(16 * 1024)
      for (let i = 0; i < garbage.length; i++) garbage[i] = (i * 7919 + 13) % 251
      writeFileSync(path, garbage)
      const err = catchStoreError(() => openAt(path))
      expect(err.code).toBe('STORE_CORRUPT')
      expect(err.message).toContain(path)
      expect(readFileSync(path)).toEqual(garbage)
    })

    it('refuses a valid database truncated mid-file as STORE_CORRUPT', () => {
      const path = filledFile(3000)
      const size = statSync(path).size
      const pageSize = 4096
      expect(size).toBeGreaterThan(20 * pageSize)
      truncateSync(path, Math.floor(size / 2 / pageSize) * pageSize)
      const err = catchStoreError(() => openAt(path))
      expect(err.code).toBe('STORE_CORRUPT')
      expect(err.message).toContain(path)
    })

    it('refuses a database with an overwritten page as STORE_CORRUPT', () => {
      const path = filledFile(3000)
      const fd = openSync(path, 'r+')
      // Page 6 is the root of the entries b-tree (created after namespaces, replicas and their indexes).
      writeSync(fd, Buffer.alloc(4096, 0xab), 0, 4096, 5 * 4096)
      closeSync(fd)
      const err = catchStoreError(() => openAt(path))
      expect(err.code).toBe('STORE_CORRUPT')
      expect(err.message).toContain(path)
    })

    it('refuses a store whose tables do not match its schema version', () => {
      const path = filledFile(10)
      raw(path, (db) => db.exec('DROP TABLE meta'))
      const err = catchStoreError(() => openAt(path))
      expect(err.code).toBe('STORE_CORRUPT')
      expect(err.message).toMatch(/tables do not match.*no such table: meta/)
    })

    it("refuses another application's SQLite database", () => {
      const foreign = join(dir, 'foreign.db')
      raw(foreign, (db) => db.exec('CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)'))
      const before = sha(foreign)
      const err = catchStoreError(() => openAt(foreign))
      expect(err.code).toBe('STORE_CORRUPT')
      expect(err.message).toMatch(/not a hearsay store/)
      expect(sha(foreign)).toBe(before)

      const other = join(dir, 'other-app.db')
      raw(other, (db) => db.exec('PRAGMA application_id = 42'))
      expect(catchStoreError(() => openAt(other)).code).toBe('STORE_CORRUPT')
    })
  })

  describe('unwritable locations', () => {
    it('reports a data dir under a regular file (ENOTDIR, fails even as root) as STORE_PERMISSION', () => {
      const file = join(dir, 'not-a-dir')
      writeFileSync(file, 'x')
      const path = join(file, 'data', 'store.db')
      const err = catchStoreError(() => openAt(path))
      expect(err.code).toBe('STORE_PERMISSION')
      expect(err.message).toContain('ENOTDIR')
      expect(err.message).toContain(path)
    })

    it('reports a database path that is a directory as STORE_PERMISSION', () => {
      const path = join(dir, 'is-a-dir.db')
      mkdirSync(path)
      const err = catchStoreError(() => openAt(path))
      expect(err.code).toBe('STORE_PERMISSION')
      expect(err.message).toContain('EISDIR')
    })

    describe('as an unprivileged user (a child process as nobody when the tests run as root)', () => {
      const NOBODY = 65534
      const root = process.getuid?.() === 0
      let area: string
      /**
       * The other user may not be able to reach the checkout (a clone in root's home or in a 0700
       * temp dir): the child runs a copy of node and of the sources from a world-readable dir.
       */
      let runtime: string

      beforeAll(() => {
        runtime = mkdtempSync(join(tmpdir(), 'hearsay-nobody-'))
        chmodSync(runtime, 0o755)
        const node = join(runtime, 'node')
        try {
          linkSync(process.execPath, node)
        } catch {
          copyFileSync(process.execPath, node)
        }
        chmodSync(node, 0o755)
        cpSync(new URL('../src', import.meta.url), join(runtime, 'src'), { recursive: true })
      })
      afterAll(() => rmSync(runtime, { recursive: true, force: true }))

      beforeEach(() => {
        area = join(dir, 'area')
        mkdirSync(area)
        // mkdtemp makes 0700 dirs: let the other user reach the test area.
        chmodSync(dir, 0o755)
        chmodSync(area, 0o755)
        if (root) chownSync(area, NOBODY, NOBODY)
      })
      afterEach(() => {
        // Give write permission back so a non-root run can clean up.
        for (const p of [join(area, 'locked'), area]) if (existsSync(p)) chmodSync(p, 0o755)
      })

      /** Opens (and closes) a store at `path` in a child process as the other user; returns what it threw. */
      function openElsewhere(path: string): { ok?: true; code?: string; message?: string } {
        const moduleUrl = pathToFileURL(join(runtime, 'src', 'store', 'sqlite.ts')).href
        const script = `
          import { openSqliteStore } from ${JSON.stringify(moduleUrl)}
          try {
            openSqliteStore({ path: ${JSON.stringify(path)} }).close()
            console.log(JSON.stringify({ ok: true }))
          } catch (err) {
            console.log(JSON.stringify({ code: err.code, message: err.message }))
          }`
        const child = spawnSync(
          join(runtime, 'node'),
          ['--no-warnings', '--input-type=module', '-e', script],
          {
            encoding: 'utf8',
            cwd: area,
            ...(root ? { uid: NOBODY, gid: NOBODY } : {}),
          },
        )
        expect(child.error).toBeUndefined()
        expect(child.stderr).toBe('')
        expect(child.status).toBe(0)
        return JSON.parse(child.stdout)
      }

      function chownIfRoot(path: string): void {
        if (root) chownSync(path, NOBODY, NOBODY)
      }

      it('can open a store where it may write (the control case)', () => {
        expect(openElsewhere(join(area, 'fine', 'store.db'))).toEqual({ ok: true })
      })

      it('reports a chmod 0500 data dir as STORE_PERMISSION', () => {
        const locked = join(area, 'locked')
        mkdirSync(locked)
        chownIfRoot(locked)
        chmodSync(locked, 0o500)
        const result = openElsewhere(join(locked, 'store.db'))
        expect(result.code).toBe('STORE_PERMISSION')
        expect(result.message).toContain('EACCES')
        expect(result.message).toContain(join(locked, 'store.db'))
      })

      it('reports a missing subdirectory of a chmod 0500 dir as STORE_PERMISSION', () => {
        const locked = join(area, 'locked')
        mkdirSync(locked)
        chownIfRoot(locked)
        chmodSync(locked, 0o500)
        const result = openElsewhere(join(locked, 'sub', 'store.db'))
        expect(result.code).toBe('STORE_PERMISSION')
        expect(result.message).toContain('EACCES')
      })

      it('reports a read-only database file as STORE_PERMISSION (SQLite alone would open it read-only)', () => {
        const path = join(area, 'ro.db')
        openSqliteStore({ path }).close()
        chownIfRoot(path)
        chmodSync(path, 0o400)
        const result = openElsewhere(path)
        expect(result.code).toBe('STORE_PERMISSION')
        expect(result.message).toContain('EACCES')
      })

      it('reports a writable file in a chmod 0500 dir (no room for the WAL) as STORE_PERMISSION', () => {
        const locked = join(area, 'locked')
        mkdirSync(locked)
        const path = join(locked, 'store.db')
        openSqliteStore({ path }).close()
        chownIfRoot(locked)
        chownIfRoot(path)
        chmodSync(locked, 0o500)
        const result = openElsewhere(path)
        expect(result.code).toBe('STORE_PERMISSION')
        expect(result.message).toContain(path)
        expect(result.message).toContain('-wal')
      })
    })
  })

  describe('a failing commit', () => {
    it('rolls back the whole batch and makes the store unusable (no retry-and-continue)', () => {
      const path = join(dir, 'fail.db')
      const store = openAt(path)
      store.commit('ns', batch({ put: entries(5), meta: [['ctx', enc.encode('before')]] }))
      // A real SQLite error halfway through the batch: a trigger rejects one row.
      raw(path, (db) =>
        db.exec(`CREATE TRIGGER boom BEFORE INSERT ON entries WHEN NEW.counter = 666
                 BEGIN SELECT RAISE(ABORT, 'injected failure'); END`),
      )
      const failing = batch({
        put: [
          ...entries(3, 100),
          { replica: 'x', counter: 666, key: 'k', data: enc.encode('!') },
          ...entries(3, 200),
        ],
        remove: [{ replica: 'replica-1', counter: 1 }],
        meta: [['ctx', enc.encode('after')]],
      })
      const err = catchStoreError(() => store.commit('ns', failing))
      expect(err.code).toBe('STORE_IO')
      expect(err.message).toContain('injected failure')

      // Every later call refuses, pointing at the original failure.
      const later = catchStoreError(() => store.load('ns'))
      expect(later.code).toBe('STORE_CLOSED')
      expect(later.message).toContain('injected failure')
      expect(later.cause).toBe(err)
      expect(catchStoreError(() => store.commit('ns', batch({ put: entries(1, 300) }))).code).toBe(
        'STORE_CLOSED',
      )
      expect(catchStoreError(() => store.namespaces()).code).toBe('STORE_CLOSED')
      store.close()

      const reopened = openAt(path)
      const snapshot = reopened.load('ns')
      expect(snapshot.entries.map((e) => e.counter).sort()).toEqual([1, 2, 3, 4, 5])
      expect(snapshot.meta.get('ctx')).toEqual(enc.encode('before'))
    })
  })

  it('loads 100k entries of ~60 bytes, all of them, quickly', () => {
    const path = join(dir, 'big.db')
    const store = openAt(path)
    const replicas = Array.from({ length: 20 }, (_, i) => `12D3KooWPeer${String(i).padStart(40, '0')}`)
    const total = 100_000
    for (let start = 0; start < total; start += 10_000) {
      const put: StoredEntry[] = []
      for (let i = start; i < start + 10_000; i++) {
        const data = new Uint8Array(60)
        new DataView(data.buffer).setUint32(0, i)
        put.push({ replica: replicas[i % 20], counter: Math.floor(i / 20) + 1, key: `key-${i % 5000}`, data })
      }
      store.commit('bulk', batch({ put }))
    }
    store.close()

    const reopened = openAt(path)
    const started = performance.now()
    const snapshot = reopened.load('bulk')
    const elapsed = performance.now() - started
    console.log(`load of ${total} entries: ${elapsed.toFixed(1)} ms`)

    expect(snapshot.entries).toHaveLength(total)
    // Every body exactly once, each under the dot it was written with.
    const seen = new Uint8Array(total)
    let misplaced = 0
    for (const e of snapshot.entries) {
      const i = new DataView(e.data.buffer, e.data.byteOffset).getUint32(0)
      if (e.replica !== replicas[i % 20] || e.counter !== Math.floor(i / 20) + 1 || e.data.length !== 60)
        misplaced++
      seen[i]++
    }
    expect(misplaced).toBe(0)
    expect(seen.every((x) => x === 1)).toBe(true)
    // Measured ~100-150 ms on 2 cores; the bound only catches an accidental quadratic path.
    expect(elapsed).toBeLessThan(2_000)
  })
})

describe('SQLite store identity', () => {
  it('stays the same across reopen and changes when the file is copied', () => {
    const dir = mkdtempSync(join(tmpdir(), 'hearsay-identity-'))
    try {
      const path = join(dir, 'a.db')
      const first = openSqliteStore({ path })
      const identity = first.identity!()
      first.close()
      const again = openSqliteStore({ path })
      expect(again.identity!()).toBe(identity)
      again.close()
      copyFileSync(path, join(dir, 'b.db'))
      const copy = openSqliteStore({ path: join(dir, 'b.db') })
      expect(copy.identity!()).not.toBe(identity)
      copy.close()
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})

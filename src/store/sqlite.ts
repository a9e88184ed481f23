import {
  closeSync,
  constants as fsConstants,
  fsyncSync,
  linkSync,
  mkdirSync,
  openSync,
  renameSync,
  rmSync,
  statSync,
} from 'node:fs'
import { dirname, resolve } from 'node:path'
import { backup, DatabaseSync, type StatementSync } from 'node:sqlite'
import {
  APPLICATION_ID,
  CORRUPTION_REPORT_LINES,
  DEFAULT_BUSY_TIMEOUT_MS,
  JOURNAL_SIZE_LIMIT_BYTES,
  OLDEST_SCHEMA_VERSION,
  SCHEMA_VERSION,
} from './constants.ts'
import {
  type CommitOptions,
  type NamespaceSnapshot,
  type Store,
  type StoreBatch,
  type StoredEntry,
  StoreError,
  type StoreErrorCode,
} from './types.ts'
import { assertNamespace, assertValidBatch, isEmptyBatch } from './validate.ts'

export interface SqliteStoreInit {
  /** Path of the database file. Missing parent directories are created. */
  path: string
  /**
   * How hard a commit pushes to disk (WAL mode). Default 'FULL'.
   * - 'FULL': the WAL is fsynced on every commit; a commit that returned survives a process kill,
   *   an OS crash and a power loss (as far as the disk honours flushes).
   * - 'NORMAL': the WAL is fsynced only at checkpoints; a commit that returned survives a process
   *   kill, but an OS crash or power loss can roll back the last commits (the file stays consistent).
   *   Losing acknowledged writes is the dot-reuse hazard, so only use it with a fresh replica
   *   incarnation after every unclean shutdown.
   */
  synchronous?: 'FULL' | 'NORMAL'
  /** How long a statement waits for another connection's lock, in ms. Default 5000. */
  busyTimeoutMs?: number
}

/** The SQLite Store, plus what status output and tests want to see of it. */
export interface SqliteStore extends Store {
  readonly kind: 'sqlite'
  /** Absolute path of the database file. */
  readonly path: string
  /** The connection's settings as SQLite reports them (not as requested). */
  settings(): { journalMode: string; synchronous: 'OFF' | 'NORMAL' | 'FULL' | 'EXTRA'; busyTimeoutMs: number }
  /**
   * An online, consistent copy of the whole file at `destination`, through SQLite's backup API on
   * a read connection of its own, in one step off the event loop: the copy is the state at the
   * last commit before it began, and writes go on meanwhile. Written beside
   * `destination` and moved into place once complete, so a failure leaves no half-written file.
   * Refuses an existing `destination` unless `overwrite` (STORE_PERMISSION; `EEXIST` in the message).
   */
  backup(destination: string, options?: { overwrite?: boolean }): Promise<{ pages: number; bytes: number }>
}

const SCHEMA = `
  -- Namespace and replica names are interned: a replica id (a PeerId, ~52 chars) would otherwise be
  -- repeated in every row and outweigh a typical entry body.
  CREATE TABLE namespaces (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE) STRICT;
  CREATE TABLE replicas (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE) STRICT;
  -- Clustered on the dot, so a namespace loads as one range scan in (replica, counter) order.
  CREATE TABLE entries (
    ns INTEGER NOT NULL,
    replica INTEGER NOT NULL,
    counter INTEGER NOT NULL,
    key TEXT NOT NULL,
    data BLOB NOT NULL,
    PRIMARY KEY (ns, replica, counter)
  ) STRICT, WITHOUT ROWID;
  CREATE TABLE meta (
    ns INTEGER NOT NULL,
    name TEXT NOT NULL,
    value BLOB NOT NULL,
    PRIMARY KEY (ns, name)
  ) STRICT, WITHOUT ROWID;
  -- For people poking at the file with the sqlite3 shell; the store itself never reads it.
  CREATE VIEW entries_by_name AS
    SELECT n.name AS ns, r.name AS replica, e.counter, e.key, e.data
    FROM entries e JOIN namespaces n ON n.id = e.ns JOIN replicas r ON r.id = e.replica;
  PRAGMA application_id = ${APPLICATION_ID};
  PRAGMA user_version = ${SCHEMA_VERSION};
`

// SQLite primary result codes (https://www.sqlite.org/rescode.html) and how we report them.
const SQLITE_PERM = 3
const SQLITE_READONLY = 8
const SQLITE_CORRUPT = 11
const SQLITE_FULL = 13
const SQLITE_CANTOPEN = 14
const SQLITE_AUTH = 23
const SQLITE_NOTADB = 26

function codeFor(err: unknown): StoreErrorCode {
  switch (sqliteCode(err)) {
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
      return 'STORE_CORRUPT'
    case SQLITE_PERM:
    case SQLITE_READONLY:
    case SQLITE_CANTOPEN:
    case SQLITE_AUTH:
      return 'STORE_PERMISSION'
    default:
      return 'STORE_IO'
  }
}

function sqliteCode(err: unknown): number | undefined {
  const code = (err as { errcode?: unknown } | null)?.errcode
  // Mask extended result codes (e.g. SQLITE_IOERR_FSYNC) down to their primary code.
  return typeof code === 'number' ? code & 0xff : undefined
}

function reason(err: unknown): string {
  return err instanceof Error ? err.message : String(err)
}

const PERMISSION_ERRNOS = new Set(['EACCES', 'EPERM', 'EROFS', 'ENOTDIR', 'EEXIST', 'EISDIR'])

function fsError(err: unknown, what: string): StoreError {
  const errno = (err as NodeJS.ErrnoException | null)?.code
  const code: StoreErrorCode =
    errno !== undefined && PERMISSION_ERRNOS.has(errno) ? 'STORE_PERMISSION' : 'STORE_IO'
  // Node's message already names the errno and the path: "EACCES: permission denied, open '…'".
  return new StoreError(code, `${what}: ${reason(err)}`, { cause: err })
}

/** fsync a directory so a file or directory just created in it survives power loss. */
function fsyncDir(dir: string): void {
  let fd: number
  try {
    fd = openSync(dir, fsConstants.O_RDONLY)
  } catch (err) {
    throw fsError(err, `cannot open directory ${dir} to sync it`)
  }
  try {
    fsyncSync(fd)
  } catch (err) {
    // Some file systems cannot fsync a directory at all; any other failure is a real I/O error.
    const errno = (err as NodeJS.ErrnoException).code
    if (errno !== 'EINVAL' && errno !== 'ENOTSUP') throw fsError(err, `cannot sync directory ${dir}`)
  } finally {
    closeSync(fd)
  }
}

/**
 * Makes sure the data directory and file exist and are writable before SQLite sees them: SQLite
 * quietly falls back to read-only on a file it cannot write, and its own errors do not say why.
 */
function prepareFile(path: string): void {
  const dir = dirname(path)
  let firstCreated: string | undefined
  try {
    firstCreated = mkdirSync(dir, { recursive: true })
  } catch (err) {
    throw fsError(err, `cannot create data directory ${dir} for ${path}`)
  }
  let created = false
  let fd: number
  try {
    fd = openSync(path, fsConstants.O_RDWR | fsConstants.O_CREAT | fsConstants.O_EXCL, 0o644)
    created = true
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw fsError(err, `cannot create ${path}`)
    try {
      fd = openSync(path, fsConstants.O_RDWR)
    } catch (err2) {
      throw fsError(err2, `cannot open ${path} for writing`)
    }
  }
  closeSync(fd)
  if (!created) return
  // SQLite syncs the directory when it creates a WAL, but not when the database file itself is new.
  fsyncDir(dir)
  if (firstCreated !== undefined) {
    for (let d = dir; d !== dirname(firstCreated); d = dirname(d)) fsyncDir(dirname(d))
  }
}

/** Removes a file if it is there; a path that cannot even be looked at (ENOTDIR) has none. */
function removeQuietly(path: string): void {
  try {
    rmSync(path, { force: true })
  } catch {
    // Nothing was created there.
  }
}

const decoder = new TextDecoder()

/**
 * Decodes a TEXT value read back as a BLOB. node:sqlite reads TEXT up to the first NUL byte, so
 * 'a\u0000b' would come back as 'a' (binding and comparing keep all the bytes; only reading cuts).
 */
function utf8(bytes: Uint8Array): string {
  return decoder.decode(bytes)
}

function pragmaValue(db: DatabaseSync, sql: string): unknown {
  const row = db.prepare(sql).get()
  return row === undefined ? undefined : Object.values(row)[0]
}

/**
 * Opens (creating if needed) the SQLite store at `init.path`. Throws StoreError: STORE_PERMISSION
 * when the directory or file cannot be created or written, STORE_CORRUPT when the file is not a
 * hearsay database or fails its integrity check, STORE_NEWER_VERSION when a newer hearsay wrote it.
 */
export function openSqliteStore(init: SqliteStoreInit): SqliteStore {
  if (typeof init?.path !== 'string' || init.path === '' || init.path === ':memory:') {
    throw new TypeError('openSqliteStore needs the path of a database file')
  }
  const path = resolve(init.path)
  const synchronous = init.synchronous ?? 'FULL'
  if (synchronous !== 'FULL' && synchronous !== 'NORMAL') {
    throw new TypeError(`synchronous must be 'FULL' or 'NORMAL', got ${String(synchronous)}`)
  }
  const busyTimeoutMs = init.busyTimeoutMs ?? DEFAULT_BUSY_TIMEOUT_MS
  if (!Number.isSafeInteger(busyTimeoutMs) || busyTimeoutMs < 0) {
    throw new TypeError('busyTimeoutMs must be a non-negative integer')
  }

  prepareFile(path)

  let db: DatabaseSync
  try {
    db = new DatabaseSync(path)
  } catch (err) {
    throw new StoreError(codeFor(err), `cannot open ${path}: ${reason(err)}`, { cause: err })
  }
  try {
    configure(db, path, synchronous, busyTimeoutMs)
  } catch (err) {
    try {
      db.close()
    } catch {
      // Already failing; the first error is the one worth reporting.
    }
    if (err instanceof StoreError) throw err
    const code = codeFor(err)
    const what = code === 'STORE_CORRUPT' ? 'is corrupt or not a database' : 'cannot be opened'
    // The file itself passed prepareFile(), so a permission error here is about the directory.
    const hint =
      code === 'STORE_PERMISSION'
        ? ` (SQLite must be able to create ${path}-wal and -shm in its directory)`
        : ''
    throw new StoreError(code, `${path} ${what}: ${reason(err)}${hint}`, { cause: err })
  }
  return createSqliteStore(db, path, synchronous)
}

function configure(db: DatabaseSync, path: string, synchronous: 'FULL' | 'NORMAL', busyMs: number): void {
  db.exec(`PRAGMA busy_timeout = ${busyMs}`)
  // Read the header before changing anything: a newer or foreign file must be left exactly as it was.
  const version = Number(pragmaValue(db, 'PRAGMA user_version'))
  const appId = Number(pragmaValue(db, 'PRAGMA application_id'))
  if (version > SCHEMA_VERSION) {
    throw new StoreError(
      'STORE_NEWER_VERSION',
      `${path} has schema version ${version}, but this hearsay only knows up to version ${SCHEMA_VERSION}: upgrade hearsay to open it`,
    )
  }
  if (version !== 0 && version < OLDEST_SCHEMA_VERSION) {
    throw new StoreError(
      'STORE_CORRUPT',
      `${path} has schema version ${version}, whose entries carry no signatures; this hearsay opens version ${OLDEST_SCHEMA_VERSION} and later`,
    )
  }
  if (appId !== 0 && appId !== APPLICATION_ID) {
    throw new StoreError(
      'STORE_CORRUPT',
      `${path} is a SQLite database of another application (application_id ${appId})`,
    )
  }
  if (version === 0) {
    const tables = Number(pragmaValue(db, "SELECT count(*) FROM sqlite_schema WHERE type = 'table'"))
    if (tables > 0) {
      throw new StoreError('STORE_CORRUPT', `${path} is a SQLite database but not a hearsay store`)
    }
  }

  // quick_check reads every page (~10 ms per 100k entries): cheap enough to refuse a damaged file at
  // open rather than fail halfway through a load.
  const problems = db
    .prepare('PRAGMA quick_check')
    .all()
    .map((row) => String(Object.values(row)[0]))
  if (problems.length !== 1 || problems[0] !== 'ok') {
    const shown = problems.slice(0, CORRUPTION_REPORT_LINES).join('; ')
    throw new StoreError('STORE_CORRUPT', `${path} fails its integrity check: ${shown}`)
  }

  const mode = String(pragmaValue(db, 'PRAGMA journal_mode = WAL')).toLowerCase()
  if (mode !== 'wal') {
    throw new StoreError('STORE_IO', `${path} cannot use write-ahead logging (journal_mode stays '${mode}')`)
  }
  db.exec(`PRAGMA synchronous = ${synchronous}`)
  // macOS fsync does not flush the drive cache; F_FULLFSYNC does. A no-op elsewhere.
  db.exec(`PRAGMA fullfsync = ${synchronous === 'FULL' ? 'ON' : 'OFF'}`)
  db.exec(`PRAGMA journal_size_limit = ${JOURNAL_SIZE_LIMIT_BYTES}`)

  if (version === 0) {
    db.exec('BEGIN IMMEDIATE')
    try {
      // Another process may have created the schema while we waited for the write lock.
      if (Number(pragmaValue(db, 'PRAGMA user_version')) === 0) db.exec(SCHEMA)
      db.exec('COMMIT')
    } catch (err) {
      if (db.isTransaction) db.exec('ROLLBACK')
      throw err
    }
  }
  // Schema versions migrate here, one step at a time, each in its own transaction.
  if (version === 2) {
    db.exec('BEGIN IMMEDIATE')
    try {
      // Version 3 adds body layouts only: nothing to rewrite.
      if (Number(pragmaValue(db, 'PRAGMA user_version')) === 2) db.exec('PRAGMA user_version = 3')
      db.exec('COMMIT')
    } catch (err) {
      if (db.isTransaction) db.exec('ROLLBACK')
      throw err
    }
  }
}

interface Statements {
  begin: StatementSync
  beginRead: StatementSync
  commit: StatementSync
  nsSelect: StatementSync
  nsInsert: StatementSync
  replicaSelect: StatementSync
  replicaInsert: StatementSync
  replicasAll: StatementSync
  put: StatementSync
  remove: StatementSync
  metaPut: StatementSync
  loadEntries: StatementSync
  loadMeta: StatementSync
  namespaces: StatementSync
  dropEntries: StatementSync
  dropMeta: StatementSync
  dropNamespace: StatementSync
  pageCount: StatementSync
  pageSize: StatementSync
}

function prepareStatements(db: DatabaseSync): Statements {
  const st: Statements = {
    begin: db.prepare('BEGIN IMMEDIATE'),
    beginRead: db.prepare('BEGIN DEFERRED'),
    commit: db.prepare('COMMIT'),
    nsSelect: db.prepare('SELECT id FROM namespaces WHERE name = ?'),
    nsInsert: db.prepare('INSERT INTO namespaces (name) VALUES (?) RETURNING id'),
    replicaSelect: db.prepare('SELECT id FROM replicas WHERE name = ?'),
    replicaInsert: db.prepare('INSERT INTO replicas (name) VALUES (?) RETURNING id'),
    // Names come back as bytes: node:sqlite cuts TEXT at the first NUL on the way out (see utf8()).
    replicasAll: db.prepare('SELECT id, CAST(name AS BLOB) FROM replicas'),
    put: db.prepare(
      `INSERT INTO entries (ns, replica, counter, key, data) VALUES (?, ?, ?, ?, ?)
       ON CONFLICT (ns, replica, counter) DO UPDATE SET key = excluded.key, data = excluded.data`,
    ),
    remove: db.prepare('DELETE FROM entries WHERE ns = ? AND replica = ? AND counter = ?'),
    metaPut: db.prepare(
      'INSERT INTO meta (ns, name, value) VALUES (?, ?, ?) ON CONFLICT (ns, name) DO UPDATE SET value = excluded.value',
    ),
    // Keys with a NUL (the Replica's compound keys have one) also come back as bytes; the rest as
    // TEXT, which is cheaper than decoding every key (~20 vs ~80 ms per 100k rows).
    loadEntries: db.prepare(
      `SELECT replica, counter, key, data,
         CASE WHEN instr(CAST(key AS BLOB), x'00') > 0 THEN CAST(key AS BLOB) END
       FROM entries WHERE ns = ? ORDER BY replica, counter`,
    ),
    loadMeta: db.prepare('SELECT CAST(name AS BLOB), value FROM meta WHERE ns = ?'),
    namespaces: db.prepare(
      `SELECT CAST(name AS BLOB) FROM namespaces n
       WHERE EXISTS (SELECT 1 FROM entries WHERE ns = n.id) OR EXISTS (SELECT 1 FROM meta WHERE ns = n.id)`,
    ),
    dropEntries: db.prepare('DELETE FROM entries WHERE ns = ?'),
    dropMeta: db.prepare('DELETE FROM meta WHERE ns = ?'),
    dropNamespace: db.prepare('DELETE FROM namespaces WHERE id = ?'),
    pageCount: db.prepare('PRAGMA page_count'),
    pageSize: db.prepare('PRAGMA page_size'),
  }
  // Arrays skip building an object per row: it matters on the 100k-row load path.
  st.loadEntries.setReturnArrays(true)
  st.loadMeta.setReturnArrays(true)
  st.replicasAll.setReturnArrays(true)
  st.namespaces.setReturnArrays(true)
  return st
}

function createSqliteStore(db: DatabaseSync, path: string, synchronous: 'FULL' | 'NORMAL'): SqliteStore {
  let currentSynchronous = synchronous
  let st: Statements
  try {
    st = prepareStatements(db)
  } catch (err) {
    db.close()
    // user_version says it is ours but a table or column is missing: edited by hand, or not really ours.
    throw new StoreError(
      'STORE_CORRUPT',
      `${path} claims schema version ${SCHEMA_VERSION} but its tables do not match: ${reason(err)}`,
      { cause: err },
    )
  }
  // Interned ids of names known to be committed; ids never change once committed.
  const namespaceIds = new Map<string, number>()
  const replicaIds = new Map<string, number>()
  const replicaNames = new Map<number, string>()
  let closed = false
  let failure: StoreError | undefined

  function refreshReplicas(): void {
    for (const row of st.replicasAll.iterate() as Iterable<unknown[]>) {
      const name = utf8(row[1] as Uint8Array)
      replicaIds.set(name, row[0] as number)
      replicaNames.set(row[0] as number, name)
    }
  }

  function usable(): void {
    if (closed) throw new StoreError('STORE_CLOSED', `store ${path} is closed`)
    if (failure !== undefined) {
      throw new StoreError(
        'STORE_CLOSED',
        `store ${path} failed earlier and is unusable: ${failure.message}`,
        {
          cause: failure,
        },
      )
    }
  }

  /**
   * Any SQLite error after open makes the store unusable: after a failed write or fsync the state of
   * the file and the page cache is unknown, and retrying could acknowledge data that is not on disk.
   * The process should restart; reopening replays the WAL up to the last good commit.
   */
  function fail(err: unknown, doing: string): StoreError {
    if (db.isOpen && db.isTransaction) {
      try {
        db.exec('ROLLBACK')
      } catch {
        // SQLite may already have rolled back (it does on SQLITE_FULL and I/O errors).
      }
    }
    const detail = sqliteCode(err) === SQLITE_FULL ? 'disk full' : reason(err)
    const error = new StoreError(codeFor(err), `${doing} ${path} failed: ${detail}`, { cause: err })
    failure = error
    return error
  }

  function idOf(select: StatementSync, name: string): number | undefined {
    const row = select.get(name)
    return row === undefined ? undefined : (row.id as number)
  }

  try {
    refreshReplicas()
  } catch (err) {
    db.close()
    throw new StoreError(codeFor(err), `cannot read ${path}: ${reason(err)}`, { cause: err })
  }

  return {
    kind: 'sqlite',
    path,

    namespaces() {
      usable()
      try {
        // Sorted in JS, not SQL: SQLite orders UTF-8 bytes, JS (and the memory adapter) UTF-16 units.
        return (st.namespaces.all() as unknown as unknown[][]).map((row) => utf8(row[0] as Uint8Array)).sort()
      } catch (err) {
        throw fail(err, 'listing namespaces of')
      }
    },

    load(namespace: string): NamespaceSnapshot {
      usable()
      assertNamespace(namespace)
      const entries: StoredEntry[] = []
      const meta = new Map<string, Uint8Array>()
      try {
        // One read transaction: entries and meta come from the same snapshot even if another
        // connection commits in between.
        st.beginRead.run()
        try {
          const nsId = namespaceIds.get(namespace) ?? idOf(st.nsSelect, namespace)
          if (nsId !== undefined) {
            namespaceIds.set(namespace, nsId)
            // all() beats iterate() here: one native call instead of one per row (~100 vs ~125 ms
            // for 100k rows); the row arrays are short-lived.
            const rows = st.loadEntries.all(nsId) as unknown as unknown[][]
            for (let i = 0; i < rows.length; i++) {
              const row = rows[i]
              let replica = replicaNames.get(row[0] as number)
              if (replica === undefined) {
                // Written by another connection since we last looked.
                refreshReplicas()
                replica = replicaNames.get(row[0] as number)
                if (replica === undefined) throw new Error(`entry refers to unknown replica id ${row[0]}`)
              }
              entries.push({
                replica,
                counter: row[1] as number,
                key: row[4] === null ? (row[2] as string) : utf8(row[4] as Uint8Array),
                data: row[3] as Uint8Array,
              })
            }
            for (const row of st.loadMeta.iterate(nsId) as Iterable<unknown[]>) {
              meta.set(utf8(row[0] as Uint8Array), row[1] as Uint8Array)
            }
          }
        } finally {
          st.commit.run()
        }
      } catch (err) {
        throw fail(err, `loading namespace '${namespace}' from`)
      }
      return { entries, meta }
    },

    commit(namespace: string, batch: StoreBatch, options?: CommitOptions) {
      usable()
      assertValidBatch(namespace, batch)
      if (isEmptyBatch(batch)) return
      // WAL is append-only: a relaxed commit's frames are fsynced by the next FULL commit.
      const level = options?.durable === false ? 'NORMAL' : synchronous
      if (level !== currentSynchronous) {
        db.exec(`PRAGMA synchronous = ${level}`)
        currentSynchronous = level
      }
      // Names interned in this transaction; cached only once it commits, as a rollback undoes them.
      const newReplicas = new Map<string, number>()
      let nsId = namespaceIds.get(namespace)
      const replicaId = (name: string, create: boolean): number | undefined => {
        let id = replicaIds.get(name) ?? newReplicas.get(name) ?? idOf(st.replicaSelect, name)
        if (id === undefined && create) id = idOf(st.replicaInsert, name)
        if (id !== undefined && !replicaIds.has(name)) newReplicas.set(name, id)
        return id
      }
      try {
        st.begin.run()
        nsId ??= idOf(st.nsSelect, namespace) ?? idOf(st.nsInsert, namespace)!
        for (const e of batch.put) st.put.run(nsId, replicaId(e.replica, true)!, e.counter, e.key, e.data)
        // Removes after puts: a dot both put and removed in one batch ends up removed.
        for (const dot of batch.remove) {
          const id = replicaId(dot.replica, false)
          if (id !== undefined) st.remove.run(nsId, id, dot.counter)
        }
        for (const [name, value] of batch.meta) st.metaPut.run(nsId, name, value)
        // With synchronous=FULL, COMMIT returns only after the WAL is fsynced.
        st.commit.run()
      } catch (err) {
        throw fail(err, `committing to namespace '${namespace}' of`)
      }
      namespaceIds.set(namespace, nsId)
      for (const [name, id] of newReplicas) {
        replicaIds.set(name, id)
        replicaNames.set(id, name)
      }
    },

    dropNamespace(namespace: string) {
      usable()
      assertNamespace(namespace)
      try {
        st.begin.run()
        const nsId = idOf(st.nsSelect, namespace)
        if (nsId !== undefined) {
          st.dropEntries.run(nsId)
          st.dropMeta.run(nsId)
          st.dropNamespace.run(nsId)
        }
        st.commit.run()
      } catch (err) {
        throw fail(err, `dropping namespace '${namespace}' of`)
      }
      namespaceIds.delete(namespace)
    },

    async backup(destination: string, options: { overwrite?: boolean } = {}) {
      usable()
      const target = resolve(destination)
      if (target === path) throw new StoreError('STORE_PERMISSION', `cannot back ${path} up onto itself`)
      const partial = `${target}.partial-${process.pid}-${Date.now().toString(36)}`
      let pages: number
      try {
        // The copy is read through a connection of its own, in one step: the store's connection may
        // be inside a write transaction whenever a step runs (SQLite then answers LOCKED, which
        // node:sqlite reports as a failure), and a copy taken in many steps restarts whenever another
        // connection writes. One step holds one read snapshot, which WAL lets writers go on beside.
        const reader = new DatabaseSync(path, { readOnly: true })
        try {
          pages = await backup(reader, partial, { rate: -1 })
        } finally {
          reader.close()
        }
      } catch (err) {
        removeQuietly(partial)
        const problem = (err as NodeJS.ErrnoException | null)?.code
        const error =
          problem !== undefined && PERMISSION_ERRNOS.has(problem)
            ? fsError(err, `cannot write backup ${target}`)
            : new StoreError(codeFor(err), `cannot write backup ${target}: ${reason(err)}`, { cause: err })
        // Most failures are about the destination (a missing or read-only directory) and say nothing
        // about this store, which stays usable.
        throw error
      }
      try {
        // The copy inherits WAL mode from its header; switch it to a rollback journal so it is one
        // self-contained file that readers (even read-only ones) open without -wal/-shm files.
        const copy = new DatabaseSync(partial)
        try {
          copy.exec('PRAGMA journal_mode = DELETE')
        } finally {
          copy.close()
        }
        const fd = openSync(partial, fsConstants.O_RDWR)
        try {
          fsyncSync(fd)
        } finally {
          closeSync(fd)
        }
        if (options.overwrite === true) renameSync(partial, target)
        else {
          // link() refuses an existing name atomically, unlike a check followed by rename().
          linkSync(partial, target)
          rmSync(partial, { force: true })
        }
        fsyncDir(dirname(target))
      } catch (err) {
        for (const leftover of [partial, `${partial}-wal`, `${partial}-shm`]) removeQuietly(leftover)
        throw err instanceof StoreError ? err : fsError(err, `cannot write backup ${target}`)
      }
      return { pages, bytes: statSync(target).size }
    },

    identity() {
      // Device and inode: a copied or restored file gets new ones, which tells the Replica to start
      // a new incarnation rather than risk reusing dots (see Store.identity).
      const stats = statSync(path)
      return `${stats.dev}:${stats.ino}`
    },

    sizeBytes() {
      usable()
      let wal = 0
      try {
        wal = statSync(`${path}-wal`).size
      } catch {
        // No WAL file right now (e.g. just after a checkpoint on close): nothing to add.
      }
      try {
        const pages = Number(Object.values(st.pageCount.get()!)[0])
        const pageSize = Number(Object.values(st.pageSize.get()!)[0])
        return pages * pageSize + wal
      } catch (err) {
        throw fail(err, 'measuring')
      }
    },

    settings() {
      usable()
      const levels = ['OFF', 'NORMAL', 'FULL', 'EXTRA'] as const
      return {
        journalMode: String(pragmaValue(db, 'PRAGMA journal_mode')),
        synchronous: levels[Number(pragmaValue(db, 'PRAGMA synchronous'))],
        busyTimeoutMs: Number(pragmaValue(db, 'PRAGMA busy_timeout')),
      }
    },

    close() {
      if (closed) return
      closed = true
      if (failure === undefined) {
        try {
          // Fold the WAL back into the main file so the data dir is one self-contained file at rest.
          db.exec('PRAGMA wal_checkpoint(TRUNCATE)')
        } catch {
          // Not fatal: committed data is safe in the WAL and is replayed on the next open.
        }
      }
      try {
        db.close()
      } catch (err) {
        throw new StoreError(codeFor(err), `closing ${path} failed: ${reason(err)}`, { cause: err })
      }
    },
  }
}

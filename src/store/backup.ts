import {
  closeSync,
  copyFileSync,
  existsSync,
  constants as fsConstants,
  fsyncSync,
  mkdirSync,
  openSync,
  renameSync,
  rmSync,
  statSync,
} from 'node:fs'
import { dirname, resolve } from 'node:path'
import { DatabaseSync } from 'node:sqlite'
import {
  APPLICATION_ID,
  CORRUPTION_REPORT_LINES,
  OLDEST_SCHEMA_VERSION,
  SCHEMA_VERSION,
} from './constants.ts'
import { StoreError } from './types.ts'

/**
 * Restoring a backup file into a stopped data dir. The backup itself is `SqliteStore.backup`, taken
 * by the running daemon on its own connection (see docs/operations.md).
 */

/** What a verified store file holds. */
export interface StoreFileReport {
  schemaVersion: number
  namespaces: string[]
  entries: number
  bytes: number
}

/**
 * The `home` meta value a restore writes into every namespace: no store file has it as its device
 * and inode, so each replica opens under a new incarnation even if the file system hands the
 * restored file an inode number the backed-up file once had (a deleted file's inode is reused).
 */
export const RESTORED_HOME = 'restored'

/**
 * Checks that an open database is a hearsay store this version can open and that every page of it
 * is sound (`PRAGMA integrity_check`). Throws StoreError STORE_CORRUPT or STORE_NEWER_VERSION.
 */
function checkStore(db: DatabaseSync, label: string): StoreFileReport {
  const one = (sql: string) => Number(Object.values(db.prepare(sql).get() ?? {})[0])
  const appId = one('PRAGMA application_id')
  const version = one('PRAGMA user_version')
  if (appId !== APPLICATION_ID) {
    throw new StoreError('STORE_CORRUPT', `${label} is not a hearsay store (application_id ${appId})`)
  }
  if (version > SCHEMA_VERSION) {
    throw new StoreError(
      'STORE_NEWER_VERSION',
      `${label} has schema version ${version}; this hearsay knows up to ${SCHEMA_VERSION}: upgrade hearsay to restore it`,
    )
  }
  if (version < OLDEST_SCHEMA_VERSION) {
    throw new StoreError(
      'STORE_CORRUPT',
      `${label} has schema version ${version}; this hearsay opens ${OLDEST_SCHEMA_VERSION} and later`,
    )
  }
  const problems = db
    .prepare('PRAGMA integrity_check')
    .all()
    .map((row) => String(Object.values(row)[0]))
  if (problems.length !== 1 || problems[0] !== 'ok') {
    throw new StoreError(
      'STORE_CORRUPT',
      `${label} fails its integrity check: ${problems.slice(0, CORRUPTION_REPORT_LINES).join('; ')}`,
    )
  }
  const names = db.prepare('SELECT CAST(name AS BLOB) AS name FROM namespaces').all()
  return {
    schemaVersion: version,
    namespaces: names.map((row) => Buffer.from(row.name as Uint8Array).toString('utf8')).sort(),
    entries: one('SELECT count(*) FROM entries'),
    bytes: 0,
  }
}

function sqliteFailure(err: unknown, label: string): StoreError {
  if (err instanceof StoreError) return err
  const message = err instanceof Error ? err.message : String(err)
  return new StoreError('STORE_CORRUPT', `${label} cannot be read as a hearsay store: ${message}`, {
    cause: err,
  })
}

function fsyncPath(path: string, flags: number): void {
  const fd = openSync(path, flags)
  try {
    fsyncSync(fd)
  } catch (err) {
    const errno = (err as NodeJS.ErrnoException).code
    if (errno !== 'EINVAL' && errno !== 'ENOTSUP') throw err
  } finally {
    closeSync(fd)
  }
}

export interface RestoreOptions {
  /** The backup file. */
  file: string
  /** Where the store goes (the data dir's database file). The caller holds the data dir's lock. */
  database: string
  /**
   * Replace an existing store; it is kept beside as `<database>.replaced-<time>` (with its WAL), not
   * deleted. Without it an existing store is refused.
   */
  replace?: boolean
  now?: () => Date
}

export interface RestoreResult extends StoreFileReport {
  /** Where the store that was replaced went, if there was one. */
  replacedTo?: string
}

/**
 * Copies a backup into place as the data dir's store: the copy is verified (hearsay schema,
 * integrity_check) and marked restored before it replaces anything, so a bad file changes nothing.
 * Throws StoreError: STORE_CORRUPT / STORE_NEWER_VERSION for a bad file, STORE_PERMISSION for an
 * existing store without `replace` or a path that cannot be read or written.
 */
export function restoreStoreFile(options: RestoreOptions): RestoreResult {
  const file = resolve(options.file)
  const database = resolve(options.database)
  if (file === database) throw new StoreError('STORE_PERMISSION', `${file} is the data dir's store itself`)
  try {
    if (!statSync(file).isFile()) throw new StoreError('STORE_PERMISSION', `${file} is not a file`)
  } catch (err) {
    if (err instanceof StoreError) throw err
    throw new StoreError('STORE_PERMISSION', `cannot read backup ${file}: ${(err as Error).message}`, {
      cause: err,
    })
  }
  const existing = existsSync(database)
  if (existing && options.replace !== true) {
    throw new StoreError(
      'STORE_PERMISSION',
      `${database} already holds a store; pass --force to replace it (it is kept beside as ${database}.replaced-<time>)`,
    )
  }
  const staging = `${database}.restoring-${process.pid}`
  try {
    mkdirSync(dirname(database), { recursive: true, mode: 0o700 })
  } catch (err) {
    throw new StoreError(
      'STORE_PERMISSION',
      `cannot create ${dirname(database)}: ${(err as Error).message}`,
      {
        cause: err,
      },
    )
  }
  rmSync(staging, { force: true })
  try {
    try {
      copyFileSync(file, staging)
    } catch (err) {
      throw new StoreError(
        'STORE_PERMISSION',
        `cannot copy ${file} to ${staging}: ${(err as Error).message}`,
        {
          cause: err,
        },
      )
    }
    let report: StoreFileReport
    let db: DatabaseSync | undefined
    try {
      db = new DatabaseSync(staging)
      report = checkStore(db, file)
      db.prepare('UPDATE meta SET value = ? WHERE name = ?').run(Buffer.from(RESTORED_HOME), 'home')
      // Fold any WAL into the file: the restored store is one self-contained file.
      db.exec('PRAGMA wal_checkpoint(TRUNCATE)')
      db.close()
      db = undefined
    } catch (err) {
      throw sqliteFailure(err, file)
    } finally {
      if (db?.isOpen) db.close()
    }
    rmSync(`${staging}-wal`, { force: true })
    rmSync(`${staging}-shm`, { force: true })
    fsyncPath(staging, fsConstants.O_RDWR)

    let replacedTo: string | undefined
    if (existing) {
      replacedTo = `${database}.replaced-${(options.now?.() ?? new Date()).toISOString().replace(/[:.]/g, '-')}`
      renameSync(database, replacedTo)
      // The old store's WAL belongs to it: left next to the new file, SQLite would replay it there.
      for (const suffix of ['-wal', '-shm']) {
        if (existsSync(database + suffix)) renameSync(database + suffix, replacedTo + suffix)
      }
    } else {
      rmSync(`${database}-wal`, { force: true })
      rmSync(`${database}-shm`, { force: true })
    }
    renameSync(staging, database)
    fsyncPath(dirname(database), fsConstants.O_RDONLY)
    return { ...report, bytes: statSync(database).size, ...(replacedTo === undefined ? {} : { replacedTo }) }
  } finally {
    for (const leftover of [staging, `${staging}-wal`, `${staging}-shm`]) rmSync(leftover, { force: true })
  }
}

/** Verifies a backup file without changing it (a read-only copy is checked in memory). */
export function verifyStoreFile(path: string): StoreFileReport {
  const file = resolve(path)
  let db: DatabaseSync | undefined
  try {
    db = new DatabaseSync(file, { readOnly: true })
    return { ...checkStore(db, file), bytes: statSync(file).size }
  } catch (err) {
    throw sqliteFailure(err, file)
  } finally {
    if (db?.isOpen) db.close()
  }
}

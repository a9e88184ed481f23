/**
 * Schema version of the SQLite file, kept in `PRAGMA user_version`. Bump it with a migration.
 * Version 2: entry bodies carry their author's signature. Version 1 files are refused (their
 * entries cannot be signed after the fact; peers sync the data back into a new file).
 * Version 3: entry bodies may carry a Merkle proof instead of a lone signature. The tables are the
 * same and version 2 bodies still decode, so a version 2 file is marked 3 when opened; a hearsay
 * that knows only version 2 then refuses it as newer instead of failing on a body it cannot read.
 */
export const SCHEMA_VERSION = 3

/** The oldest schema version this hearsay opens. */
export const OLDEST_SCHEMA_VERSION = 2

/**
 * `PRAGMA application_id` of a hearsay store: ASCII 'hrsy'. Marks the file as ours, so opening some
 * other SQLite database by mistake fails instead of writing our tables into it
 * (https://www.sqlite.org/fileformat.html#application_id).
 */
export const APPLICATION_ID = 0x68727379

/**
 * How long a write waits for another connection's lock before failing, in ms. One process normally
 * owns the file; this only covers a CLI or backup tool reading it at the same moment.
 */
export const DEFAULT_BUSY_TIMEOUT_MS = 5_000

/**
 * After a checkpoint, SQLite keeps the WAL file at its largest size for reuse. Truncate it back to
 * this size so one huge batch does not leave a huge file behind (SQLite's default is no limit).
 */
export const JOURNAL_SIZE_LIMIT_BYTES = 64 * 1024 * 1024

/** How many `PRAGMA quick_check` problems to quote in a STORE_CORRUPT message. */
export const CORRUPTION_REPORT_LINES = 5

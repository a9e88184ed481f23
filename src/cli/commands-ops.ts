import {
  closeSync,
  copyFileSync,
  createReadStream,
  createWriteStream,
  existsSync,
  constants as fsConstants,
  fsyncSync,
  linkSync,
  openSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs'
import { resolve } from 'node:path'
import { createInterface } from 'node:readline'
import { pipeline } from 'node:stream/promises'
import { acquireLock, readLock } from '../daemon/lock.ts'
import { dataDirFiles, resolveDataDir } from '../daemon/paths.ts'
import { StoreError } from '../store/types.ts'
import { nsPath } from './client.ts'
import type { Command, CommandContext } from './command.ts'
import { peersCommand } from './commands.ts'
import { CliError, EXIT } from './exit-codes.ts'
import { bytes } from './format.ts'
import { applyRecord, failureReason, type ImportRecord, parseImportLine } from './import.ts'

/** Operations on a peer's data as a whole: backup, restore, export, import, leave, forget. */

function positional(context: CommandContext, index: number, what: string): string {
  const value = context.positionals[index]
  if (value === undefined || value === '') throw new CliError(EXIT.USAGE, `missing ${what}`)
  return value
}

interface BackupAnswer {
  path: string
  bytes: number
  entries: number
  namespaces: string[]
  tookMs: number
}

export const backupCommand: Command = {
  name: 'backup',
  args: '<file>',
  summary: 'write an online, consistent backup of the running daemon’s store to a file',
  details: `The running daemon makes the backup in its data dir (backups/, with SQLite's backup API on its own
connection, so writes go on meanwhile) and checks it (integrity_check); this command then copies it
to <file> with your rights and removes the daemon's copy. Every write acknowledged before the command
started is in the backup. Restore it with \`hearsay restore\`.

  hearsay backup /var/backups/hearsay-$(date +%F).db`,
  client: true,
  options: { force: { type: 'boolean', description: 'replace the file if it exists' } },
  async run(context) {
    const target = resolve(positional(context, 0, 'backup file'))
    const force = context.values.force === true
    if (!force && existsSync(target)) {
      throw new CliError(EXIT.REJECTED, `${target} exists; pass --force to replace it`, 'BACKUP_EXISTS')
    }
    const name = `backup-${new Date().toISOString().replace(/[:.]/g, '-')}-${process.pid}.db`
    const { body } = await context.client().json<BackupAnswer>('/v1/admin/backup', {
      method: 'POST',
      body: JSON.stringify({ name }),
      headers: { 'content-type': 'application/json' },
    })
    try {
      copyOut(body.path, target, force)
    } catch (error) {
      throw new CliError(
        EXIT.REJECTED,
        `cannot write ${target}: ${(error as Error).message}; the backup is kept at ${body.path} on the daemon's machine`,
        'BACKUP_FAILED',
      )
    }
    rmSync(body.path, { force: true })
    if (context.json) context.printJson({ ...body, path: target })
    else
      context.out(
        `backed up ${body.entries} entries in ${body.namespaces.length} namespace(s) to ${target} (${bytes(body.bytes)}, ${body.tookMs} ms, integrity ok)`,
      )
    return EXIT.OK
  },
}

/** Copies a finished backup to `target` through a partial file, so `target` is whole or absent. */
function copyOut(source: string, target: string, replace: boolean): void {
  const partial = `${target}.partial-${process.pid}`
  try {
    copyFileSync(source, partial)
    const fd = openSync(partial, fsConstants.O_RDONLY)
    try {
      fsyncSync(fd)
    } finally {
      closeSync(fd)
    }
    if (replace) renameSync(partial, target)
    else linkSync(partial, target)
  } finally {
    try {
      rmSync(partial, { force: true })
    } catch {
      // Nothing was created there (e.g. its directory is a file).
    }
  }
}

export const restoreCommand: Command = {
  name: 'restore',
  args: '<file>',
  summary: 'restore a backup into a stopped data dir (the peer resumes under a new incarnation)',
  details: `The daemon of the data dir must be stopped. The file is checked first (a hearsay store of a
known schema version that passes integrity_check); nothing changes if it is not. An existing store is
refused unless --force, which keeps it beside as hearsay.db.replaced-<time>. On its next start the
peer writes under a new replica incarnation, so it never reuses a dot it wrote after the backup;
anti-entropy then brings back from other peers everything written since, deletes included.

  hearsay restore /var/backups/hearsay-2026-11-29.db --data-dir /srv/hearsay --force`,
  options: { force: { type: 'boolean', description: 'replace the data dir’s existing store' } },
  async run(context) {
    const file = resolve(positional(context, 0, 'backup file'))
    const dataDir = resolveDataDir({
      flag: context.values['data-dir'] as string | undefined,
      env: context.io.env,
    })
    const files = dataDirFiles(dataDir)
    const held = readLock(files.lock)
    if (held.state === 'live' || held.state === 'unreadable') {
      throw new CliError(
        EXIT.REJECTED,
        `the daemon for ${dataDir} is running${held.state === 'live' ? ` (pid ${held.info.pid})` : ''}; stop it before restoring (or back it up with \`hearsay backup\`)`,
        'DATA_DIR_LOCKED',
      )
    }
    let lock: ReturnType<typeof acquireLock>
    try {
      lock = acquireLock(files.lock)
    } catch (error) {
      throw new CliError(EXIT.REJECTED, (error as Error).message, 'DATA_DIR_LOCKED')
    }
    try {
      // Loaded here, quietly: node:sqlite warns that it is experimental, and no other command needs it.
      const { restoreStoreFile } = await withoutSqliteWarning(() => import('../store/backup.ts'))
      const result = restoreStoreFile({
        file,
        database: files.database,
        replace: context.values.force === true,
      })
      if (context.json) context.printJson({ ...result, database: files.database })
      else {
        context.out(
          `restored ${result.entries} entries in ${result.namespaces.length} namespace(s) into ${files.database}`,
        )
        if (result.replacedTo !== undefined)
          context.out(`the store it replaced is kept as ${result.replacedTo}`)
        context.out(
          'start the daemon: each namespace resumes under a new incarnation and catches up from its peers',
        )
      }
      return EXIT.OK
    } catch (error) {
      if (!(error instanceof StoreError)) throw error
      throw new CliError(
        error.code === 'STORE_PERMISSION' ? EXIT.REJECTED : EXIT.FAILURE,
        error.message,
        error.code,
      )
    } finally {
      lock.release()
    }
  },
}

async function withoutSqliteWarning<T>(load: () => Promise<T>): Promise<T> {
  const listeners = process.listeners('warning')
  process.removeAllListeners('warning')
  const filter = (warning: Error) => {
    if (warning.name === 'ExperimentalWarning' && /SQLite/i.test(warning.message)) return
    for (const listener of listeners) listener(warning)
  }
  process.on('warning', filter)
  try {
    return await load()
  } finally {
    // The warning is emitted on the next tick after the module loads.
    await new Promise((resolve) => setImmediate(resolve))
    process.off('warning', filter)
    for (const listener of listeners) process.on('warning', listener)
  }
}

export const exportCommand: Command = {
  name: 'export',
  args: '',
  summary: 'write every key (registers, counters, sets) as JSON lines',
  details: `One JSON object per key: namespace, type, key and, for a register, its value with its encoding,
content type, ETag and siblings; a counter's value; a set's members. \`hearsay import\` reads it back.

  hearsay export --namespace app --prefix users/ --out users.jsonl`,
  client: true,
  options: {
    namespace: {
      type: 'string',
      multiple: true,
      value: '<ns>',
      description: 'only this namespace (repeatable)',
    },
    prefix: { type: 'string', value: '<p>', description: 'only keys starting with this' },
    out: { type: 'string', value: '<file>', description: 'write to a file instead of stdout' },
  },
  async run(context) {
    const params = new URLSearchParams()
    for (const ns of (context.values.namespace as string[] | undefined) ?? []) params.append('namespace', ns)
    if (typeof context.values.prefix === 'string') params.set('prefix', context.values.prefix)
    const query = params.size === 0 ? '' : `?${params}`
    const response = await context.client().request(`/v1/admin/export${query}`, { stream: true })
    const out = context.values.out
    const source = response.body
    if (typeof out === 'string') {
      const partial = `${resolve(out)}.partial`
      await pipeline(source, createWriteStream(partial))
      renameSync(partial, resolve(out))
    } else {
      await pipeline(source, context.io.stdout, { end: false })
    }
    return EXIT.OK
  },
}

/** State of a resumable import, kept beside its input file. */
interface ImportState {
  /** Every line before this one (1-based) was applied or reported. */
  nextLine: number
  size: number
  mtimeMs: number
}

const PROGRESS_LINES = 1_000
const PROGRESS_MS = 1_000
/** Lines written at once (distinct keys only: two writes of one key keep their order). */
const IMPORT_WINDOW = 16

export const importCommand: Command = {
  name: 'import',
  args: '<file|->',
  summary: 'write the lines of an export back through the API (resumable)',
  details: `Reads what \`hearsay export\` writes (a file, or - for stdin). A register is written with its value
(the current winner; siblings are not recreated), a counter is moved to its value, a set gets its
members added: every line is idempotent, so importing twice changes nothing. Progress goes to stderr
every ${PROGRESS_LINES} lines or every second; a line that cannot be imported is reported with its
number and the rest go on; the exit code is non-zero if any line failed.

Resuming: with a file, progress is saved in <file>.import-state and --resume starts after the last
line saved (the file must be unchanged); with stdin, --from-line <n> skips the lines before n.

  hearsay import users.jsonl
  hearsay import users.jsonl --resume
  hearsay export --api http://10.0.0.2:7600 | hearsay import -`,
  namespaced: true,
  client: true,
  options: {
    resume: { type: 'boolean', description: 'continue after the line saved in <file>.import-state' },
    'from-line': { type: 'string', value: '<n>', description: 'skip the lines before line n (1-based)' },
  },
  async run(context) {
    const input = positional(context, 0, 'input file (or - for stdin)')
    const fromStdin = input === '-'
    const path = fromStdin ? undefined : resolve(input)
    const statePath = path === undefined ? undefined : `${path}.import-state`
    let startLine = 1
    const from = context.values['from-line']
    if (from !== undefined) {
      if (!/^\d+$/.test(String(from)) || Number(from) < 1)
        throw new CliError(EXIT.USAGE, '--from-line must be a line number from 1')
      startLine = Number(from)
    }
    let stats: { size: number; mtimeMs: number } | undefined
    if (path !== undefined) {
      try {
        stats = statSync(path)
      } catch (error) {
        throw new CliError(EXIT.USAGE, `cannot read ${path}: ${(error as Error).message}`)
      }
    }
    if (context.values.resume === true) {
      if (statePath === undefined)
        throw new CliError(EXIT.USAGE, '--resume needs a file; with stdin use --from-line')
      const state = readState(statePath)
      if (state !== undefined) {
        if (state.size !== stats!.size || state.mtimeMs !== stats!.mtimeMs) {
          throw new CliError(
            EXIT.USAGE,
            `${path} changed since the saved import; start again without --resume`,
          )
        }
        startLine = Math.max(startLine, state.nextLine)
      }
    }
    const override = typeof context.values.ns === 'string' ? context.values.ns : undefined
    const fallback = context.ns
    const client = context.client()
    const lines = createInterface({
      input: fromStdin ? context.io.stdin : createReadStream(path!),
      crlfDelay: Number.POSITIVE_INFINITY,
    })

    let lineNo = 0
    let applied = 0
    let failed = 0
    let skipped = 0
    let lastReport = Date.now()
    let window: Array<{ line: number; record: ImportRecord }> = []
    const keysInWindow = new Set<string>()
    const saveState = (nextLine: number) => {
      if (statePath === undefined) return
      const state: ImportState = { nextLine, size: stats!.size, mtimeMs: stats!.mtimeMs }
      writeFileSync(`${statePath}.tmp`, JSON.stringify(state))
      renameSync(`${statePath}.tmp`, statePath)
    }
    const report = (force = false) => {
      if (!force && (lineNo % PROGRESS_LINES !== 0 || lineNo === 0) && Date.now() - lastReport < PROGRESS_MS)
        return
      lastReport = Date.now()
      context.err(
        `line ${lineNo}: ${applied} imported, ${failed} failed${skipped > 0 ? `, ${skipped} skipped` : ''}`,
      )
    }
    const flush = async () => {
      const batch = window
      window = []
      keysInWindow.clear()
      const outcomes = await Promise.allSettled(batch.map(({ record }) => applyRecord(client, record)))
      outcomes.forEach((outcome, i) => {
        if (outcome.status === 'fulfilled') applied++
        else {
          // A daemon that went away fails every line alike: stop rather than report each one.
          if (outcome.reason instanceof CliError && outcome.reason.exitCode === EXIT.NO_DAEMON)
            throw outcome.reason
          failed++
          context.err(`line ${batch[i].line}: ${failureReason(outcome.reason)}`)
        }
      })
    }

    for await (const text of lines) {
      lineNo++
      if (lineNo < startLine) {
        skipped++
        continue
      }
      if (text.trim() !== '') {
        let record: ImportRecord | undefined
        try {
          record = parseImportLine(text, { override, fallback })
        } catch (error) {
          failed++
          context.err(`line ${lineNo}: ${failureReason(error)}`)
        }
        if (record !== undefined) {
          const id = `${record.namespace}\u0000${record.type}\u0000${record.key}`
          if (keysInWindow.has(id)) await flush()
          window.push({ line: lineNo, record })
          keysInWindow.add(id)
          if (window.length >= IMPORT_WINDOW) {
            await flush()
            saveState(lineNo + 1)
          }
        }
      }
      report()
    }
    await flush()
    saveState(lineNo + 1)
    report(true)
    if (context.json) context.printJson({ lines: lineNo, imported: applied, failed, skipped })
    if (failed > 0) return EXIT.REJECTED
    if (statePath !== undefined) rmSync(statePath, { force: true })
    return EXIT.OK
  },
}

function readState(path: string): ImportState | undefined {
  let text: string
  try {
    text = readFileSync(path, 'utf8')
  } catch {
    return undefined
  }
  try {
    const state = JSON.parse(text) as ImportState
    if (Number.isSafeInteger(state.nextLine) && state.nextLine >= 1) return state
  } catch {
    // A torn state file: start from the beginning (every line is idempotent).
  }
  return undefined
}

async function confirmed(context: CommandContext, ns: string): Promise<boolean> {
  if (context.values.yes === true) return true
  if (context.io.stdin.isTTY !== true) {
    throw new CliError(EXIT.USAGE, `leaving deletes this peer's copy of "${ns}": pass --yes to confirm`)
  }
  context.io.stderr.write(`Leaving deletes this peer's copy of "${ns}". Type its name to confirm: `)
  const reader = createInterface({ input: context.io.stdin })
  try {
    for await (const answer of reader) return answer.trim() === ns
    return false
  } finally {
    reader.close()
  }
}

export const nsCommand: Command = {
  name: 'ns',
  args: 'leave <namespace>',
  summary: 'leave a namespace: stop replicating it and delete its local data',
  details: `Other peers keep their copies; joining again later fetches everything back. A namespace listed in
the namespaces setting is joined again at the next start.

  hearsay ns leave old-app --yes`,
  client: true,
  options: { yes: { type: 'boolean', short: 'y', description: 'do not ask for confirmation' } },
  async run(context) {
    const action = positional(context, 0, 'action (leave)')
    if (action !== 'leave')
      throw new CliError(EXIT.USAGE, `unknown action "${action}"; use: hearsay ns leave <namespace>`)
    const ns = positional(context, 1, 'namespace')
    if (!(await confirmed(context, ns))) {
      context.err('not confirmed; nothing changed')
      return EXIT.REJECTED
    }
    const { body } = await context
      .client()
      .json<{ entriesDropped: number }>(`${nsPath(ns)}?confirm=${encodeURIComponent(ns)}`, {
        method: 'DELETE',
      })
    if (context.json) context.printJson(body)
    else context.out(`left ${ns}; deleted ${body.entriesDropped} local entries`)
    return EXIT.OK
  },
}

/** `peers` as before, plus `peers forget <peer id>`; listed before the plain one so it is found first. */
const peersWithForget: Command = {
  ...peersCommand,
  args: '[forget <peer id>]',
  details: `hearsay peers forget <peer id> removes a peer that is gone for good from membership, so it no
longer holds back the collection of tombstones (otherwise it does for 24 h after it was last seen).
If it comes back, it is a member again.`,
  hidden: true,
  async run(context) {
    if (context.positionals[0] !== 'forget') return peersCommand.run(context)
    const id = positional(context, 1, 'peer id')
    const { body } = await context.client().json(`/v1/peers/${encodeURIComponent(id)}`, { method: 'DELETE' })
    if (context.json) context.printJson(body)
    else context.out(`forgot ${id}`)
    return EXIT.OK
  },
}

/** Registered with one line in the command table of main.ts. */
export const OPS_COMMANDS: Command[] = [
  backupCommand,
  restoreCommand,
  exportCommand,
  importCommand,
  nsCommand,
  peersWithForget,
]

import {
  closeSync,
  constants as fsc,
  fsyncSync,
  ftruncateSync,
  openSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  statSync,
  unlinkSync,
  writeSync,
} from 'node:fs'
import { UNREADABLE_LOCK_GRACE_MS } from './constants.ts'
import { DaemonStartError } from './errors.ts'

/**
 * One daemon per data dir. Two processes on one store would each count their own dots under the same
 * replica id (dot reuse: two writers would hand out the same dots), so the second one must refuse to start.
 *
 * The lock is a file created with O_EXCL holding `{pid, url, ...}` as JSON; it doubles as the way the
 * CLI finds the running daemon's API. A lock whose pid is no longer alive was left by a crash
 * (SIGKILL, power loss) and is taken over.
 */

export interface LockInfo {
  pid: number
  /** The API URL, once the daemon listens. */
  url?: string
  peerId?: string
  startedAt: string
}

export interface DataDirLock {
  readonly path: string
  /** Rewrites the lock's content in place (e.g. once the API URL is known). */
  update(info: Partial<LockInfo>): void
  /** Removes the lock if it is still ours; idempotent. */
  release(): void
}

export function acquireLock(path: string): DataDirLock {
  const info: LockInfo = { pid: process.pid, startedAt: new Date().toISOString() }
  let fd: number | undefined
  // Two attempts: the second one after removing a stale lock.
  for (let attempt = 0; attempt < 2 && fd === undefined; attempt++) {
    try {
      fd = openSync(path, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL, 0o600)
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code
      if (code !== 'EEXIST') {
        throw new DaemonStartError(
          'DATA_DIR',
          `cannot create lock file ${path}: ${(error as Error).message}`,
          {
            cause: error,
          },
        )
      }
      const holder = readLock(path)
      if (holder.state === 'live') {
        const where = holder.info.url === undefined ? 'starting' : `API at ${holder.info.url}`
        throw new DaemonStartError(
          'LOCKED',
          `another hearsay daemon (pid ${holder.info.pid}, ${where}) is using this data dir; ` +
            `stop it first, or give this one another data dir (HEARSAY_HOME or --data-dir). Lock file: ${path}`,
        )
      }
      if (holder.state === 'unreadable') {
        throw new DaemonStartError(
          'LOCKED',
          `lock file ${path} is being written by another daemon, or cannot be read; if no hearsay daemon is running, delete it`,
        )
      }
      try {
        unlinkSync(path)
      } catch (unlinkError) {
        if ((unlinkError as NodeJS.ErrnoException).code !== 'ENOENT') {
          throw new DaemonStartError('DATA_DIR', `cannot remove stale lock file ${path}`, {
            cause: unlinkError,
          })
        }
      }
    }
  }
  if (fd === undefined) {
    throw new DaemonStartError('LOCKED', `another daemon took the lock file ${path} while this one started`)
  }
  const lockFd = fd
  let released = false
  const write = () => {
    const bytes = Buffer.from(`${JSON.stringify(info)}\n`)
    ftruncateSync(lockFd, 0)
    writeSync(lockFd, bytes, 0, bytes.length, 0)
    fsyncSync(lockFd)
  }
  try {
    write()
  } catch (error) {
    // A full disk (or a read-only one) must not leave an empty lock behind for the next start.
    closeSync(lockFd)
    try {
      unlinkSync(path)
    } catch {
      // Already gone.
    }
    const code = (error as NodeJS.ErrnoException).code
    throw new DaemonStartError(
      'DATA_DIR',
      code === 'ENOSPC'
        ? `no space left on the device of ${path}; free some space and start again`
        : `cannot write lock file ${path}: ${(error as Error).message}`,
      { cause: error },
    )
  }
  return {
    path,
    update(next) {
      if (released) return
      Object.assign(info, next)
      write()
    },
    release() {
      if (released) return
      released = true
      closeSync(lockFd)
      // Only remove the file while it still names us (a crash-recovery takeover could have replaced it).
      const current = readLock(path)
      if (current.state !== 'missing' && current.state !== 'unreadable' && current.info.pid === process.pid) {
        try {
          unlinkSync(path)
        } catch {
          // Gone already: nothing to release.
        }
      }
    },
  }
}

export type LockState =
  | { state: 'missing' }
  | { state: 'unreadable' }
  | { state: 'live'; info: LockInfo }
  | { state: 'stale'; info: LockInfo }

/** What the lock file says and whether its process is alive; used by the daemon and the CLI. */
export function readLock(path: string): LockState {
  let text: string
  try {
    text = readFileSync(path, 'utf8')
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return { state: 'missing' }
    return { state: 'unreadable' }
  }
  let info: LockInfo | undefined
  try {
    const parsed = JSON.parse(text)
    if (Number.isSafeInteger(parsed?.pid) && parsed.pid > 0) info = parsed
  } catch {
    info = undefined
  }
  if (info === undefined) {
    // Empty or torn: a daemon between create and write, or one that crashed right there.
    try {
      if (Date.now() - statSync(path).mtimeMs > UNREADABLE_LOCK_GRACE_MS) {
        return { state: 'stale', info: { pid: 0, startedAt: '' } }
      }
    } catch {
      return { state: 'missing' }
    }
    return { state: 'unreadable' }
  }
  return { state: isAlive(info.pid) && holdsLock(info.pid, path) ? 'live' : 'stale', info }
}

/** Open file descriptors looked at per process: a daemon has a few dozen. */
const MAX_FDS_CHECKED = 4_096

/**
 * Whether a live pid is really the daemon of this lock, not an unrelated process that got its pid
 * after a crash (after a reboot or in a container, pid 1 or any low pid is soon taken again). A
 * daemon keeps its lock file open for its whole life, so on Linux the holder has it among its open
 * files. When its file descriptors cannot be read (another user's process) its command line must at
 * least look like hearsay's. Elsewhere, without /proc, a live pid counts as the holder.
 */
function holdsLock(pid: number, path: string): boolean {
  if (process.platform !== 'linux') return true
  let lock: { dev: number; ino: number }
  try {
    lock = statSync(path)
  } catch {
    return false
  }
  let fds: string[]
  try {
    fds = readdirSync(`/proc/${pid}/fd`)
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return !existsProc()
    return looksLikeHearsay(pid)
  }
  for (const fd of fds.slice(0, MAX_FDS_CHECKED)) {
    try {
      const target = statSync(`/proc/${pid}/fd/${fd}`)
      if (target.dev === lock.dev && target.ino === lock.ino) return true
    } catch {
      // Closed meanwhile, or not a file.
    }
  }
  return false
}

/** Without /proc mounted there is nothing to check: trust the pid. */
function existsProc(): boolean {
  try {
    readlinkSync('/proc/self')
    return true
  } catch {
    return false
  }
}

function looksLikeHearsay(pid: number): boolean {
  try {
    const args = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0')
    return args.some((arg) => /hearsay|[/\\]cli[/\\]main\.[jt]s$/.test(arg))
  } catch {
    // Unreadable (hidepid): cannot tell, so it may be ours; refusing is the safe side.
    return true
  }
}

function isAlive(pid: number): boolean {
  // Our own pid in a lock we did not create is a leftover from a previous run (containers reuse pids).
  if (pid === process.pid) return false
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    // EPERM: the process exists but belongs to someone else.
    return (error as NodeJS.ErrnoException).code === 'EPERM'
  }
}

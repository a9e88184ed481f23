import { homedir } from 'node:os'
import { join, resolve } from 'node:path'
import { CONFIG_FILE, DATABASE_FILE, LOCK_FILE, SWARM_KEY_FILE } from './constants.ts'

export type Env = Readonly<Record<string, string | undefined>>

/**
 * The data dir: `HEARSAY_HOME` when set, else an explicit `--data-dir`, else the platform's per-user
 * data path (`$XDG_DATA_HOME/hearsay` or `~/.local/share/hearsay` on Linux and BSDs,
 * `~/Library/Application Support/hearsay` on macOS, `%LOCALAPPDATA%\hearsay` on Windows).
 * Environment beats flags, as for every other setting (docs/configuration.md).
 */
export function resolveDataDir(options: { flag?: string; env?: Env } = {}): string {
  const env = options.env ?? process.env
  if (env.HEARSAY_HOME !== undefined && env.HEARSAY_HOME !== '') return resolve(env.HEARSAY_HOME)
  if (options.flag !== undefined && options.flag !== '') return resolve(options.flag)
  return defaultDataDir(env)
}

export function defaultDataDir(env: Env = process.env, platform: NodeJS.Platform = process.platform): string {
  if (platform === 'win32') {
    return join(env.LOCALAPPDATA ?? join(env.USERPROFILE ?? homedir(), 'AppData', 'Local'), 'hearsay')
  }
  if (platform === 'darwin') return join(homedir(), 'Library', 'Application Support', 'hearsay')
  const xdg = env.XDG_DATA_HOME
  // The XDG spec says a relative XDG_DATA_HOME is invalid and must be ignored.
  if (xdg?.startsWith('/')) return join(xdg, 'hearsay')
  return join(env.HOME ?? homedir(), '.local', 'share', 'hearsay')
}

export interface DataDirFiles {
  dir: string
  config: string
  database: string
  lock: string
  swarmKey: string
}

export function dataDirFiles(dir: string): DataDirFiles {
  return {
    dir,
    config: join(dir, CONFIG_FILE),
    database: join(dir, DATABASE_FILE),
    lock: join(dir, LOCK_FILE),
    swarmKey: join(dir, SWARM_KEY_FILE),
  }
}

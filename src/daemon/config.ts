import { readFileSync } from 'node:fs'
import { peerIdFromString } from '@libp2p/peer-id'
import { multiaddr } from '@multiformats/multiaddr'
import { HearsayPeer } from '../peer/peer.ts'
import { DaemonStartError } from './errors.ts'
import { dataDirFiles, type Env } from './paths.ts'
import {
  type DaemonConfig,
  SETTINGS,
  type Setting,
  type SettingSource,
  type Settings,
  type Topology,
  topologyOf,
} from './settings.ts'

export type { DaemonConfig, Setting, SettingSource, Settings, Topology }
export { SETTINGS, topologyOf }

/**
 * Daemon configuration from three sources, weakest first: `config.json` in the data dir, command-line
 * flags, `HEARSAY_*` environment variables, following the table in settings.ts.
 */

const BY_KEY = new Map(SETTINGS.map((setting) => [setting.key, setting]))

export function defaultSettings(): Settings {
  const out: Record<string, unknown> = {}
  for (const setting of SETTINGS) {
    out[setting.key] = Array.isArray(setting.default) ? [...setting.default] : setting.default
  }
  return out as unknown as Settings
}

export interface LoadedConfig {
  config: DaemonConfig
  sources: Record<keyof Settings, SettingSource>
  /** Path of the config file, and whether it existed. */
  file: { path: string; found: boolean }
}

/**
 * Resolves the configuration of the daemon in `dataDir`. `flags` holds flag values as parsed by
 * `node:util` parseArgs (strings, string arrays, booleans), keyed by setting key.
 */
export function loadConfig(init: {
  dataDir: string
  flags?: Partial<Record<keyof Settings, string | string[] | boolean>>
  env?: Env
  /** Run as a hub (`hearsay hub`). */
  isHub?: boolean
}): LoadedConfig {
  const env = init.env ?? process.env
  const settings = defaultSettings() as unknown as Record<string, unknown>
  const sources = {} as Record<keyof Settings, SettingSource>
  for (const setting of SETTINGS) sources[setting.key] = 'default'

  const path = dataDirFiles(init.dataDir).config
  const file = readConfigFile(path)
  if (file !== undefined) {
    for (const [key, value] of Object.entries(file)) {
      const setting = BY_KEY.get(key as keyof Settings)
      if (setting === undefined) {
        throw new DaemonStartError(
          'CONFIG_INVALID',
          `${path}: unknown setting "${key}" (known: ${SETTINGS.map((s) => s.key).join(', ')})`,
        )
      }
      settings[key] = fromJson(setting, value, `${path}: "${key}"`)
      sources[setting.key] = 'file'
    }
  }
  for (const setting of SETTINGS) {
    const value = init.flags?.[setting.key]
    if (value === undefined) continue
    settings[setting.key] = fromText(setting, value, `--${setting.flag}`)
    sources[setting.key] = 'flag'
  }
  for (const setting of SETTINGS) {
    const value = env[setting.env]
    // An empty variable counts as unset, as in most shells' and compose files' conventions.
    if (value === undefined || value === '') continue
    settings[setting.key] = fromText(setting, value, setting.env)
    sources[setting.key] = 'env'
  }
  const config: DaemonConfig = {
    ...(settings as unknown as Settings),
    dataDir: init.dataDir,
    ...(init.isHub === true ? { isHub: true } : {}),
  }
  checkConfig(config)
  checkTopology(config, (key) => describeSource(key, sources[key], path))
  return { config, sources, file: { path, found: file !== undefined } }
}

function readConfigFile(path: string): Record<string, unknown> | undefined {
  let text: string
  try {
    text = readFileSync(path, 'utf8')
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw new DaemonStartError('DATA_DIR', `cannot read ${path}: ${(error as Error).message}`, {
      cause: error,
    })
  }
  let parsed: unknown
  try {
    parsed = JSON.parse(text)
  } catch (error) {
    throw new DaemonStartError('CONFIG_INVALID', `${path} is not valid JSON: ${(error as Error).message}`)
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw new DaemonStartError('CONFIG_INVALID', `${path} must hold a JSON object`)
  }
  return parsed as Record<string, unknown>
}

function fromJson(setting: Setting, value: unknown, where: string): unknown {
  switch (setting.kind) {
    case 'boolean':
      if (typeof value !== 'boolean') throw invalid(where, 'must be true or false')
      return value
    case 'list':
      if (!Array.isArray(value) || !value.every((item) => typeof item === 'string')) {
        throw invalid(where, 'must be an array of strings')
      }
      return [...value]
    case 'port':
    case 'milliseconds':
    case 'count':
      if (typeof value !== 'number') throw invalid(where, 'must be a number')
      return checkInteger(setting, value, where)
    default:
      if (typeof value !== 'string') throw invalid(where, 'must be a string')
      return fromText(setting, value, where)
  }
}

/** Parses a flag or environment value (text, or what parseArgs made of it). */
function fromText(setting: Setting, value: string | string[] | boolean, where: string): unknown {
  switch (setting.kind) {
    case 'boolean': {
      if (typeof value === 'boolean') return value
      const text = String(value).trim().toLowerCase()
      if (['1', 'true', 'yes', 'on'].includes(text)) return true
      if (['0', 'false', 'no', 'off'].includes(text)) return false
      throw invalid(where, `must be true or false, got "${value}"`)
    }
    case 'list': {
      const items = Array.isArray(value) ? value : [String(value)]
      return items
        .flatMap((item) => item.split(','))
        .map((item) => item.trim())
        .filter((item) => item !== '')
    }
    case 'port':
    case 'milliseconds':
    case 'count': {
      const text = String(value).trim()
      if (!/^\d+$/.test(text)) throw invalid(where, `must be a whole number, got "${value}"`)
      return checkInteger(setting, Number(text), where)
    }
    case 'enum': {
      const text = String(value).trim()
      const match = setting.values!.find((candidate) => candidate.toLowerCase() === text.toLowerCase())
      if (match === undefined)
        throw invalid(where, `must be one of ${setting.values!.join(', ')}, got "${value}"`)
      return match
    }
    default:
      return String(value).trim()
  }
}

function checkInteger(setting: Setting, value: number, where: string): number {
  const max = setting.kind === 'port' ? 65_535 : setting.kind === 'count' ? 1_073_741_824 : 3_600_000
  if (!Number.isInteger(value) || value < 0 || value > max) {
    throw invalid(where, `must be a whole number from 0 to ${max}, got ${value}`)
  }
  return value
}

function checkConfig(config: DaemonConfig): void {
  if (config.apiHost === '') throw invalid('apiHost', 'must not be empty')
  // A cap of 0 would refuse every client; a queue under 64 KiB would cut off every watcher.
  if (config.apiMaxConnections < 1) throw invalid('apiMaxConnections', 'must be at least 1')
  // Fewer neighbours than gossipsub's mesh degree (3) leaves gossip to IHAVE and anti-entropy alone.
  if (config.meshPeers < 3 || config.meshPeers > 256) throw invalid('meshPeers', 'must be from 3 to 256')
  if (config.watchQueueBytes < 65_536) throw invalid('watchQueueBytes', 'must be at least 65536 (64 KiB)')
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/.test(config.mesh)) {
    throw invalid('mesh', `"${config.mesh}" must be 1-64 letters, digits, '.', '_' or '-'`)
  }
  for (const name of config.namespaces) {
    if (!HearsayPeer.isValidNamespace(name)) {
      throw invalid('namespaces', `"${name}" must be 1-64 letters, digits, '.', '_' or '-'`)
    }
  }
  for (const [key, list] of [
    ['listen', config.listen],
    ['bootstrap', config.bootstrap],
    ['hub', config.hub],
  ] as const) {
    for (const address of list) {
      try {
        multiaddr(address)
      } catch (error) {
        throw invalid(key, `"${address}" is not a multiaddr: ${(error as Error).message}`)
      }
    }
  }
  for (const address of config.hub) {
    // Checked here so the message says "hub", not the mesh layer's "bootstrap address".
    if (
      !multiaddr(address)
        .getComponents()
        .some((component) => component.name === 'p2p')
    ) {
      throw invalid('hub', `"${address}" must end in /p2p/<peer id> (the hub prints its addresses at start)`)
    }
  }
  for (const id of config.allowPeers) {
    try {
      peerIdFromString(id)
    } catch {
      throw invalid('allowPeers', `"${id}" is not a peer id`)
    }
  }
  if (config.open && config.swarmKeyFile !== '') {
    throw invalid('open', 'cannot go with swarmKeyFile: an open mesh has no key; remove one of the two')
  }
  if (config.sseHeartbeatMs < 100) throw invalid('sseHeartbeatMs', 'must be at least 100')
}

/**
 * The client-server shape excludes the mesh's own ways of finding peers: a hub client talks to its
 * hubs only, and a hub waits for its clients. mDNS is merely off in both unless asked for explicitly.
 */
function checkTopology(config: DaemonConfig, named: (key: keyof Settings) => string | undefined): void {
  const topology = topologyOf(config)
  if (topology === 'mesh') return
  if (config.isHub === true && config.hub.length > 0) {
    throw invalid(
      `hub${named('hub') ?? ''}`,
      'lists hubs to be a client of, but this peer runs as a hub (hearsay hub): remove it, or run "hearsay up --hub <address>" for a client',
    )
  }
  const role = topology === 'hub' ? 'a hub waits for its clients' : 'a hub client talks only to its hubs'
  const shape = topology === 'hub' ? 'hearsay hub' : `hub${named('hub') ?? ''}`
  if (config.bootstrap.length > 0) {
    throw invalid(
      `bootstrap${named('bootstrap') ?? ''}`,
      `cannot be used with ${shape}: ${role}; remove one of the two`,
    )
  }
  const mdns = named('mdns')
  if (config.mdns && mdns !== undefined) {
    throw invalid(`mdns${mdns}`, `cannot be on with ${shape}: ${role}`)
  }
}

/** " (--flag)", " (VARIABLE)" or " (in config.json)" for a setting that was set; undefined for a default. */
function describeSource(key: keyof Settings, source: SettingSource, path: string): string | undefined {
  const setting = BY_KEY.get(key)!
  switch (source) {
    case 'flag':
      return ` (--${setting.flag})`
    case 'env':
      return ` (${setting.env})`
    case 'file':
      return ` (in ${path})`
    default:
      return undefined
  }
}

function invalid(where: string, message: string): DaemonStartError {
  return new DaemonStartError('CONFIG_INVALID', `${where} ${message}`)
}

/** The config file for `hearsay init`: only what differs from the defaults, so defaults can evolve. */
export function configFileFor(settings: Partial<Settings>): Record<string, unknown> {
  const defaults = defaultSettings() as unknown as Record<string, unknown>
  const out: Record<string, unknown> = {}
  for (const setting of SETTINGS) {
    const value = settings[setting.key]
    if (value === undefined) continue
    if (JSON.stringify(value) !== JSON.stringify(defaults[setting.key])) out[setting.key] = value
  }
  return out
}

/** Parses flag values into settings (for `hearsay init`, which writes them to the file). */
export function settingsFromFlags(
  flags: Partial<Record<keyof Settings, string | string[] | boolean>>,
): Partial<Settings> {
  const out: Record<string, unknown> = {}
  for (const setting of SETTINGS) {
    const value = flags[setting.key]
    if (value !== undefined) out[setting.key] = fromText(setting, value, `--${setting.flag}`)
  }
  return out as Partial<Settings>
}

import {
  closeSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  statSync,
  writeSync,
} from 'node:fs'
import { enableCompileCache, flushCompileCache } from 'node:module'
import { dirname, join, resolve } from 'node:path'
import { SWARM_KEY_FILE } from '../daemon/constants.ts'
import { DaemonStartError } from '../daemon/errors.ts'
import { resolveDataDir } from '../daemon/paths.ts'
import {
  type DaemonConfig,
  SETTINGS,
  type Setting,
  type Settings,
  type Topology,
  topologyOf,
} from '../daemon/settings.ts'
import type { Command, CommandContext, OptionSpec } from './command.ts'
import { CliError, EXIT, isDiskFull } from './exit-codes.ts'

/** `hearsay init`, `hearsay up` and `hearsay hub`: the commands that run in the daemon's own data dir. */

/** One option per setting of the config table (src/daemon/config.ts), so flags never drift from it. */
export const SETTING_OPTIONS: Record<string, OptionSpec> = Object.fromEntries(
  SETTINGS.map((setting) => {
    const spec: OptionSpec =
      setting.kind === 'boolean'
        ? { type: 'boolean', description: setting.description }
        : {
            type: 'string',
            multiple: setting.kind === 'list',
            value: placeholder(setting),
            description: `${setting.description}${setting.kind === 'list' ? ' Repeatable.' : ''}`,
          }
    if (setting.key === 'apiPort') spec.short = 'p'
    return [setting.flag, spec]
  }),
)

function placeholder(setting: Setting): string {
  switch (setting.kind) {
    case 'list':
      return setting.key === 'namespaces'
        ? '<name>'
        : setting.key === 'allowPeers'
          ? '<peer id>'
          : '<multiaddr>'
    case 'enum':
      return `<${setting.values!.join('|')}>`
    case 'port':
      return '<port>'
    case 'string':
      return setting.key === 'swarmKeyFile' ? '<path>' : '<value>'
    case 'milliseconds':
      return '<ms>'
    default:
      return '<value>'
  }
}

function flagsOf(context: CommandContext): Partial<Record<keyof Settings, string | string[] | boolean>> {
  const flags: Partial<Record<keyof Settings, string | string[] | boolean>> = {}
  for (const setting of SETTINGS) {
    const value = context.values[setting.flag]
    if (value !== undefined) flags[setting.key] = value
  }
  return flags
}

/** What reading a config needs: the daemon module exports both, so `up` loads them once, from the bundle. */
interface ConfigReader {
  loadConfig: typeof import('../daemon/config.ts').loadConfig
  peerIdFromString: typeof import('@libp2p/peer-id').peerIdFromString
}

/** Loaded on demand: the config loader pulls in the peer and multiaddr parsing, which client commands never need. */
async function configReader(): Promise<ConfigReader> {
  const [{ loadConfig }, { peerIdFromString }] = await Promise.all([
    import('../daemon/config.ts'),
    import('@libp2p/peer-id'),
  ])
  return { loadConfig, peerIdFromString }
}

export async function loadFor(
  context: CommandContext,
  options: { isHub?: boolean; reader?: ConfigReader } = {},
): Promise<{ config: DaemonConfig; file: { path: string; found: boolean } }> {
  const dataDir = resolveDataDir({
    flag: context.values['data-dir'] as string | undefined,
    env: context.io.env,
  })
  const { loadConfig, peerIdFromString } = options.reader ?? (await configReader())
  let loaded: ReturnType<typeof loadConfig>
  try {
    loaded = loadConfig({ dataDir, flags: flagsOf(context), env: context.io.env, isHub: options.isHub })
  } catch (error) {
    if (isDaemonStartError(error)) throw new CliError(EXIT.START_FAILED, error.message, error.code)
    throw error
  }
  const { config, sources, file } = loaded
  for (const key of ['hub', 'bootstrap'] as const) {
    const setting = SETTINGS.find((candidate) => candidate.key === key)!
    const where =
      sources[key] === 'flag'
        ? `--${setting.flag}`
        : sources[key] === 'env'
          ? setting.env
          : `"${key}" in ${file.path}`
    for (const address of config[key]) {
      // A placeholder copied from the docs (/p2p/12D3KooW…) is a config mistake, named as one here
      // rather than a failed dial later.
      const id = /\/p2p\/([^/]*)/.exec(address)?.[1]
      if (id === undefined) continue
      try {
        peerIdFromString(id)
      } catch {
        throw new CliError(
          EXIT.START_FAILED,
          `${where}: "${address}" does not end in a whole peer id (copy the address the peer prints at start)`,
          'CONFIG_INVALID',
        )
      }
    }
  }
  // A hub client is never dialled (it dials its hubs), so by default it takes any free p2p port:
  // then it runs next to a mesh peer or the hub on one machine without "port in use".
  if (topologyOf(config) === 'hub-client' && sources.listen === 'default') {
    config.listen = config.listen.map((address) => address.replace(/\/tcp\/\d+/, '/tcp/0'))
  }
  return { config, file }
}

export const initCommand: Command = {
  name: 'init',
  args: '',
  summary: 'create the data dir, the keys and config.json',
  details: `Safe to run again: the identity and the mesh key are kept, and flags given now are merged
into config.json. The mesh key (<data dir>/swarm.key) makes a new private mesh: only peers holding
it can connect. Others join with a ticket from "hearsay invite" (run once this peer is up).
With --open no key is made: an open mesh that anyone on the network can join.

  hearsay init --api-port 7700 --mesh home --no-mdns --bootstrap /ip4/10.0.0.2/tcp/7601/p2p/12D3KooW…`,
  options: {
    ...SETTING_OPTIONS,
    'new-swarm-key': {
      type: 'boolean',
      description: 'insist on a new mesh key: fail if one exists (without it an existing key is kept)',
    },
  },
  async run(context) {
    const { config, file } = await loadFor(context)
    if (context.values['new-swarm-key'] === true && config.open) {
      throw new CliError(EXIT.USAGE, '--new-swarm-key makes a private mesh; it does not go with --open')
    }
    const { configFileFor, settingsFromFlags } = await import('../daemon/config.ts')
    const { loadOrCreateIdentity } = await import('../mesh/identity.ts')
    mkdirSync(config.dataDir, { recursive: true, mode: 0o700 })
    const identity = await loadOrCreateIdentity({ dataDir: config.dataDir }).catch((error: Error) => {
      throw new CliError(EXIT.START_FAILED, error.message)
    })
    const existing = file.found ? JSON.parse(readFileSync(file.path, 'utf8')) : {}
    const merged = { ...existing, ...configFileFor(settingsFromFlags(flagsOf(context))) }
    const wrote = !file.found || JSON.stringify(merged) !== JSON.stringify(existing)
    if (wrote) writeAtomic(file.path, `${JSON.stringify(merged, null, 2)}\n`)
    const meshKey = config.open ? undefined : await initMeshKey(config)
    if (context.values['new-swarm-key'] === true && meshKey?.created === false) {
      throw new CliError(EXIT.START_FAILED, `${meshKey.path} exists; move it aside first to make a new one`)
    }
    const result = {
      dataDir: config.dataDir,
      peerId: identity.peerId.toString(),
      identityCreated: identity.created,
      configFile: file.path,
      configWritten: wrote,
      open: config.open,
      ...(meshKey === undefined ? {} : { swarmKeyFile: meshKey.path, swarmKeyCreated: meshKey.created }),
    }
    if (context.json) {
      context.printJson(result)
      return EXIT.OK
    }
    const cli = hint(context)
    context.out(`data dir   ${result.dataDir}`)
    context.out(`peer id    ${result.peerId}${identity.created ? '  (new identity)' : ''}`)
    context.out(`config     ${result.configFile}${wrote ? '  (written)' : '  (unchanged)'}`)
    if (meshKey === undefined) context.out('mesh key   none: an open mesh, anyone on the network can join')
    else
      context.out(`mesh key   ${meshKey.path}${meshKey.created ? '  (new: a new private mesh)' : '  (kept)'}`)
    context.out('')
    context.out(`start the peer with: ${cli} up`)
    if (meshKey !== undefined) context.out(`then invite others with: ${cli} invite`)
    return EXIT.OK
  },
}

/** The mesh key of `hearsay init`: the configured file must exist; the data dir's one is made if missing. */
async function initMeshKey(config: DaemonConfig): Promise<{ path: string; created: boolean }> {
  const { newSwarmKeyFile, readSwarmKeyFile, writeSwarmKeyFile } = await import('../mesh/swarm-key.ts')
  const path =
    config.swarmKeyFile === '' ? join(config.dataDir, SWARM_KEY_FILE) : resolve(config.swarmKeyFile)
  try {
    if ((await readSwarmKeyFile(path)) !== undefined) return { path, created: false }
    if (config.swarmKeyFile !== '') throw new Error(`swarm key ${path}: no such file`)
    return { path, created: await writeSwarmKeyFile(path, newSwarmKeyFile()) }
  } catch (error) {
    throw new CliError(EXIT.START_FAILED, (error as Error).message)
  }
}

/** Temp file, fsync, rename, fsync the directory: a crash leaves the old file or the new one, never half. */
export function writeAtomic(path: string, data: string | Uint8Array): void {
  const temp = `${path}.tmp-${process.pid}`
  const fd = openSync(temp, 'w', 0o600)
  try {
    writeSync(fd, typeof data === 'string' ? Buffer.from(data) : data)
    fsyncSync(fd)
  } finally {
    closeSync(fd)
  }
  renameSync(temp, path)
  const dir = openSync(dirname(path), 'r')
  try {
    fsyncSync(dir)
  } finally {
    closeSync(dir)
  }
}

/**
 * How to call the CLI in hints: started by an npm script (`npm start`) it runs from a checkout where
 * `hearsay` is not on PATH, and `npx hearsay` would look for an unrelated package on the registry.
 */
export function hint(context: CommandContext): string {
  return context.io.env.npm_lifecycle_event !== undefined ? 'npm run -s hearsay --' : 'hearsay'
}

const DAEMON_EXIT_CODES = `Exit codes: 0 stopped cleanly, 1 the store failed, 7 could not start (data dir locked by another
daemon, port in use, bad config, unreadable store).`

export const upCommand: Command = {
  name: 'up',
  args: '',
  summary: 'run the daemon in the foreground (Ctrl-C stops it)',
  details: `Settings come from <data dir>/config.json, then these flags, then HEARSAY_* environment
variables (strongest); see docs/configuration.md. Prints the API URL, the peer id and the addresses
once ready (--json: one JSON line {"event":"ready",...}). Logs go to stderr.

The mesh is private: a data dir with no mesh key gets a new one (<data dir>/swarm.key), and only
peers holding it can connect; "hearsay invite" and "hearsay join <ticket>" bring others in. With
--open there is no key: anyone on the network can join.

With --hub <address> (repeatable) the peer is a hub client: it talks only to those hubs (started
with "hearsay hub"), never to other peers; --bootstrap and --mdns do not go with it.

${DAEMON_EXIT_CODES}`,
  options: SETTING_OPTIONS,
  run: (context) => runDaemon(context, false),
}

export const hubCommand: Command = {
  name: 'hub',
  args: '',
  summary: 'run the daemon as a hub for clients (up --hub)',
  details: `The client-server shape, to run next to (or compare with) the peer-to-peer mesh: clients
started with "hearsay up --hub <address of this hub>" talk only to the hub, which relays every write
to the other clients and serves their catch-up. Same protocol, API and settings as "hearsay up"; a
hub never dials peers, so --hub, --bootstrap and --mdns are refused (mDNS is off).

  hearsay hub --listen /ip4/0.0.0.0/tcp/7601
  hearsay invite                                    # on the hub: prints a ticket
  hearsay join <ticket> && hearsay up               # on each client: it becomes a client of the hub

(An open mesh: hearsay hub --open, and on each client hearsay up --hub /ip4/…/p2p/12D3KooW… --open.)

${DAEMON_EXIT_CODES}`,
  options: SETTING_OPTIONS,
  run: (context) => runDaemon(context, true),
}

/** `up` and `hub`: start the daemon, print where it is, run until a signal. */
async function runDaemon(context: CommandContext, isHub: boolean): Promise<number> {
  quietExperimentalWarnings()
  const tty = context.io.stderr.isTTY === true && !context.json
  if (tty) context.io.stderr.write(`starting hearsay${isHub ? ' as a hub' : ''}…\n`)
  // Everything the daemon creates (database, WAL, keys, lock, compile cache) is for its owner's eyes only.
  if (process.platform !== 'win32') process.umask(0o077)
  const daemonModule = await loadDaemonModule(context.io.env)
  const { startDaemon, countUnhandledRejection } = daemonModule
  const { config } = await loadFor(context, { isHub, reader: daemonModule })
  let daemon: Awaited<ReturnType<typeof startDaemon>>
  try {
    daemon = await startDaemon(config)
  } catch (error) {
    if (isDaemonStartError(error)) throw new CliError(EXIT.START_FAILED, error.message, error.code)
    if (isDiskFull(error)) {
      throw new CliError(
        EXIT.START_FAILED,
        `no space left on the device of ${config.dataDir}; free some space and start again`,
        'DISK_FULL',
      )
    }
    throw error
  }

  let signals = 0
  const onSignal = (signal: NodeJS.Signals) => {
    signals++
    if (signals > 1) {
      context.err(`${signal} again: exiting without waiting (acknowledged writes are already durable)`)
      process.exit(130)
    }
    void daemon.stop(signal)
  }
  process.on('SIGINT', onSignal)
  process.on('SIGTERM', onSignal)
  process.on('SIGHUP', onSignal)
  // A promise rejected with nobody listening is almost always a network stream a peer reset: log it
  // and keep serving (Node's default would turn it into an uncaught exception and stop the daemon).
  // State is only ever changed through awaited commits, so nothing half-done is left behind.
  process.on('unhandledRejection', (reason) => {
    countUnhandledRejection()
    daemon.logger.error({ err: reason }, 'unhandled rejection; the daemon keeps running')
  })
  process.on('uncaughtException', (error) => {
    daemon.logger.fatal({ err: error }, 'uncaught exception')
    process.exitCode = EXIT.FAILURE
    void daemon.stop('uncaught exception').finally(() => process.exit(EXIT.FAILURE))
  })

  // The compiled code is on disk now, not only at exit (which a SIGKILL skips): the next start reads it.
  flushCompileCache()
  const addresses = daemon.addresses()
  const meshAttached = daemon.peer.attachedMesh !== undefined
  const topology = topologyOf(config)
  if (context.json) {
    context.printJson({
      event: 'ready',
      url: daemon.url,
      peerId: daemon.peerId,
      addresses,
      meshAttached,
      topology,
      dataDir: config.dataDir,
      pid: process.pid,
      meshKey:
        daemon.meshKey === undefined
          ? { private: false }
          : { private: true, file: daemon.meshKey.file, created: daemon.meshKey.created },
    })
  } else {
    printBanner(context, {
      url: daemon.url,
      peerId: daemon.peerId,
      addresses,
      meshAttached,
      topology,
      config,
      meshKey: daemon.meshKey,
    })
  }
  const outcome = await daemon.done
  return outcome.failed ? EXIT.FAILURE : EXIT.OK
}

function printBanner(
  context: CommandContext,
  ready: {
    url: string
    peerId: string
    addresses: string[]
    meshAttached: boolean
    topology: Topology
    config: DaemonConfig
    meshKey: { file: string; created: boolean } | undefined
  },
): void {
  const { url, peerId, addresses, config } = ready
  const cli = hint(context)
  const mesh = !ready.meshAttached
    ? 'not attached: this peer runs alone'
    : ready.topology === 'mesh'
      ? `${config.mesh} (mDNS ${config.mdns ? 'on' : 'off'}, ${config.bootstrap.length} bootstrap peer(s))`
      : `${config.mesh} (mDNS off)`
  const topology =
    ready.topology === 'hub'
      ? ['  topology   hub: client peers connect here and talk only to this hub']
      : ready.topology === 'hub-client'
        ? config.hub.map(
            (a, i) => `  ${i === 0 ? 'topology   hub client of' : '                        '} ${a}`,
          )
        : ['  topology   mesh (peer-to-peer)']
  // Loopback is the one address every host has; another one is what a client elsewhere can reach.
  const forClients =
    addresses.find((a) => !a.startsWith('/ip4/127.') && !a.startsWith('/ip6/::1/')) ?? addresses[0]
  const lines = [
    `hearsay is up${ready.topology === 'hub' ? ' as a hub' : ''}`,
    `  API        ${url}`,
    `  peer id    ${peerId}`,
    ...(addresses.length === 0
      ? ['  addresses  (none)']
      : addresses.map((a, i) => `  ${i === 0 ? 'addresses' : '         '}  ${a}`)),
    ...topology,
    `  mesh       ${mesh}`,
    `  data dir   ${config.dataDir}`,
    ...(ready.meshKey === undefined
      ? ['  access     OPEN mesh: anyone on the network can join and read and write every namespace']
      : [
          `  access     private mesh: only peers holding ${ready.meshKey.file} can connect`,
          ...(ready.meshKey.created ? ['             (a new private mesh: this start created its key)'] : []),
        ]),
    '',
    ...(ready.meshKey !== undefined && ready.meshAttached
      ? [
          `Invite ${ready.topology === 'hub' ? 'a client of this hub' : 'another peer'}: run "${cli} invite" here, then "${cli} join <ticket>" and "${cli} up" there.`,
          '',
        ]
      : []),
    ...(ready.topology === 'hub' && forClients !== undefined && ready.meshKey === undefined
      ? ['Start clients of this hub with:', `  ${cli} up --open --hub ${forClients}`, '']
      : []),
    'Try, in another terminal:',
    `  ${cli} put greeting hello`,
    `  ${cli} get greeting`,
    `  ${cli} watch`,
    `  curl -s ${url}/v1/status`,
    'Stop with Ctrl-C.',
  ]
  for (const line of lines) context.out(line)
}

/**
 * The daemon and everything it runs on (libp2p, SQLite, the HTTP API): ~740 modules, which Node
 * resolves and loads one by one in ~0.5 s of CPU. The build also writes them as one minified file
 * next to daemon.js (`daemon.bundle.js`, see package.json `build`), which loads in ~0.1 s and ~30 MiB
 * less memory; from the sources, or when that file is older than daemon.js (a build without it), the
 * modules load as usual. The bundle's compiled code is cached on disk (see compileCacheDir), which
 * takes another ~30 ms off every start after the first.
 */
async function loadDaemonModule(env: NodeJS.ProcessEnv): Promise<typeof import('../daemon/daemon.ts')> {
  const bundle = new URL('../daemon/daemon.bundle.js', import.meta.url)
  const modules = new URL('../daemon/daemon.js', import.meta.url)
  if (bundle.protocol === 'file:') {
    const bundled = statSync(bundle, { throwIfNoEntry: false })
    const built = statSync(modules, { throwIfNoEntry: false })
    if (bundled !== undefined && (built === undefined || bundled.mtimeMs >= built.mtimeMs)) {
      const dir = compileCacheDir(env)
      // A cache that cannot be made (read-only home, a sandboxed service) only costs the time it saves.
      if (dir !== undefined) enableCompileCache(dir)
      return import(bundle.href)
    }
  }
  return import('../daemon/daemon.ts')
}

/**
 * Where Node keeps the bundle's compiled code between starts: the user's cache directory (it is
 * derived data, rebuilt when missing or stale; Node checks each entry against the file it came
 * from). NODE_COMPILE_CACHE, when set, has already chosen one; NODE_DISABLE_COMPILE_CACHE=1 turns
 * caching off.
 */
export function compileCacheDir(
  env: NodeJS.ProcessEnv,
  platform: NodeJS.Platform = process.platform,
): string | undefined {
  if (env.NODE_COMPILE_CACHE !== undefined || env.NODE_DISABLE_COMPILE_CACHE !== undefined) return undefined
  const home = env.HOME ?? env.USERPROFILE
  let base: string | undefined
  if (platform === 'win32')
    base = env.LOCALAPPDATA ?? (home === undefined ? undefined : join(home, 'AppData', 'Local'))
  else if (platform === 'darwin') base = home === undefined ? undefined : join(home, 'Library', 'Caches')
  // The XDG spec says a relative XDG_CACHE_HOME is invalid and must be ignored.
  else if (env.XDG_CACHE_HOME?.startsWith('/')) base = env.XDG_CACHE_HOME
  else base = home === undefined ? undefined : join(home, '.cache')
  return base === undefined ? undefined : join(base, 'hearsay', 'compile-cache')
}

/** Thrown by a daemon module loaded from the bundle, DaemonStartError is another class: test by shape. */
function isDaemonStartError(error: unknown): error is DaemonStartError {
  return (
    error instanceof DaemonStartError ||
    (error instanceof Error &&
      error.name === 'DaemonStartError' &&
      typeof (error as { code?: unknown }).code === 'string')
  )
}

/**
 * node:sqlite prints an ExperimentalWarning on load: true, expected (docs/storage.md), and noise on
 * a daemon's console. Other warnings still print.
 */
function quietExperimentalWarnings(): void {
  const listeners = process.listeners('warning')
  process.removeAllListeners('warning')
  process.on('warning', (warning) => {
    if (warning.name === 'ExperimentalWarning' && /SQLite|Type Stripping/i.test(warning.message)) return
    for (const listener of listeners) listener(warning)
  })
}

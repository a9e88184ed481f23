import { chmodSync, lstatSync, mkdirSync, readdirSync, readFileSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { InsecureKeyFileError } from '../mesh/errors.ts'
import { loadOrCreateIdentity } from '../mesh/identity.ts'
import { newSwarmKeyFile, readSwarmKeyFile, writeSwarmKeyFile } from '../mesh/swarm-key.ts'
import { attachMesh } from '../peer/attach-mesh.ts'
import { HearsayPeer } from '../peer/peer.ts'
import { createMemoryStore } from '../store/memory.ts'
import { openSqliteStore } from '../store/sqlite.ts'
import { type Store, StoreError } from '../store/types.ts'
import { apiAccessPolicy, apiTokenPath } from './access.ts'
import { type App, createApp, type DaemonInfo } from './app.ts'
import { type DaemonConfig, topologyOf } from './config.ts'
import { DaemonStartError } from './errors.ts'
import { EventHub } from './events.ts'
import { acquireLock, type DataDirLock } from './lock.ts'
import { createLogger, type Logger } from './logger.ts'
import { DaemonMetrics } from './metrics.ts'

// `hearsay up` reads its config through the daemon module too: one copy of the config, peer id and
// multiaddr code in the process (the bundle's), not a second one loaded module by module beside it.
export { peerIdFromString } from '@libp2p/peer-id'
export { loadConfig } from './config.ts'
// The CLI counts unhandled rejections through the daemon module it loaded (possibly the bundle, whose
// metrics module is not the one a separate import would give).
export { countUnhandledRejection } from './metrics.ts'

import { dataDirFiles } from './paths.ts'
import { ReadCache } from './read-cache.ts'
import { type HttpServer, listenHttp } from './server.ts'
import { WatchHub } from './watch.ts'

/**
 * One daemon = one peer: lock the data dir, load the identity, open the store and the peer, serve the
 * API, join the mesh. `stop()` undoes it in reverse: stop answering, end watch streams, let in-flight
 * requests finish, flush and close the store, leave the mesh, release the lock.
 */

export interface RunningDaemon {
  readonly url: string
  readonly peerId: string
  readonly config: DaemonConfig
  readonly peer: HearsayPeer
  readonly logger: Logger
  /** The mesh key in use (undefined: an open mesh), and whether this start created it. */
  readonly meshKey: MeshKey | undefined
  /** p2p addresses (empty without a mesh). */
  addresses(): string[]
  /** Stops once; later calls return the same promise. */
  stop(reason?: string): Promise<void>
  /** Settles when the daemon has stopped; `failed` when the store failure stopped it. */
  readonly done: Promise<{ failed: boolean }>
}

export interface MeshKey {
  file: string
  /** This start made the key: a new private mesh, which others join with `hearsay invite`. */
  created: boolean
}

export function packageVersion(): string {
  try {
    return JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')).version
  } catch {
    return 'unknown'
  }
}

export async function startDaemon(
  config: DaemonConfig,
  options: { logger?: Logger } = {},
): Promise<RunningDaemon> {
  const logger = options.logger ?? createLogger({ level: config.logLevel, format: config.logFormat })
  const files = dataDirFiles(config.dataDir)
  const startedAt = new Date().toISOString()
  try {
    mkdirSync(config.dataDir, { recursive: true, mode: 0o700 })
  } catch (error) {
    throw new DaemonStartError(
      'DATA_DIR',
      `cannot create data dir ${config.dataDir}: ${(error as Error).message}`,
      { cause: error },
    )
  }

  const undo: Array<() => void | Promise<void>> = []
  const unwind = async () => {
    for (const step of undo.reverse()) {
      try {
        await step()
      } catch (error) {
        logger.warn({ err: error }, 'cleanup after a failed start')
      }
    }
  }

  try {
    const lock: DataDirLock = acquireLock(files.lock)
    undo.push(() => lock.release())
    const meshKey = await loadOrCreateSwarmKey(config, files.swarmKey)
    const swarmKey = meshKey?.file
    if (meshKey?.created) logger.info({ keyFile: meshKey.path }, 'created a new mesh key: a new private mesh')

    const identity = await loadOrCreateIdentity({ dataDir: config.dataDir }).catch((error: Error) => {
      throw new DaemonStartError('IDENTITY_FAILED', error.message, { cause: error })
    })
    const peerId = identity.peerId.toString()
    if (identity.created) logger.info({ peerId, keyFile: identity.path }, 'created a new identity')
    if (meshKey?.created && !identity.created) {
      // A data dir from before private-by-default: its peers, in an open mesh, will not connect now.
      logger.warn(
        { keyFile: meshKey.path },
        'this data dir had no mesh key, so this start made a new private mesh: peers of its former open mesh cannot connect until they join it (hearsay invite / join), or run every peer with --open',
      )
    }
    lock.update({ peerId })

    const store = openStore(config, files.database)
    undo.push(() => store.close())
    tightenDataDir(config.dataDir, logger)
    let peer: HearsayPeer
    try {
      peer = new HearsayPeer({
        store,
        peerId,
        privateKey: identity.privateKey,
        namespaces: config.namespaces,
      })
    } catch (error) {
      throw storeStartError(error, files.database)
    }
    undo.push(() => peer.stop())

    const metrics = new DaemonMetrics(peer)
    const hub = new WatchHub(peer, metrics, config.sseHeartbeatMs, config.watchQueueBytes)
    undo.push(() => hub.close())
    const events = new EventHub({
      metrics,
      logger,
      heartbeatMs: config.sseHeartbeatMs,
      queueBytes: config.watchQueueBytes,
    })
    undo.push(() => events.close())
    let url = ''
    const version = packageVersion()
    const topology = topologyOf(config)
    const info = (): DaemonInfo => ({
      version,
      url,
      dataDir: config.dataDir,
      meshName: config.mesh,
      // A hub and its clients never use mDNS, whatever the setting says.
      mdns: config.mdns && topology === 'mesh',
      bootstrap: config.bootstrap,
      topology,
      hubs: config.hub,
      privateMesh: { swarmKey: swarmKey !== undefined, allowPeers: config.allowPeers.length },
      storePath: config.storage === 'sqlite' ? files.database : undefined,
      startedAt,
    })
    const reads = new ReadCache(peer)
    const access = apiAccessPolicy(config)
    const app: App = createApp({
      peer,
      metrics,
      hub,
      events,
      reads,
      logger,
      info,
      requireIfMatch: config.requireIfMatch,
      access,
    })
    if (access.token !== undefined) {
      logger.warn(
        { apiHost: config.apiHost, tokenFile: apiTokenPath(config.dataDir) },
        'the API listens beyond loopback: every request needs the bearer token in tokenFile',
      )
    }
    // The API binds before the mesh starts, so a taken port fails fast and cheaply.
    const server: HttpServer = await listenHttp(app, {
      host: config.apiHost,
      port: config.apiPort,
      logger,
      maxConnections: config.apiMaxConnections,
    })
    url = server.url
    undo.push(() => server.close(0))

    const mesh = await attachMesh(peer, {
      privateKey: identity.privateKey,
      meshName: config.mesh,
      listen: config.listen,
      bootstrap: config.bootstrap,
      mdns: config.mdns,
      hub: config.hub.length > 0 ? config.hub : undefined,
      isHub: config.isHub === true,
      meshPeers: config.meshPeers,
      loopbackTesting: config.loopbackTesting,
      swarmKey,
      allowPeers: config.allowPeers.length > 0 ? config.allowPeers : undefined,
      log: logger.child({ component: 'mesh' }),
    }).catch((error: Error) => {
      throw meshStartError(error)
    })
    if (mesh !== undefined && peer.attachedMesh !== mesh) peer.attach(mesh)
    if (mesh === undefined)
      logger.warn('running without a mesh: this peer does not replicate (attachMesh returned none)')
    else {
      // Who came and went and how sessions went, at info level (rate-limited per peer): the first
      // thing to look at when peers do not converge. The same events stream on GET /v1/events.
      events.attach(mesh.insight.activity, (peerId) => ({
        remoteAddr: mesh.node.libp2p
          .getConnections()
          .find((connection) => connection.remotePeer.toString() === peerId)
          ?.remoteAddr.toString(),
      }))
    }

    lock.update({ url })
    undo.length = 0

    let stopping: Promise<void> | undefined
    let failed = false
    let markDone: (outcome: { failed: boolean }) => void = () => {}
    const done = new Promise<{ failed: boolean }>((resolve) => {
      markDone = resolve
    })
    const daemon: RunningDaemon = {
      done,
      url,
      peerId,
      config,
      peer,
      logger,
      meshKey: meshKey === undefined ? undefined : { file: meshKey.path, created: meshKey.created },
      addresses: () => peer.attachedMesh?.addresses() ?? [],
      stop(reason = 'stop requested') {
        stopping ??= (async () => {
          logger.info({ reason }, 'stopping')
          const began = performance.now()
          app.close()
          hub.close()
          events.close()
          await server.close(config.shutdownTimeoutMs)
          const httpMs = Math.round(performance.now() - began)
          try {
            // Flushes every namespace, leaves the mesh, closes the store.
            await peer.stop()
          } finally {
            lock.release()
            markDone({ failed })
          }
          logger.info({ httpMs, totalMs: Math.round(performance.now() - began) }, 'stopped')
        })()
        return stopping
      },
    }
    peer.on('failed', (error) => {
      // A failed commit leaves the store unusable (never retry-and-continue); a restart replays the WAL.
      logger.fatal({ err: error }, 'the store failed; stopping so a supervisor can restart the daemon')
      failed = true
      void daemon.stop('store failed').catch(() => {})
    })
    logger.info(
      {
        url,
        peerId,
        topology,
        dataDir: config.dataDir,
        addresses: daemon.addresses(),
        namespaces: peer.namespaces(),
      },
      'ready',
    )
    return daemon
  } catch (error) {
    await unwind()
    throw error
  }
}

/**
 * The mesh key: the configured file (which must exist), else `swarm.key` in the data dir, created
 * there when missing, so a new peer starts a private mesh rather than one anyone nearby can join.
 * None for an open mesh, which refuses to start next to a key it would ignore.
 */
async function loadOrCreateSwarmKey(
  config: DaemonConfig,
  inDataDir: string,
): Promise<{ file: Uint8Array; path: string; created: boolean } | undefined> {
  const path = config.swarmKeyFile === '' ? inDataDir : resolve(config.swarmKeyFile)
  let existing: Awaited<ReturnType<typeof readSwarmKeyFile>>
  try {
    existing = await readSwarmKeyFile(path)
  } catch (error) {
    const message =
      error instanceof InsecureKeyFileError
        ? `swarm key ${path} can be read by others (mode ${error.mode.toString(8).padStart(4, '0')}); run: chmod 600 ${path}`
        : (error as Error).message
    throw new DaemonStartError('DATA_DIR', message, { cause: error })
  }
  if (config.open) {
    if (existing === undefined) return undefined
    throw new DaemonStartError(
      'CONFIG_INVALID',
      `open mesh asked for, but ${path} holds the key of a private mesh; start without --open to use it, or move the key aside to run an open mesh`,
    )
  }
  if (existing !== undefined) return { file: existing.file, path, created: false }
  if (config.swarmKeyFile !== '') {
    throw new DaemonStartError('CONFIG_INVALID', `swarm key ${path}: no such file`)
  }
  const file = newSwarmKeyFile()
  try {
    if (await writeSwarmKeyFile(path, file)) return { file, path, created: true }
  } catch (error) {
    throw new DaemonStartError('DATA_DIR', (error as Error).message, { cause: error })
  }
  // Another process wrote one between our read and write: that one is the key.
  const theirs = await readSwarmKeyFile(path)
  if (theirs === undefined)
    throw new DaemonStartError('DATA_DIR', `swarm key ${path} vanished while starting`)
  return { file: theirs.file, path, created: false }
}

/**
 * The data dir holds the identity, the mesh key and every replicated value: owner only. Data dirs
 * made before this rule (0755, files 0644) are tightened at start; a failure (another owner) is
 * logged, not fatal.
 */
function tightenDataDir(dir: string, logger: Logger): void {
  if (process.platform === 'win32') return
  const fix = (path: string, mode: number) => {
    try {
      const st = lstatSync(path)
      if (st.isSymbolicLink() || (st.mode & 0o777) === mode || (st.mode & 0o077) === 0) return
      chmodSync(path, mode)
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code
      if (code !== 'ENOENT') logger.warn({ path, err: error }, 'could not make this private to its owner')
    }
  }
  fix(dir, 0o700)
  let names: string[] = []
  try {
    names = readdirSync(dir)
  } catch (error) {
    logger.warn({ dir, err: error }, 'could not list the data dir')
  }
  for (const name of names.slice(0, 1_000)) {
    const path = join(dir, name)
    try {
      if (lstatSync(path).isFile()) fix(path, 0o600)
    } catch {
      // Removed meanwhile (a -shm file at checkpoint): nothing to tighten.
    }
  }
}

/** libp2p reports a taken p2p port inside a long multi-line message; say it in one line. */
function meshStartError(error: Error): DaemonStartError {
  const taken = [...error.message.matchAll(/(\/ip[46]\/\S+?): Error: listen EADDRINUSE/g)].map(
    (match) => match[1],
  )
  const message =
    taken.length > 0
      ? `p2p address ${taken.join(', ')} is in use (another hearsay daemon?); choose another with --listen or HEARSAY_LISTEN`
      : `networking failed to start: ${error.message.split('\n')[0]}`
  return new DaemonStartError('MESH_FAILED', message, { cause: error })
}

function openStore(config: DaemonConfig, path: string): Store {
  if (config.storage === 'memory') return createMemoryStore()
  try {
    return openSqliteStore({ path, synchronous: config.synchronous })
  } catch (error) {
    throw storeStartError(error, path)
  }
}

function storeStartError(error: unknown, path: string): Error {
  if (!(error instanceof StoreError)) return error as Error
  const hints: Partial<Record<StoreError['code'], string>> = {
    STORE_CORRUPT: 'move the file aside to start empty (peers will sync the data back), or restore a backup',
    STORE_NEWER_VERSION: 'it was written by a newer hearsay; upgrade hearsay to open it',
    STORE_PERMISSION: 'check the owner and mode of the data dir and the file',
  }
  const hint = hints[error.code]
  return new DaemonStartError(
    'STORE_FAILED',
    `store ${path}: ${error.message}${hint === undefined ? '' : ` (${hint})`}`,
    {
      cause: error,
    },
  )
}

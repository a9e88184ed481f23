import { statSync } from 'node:fs'
import { createServer } from 'node:net'
import { readLock } from '../daemon/lock.ts'
import { dataDirFiles, resolveDataDir } from '../daemon/paths.ts'
import { DaemonClient, findDaemon } from './client.ts'
import type { Command, CommandContext } from './command.ts'
import { CliError, EXIT } from './exit-codes.ts'
import { table } from './format.ts'
import { loadFor } from './up.ts'

/**
 * `hearsay doctor`: checks what usually stops a peer from working (the Node version, the data dir,
 * its lock, the ports, the API, the peers) and says, in plain words, how to fix what is wrong.
 */

export type CheckStatus = 'ok' | 'warn' | 'fail'

export interface Check {
  name: string
  status: CheckStatus
  message: string
  /** What to do about a warn or a fail. */
  fix?: string
}

/** The first Node with everything hearsay uses (node:sqlite unflagged, StatementSync#setReturnArrays). */
export const MINIMUM_NODE = '22.16.0'

export function nodeCheck(version: string): Check {
  const [major, minor] = version.split('.').map(Number)
  const [needMajor, needMinor] = MINIMUM_NODE.split('.').map(Number)
  const recent = major > needMajor || (major === needMajor && minor >= needMinor)
  return recent
    ? { name: 'node', status: 'ok', message: `Node ${version}` }
    : {
        name: 'node',
        status: 'fail',
        message: `Node ${version} is older than ${MINIMUM_NODE}`,
        fix: `install Node 22 LTS (${MINIMUM_NODE} or newer), e.g. "nvm install 22"`,
      }
}

export function dataDirCheck(dir: string, uid: number | undefined): Check {
  let stats: ReturnType<typeof statSync>
  try {
    stats = statSync(dir)
  } catch {
    return {
      name: 'data dir',
      status: 'warn',
      message: `${dir} does not exist yet`,
      fix: 'run "hearsay init" (or "hearsay up", which creates it)',
    }
  }
  if (!stats.isDirectory())
    return {
      name: 'data dir',
      status: 'fail',
      message: `${dir} is not a directory`,
      fix: 'move it aside, or pick another data dir with --data-dir or HEARSAY_HOME',
    }
  if (uid !== undefined && stats.uid !== uid)
    return {
      name: 'data dir',
      status: 'fail',
      message: `${dir} belongs to uid ${stats.uid}, not to you (uid ${uid})`,
      fix: `run hearsay as its owner, or: sudo chown -R ${uid} ${dir}`,
    }
  if ((Number(stats.mode) & 0o077) !== 0)
    return {
      name: 'data dir',
      status: 'warn',
      message: `${dir} is readable by others (mode ${(Number(stats.mode) & 0o777).toString(8)}); it holds the keys`,
      fix: `chmod 700 ${dir}`,
    }
  return { name: 'data dir', status: 'ok', message: `${dir} (owner-only)` }
}

/** Whether something listens on host:port, found by trying to listen there too. */
export function portFree(port: number, host: string): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer()
    server.once('error', () => resolve(false))
    server.listen({ port, host, exclusive: true }, () => server.close(() => resolve(true)))
  })
}

/** The TCP ports of listen multiaddrs like /ip4/0.0.0.0/tcp/7601. */
export function tcpListens(addresses: string[]): Array<{ host: string; port: number }> {
  return addresses.flatMap((address) => {
    const match = /^\/ip([46])\/([^/]+)\/tcp\/(\d+)/.exec(address)
    return match === null ? [] : [{ host: match[2], port: Number(match[3]) }]
  })
}

async function portChecks(context: CommandContext, daemonUrl: string | undefined): Promise<Check[]> {
  // The running daemon holds its ports (which may differ from the config: flags, port 0).
  if (daemonUrl !== undefined)
    return [{ name: 'ports', status: 'ok', message: `held by the running daemon (API ${daemonUrl})` }]
  let config: Awaited<ReturnType<typeof loadFor>>['config']
  try {
    ;({ config } = await loadFor(context))
  } catch (error) {
    return [
      {
        name: 'config',
        status: 'fail',
        message: (error as Error).message,
        fix: 'fix config.json in the data dir (or the HEARSAY_* variable) it names',
      },
    ]
  }
  const wanted = [
    { what: 'API', host: config.apiHost, port: config.apiPort, flag: '--api-port' },
    ...tcpListens(config.listen).map((listen) => ({ what: 'p2p', ...listen, flag: '--listen' })),
  ]
  const checks: Check[] = []
  for (const { what, host, port, flag } of wanted) {
    const name = `${what} port`
    if (port === 0) {
      checks.push({ name, status: 'ok', message: `${host}: any free port (0)` })
    } else if (await portFree(port, host)) {
      checks.push({ name, status: 'ok', message: `${host}:${port} is free` })
    } else {
      checks.push({
        name,
        status: 'fail',
        message: `${host}:${port} is in use by another program`,
        fix: `stop that program, or choose another port with ${flag} (or in config.json)`,
      })
    }
  }
  return checks
}

async function daemonChecks(context: CommandContext): Promise<Check[]> {
  let client: DaemonClient
  try {
    client = new DaemonClient(
      findDaemon({
        dataDir: context.values['data-dir'] as string | undefined,
        api: context.values.api as string | undefined,
        token: context.values.token as string | undefined,
        env: context.io.env,
      }),
    )
  } catch (error) {
    return [
      {
        name: 'api',
        status: 'warn',
        message: (error as Error).message.split(';')[0],
        fix: 'start the daemon with "hearsay up"',
      },
    ]
  }
  const signal = AbortSignal.timeout(3000)
  try {
    await client.request('/healthz', { signal })
  } catch (error) {
    return [
      {
        name: 'api',
        status: 'fail',
        message: `${client.baseUrl}/healthz: ${(error as Error).message}`,
        fix: 'see the daemon log; restart it with "hearsay up"',
      },
    ]
  }
  const checks: Check[] = [{ name: 'api', status: 'ok', message: `${client.baseUrl}/healthz answers` }]
  try {
    const { body } = await client.json<{
      topology?: string
      mesh: { attached: boolean }
      peers: { connected: number; known: number }
    }>('/v1/status', { signal })
    if (!body.mesh.attached)
      checks.push({ name: 'peers', status: 'ok', message: 'this peer runs alone (no mesh)' })
    else if (body.peers.connected > 0)
      checks.push({
        name: 'peers',
        status: 'ok',
        message: `${body.peers.connected} connected, ${body.peers.known} known`,
      })
    else
      checks.push({
        name: 'peers',
        status: 'warn',
        message: `none connected (${body.peers.known} known)`,
        fix: 'invite a peer ("hearsay invite" here, "hearsay join <ticket>" there), or "hearsay connect <multiaddr>"',
      })
  } catch (error) {
    checks.push({
      name: 'peers',
      status: 'fail',
      message: (error as Error).message,
      fix: 'see the daemon log',
    })
  }
  return checks
}

export async function runChecks(context: CommandContext): Promise<Check[]> {
  const dataDir = resolveDataDir({
    flag: context.values['data-dir'] as string | undefined,
    env: context.io.env,
  })
  const checks: Check[] = [nodeCheck(process.versions.node), dataDirCheck(dataDir, process.getuid?.())]
  const lock = readLock(dataDirFiles(dataDir).lock)
  switch (lock.state) {
    case 'missing':
      checks.push({ name: 'lock', status: 'ok', message: 'free: no daemon runs for this data dir' })
      break
    case 'live':
      checks.push({ name: 'lock', status: 'ok', message: `held by the hearsay daemon pid ${lock.info.pid}` })
      break
    case 'stale':
      checks.push({
        name: 'lock',
        status: 'warn',
        message: `left by pid ${lock.info.pid}, which is not a running hearsay`,
        fix: 'nothing to do: the next "hearsay up" takes it over',
      })
      break
    case 'unreadable':
      checks.push({
        name: 'lock',
        status: 'warn',
        message: 'unreadable (a daemon starting right now, or a damaged file)',
        fix: `run doctor again in a moment; if it stays, remove ${dataDirFiles(dataDir).lock}`,
      })
  }
  checks.push(...(await portChecks(context, lock.state === 'live' ? (lock.info.url ?? '?') : undefined)))
  checks.push(...(await daemonChecks(context)))
  return checks
}

export const doctorCommand: Command = {
  name: 'doctor',
  args: '',
  summary: 'check Node, data dir, lock, ports, API and peers',
  details: `One line per check: ok, warn (works, but look) or fail (broken), with what to do. Exit 1
when a check fails.`,
  client: true,
  options: {
    'api-port': { type: 'string', short: 'p', value: '<port>', description: 'the API port to check' },
    listen: {
      type: 'string',
      multiple: true,
      value: '<multiaddr>',
      description: 'the p2p listen address to check. Repeatable.',
    },
  },
  async run(context) {
    if (context.positionals.length > 0)
      throw new CliError(EXIT.USAGE, `doctor takes no arguments (got "${context.positionals[0]}")`)
    const checks = await runChecks(context)
    const failed = checks.some((check) => check.status === 'fail')
    if (context.json) context.printJson({ ok: !failed, checks })
    else {
      const rows = checks.map((check) => [
        check.status,
        check.name,
        `${check.message}${check.fix === undefined ? '' : `: ${check.fix}`}`,
      ])
      for (const line of table(rows)) context.out(line)
    }
    return failed ? EXIT.FAILURE : EXIT.OK
  },
}

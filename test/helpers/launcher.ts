/** `hearsay up` through the installed launcher (bin/hearsay.cjs), as a user starts it. */
import { type ChildProcessByStdio, spawn } from 'node:child_process'
import type { Readable } from 'node:stream'
import { cleanEnv, until } from './daemon.ts'

export const LAUNCHER = new URL('../../bin/hearsay.cjs', import.meta.url).pathname

export interface LaunchedUp {
  child: ChildProcessByStdio<null, Readable, Readable>
  /** The ready line, parsed. */
  ready: Record<string, unknown> & { url: string }
  /** What it wrote to stderr so far. */
  stderr(): string
  /** Its exit code, once it exits. */
  exited: Promise<number | null>
}

/**
 * Starts `hearsay up --json --api-port 0 …args` under `node` and waits for its ready line. The caller
 * stops it; on a failed start it is killed here.
 */
export async function launchUp(
  node: string,
  args: string[],
  env: Record<string, string>,
): Promise<LaunchedUp> {
  const child = spawn(node, [LAUNCHER, 'up', '--json', '--api-port', '0', ...args], {
    env: cleanEnv({ HEARSAY_LOG_LEVEL: 'warn', ...env }),
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let stdout = ''
  let stderr = ''
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
    stdout += chunk
  })
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
    stderr += chunk
  })
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)))
  try {
    const line = await until(() => stdout.split('\n').find((l) => l.includes('"event":"ready"')), {
      timeoutMs: 30_000,
      message: `hearsay up under ${node} ready; stderr: ${stderr}`,
    })
    return { child, ready: JSON.parse(line), stderr: () => stderr, exited }
  } catch (error) {
    child.kill('SIGKILL')
    throw error
  }
}

/**
 * A process that keeps a file open, as a running daemon keeps its lock file: the lock counts a pid
 * as its holder only when that process has the file open (src/daemon/lock.ts).
 */
import { spawn } from 'node:child_process'

export interface Holder {
  pid: number
  stop(): Promise<void>
}

export function holdOpen(path: string, timeoutMs = 10_000): Promise<Holder> {
  const child = spawn(
    process.execPath,
    [
      '-e',
      `require('node:fs').openSync(process.argv[1], 'r'); process.stdout.write('open\\n'); setInterval(() => {}, 60_000)`,
      path,
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  )
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL')
      reject(new Error(`the holder of ${path} did not open it within ${timeoutMs} ms`))
    }, timeoutMs)
    child.stdout!.once('data', () => {
      clearTimeout(timer)
      resolve({
        pid: child.pid!,
        async stop() {
          if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
          await exited
        },
      })
    })
    child.once('exit', (code) => {
      clearTimeout(timer)
      reject(new Error(`the holder of ${path} exited (${code})`))
    })
  })
}

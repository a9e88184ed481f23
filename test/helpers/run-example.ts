import { spawn } from 'node:child_process'
import { cleanEnv } from './daemon.ts'

export interface ExampleResult {
  code: number | null
  stdout: string
  stderr: string
}

const running = new Set<ReturnType<typeof spawn>>()

/** Runs `examples/<file>` to completion as a user would, killed (and failing) after `timeoutMs`. */
export function runExample(file: string, args: string[] = [], timeoutMs = 45_000): Promise<ExampleResult> {
  const child = spawn(
    process.execPath,
    [new URL(`../../examples/${file}`, import.meta.url).pathname, ...args],
    {
      env: cleanEnv(),
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  )
  running.add(child)
  let stdout = ''
  let stderr = ''
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
    stdout += chunk
  })
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
    stderr += chunk
  })
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL')
      reject(
        new Error(
          `${file} did not finish within ${timeoutMs / 1000} s\nstdout:\n${stdout}\nstderr:\n${stderr}`,
        ),
      )
    }, timeoutMs)
    child.once('close', (code) => {
      clearTimeout(timer)
      running.delete(child)
      resolve({ code, stdout, stderr })
    })
  })
}

/** Kills whatever example is still running (for afterAll). */
export function killExamples(): void {
  for (const child of running) child.kill('SIGKILL')
}

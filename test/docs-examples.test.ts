/**
 * The shell examples of README.md and docs/cli.md work as written: every fenced `sh` block marked
 * `<!-- doc-test: run against a running daemon -->` runs, line by line, with the built `hearsay` on
 * the PATH, against a real daemon (its data dir in HEARSAY_HOME, on loopback, no mDNS). A line whose
 * comment is a single word expects that word as its output.
 */
import { spawnSync } from 'node:child_process'
import { mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  cleanEnv,
  type DaemonProcess,
  removeHomes,
  startDaemon,
  stopAllDaemons,
  tempHome,
} from './helpers/daemon.ts'

const ROOT = resolve(import.meta.dirname, '..')
const MARK = '<!-- doc-test: run against a running daemon -->'

interface Example {
  file: string
  line: number
  command: string
  expected?: string
}

/** The lines of the marked `sh` blocks, without comments; `# word` becomes the expected output. */
function markedExamples(file: string, text: string): Example[] {
  const lines = text.split('\n')
  const examples: Example[] = []
  for (let i = 0; i < lines.length; i++) {
    if (lines[i].trim() !== MARK) continue
    if (lines[i + 1]?.trim() !== '```sh')
      throw new Error(`${file}:${i + 1}: the mark must precede a \`\`\`sh block`)
    for (let j = i + 2; j < lines.length && lines[j].trim() !== '```'; j++) {
      const match = /^(.*?)\s+#\s(.*)$/.exec(lines[j])
      const command = (match === null ? lines[j] : match[1]).trim()
      if (command === '' || command.startsWith('#')) continue
      const comment = match?.[2].trim()
      examples.push({
        file,
        line: j + 1,
        command,
        ...(comment !== undefined && /^\S+$/.test(comment) ? { expected: comment } : {}),
      })
    }
  }
  return examples
}

const examples = ['README.md', 'docs/cli.md'].flatMap((file) =>
  markedExamples(file, readFileSync(join(ROOT, file), 'utf8')),
)

let daemon: DaemonProcess
let work: string
let path: string

beforeAll(async () => {
  daemon = await startDaemon()
  work = tempHome('hearsay-docs-')
  // `hearsay` on the PATH, as `npm link` puts it: the launcher.
  mkdirSync(join(work, 'bin'))
  symlinkSync(join(ROOT, 'bin', 'hearsay.cjs'), join(work, 'bin', 'hearsay'))
  path = `${join(work, 'bin')}:${process.env.PATH}`
  // Files the examples read.
  writeFileSync(join(work, 'photo.jpg'), Buffer.from([0xff, 0xd8, 0xff, 0xe0, 0, 16, 0x4a, 0x46, 0x49, 0x46]))
})

afterAll(async () => {
  await stopAllDaemons()
  removeHomes()
})

describe('shell examples in the docs', () => {
  it('finds the marked blocks of README.md and docs/cli.md', () => {
    const files = new Set(examples.map((example) => example.file))
    expect([...files].sort()).toEqual(['README.md', 'docs/cli.md'])
    expect(examples.length).toBeGreaterThan(10)
  })

  it.each(
    examples.map((example) => [`${example.file}:${example.line} ${example.command}`, example] as const),
  )('%s', (_, example) => {
    const result = spawnSync('bash', ['-o', 'pipefail', '-c', example.command], {
      cwd: work,
      encoding: 'utf8',
      timeout: 30_000,
      env: cleanEnv({ HEARSAY_HOME: daemon.home, PATH: path }),
    })
    expect(result.status, `stderr: ${result.stderr}`).toBe(0)
    expect(result.stderr).not.toContain('ExperimentalWarning')
    if (example.expected !== undefined) expect(result.stdout.trim()).toBe(example.expected)
  })
})

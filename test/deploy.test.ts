/**
 * The service files: the Dockerfile (built when a Docker daemon answers, else checked for its
 * structure) and the systemd unit (checked by `systemd-analyze verify` where systemd is installed,
 * and always parsed for the keys that make it safe).
 */
import { spawnSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { describe, expect, it } from 'vitest'

const ROOT = resolve(import.meta.dirname, '..')
const dockerfile = readFileSync(join(ROOT, 'Dockerfile'), 'utf8')
const unitText = readFileSync(join(ROOT, 'deploy', 'hearsay.service'), 'utf8')

/** `[Section]` → key → values, comments and blank lines dropped. */
function parseUnit(text: string): Map<string, Map<string, string[]>> {
  const sections = new Map<string, Map<string, string[]>>()
  let current: Map<string, string[]> | undefined
  for (const raw of text.split('\n')) {
    const line = raw.trim()
    if (line === '' || line.startsWith('#') || line.startsWith(';')) continue
    const header = /^\[(.+)\]$/.exec(line)
    if (header !== null) {
      current = new Map()
      sections.set(header[1], current)
      continue
    }
    const at = line.indexOf('=')
    if (current === undefined || at < 1) throw new Error(`not a unit line: ${line}`)
    const key = line.slice(0, at)
    current.set(key, [...(current.get(key) ?? []), line.slice(at + 1)])
  }
  return sections
}

function available(command: string, args: string[]): string | undefined {
  const result = spawnSync(command, args, { encoding: 'utf8', timeout: 15_000 })
  if (result.error !== undefined) return `${command} is not installed (${result.error.message})`
  if (result.status !== 0)
    return `${command} ${args.join(' ')} failed: ${(result.stderr || result.stdout).trim().split('\n').at(-1)}`
  return undefined
}

describe('Dockerfile', () => {
  const stages = dockerfile.split(/^FROM /m).slice(1)
  const final = stages.at(-1) ?? ''

  it('is multi-stage, runs the launcher as a non-root user with /data as the data dir, and checks /healthz', () => {
    expect(stages.length).toBeGreaterThanOrEqual(2)
    expect(stages[0]).toMatch(/^node:22\S* AS build/)
    expect(final).toMatch(/^node:22/)
    // Nothing of the build stage's toolchain: only its outputs.
    expect(final).toContain('COPY --from=build /src/dist ./dist')
    expect(final).toContain('COPY --from=build /src/node_modules ./node_modules')
    expect(stages[0]).toContain('npm prune --omit=dev')
    // The daemon bundle `hearsay up` loads, and the dashboard's files it serves from beside dist/.
    expect(stages[0]).toContain('--file dist/daemon/daemon.bundle.js')
    expect(final).toContain('COPY --from=build /src/src/daemon/dashboard ./src/daemon/dashboard')
    expect(final).toMatch(/^USER node$/m)
    expect(final).not.toMatch(/^USER root$/m)
    expect(final).toMatch(/^VOLUME \["\/data"\]$/m)
    expect(final).toContain('HEARSAY_HOME=/data')
    expect(final).toContain('chmod 700 /data')
    // Reachable from the host; beyond loopback the daemon requires the token in /data/api.token.
    expect(final).toContain('HEARSAY_API_HOST=0.0.0.0')
    expect(final).toMatch(/^EXPOSE 7600 7601$/m)
    expect(final).toMatch(/^HEALTHCHECK .*\n.*http:\/\/127\.0\.0\.1:7600\/healthz/m)
    expect(final).toContain('ln -s /app/bin/hearsay.cjs /usr/local/bin/hearsay')
    expect(final).toMatch(/^ENTRYPOINT \["hearsay"\]$/m)
    expect(final).toMatch(/^CMD \["up"\]$/m)
  })

  it('.dockerignore keeps dependencies, builds, history and secrets out of the build context', () => {
    const ignored = readFileSync(join(ROOT, '.dockerignore'), 'utf8').split('\n')
    for (const entry of [
      'node_modules',
      'dist',
      '.git',
      '**/swarm.key',
      '**/peer.key',
      '**/api.token',
      '**/*.db',
    ])
      expect(ignored).toContain(entry)
    // What the Dockerfile copies must not be ignored.
    for (const entry of ['src', 'bin', 'package.json', 'package-lock.json'])
      expect(ignored).not.toContain(entry)
  })

  it('builds and runs the image where a Docker daemon answers', () => {
    const missing = available('docker', ['info', '--format', '{{.ServerVersion}}'])
    if (missing !== undefined) {
      console.log(`not building the image: ${missing}; the structure is checked above`)
      expect(missing).toMatch(/docker/)
      return
    }
    const tag = `hearsay-test:${process.pid}`
    try {
      const build = spawnSync('docker', ['build', '-t', tag, ROOT], { encoding: 'utf8', timeout: 900_000 })
      expect(build.status, build.stderr).toBe(0)
      const version = spawnSync('docker', ['run', '--rm', tag, '--version'], {
        encoding: 'utf8',
        timeout: 60_000,
      })
      expect(version.stdout.trim()).toBe(JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')).version)
      const user = spawnSync('docker', ['run', '--rm', '--entrypoint', 'id', tag, '-u'], { encoding: 'utf8' })
      expect(user.stdout.trim()).not.toBe('0')
    } finally {
      spawnSync('docker', ['rmi', '-f', tag], { timeout: 60_000 })
    }
  }, 1_000_000)
})

describe('systemd unit', () => {
  const unit = parseUnit(unitText)
  const service = unit.get('Service')!

  it('is hardened, owns its state directory and restarts on failure', () => {
    expect([...unit.keys()]).toEqual(['Unit', 'Service', 'Install'])
    const one = (key: string) => service.get(key)?.at(-1)
    expect(one('ExecStart')).toMatch(/\/hearsay up$/)
    expect(one('DynamicUser')).toBe('yes')
    expect(one('StateDirectory')).toBe('hearsay')
    expect(one('StateDirectoryMode')).toBe('0700')
    expect(service.get('Environment')).toContain('HEARSAY_HOME=%S/hearsay')
    expect(one('ProtectSystem')).toBe('strict')
    expect(one('NoNewPrivileges')).toBe('yes')
    expect(one('Restart')).toBe('on-failure')
    expect(one('KillSignal')).toBe('SIGTERM')
    expect(one('CapabilityBoundingSet')).toBe('')
    expect(service.has('MemoryDenyWriteExecute')).toBe(false)
    expect(unit.get('Install')?.get('WantedBy')).toEqual(['multi-user.target'])
  })

  it('passes systemd-analyze verify where systemd is installed', () => {
    const missing = available('systemd-analyze', ['--version'])
    if (missing !== undefined) {
      console.log(`not verifying with systemd-analyze: ${missing}; the unit is parsed above`)
      expect(missing).toMatch(/systemd-analyze/)
      return
    }
    // verify insists that ExecStart exists: point it at this checkout's launcher.
    const dir = mkdtempSync(join(tmpdir(), 'hearsay-unit-'))
    try {
      const path = join(dir, 'hearsay.service')
      writeFileSync(path, unitText.replace('/usr/local/bin/hearsay', join(ROOT, 'bin', 'hearsay.cjs')))
      const verify = spawnSync('systemd-analyze', ['verify', path], { encoding: 'utf8', timeout: 30_000 })
      expect(verify.status).toBe(0)
      // Unknown or misspelt keys are only warnings: any output is a finding.
      expect(verify.stderr.trim()).toBe('')
      const security = spawnSync('systemd-analyze', ['security', '--offline=yes', path], {
        encoding: 'utf8',
        timeout: 30_000,
      })
      const exposure = /Overall exposure level for hearsay\.service: ([\d.]+)/.exec(security.stdout)
      if (exposure !== null) expect(Number(exposure[1])).toBeLessThanOrEqual(4)
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})

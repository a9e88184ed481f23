/**
 * How `hearsay up` starts from a build: the daemon bundle, its compiled code cached between starts in
 * the user's cache directory (owner-only), and the API answering everything once ready.
 */
import { existsSync, readdirSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { compileCacheDir } from '../src/cli/up.ts'
import { removeHomes, tempHome } from './helpers/daemon.ts'
import { launchUp } from './helpers/launcher.ts'

afterAll(() => removeHomes())

describe('compileCacheDir', () => {
  it('follows the platform cache directory, and steps aside for Node’s own settings', () => {
    expect(compileCacheDir({ HOME: '/home/ann' }, 'linux')).toBe('/home/ann/.cache/hearsay/compile-cache')
    expect(compileCacheDir({ HOME: '/home/ann', XDG_CACHE_HOME: '/var/cache/ann' }, 'linux')).toBe(
      '/var/cache/ann/hearsay/compile-cache',
    )
    // A relative XDG_CACHE_HOME is invalid (XDG spec): ignored.
    expect(compileCacheDir({ HOME: '/home/ann', XDG_CACHE_HOME: 'cache' }, 'linux')).toBe(
      '/home/ann/.cache/hearsay/compile-cache',
    )
    expect(compileCacheDir({ HOME: '/Users/ann' }, 'darwin')).toBe(
      '/Users/ann/Library/Caches/hearsay/compile-cache',
    )
    expect(compileCacheDir({ LOCALAPPDATA: 'C:\\Users\\ann\\AppData\\Local' }, 'win32')).toContain(
      'compile-cache',
    )
    expect(compileCacheDir({}, 'linux')).toBeUndefined()
    expect(compileCacheDir({ HOME: '/home/ann', NODE_COMPILE_CACHE: '/tmp/cc' }, 'linux')).toBeUndefined()
    expect(compileCacheDir({ HOME: '/home/ann', NODE_DISABLE_COMPILE_CACHE: '1' }, 'linux')).toBeUndefined()
  })
})

/** `hearsay up` through the launcher until ready; checks the API, then SIGTERM; resolves with its exit. */
async function upOnce(home: string, cache: string): Promise<number | null> {
  const { child, ready, exited } = await launchUp(
    process.execPath,
    ['--open', '--listen', '/ip4/127.0.0.1/tcp/0', '--no-mdns'],
    { HEARSAY_HOME: home, XDG_CACHE_HOME: cache },
  )
  try {
    const { url } = ready
    expect((await fetch(`${url}/healthz`)).status).toBe(200)
    // Built on first request rather than at start: still the whole document.
    const openapi = (await (await fetch(`${url}/v1/openapi.json`)).json()) as { paths: object }
    expect(Object.keys(openapi.paths)).toContain('/v1/ns/{ns}/kv/{key}')
    const put = await fetch(`${url}/v1/ns/default/kv/greeting`, { method: 'PUT', body: '"hello"' })
    expect(put.status).toBe(200)
    expect(await (await fetch(`${url}/v1/ns/default/kv/greeting`)).text()).toBe('"hello"')
    child.kill('SIGTERM')
    return await exited
  } finally {
    if (child.exitCode === null) child.kill('SIGKILL')
  }
}

describe('hearsay up from the build', () => {
  it('keeps the compiled bundle in an owner-only cache that later starts reuse', async () => {
    const home = tempHome()
    const cache = join(tempHome('hearsay-cache-'), 'xdg')
    expect(await upOnce(home, cache)).toBe(0)
    const dir = join(cache, 'hearsay', 'compile-cache')
    expect(existsSync(dir)).toBe(true)
    if (process.platform !== 'win32') expect(statSync(dir).mode & 0o777).toBe(0o700)
    const entries = readdirSync(dir, { recursive: true, withFileTypes: true }).filter((e) => e.isFile())
    expect(entries.length).toBeGreaterThan(0)
    // Again, with the cache in place and the data written above.
    expect(await upOnce(home, cache)).toBe(0)
  })
})

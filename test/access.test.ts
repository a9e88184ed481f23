/** The API's access policy as a pure function: Host, Origin, form-like writes and the bearer token. */
import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import {
  type AccessPolicy,
  type AccessRequest,
  accessProblem,
  apiAccessPolicy,
  hostName,
  isLoopbackBind,
  loadOrCreateApiToken,
} from '../src/daemon/access.ts'

const loopback: AccessPolicy = { checkHost: true, allowedHosts: ['hearsay.test'], token: undefined }
const exposed: AccessPolicy = { checkHost: false, allowedHosts: [], token: 'secret-token-0123456789' }

function check(
  policy: AccessPolicy,
  headers: Record<string, string>,
  method = 'GET',
  template = '/v1/ns/:ns/kv/:key',
): string | undefined {
  const request: AccessRequest = { method, template, headers }
  return accessProblem(request, policy)?.code
}

describe('accessProblem', () => {
  it('on a loopback bind serves loopback and allowed Host names only', () => {
    for (const host of [
      'localhost',
      'localhost:7600',
      'LOCALHOST.:7600',
      '127.0.0.1:7600',
      '127.255.0.9',
      '[::1]:7600',
      '[::1]',
      'hearsay.test:80',
    ]) {
      expect(check(loopback, { host }), host).toBeUndefined()
    }
    for (const host of [
      'evil.example:7600',
      '127.0.0.1.evil.example',
      '127.0.0.256',
      'localhost:x',
      '[::1]x',
      '[::2]:7600',
      '0.0.0.0:7600',
      'sub.localhost',
    ]) {
      expect(check(loopback, { host }), host).toBe('FORBIDDEN_HOST')
    }
    // HTTP/1.0 without Host: browsers always send one, so nothing to rebind.
    expect(check(loopback, {})).toBeUndefined()
  })

  it('refuses other origins on writes and on reads of watch and status, not on other reads', () => {
    const host = 'localhost:7600'
    const json = { 'content-type': 'application/json' }
    expect(check(loopback, { host, origin: 'http://evil.example', ...json }, 'PUT')).toBe('FORBIDDEN_ORIGIN')
    expect(check(loopback, { host, origin: 'null', ...json }, 'DELETE')).toBe('FORBIDDEN_ORIGIN')
    expect(check(loopback, { host, 'sec-fetch-site': 'cross-site', ...json }, 'POST')).toBe(
      'FORBIDDEN_ORIGIN',
    )
    expect(check(loopback, { host, origin: 'http://localhost:7600', ...json }, 'PUT')).toBeUndefined()
    expect(check(loopback, { host, ...json }, 'PUT')).toBeUndefined()
    expect(check(loopback, { host, 'sec-fetch-site': 'same-origin', ...json }, 'PUT')).toBeUndefined()
    for (const template of ['/v1/ns/:ns/watch', '/v1/status']) {
      expect(check(loopback, { host, origin: 'http://evil.example' }, 'GET', template)).toBe(
        'FORBIDDEN_ORIGIN',
      )
      expect(check(loopback, { host, 'sec-fetch-site': 'cross-site' }, 'GET', template)).toBe(
        'FORBIDDEN_ORIGIN',
      )
      expect(check(loopback, { host, origin: 'http://localhost:7600' }, 'GET', template)).toBeUndefined()
    }
    expect(check(loopback, { host, origin: 'http://evil.example' }, 'GET')).toBeUndefined()
  })

  it('a write with an Origin needs a Content-Type no form can send', () => {
    const own = { host: 'localhost:7600', origin: 'http://localhost:7600' }
    for (const type of [
      '',
      'text/plain',
      'text/plain;charset=utf-8',
      'application/x-www-form-urlencoded',
      'Multipart/Form-Data; boundary=x',
    ]) {
      const headers: Record<string, string> = type === '' ? own : { ...own, 'content-type': type }
      expect(check(loopback, headers, 'POST'), type).toBe('FORBIDDEN_ORIGIN')
    }
    expect(check(loopback, { ...own, 'content-type': 'application/octet-stream' }, 'PUT')).toBeUndefined()
    // Without an Origin (curl, the CLI) any Content-Type may write.
    expect(check(loopback, { host: 'localhost', 'content-type': 'text/plain' }, 'PUT')).toBeUndefined()
  })

  it('beyond loopback wants the bearer token on everything but /healthz, and ignores the Host', () => {
    expect(check(exposed, { host: 'my-box.lan' })).toBe('UNAUTHORIZED')
    expect(check(exposed, { host: 'my-box.lan', authorization: 'Bearer wrong' })).toBe('UNAUTHORIZED')
    expect(check(exposed, { host: 'my-box.lan', authorization: 'Basic c2VjcmV0' })).toBe('UNAUTHORIZED')
    expect(check(exposed, { host: 'my-box.lan', authorization: `Bearer ${exposed.token}` })).toBeUndefined()
    expect(check(exposed, { host: 'my-box.lan', authorization: `bearer  ${exposed.token}` })).toBeUndefined()
    expect(check(exposed, { host: 'my-box.lan' }, 'GET', '/healthz')).toBeUndefined()
    // The token does not make a cross-site write acceptable.
    expect(
      check(
        exposed,
        { host: 'my-box.lan', authorization: `Bearer ${exposed.token}`, origin: 'http://evil.example' },
        'PUT',
      ),
    ).toBe('FORBIDDEN_ORIGIN')
  })

  it('knows loopback binds and parses Host names', () => {
    for (const bind of ['127.0.0.1', '::1', 'localhost', '[::1]', '127.0.0.2'])
      expect(isLoopbackBind(bind), bind).toBe(true)
    for (const bind of ['0.0.0.0', '::', '192.168.1.7', 'my-box.lan'])
      expect(isLoopbackBind(bind), bind).toBe(false)
    expect(hostName('[::1]:7600')).toBe('::1')
    expect(hostName('example.com.')).toBe('example.com')
    expect(hostName('a:b:c')).toBeUndefined()
  })
})

describe('the API token file', () => {
  it('is created once with mode 0600, kept across starts, and narrowed if others can read it', () => {
    const dir = mkdtempSync(join(tmpdir(), 'hearsay-token-'))
    try {
      const path = join(dir, 'api.token')
      const token = loadOrCreateApiToken(path)
      expect(token).toMatch(/^[A-Za-z0-9_-]{43}$/)
      expect(statSync(path).mode & 0o777).toBe(0o600)
      expect(loadOrCreateApiToken(path)).toBe(token)
      writeFileSync(path, `${token}\n`, { mode: 0o644 })
      chmodSync(path, 0o644)
      expect(loadOrCreateApiToken(path)).toBe(token)
      expect(statSync(path).mode & 0o777).toBe(0o600)
      expect(readFileSync(path, 'utf8').trim()).toBe(token)

      const policy = apiAccessPolicy({ apiHost: '0.0.0.0', apiAllowedHosts: [], dataDir: dir })
      expect(policy).toEqual({ checkHost: false, allowedHosts: [], token })
      const local = apiAccessPolicy({ apiHost: '127.0.0.1', apiAllowedHosts: ['My.Host:7600'], dataDir: dir })
      expect(local).toEqual({ checkHost: true, allowedHosts: ['my.host'], token: undefined })
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})

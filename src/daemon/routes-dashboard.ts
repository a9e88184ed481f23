import { createHash } from 'node:crypto'
import { existsSync, readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { ApiError } from './errors.ts'
import { header } from './http.ts'
import type { Route, RouteContext } from './route.ts'

/**
 * The web dashboard (docs/dashboard.md): a static page at `/` and its assets under `/ui/`, served on
 * the API port. The page holds no data: it reads everything through the API from the browser, so it
 * is under the API's access rules (Host check always; the bearer token, when one is required, is
 * given to the page in the URL fragment and sent by its scripts, see access.ts).
 *
 * Files are read once, at first request, from src/daemon/dashboard (shipped in the package beside
 * dist/, which the TypeScript build does not copy to), and the two libraries from their packages.
 */

interface Asset {
  type: string
  body: Uint8Array
  etag: string
}

const TYPES: Record<string, string> = {
  html: 'text/html; charset=utf-8',
  js: 'text/javascript; charset=utf-8',
  mjs: 'text/javascript; charset=utf-8',
  css: 'text/css; charset=utf-8',
  svg: 'image/svg+xml',
}

/** Page files by their URL path; nothing outside this list is ever read from disk. */
const PAGE_FILES: Record<string, string> = {
  '/': 'index.html',
  '/ui/app.js': 'app.js',
  '/ui/api.js': 'api.js',
  '/ui/model.js': 'model.js',
  '/ui/style.css': 'style.css',
}

/** The libraries by URL path: module specifier and the file the page imports. */
const LIBRARY_FILES: Record<string, string> = {
  '/ui/lib/preact.mjs': 'preact',
  '/ui/lib/hooks.mjs': 'preact/hooks',
  '/ui/lib/htm.mjs': 'htm',
}

/** The dashboard's directory, from src/ (running the sources) or from dist/ (the built package). */
export function dashboardDirectory(): string {
  const beside = fileURLToPath(new URL('./dashboard/', import.meta.url))
  if (existsSync(`${beside}index.html`)) return beside
  return fileURLToPath(new URL('../../src/daemon/dashboard/', import.meta.url))
}

let assets: Map<string, Asset> | undefined
let pagePolicy = ''

function loadAssets(): Map<string, Asset> {
  const directory = dashboardDirectory()
  const loaded = new Map<string, Asset>()
  const add = (path: string, file: string) => {
    const body = readFileSync(file)
    const extension = file.slice(file.lastIndexOf('.') + 1)
    const etag = `"${createHash('sha256').update(body).digest('base64url').slice(0, 22)}"`
    loaded.set(path, { type: TYPES[extension] ?? 'application/octet-stream', body, etag })
  }
  for (const [path, name] of Object.entries(PAGE_FILES)) add(path, directory + name)
  for (const [path, specifier] of Object.entries(LIBRARY_FILES))
    add(path, fileURLToPath(import.meta.resolve(specifier)))
  pagePolicy = contentSecurityPolicy(new TextDecoder().decode(loaded.get('/')!.body))
  return loaded
}

/**
 * Scripts from this origin only, plus the page's one inline script (its import map) by hash; no
 * framing, no form posts, connections to this origin only.
 */
export function contentSecurityPolicy(html: string): string {
  const hashes = [...html.matchAll(/<script type="importmap">([\s\S]*?)<\/script>/g)].map(
    (match) => `'sha256-${createHash('sha256').update(match[1]).digest('base64')}'`,
  )
  return [
    "default-src 'none'",
    `script-src 'self' ${hashes.join(' ')}`.trim(),
    "style-src 'self'",
    "img-src 'self' data:",
    "connect-src 'self'",
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
  ].join('; ')
}

/** The route of a path under `/` or `/ui/`, or undefined (→ 404) for anything else. */
export function matchDashboard(path: string): { route: Route; params: RouteContext['params'] } | undefined {
  if (path === '/' || path === '/index.html') return { route: dashboardPage, params: {} }
  if (path.startsWith('/ui/')) return { route: dashboardAssets, params: {} }
  return undefined
}

function serve(context: RouteContext) {
  assets ??= loadAssets()
  const url = context.request.url
  const questionMark = url.indexOf('?')
  let path = questionMark < 0 ? url : url.slice(0, questionMark)
  if (path === '/index.html') path = '/'
  const asset = assets.get(path)
  if (asset === undefined)
    throw new ApiError(404, 'NOT_FOUND', `no dashboard file ${path.slice(0, 200)} (the page is at /)`)
  const headers: Record<string, string> = {
    'content-type': asset.type,
    etag: asset.etag,
    // Revalidated on every load, so a daemon upgrade never leaves a stale page half-loaded.
    'cache-control': 'no-cache',
    'x-content-type-options': 'nosniff',
    'referrer-policy': 'no-referrer',
  }
  if (path === '/') {
    headers['content-security-policy'] = pagePolicy
    headers['x-frame-options'] = 'DENY'
  }
  if (header(context.request, 'if-none-match') === asset.etag) return { status: 304, headers }
  return { status: 200, headers, body: asset.body }
}

export const dashboardPage: Route = { template: '/', methods: { GET: serve } }
export const dashboardAssets: Route = { template: '/ui/:file', methods: { GET: serve } }

#!/usr/bin/env node
'use strict'
// The installed `hearsay` command. CommonJS without newer syntax on purpose (no ?., ??, top-level
// await), so that any Node still in use parses it: an old Node then gets the pinned Node 22 this
// package depends on, or one clear line, instead of a stack trace about node:sqlite.
const path = require('node:path')
const fs = require('node:fs')
const childProcess = require('node:child_process')
const url = require('node:url')

// node:sqlite without a flag (22.13.0) and StatementSync#setReturnArrays (22.16.0).
const MINIMUM = [22, 16, 0]
const REEXEC_ENV = 'HEARSAY_LAUNCHER_REEXEC'
const packageRoot = path.resolve(__dirname, '..')

function isRecentEnough(version) {
  const parts = String(version).split('.').map(Number)
  for (let i = 0; i < MINIMUM.length; i++) {
    if ((parts[i] || 0) !== MINIMUM[i]) return (parts[i] || 0) > MINIMUM[i]
  }
  return true
}

/** The `node` npm package's binary: in this package's node_modules, or wherever Node would find it. */
function pinnedNode() {
  const candidates = [path.join(packageRoot, 'node_modules', 'node', 'bin', 'node')]
  try {
    const manifest = require.resolve('node/package.json', { paths: [packageRoot] })
    candidates.push(path.join(path.dirname(manifest), 'bin', 'node'))
  } catch {
    // Not installed: only the first candidate (if it exists) is left.
  }
  for (const candidate of candidates) {
    try {
      fs.accessSync(candidate, fs.constants.X_OK)
      if (fs.realpathSync(candidate) !== fs.realpathSync(process.execPath)) return candidate
    } catch {
      // Missing or not executable: try the next one.
    }
  }
  return undefined
}

function tooOld() {
  process.stderr.write(
    `hearsay: needs Node.js ${MINIMUM.join('.')} or newer (this is ${process.version}); install Node 22 LTS from https://nodejs.org or with a version manager ("nvm install 22")\n`,
  )
  process.exit(1)
}

function reexec(node) {
  const env = Object.assign({}, process.env, { [REEXEC_ENV]: '1' })
  const child = childProcess.spawn(node, [__filename].concat(process.argv.slice(2)), {
    stdio: 'inherit',
    env,
  })
  // Ctrl-C reaches the whole process group, the child included; a signal sent to this pid alone
  // (systemd, kill) is passed on, so `hearsay up` still stops gracefully.
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
    process.on(signal, () => {
      if (signal !== 'SIGINT') child.kill(signal)
    })
  }
  child.on('error', (error) => {
    process.stderr.write(`hearsay: cannot start ${node}: ${error.message}\n`)
    process.exit(1)
  })
  child.on('exit', (code, signal) => {
    if (signal) process.kill(process.pid, signal)
    process.exit(code === null ? 1 : code)
  })
}

/** node:sqlite warns that it is experimental when loaded: expected, and noise in a command's output. */
function quietSqliteWarning() {
  const listeners = process.listeners('warning')
  process.removeAllListeners('warning')
  process.on('warning', (warning) => {
    if (warning.name === 'ExperimentalWarning' && /SQLite/i.test(warning.message)) return
    if (listeners.length === 0) process.stderr.write(`${warning.stack || warning}\n`)
    for (const listener of listeners) listener(warning)
  })
}

function run() {
  if (!isRecentEnough(process.versions.node)) {
    const node = process.env[REEXEC_ENV] ? undefined : pinnedNode()
    if (node === undefined) tooOld()
    else reexec(node)
    return
  }
  quietSqliteWarning()
  const main = url.pathToFileURL(path.join(packageRoot, 'dist', 'cli', 'main.js')).href
  import(main).then(
    (cli) => cli.runAsProgram(),
    (error) => {
      process.stderr.write(
        `hearsay: cannot load ${main} (${error.message}); run "npm run build" in ${packageRoot}\n`,
      )
      process.exit(1)
    },
  )
}

run()

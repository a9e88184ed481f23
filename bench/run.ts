/**
 * `npm run bench [-- suite... [--option value...]]`: runs the named benchmark suites (foundation,
 * mesh, daemon; all by default; e2e, receive and copies only when named) and prints markdown tables with absolute figures
 * and ratios against a baseline run in the same process or run. Arguments from the first one starting
 * with `-` are the suites' options (e.g. `npm run bench -- e2e --quick`).
 */
import { main as daemon } from './daemon.ts'
import { main as e2e } from './e2e.ts'
import { main as foundation } from './foundation.ts'
import { main as copies } from './gossip-copies.ts'
import { main as mesh } from './mesh.ts'
import { main as receive } from './receive.ts'

const suites: Record<string, (options: string[]) => Promise<void>> = {
  foundation,
  mesh,
  daemon,
  e2e,
  receive,
  copies,
}
/** The default run: the e2e suite starts up to 16 daemons per shape and takes long; name it to run it. */
const DEFAULT_SUITES = ['foundation', 'mesh', 'daemon']

const args = process.argv.slice(2)
const firstOption = args.findIndex((arg) => arg.startsWith('-'))
const wanted = firstOption < 0 ? args : args.slice(0, firstOption)
const options = firstOption < 0 ? [] : args.slice(firstOption)
const names = wanted.length > 0 ? wanted : DEFAULT_SUITES
for (const name of names) {
  const suite = suites[name]
  if (suite === undefined) {
    console.error(`unknown suite '${name}'; known: ${Object.keys(suites).join(', ')}`)
    process.exit(2)
  }
  await suite(options)
}

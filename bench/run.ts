/**
 * `npm run bench [-- suite...]`: runs the named benchmark suites (foundation, mesh, daemon; all by
 * default) and prints markdown tables with absolute figures and ratios against a baseline run in the
 * same process or run.
 */
import { main as daemon } from './daemon.ts'
import { main as foundation } from './foundation.ts'
import { main as mesh } from './mesh.ts'

const suites: Record<string, () => Promise<void>> = { foundation, mesh, daemon }

const wanted = process.argv.slice(2)
const names = wanted.length > 0 ? wanted : Object.keys(suites)
for (const name of names) {
  const suite = suites[name]
  if (suite === undefined) {
    console.error(`unknown suite '${name}'; known: ${Object.keys(suites).join(', ')}`)
    process.exit(2)
  }
  await suite()
}

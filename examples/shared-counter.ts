/**
 * A shared counter across peers: three edge sites each count their own visitors into one counter,
 * at the same time, with no coordinator. hearsay counters are PN-counters (each peer keeps its own
 * running totals; the value is their sum), so concurrent increments never overwrite each other and
 * every peer ends with the same total.
 *
 *   npm run example:counter
 *
 * The API calls an application makes:
 *   POST /v1/ns/{ns}/counter/{key}   {"by": n}      → {"value": ...}
 *   GET  /v1/ns/{ns}/counter/{key}                  → {"value": ...}
 */
import { call, elapsed, eventually, runExample } from './lib/local-mesh.ts'

const VISITS_PER_SITE = 25
const COUNTER = '/v1/ns/visits/counter/page-views'

await runExample(['north', 'south', 'east'], async (mesh) => {
  console.log(`Three sites each count ${VISITS_PER_SITE} visitors into one counter, all at once.`)
  const started = performance.now()

  // Each site increments its local peer: fast, local, durable, works offline.
  await Promise.all(
    mesh.peers.map(async (site) => {
      for (let visitor = 0; visitor < VISITS_PER_SITE; visitor++) await call(site, 'POST', COUNTER, { by: 1 })
    }),
  )
  for (const site of mesh.peers) {
    const { value } = await call(site, 'GET', COUNTER)
    console.log(`  ${site.name.padEnd(5)} wrote its ${VISITS_PER_SITE}; sees ${value} so far`)
  }

  // A refund at one site: counters go down as well as up.
  await call(mesh.peers[0], 'POST', COUNTER, { by: -5 })
  const expected = VISITS_PER_SITE * mesh.peers.length - 5
  console.log(`  ${mesh.peers[0].name} subtracts 5 (refunds); expected total ${expected}`)

  // Convergence: every peer ends with the same total.
  for (const site of mesh.peers) {
    const total = await eventually(`total on ${site.name}`, async () => {
      const { value } = await call(site, 'GET', COUNTER)
      return value === expected ? value : undefined
    })
    console.log(`✓ ${site.name.padEnd(5)} counts ${total} (${elapsed(started)})`)
  }
})

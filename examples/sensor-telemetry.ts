/**
 * Sensor telemetry at the edge: devices write their latest reading to the peer next to them (one key
 * per device, overwritten on every reading), and a dashboard on any peer reads the latest of all
 * devices with one listing. Writes are local, so a device keeps recording through a network outage;
 * the mesh brings every peer up to date when it can.
 *
 *   npm run example:telemetry
 *
 * The API calls an application makes:
 *   PUT /v1/ns/telemetry/kv/sensors/{device}   Content-Type: application/json   {"celsius": ...}
 *   GET /v1/ns/telemetry/kv?prefix=sensors/    → {"items": [{"key", "value", "writtenAt"}, ...]}
 */
import { call, eventually, type Peer, runExample } from './lib/local-mesh.ts'

const READINGS_PER_DEVICE = 10

interface Reading {
  device: string
  seq: number
  celsius: number
  humidity: number
}

interface Listing {
  items: Array<{ key: string; value: Reading; writtenAt: string }>
}

const devices: Array<{ device: string; site: number }> = [
  { device: 'greenhouse-1', site: 0 },
  { device: 'greenhouse-2', site: 0 },
  { device: 'cold-store', site: 1 },
  { device: 'loading-bay', site: 1 },
  { device: 'office', site: 2 },
  { device: 'server-room', site: 2 },
]

function reading(device: string, seq: number): Reading {
  // Deterministic, plausible numbers: a base per device plus a little drift.
  const base = device.length * 2.5
  return {
    device,
    seq,
    celsius: Math.round((base + Math.sin(seq) * 2) * 10) / 10,
    humidity: 40 + ((seq * 7 + device.length) % 20),
  }
}

async function dashboard(peer: Peer): Promise<Listing> {
  return call(peer, 'GET', '/v1/ns/telemetry/kv?prefix=sensors/')
}

await runExample(['site-a', 'site-b', 'site-c'], async (mesh) => {
  console.log(
    `${devices.length} devices on 3 sites each send ${READINGS_PER_DEVICE} readings to their local peer.`,
  )
  await Promise.all(
    devices.map(async ({ device, site }) => {
      for (let seq = 1; seq <= READINGS_PER_DEVICE; seq++) {
        await call(mesh.peers[site], 'PUT', `/v1/ns/telemetry/kv/sensors/${device}`, reading(device, seq))
      }
    }),
  )

  // Any peer answers "latest of every device": wait until each has every device's last reading.
  for (const peer of mesh.peers) {
    const listing = await eventually(`latest readings on ${peer.name}`, async () => {
      const current = await dashboard(peer)
      const complete =
        current.items.length === devices.length &&
        current.items.every((item) => item.value.seq === READINGS_PER_DEVICE)
      return complete ? current : undefined
    })
    console.log(`✓ dashboard on ${peer.name}: latest reading of all ${listing.items.length} devices`)
  }

  const listing = await dashboard(mesh.peers[2])
  console.log('\n  device        seq  °C     humidity  written at')
  for (const { value, writtenAt } of listing.items) {
    console.log(
      `  ${value.device.padEnd(12)}  ${String(value.seq).padStart(3)}  ${value.celsius.toFixed(1).padStart(5)}  ${String(value.humidity).padStart(6)} %  ${writtenAt}`,
    )
  }
})

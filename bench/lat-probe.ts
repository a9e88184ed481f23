/** Quick look at one latency run: node bench/lat-probe.ts <mesh|hub> <peers> <seconds> */
import { measureLatency, startCluster } from './mesh.ts'

const shape = (process.argv[2] ?? 'mesh') as 'mesh' | 'hub'
const count = Number(process.argv[3] ?? 8)
const seconds = Number(process.argv[4] ?? 5)
const cluster = await startCluster(count, shape)
try {
  console.log(shape, count, JSON.stringify(await measureLatency(cluster, 200, seconds * 1000, 'probe/')))
} finally {
  await cluster.stop()
}

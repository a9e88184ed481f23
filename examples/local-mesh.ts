/**
 * Starts a 3-peer mesh on this machine and keeps it running until Ctrl-C, printing what you need to
 * talk to each peer with curl or the CLI. Data dirs live under the system temp dir and are removed
 * on exit.
 *
 *   npm run example:mesh              # until Ctrl-C
 *   npm run example:mesh -- --check   # start, check the peers are connected, stop (CI)
 */
import { call, eventually, explain, type LocalMesh, startLocalMesh } from './lib/local-mesh.ts'

const check = process.argv.includes('--check')
let mesh: LocalMesh | undefined
let code = 0
try {
  mesh = await startLocalMesh(['peer-1', 'peer-2', 'peer-3'])
  console.log('A local hearsay mesh of three peers:\n')
  for (const peer of mesh.peers) {
    console.log(`  ${peer.name}  API ${peer.url}`)
    console.log(`          id  ${peer.peerId}`)
    console.log(`          p2p ${peer.addresses[0] ?? '(no mesh)'}`)
    console.log(`          CLI HEARSAY_HOME=${peer.home} npm run -s hearsay -- status`)
  }
  const [one, two] = mesh.peers
  console.log(`
Try:
  curl -X PUT ${one.url}/v1/ns/default/kv/hello -H 'content-type: application/json' -d '"world"'
  curl ${two.url}/v1/ns/default/kv/hello
  curl -N ${two.url}/v1/ns/default/watch
`)
  if (check) {
    for (const peer of mesh.peers) {
      await eventually(`${peer.name} connected`, async () => {
        const status = await call(peer, 'GET', '/v1/status')
        return status.peers.connected >= 1 ? true : undefined
      })
    }
    console.log('✓ every peer is connected to the mesh')
  } else {
    console.log('Press Ctrl-C to stop the mesh.')
    await new Promise(() => {})
  }
} catch (error) {
  console.error(explain(error, mesh))
  code = 1
} finally {
  await mesh?.stop()
}
process.exit(code)

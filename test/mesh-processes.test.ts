import { afterAll, describe, expect, it } from 'vitest'
import { PeerProcess } from '../bench/processes.ts'
import { expectCleanLog } from './helpers/log-check.ts'
import { eventually } from './helpers/mesh-peers.ts'

const processes: PeerProcess[] = []
afterAll(async () => {
  await Promise.allSettled(processes.map((p) => p.stop()))
})

describe('peers as separate OS processes', () => {
  it('three processes converge on writes made in each', async () => {
    const first = await PeerProcess.start()
    processes.push(first)
    for (let i = 0; i < 2; i++) processes.push(await PeerProcess.start([first.address]))
    await Promise.all(
      processes.map((p, i) => p.request({ cmd: 'put', key: `from/${i}`, value: `peer ${i}` })),
    )
    await Promise.all(processes.map((p, i) => p.request({ cmd: 'put', key: 'shared', value: `peer ${i}` })))
    await eventually(
      async () => {
        const replies = await Promise.all(processes.map((p) => p.request({ cmd: 'digest' })))
        return replies.every((r) => r.digest === replies[0].digest && Number(r.entries) >= 4)
      },
      { message: 'equal digests and at least 4 entries on every process' },
    )
    for (const p of processes) {
      for (let i = 0; i < 3; i++)
        expect((await p.request({ cmd: 'get', key: `from/${i}` })).value).toBe(`peer ${i}`)
    }
    for (const [i, p] of processes.entries()) expectCleanLog(p.stderr, `peer process ${i}`)
  }, 90_000)
})

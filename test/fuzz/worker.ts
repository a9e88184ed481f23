/** Runs the fuzz loop off the main thread, so `main.ts` can stop a run that hangs and name its input. */
import { parentPort, workerData } from 'node:worker_threads'
import { type FuzzOptions, runFuzz } from './harness.ts'

const { options, current } = workerData as {
  options: Omit<FuzzOptions, 'progress' | 'current'>
  current: Int32Array
}
const report = await runFuzz({
  ...options,
  current,
  progress: (partial) =>
    parentPort?.postMessage({ type: 'progress', inputs: partial.inputs, elapsedMs: partial.elapsedMs }),
})
parentPort?.postMessage({ type: 'done', report })

/**
 * `npm run fuzz [-- --inputs N] [--seconds S] [--seed N] [--target NAME ...] [--replay I]`
 *
 * Feeds generated and mutated inputs to every decoder and pure entry point (see targets.ts).
 * Default: 1,000,000 inputs or 600 s, whichever ends first, seed from the clock (printed). The loop
 * runs on a worker thread; if one input runs for `--hang-seconds` (default 30) the worker is
 * stopped and the input reported. `--replay I` runs input I of the seed alone and prints it.
 * Exits 1 on any failure.
 */
import { parseArgs } from 'node:util'
import { Worker } from 'node:worker_threads'
import { buildCorpus } from './corpus.ts'
import { type FuzzReport, formatReport, inputAt, selectTargets } from './harness.ts'

const { values } = parseArgs({
  options: {
    inputs: { type: 'string', default: '1000000' },
    seconds: { type: 'string', default: '600' },
    'hang-seconds': { type: 'string', default: '30' },
    seed: { type: 'string' },
    target: { type: 'string', multiple: true },
    replay: { type: 'string' },
  },
})

function wholeNumber(name: string, text: string | undefined): number {
  const value = Number(text)
  if (!Number.isSafeInteger(value) || value < 0) {
    console.error(`--${name} must be a whole number, got ${text}`)
    process.exit(2)
  }
  return value
}

const seed = values.seed === undefined ? Date.now() % 0x1_0000_0000 : wholeNumber('seed', values.seed)
const targets = selectTargets(values.target)
const targetFlags = (values.target ?? []).map((name) => ` --target ${name}`).join('')

if (values.replay !== undefined) {
  const index = wholeNumber('replay', values.replay)
  const corpus = await buildCorpus(seed)
  const { target, input } = inputAt(seed, index, targets, corpus)
  console.log(`seed ${seed} input ${index}: ${target.name} ${Buffer.from(input).toString('hex')}`)
  try {
    console.log(`accepted: ${await target.run(input, corpus)}`)
  } catch (error) {
    console.log(`${target.typed(error) ? 'refused (typed)' : 'CRASH'}:`, error)
    process.exit(target.typed(error) ? 0 : 1)
  }
} else {
  console.log(`fuzz seed ${seed} (replay an input with --seed ${seed}${targetFlags} --replay INDEX)`)
  const hangMs = wholeNumber('hang-seconds', values['hang-seconds']) * 1_000
  const current = new Int32Array(new SharedArrayBuffer(4))
  const worker = new Worker(new URL('./worker.ts', import.meta.url), {
    workerData: {
      options: {
        seed,
        inputs: wholeNumber('inputs', values.inputs),
        seconds: wholeNumber('seconds', values.seconds),
        targets: values.target,
      },
      current,
    },
  })
  let lastIndex = -1
  let lastMove = Date.now()
  const watchdog = setInterval(async () => {
    const index = Atomics.load(current, 0)
    if (index !== lastIndex) {
      lastIndex = index
      lastMove = Date.now()
      return
    }
    if (Date.now() - lastMove < hangMs) return
    clearInterval(watchdog)
    await worker.terminate()
    const corpus = await buildCorpus(seed)
    const { target, input } = inputAt(seed, index, targets, corpus)
    console.log(
      `FAILURE hang in ${target.name}: input ${index} ran for more than ${hangMs / 1_000} s ` +
        `(seed ${seed}; replay: npm run fuzz -- --seed ${seed}${targetFlags} --replay ${index})\n  input: ${Buffer.from(input).toString('hex')}`,
    )
    process.exit(1)
  }, 1_000)
  worker.on(
    'message',
    (message: { type: string; inputs?: number; elapsedMs?: number; report?: FuzzReport }) => {
      if (message.type === 'progress') {
        console.log(
          `  ${message.inputs?.toLocaleString('en')} inputs, ${((message.elapsedMs ?? 0) / 1_000).toFixed(0)} s`,
        )
        return
      }
      clearInterval(watchdog)
      const report = message.report!
      console.log(formatReport(report))
      process.exitCode = report.failures.length === 0 ? 0 : 1
      void worker.terminate()
    },
  )
  worker.on('error', (error) => {
    clearInterval(watchdog)
    console.error('the fuzz worker failed:', error)
    process.exitCode = 1
  })
}

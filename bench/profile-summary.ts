/**
 * Summarises a V8 .cpuprofile (from `node --cpu-prof`, e.g. `npm run bench -- e2e --cpu-prof <dir>`):
 * self and inclusive time per area (libp2p components, node:crypto, sqlite, hearsay's own folders, GC),
 * and the functions with the most self time.
 *
 *   npx node bench/profile-summary.ts <file.cpuprofile> [--window <fromUs>..<toUs>] [--writes <n>] [--top 25]
 *
 * --window keeps the samples taken in that span of the profile's clock (CLOCK_MONOTONIC µs; the e2e
 * benchmark prints the measured phase's window); --writes divides the times by the writes of that
 * span, to read ms per write.
 */
import { readFileSync } from 'node:fs'
import { parseArgs } from 'node:util'

interface CallFrame {
  functionName: string
  url: string
  lineNumber: number
}

interface ProfileNode {
  id: number
  callFrame: CallFrame
  children?: number[]
}

interface CpuProfile {
  nodes: ProfileNode[]
  startTime: number
  endTime: number
  samples: number[]
  timeDeltas: number[]
}

/** The package or area a frame belongs to; '' for native frames without a script (they take their caller's). */
export function areaOf(frame: CallFrame): string {
  const { url, functionName } = frame
  // WebAssembly (noise's chacha20-poly1305) counts for the JavaScript that called it.
  if (url.startsWith('wasm://')) return ''
  if (url === '') {
    if (functionName === '(garbage collector)') return 'GC'
    if (functionName === '(idle)') return 'idle'
    if (functionName === '(program)') return 'program (V8/native, unattributed)'
    if (functionName === '(root)') return 'root'
    return ''
  }
  const modules = url.lastIndexOf('node_modules/')
  if (modules !== -1) {
    const rest = url.slice(modules + 'node_modules/'.length).split('/')
    const name = rest[0].startsWith('@') ? `${rest[0]}/${rest[1]}` : rest[0]
    if (name === '@chainsafe/libp2p-noise' || name.includes('chacha') || name === '@chainsafe/as-sha256')
      return 'noise'
    if (name === '@chainsafe/libp2p-yamux') return 'yamux'
    if (name === '@libp2p/gossipsub') return 'gossipsub'
    if (name === 'protons-runtime' || name.includes('protobuf')) return 'protobuf'
    if (name.startsWith('@noble/')) return 'noble (js crypto)'
    if (name === '@libp2p/pnet' || name.includes('xsalsa20')) return 'pnet'
    if (name.startsWith('@libp2p/') || name === 'libp2p') return 'libp2p (other)'
    if (name.startsWith('it-') || name === 'uint8arraylist' || name === 'uint8arrays')
      return 'streams (it-*, uint8arraylist)'
    return `npm: ${name}`
  }
  if (url.startsWith('node:')) {
    if (url.includes('crypto')) return 'node:crypto'
    if (url.includes('sqlite')) return 'sqlite'
    if (url.includes('/http') || url === 'node:http' || url.includes('_http')) return 'node:http'
    if (url.includes('net') || url.includes('stream') || url.includes('buffer')) return 'node:net/streams'
    if (url.includes('timers')) return 'node:timers'
    if (url.includes('task_queues') || url.includes('promise')) return 'node:microtasks'
    return 'node (other)'
  }
  const src = /\/src\/([^/]+)\//.exec(url)
  if (src !== null) return `hearsay src/${src[1]}`
  if (url.includes('/bench/')) return 'bench'
  return url
}

function parseWindow(text: string | undefined): [number, number] | undefined {
  if (text === undefined) return undefined
  const match = /^(\d+)\.\.(\d+)$/.exec(text)
  if (match === null) throw new Error(`--window must be <fromUs>..<toUs>, not '${text}'`)
  return [Number(match[1]), Number(match[2])]
}

export interface Summary {
  totalMs: number
  /** ms of self time per area, and ms of samples with the area anywhere on the stack. */
  areas: Array<{ area: string; selfMs: number; inclusiveMs: number }>
  functions: Array<{ name: string; area: string; selfMs: number }>
}

export function summarise(profile: CpuProfile, window?: [number, number]): Summary {
  const byId = new Map<number, ProfileNode>()
  const parent = new Map<number, number>()
  for (const node of profile.nodes) {
    byId.set(node.id, node)
    for (const child of node.children ?? []) parent.set(child, node.id)
  }
  // The area of a node: its own, or for a native frame its caller's (node:sqlite calls, crypto natives).
  const areaCache = new Map<number, string>()
  const area = (id: number): string => {
    const cached = areaCache.get(id)
    if (cached !== undefined) return cached
    const node = byId.get(id)!
    let result = areaOf(node.callFrame)
    if (result === '') {
      const up = parent.get(id)
      const callerArea = up === undefined ? 'native' : area(up)
      // A native function called from hearsay's store is SQLite itself.
      result =
        callerArea === 'hearsay src/store' && node.callFrame.functionName !== '' ? 'sqlite' : callerArea
    }
    areaCache.set(id, result)
    return result
  }
  const self = new Map<string, number>()
  const inclusive = new Map<string, number>()
  const functions = new Map<string, { area: string; us: number }>()
  let time = profile.startTime
  let totalUs = 0
  for (let i = 0; i < profile.samples.length; i++) {
    time += profile.timeDeltas[i]
    // A sample's weight is the time to the next sample.
    const weight = profile.timeDeltas[i + 1] ?? 0
    if (window !== undefined && (time < window[0] || time > window[1])) continue
    const id = profile.samples[i]
    const node = byId.get(id)!
    const own = area(id)
    if (own === 'idle') continue
    totalUs += weight
    self.set(own, (self.get(own) ?? 0) + weight)
    const name = `${node.callFrame.functionName || '(anonymous)'} ${shortUrl(node.callFrame)}`
    const entry = functions.get(name) ?? { area: own, us: 0 }
    entry.us += weight
    functions.set(name, entry)
    const seen = new Set<string>()
    for (let at: number | undefined = id; at !== undefined; at = parent.get(at)) {
      const a = area(at)
      if (seen.has(a)) continue
      seen.add(a)
      inclusive.set(a, (inclusive.get(a) ?? 0) + weight)
    }
  }
  const areas = [...new Set([...self.keys(), ...inclusive.keys()])]
    .filter((a) => a !== 'root')
    .map((a) => ({ area: a, selfMs: (self.get(a) ?? 0) / 1000, inclusiveMs: (inclusive.get(a) ?? 0) / 1000 }))
    .sort((a, b) => b.selfMs - a.selfMs)
  return {
    totalMs: totalUs / 1000,
    areas,
    functions: [...functions]
      .map(([name, f]) => ({ name, area: f.area, selfMs: f.us / 1000 }))
      .sort((a, b) => b.selfMs - a.selfMs),
  }
}

function shortUrl(frame: CallFrame): string {
  if (frame.url === '') return '(native)'
  const modules = frame.url.lastIndexOf('node_modules/')
  const path =
    modules !== -1
      ? frame.url.slice(modules + 'node_modules/'.length)
      : frame.url.replace(/^.*\/src\//, 'src/')
  return `${path}:${frame.lineNumber + 1}`
}

function main(argv: string[]): void {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: { window: { type: 'string' }, writes: { type: 'string' }, top: { type: 'string' } },
  })
  if (positionals.length !== 1) {
    console.error(
      'usage: profile-summary.ts <file.cpuprofile> [--window <fromUs>..<toUs>] [--writes n] [--top n]',
    )
    process.exit(2)
  }
  const profile = JSON.parse(readFileSync(positionals[0], 'utf8')) as CpuProfile
  const summary = summarise(profile, parseWindow(values.window))
  const writes = values.writes === undefined ? undefined : Number(values.writes)
  const top = values.top === undefined ? 25 : Number(values.top)
  const per = (ms: number) => (writes === undefined ? ms.toFixed(0) : (ms / writes).toFixed(3))
  const unit = writes === undefined ? 'ms' : 'ms/write'
  console.log(`\n${positionals[0]}: ${summary.totalMs.toFixed(0)} ms on CPU (idle excluded)`)
  console.log(`\n| area | self ${unit} | self % | inclusive ${unit} | inclusive % |`)
  console.log('|---|---:|---:|---:|---:|')
  for (const a of summary.areas) {
    const pct = (ms: number) => ((100 * ms) / summary.totalMs).toFixed(1)
    console.log(
      `| ${a.area} | ${per(a.selfMs)} | ${pct(a.selfMs)} | ${per(a.inclusiveMs)} | ${pct(a.inclusiveMs)} |`,
    )
  }
  console.log(`\n| function (top ${top} by self time) | area | self ${unit} | % |`)
  console.log('|---|---|---:|---:|')
  for (const f of summary.functions.slice(0, top))
    console.log(
      `| ${f.name} | ${f.area} | ${per(f.selfMs)} | ${((100 * f.selfMs) / summary.totalMs).toFixed(1)} |`,
    )
}

if (import.meta.url === `file://${process.argv[1]}`) main(process.argv.slice(2))

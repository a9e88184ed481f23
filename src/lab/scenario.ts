import { readFileSync } from 'node:fs'
import { parse as parseYaml } from 'yaml'
import {
  LAB_SHAPES,
  type LabShape,
  LINK_PRESETS,
  type LinkConditions,
  type Scenario,
  type TimelineEvent,
  type Workload,
} from './types.ts'

/**
 * A lab scenario from a JSON file or from command-line flags, checked before anything starts. Every
 * error names the field it is about (`workload.ratePerSecond`, `timeline[2].groups[1][0]`, …), so
 * a bad scenario costs one line of reading, not a half-run experiment.
 */

export class ScenarioError extends Error {
  override readonly name = 'ScenarioError'
  readonly field: string

  constructor(field: string, message: string) {
    super(`${field}: ${message}`)
    this.field = field
  }
}

/** What the machine offers, for the checks that depend on it (root and `ip` for namespaces). */
export interface LabEnvironment {
  isRoot: boolean
  hasIp: boolean
}

export const DEFAULT_WORKLOAD: Workload = {
  writers: 2,
  ratePerSecond: 20,
  keys: 10,
  valueBytes: 64,
  durationMs: 5000,
  readFraction: 0,
}

/** Most peers the process mode starts (each is a Node process of ~100 MB). */
export const MAX_PROCESS_PEERS = 64
export const MAX_IN_PROCESS_PEERS = 1000
const MAX_DURATION_MS = 3_600_000
const MAX_SETTLE_MS = 600_000
const MAX_VALUE_BYTES = 65_536

const SCENARIO_FIELDS = [
  'name',
  'shapes',
  'n',
  'mode',
  'link',
  'workload',
  'timeline',
  'settleMs',
  'visibleBoundMs',
  'seed',
  'out',
] as const
const WORKLOAD_FIELDS = Object.keys(DEFAULT_WORKLOAD)
const LINK_FIELDS = ['preset', 'delayMs', 'jitterMs', 'lossPercent', 'rateKbit']
const EVENT_KINDS = ['leave', 'join', 'late-join', 'partition', 'heal', 'kill-hub', 'restart-hub'] as const

/** A scenario plus where its results go (not part of the results themselves). */
export interface LoadedScenario {
  scenario: Scenario
  out?: string
}

type Json = Record<string, unknown>

function isObject(value: unknown): value is Json {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

function refuseUnknown(object: Json, known: readonly string[], where: string): void {
  for (const field of Object.keys(object)) {
    if (!known.includes(field)) {
      throw new ScenarioError(
        where === '' ? field : `${where}.${field}`,
        `unknown field (known: ${known.join(', ')})`,
      )
    }
  }
}

function number(
  value: unknown,
  field: string,
  rule: { min?: number; max?: number; integer?: boolean },
): number {
  if (typeof value !== 'number' || !Number.isFinite(value)) {
    throw new ScenarioError(field, `must be a number, got ${JSON.stringify(value)}`)
  }
  if (rule.integer === true && !Number.isInteger(value))
    throw new ScenarioError(field, `must be a whole number, got ${value}`)
  if (rule.min !== undefined && value < rule.min) {
    throw new ScenarioError(
      field,
      `must be at least ${rule.min}${rule.min === 0 ? ' (no negative values)' : ''}, got ${value}`,
    )
  }
  if (rule.max !== undefined && value > rule.max)
    throw new ScenarioError(field, `must be at most ${rule.max}, got ${value}`)
  return value
}

function parseShapes(value: unknown): LabShape[] {
  const list = typeof value === 'string' ? value.split(',').map((s) => s.trim()) : value
  if (!Array.isArray(list) || list.length === 0) {
    throw new ScenarioError('shapes', `must be a non-empty list of ${LAB_SHAPES.join(', ')}`)
  }
  const shapes: LabShape[] = []
  for (const [i, shape] of list.entries()) {
    if (!LAB_SHAPES.includes(shape as LabShape)) {
      throw new ScenarioError(
        `shapes[${i}]`,
        `unknown shape ${JSON.stringify(shape)} (known: ${LAB_SHAPES.join(', ')})`,
      )
    }
    if (!shapes.includes(shape as LabShape)) shapes.push(shape as LabShape)
  }
  return shapes
}

function parseN(value: unknown, mode: Scenario['mode']): number[] {
  const list =
    typeof value === 'number'
      ? [value]
      : typeof value === 'string'
        ? value.split(',').map((s) => Number(s.trim()))
        : value
  if (!Array.isArray(list) || list.length === 0)
    throw new ScenarioError('n', 'must be a peer count or a non-empty list of them')
  const max = mode === 'processes' ? MAX_PROCESS_PEERS : MAX_IN_PROCESS_PEERS
  return list.map((count, i) => {
    const field = Array.isArray(value) ? `n[${i}]` : 'n'
    if (typeof count === 'number' && Number.isInteger(count) && count < 2) {
      throw new ScenarioError(field, `a run needs at least 2 peers, got ${count}`)
    }
    const n = number(count, field, { min: 2, integer: true })
    if (n > max) {
      throw new ScenarioError(
        field,
        `at most ${max} peers in ${mode} mode, got ${n}${mode === 'processes' ? ' (use "mode": "in-process" for large n)' : ''}`,
      )
    }
    return n
  })
}

/** A preset name, or an object of custom values (optionally starting from a preset). */
export function parseLink(
  value: unknown,
  field = 'link',
): (LinkConditions & { preset?: string }) | undefined {
  if (value === undefined || value === null || value === 'none') return undefined
  if (typeof value === 'string') {
    const preset = LINK_PRESETS[value]
    if (preset === undefined) {
      throw new ScenarioError(
        field,
        `unknown preset ${JSON.stringify(value)} (known: ${Object.keys(LINK_PRESETS).join(', ')}, none)`,
      )
    }
    return { ...preset, preset: value }
  }
  if (!isObject(value))
    throw new ScenarioError(
      field,
      'must be a preset name or an object with delayMs, jitterMs, lossPercent, rateKbit',
    )
  refuseUnknown(value, LINK_FIELDS, field)
  let base: LinkConditions & { preset?: string } = { delayMs: 0, jitterMs: 0, lossPercent: 0 }
  if (value.preset !== undefined) base = parseLink(value.preset, `${field}.preset`)!
  const link: LinkConditions & { preset?: string } = { ...base }
  if (value.delayMs !== undefined)
    link.delayMs = number(value.delayMs, `${field}.delayMs`, { min: 0, max: 60_000 })
  if (value.jitterMs !== undefined)
    link.jitterMs = number(value.jitterMs, `${field}.jitterMs`, { min: 0, max: 60_000 })
  if (value.lossPercent !== undefined) {
    link.lossPercent = number(value.lossPercent, `${field}.lossPercent`, { min: 0, max: 100 })
  }
  if (value.rateKbit !== undefined) link.rateKbit = number(value.rateKbit, `${field}.rateKbit`, { min: 1 })
  return link
}

function parseWorkload(value: unknown): Workload {
  if (value === undefined) return { ...DEFAULT_WORKLOAD }
  if (!isObject(value)) throw new ScenarioError('workload', 'must be an object')
  refuseUnknown(value, WORKLOAD_FIELDS, 'workload')
  const pick = <K extends keyof Workload>(key: K) =>
    value[key] === undefined ? DEFAULT_WORKLOAD[key] : value[key]
  return {
    writers: number(pick('writers'), 'workload.writers', { min: 1, integer: true }),
    ratePerSecond: number(pick('ratePerSecond'), 'workload.ratePerSecond', { min: 0, max: 10_000 }),
    keys: number(pick('keys'), 'workload.keys', { min: 1, max: 100_000, integer: true }),
    valueBytes: number(pick('valueBytes'), 'workload.valueBytes', {
      min: 32,
      max: MAX_VALUE_BYTES,
      integer: true,
    }),
    durationMs: number(pick('durationMs'), 'workload.durationMs', { min: 1, max: MAX_DURATION_MS }),
    readFraction: number(pick('readFraction'), 'workload.readFraction', { min: 0, max: 0.99 }),
  }
}

function parsePeerList(value: unknown, field: string): number[] {
  if (!Array.isArray(value) || value.length === 0)
    throw new ScenarioError(field, 'must be a non-empty list of peer indexes')
  return value.map((peer, i) => number(peer, `${field}[${i}]`, { min: 0, integer: true }))
}

function parseEvent(value: unknown, field: string): TimelineEvent {
  if (!isObject(value)) throw new ScenarioError(field, 'must be an object with atMs and kind')
  const kind = value.kind
  if (!EVENT_KINDS.includes(kind as (typeof EVENT_KINDS)[number])) {
    throw new ScenarioError(
      `${field}.kind`,
      `unknown event ${JSON.stringify(kind)} (known: ${EVENT_KINDS.join(', ')})`,
    )
  }
  const atMs = number(value.atMs, `${field}.atMs`, { min: 0 })
  switch (kind) {
    case 'leave':
    case 'join':
    case 'late-join':
      refuseUnknown(value, ['atMs', 'kind', 'peers'], field)
      return { atMs, kind, peers: parsePeerList(value.peers, `${field}.peers`) }
    case 'partition': {
      refuseUnknown(value, ['atMs', 'kind', 'groups'], field)
      if (!Array.isArray(value.groups) || value.groups.length < 2) {
        throw new ScenarioError(`${field}.groups`, 'a partition needs at least two groups of peer indexes')
      }
      const groups = value.groups.map((group, i) => parsePeerList(group, `${field}.groups[${i}]`))
      return { atMs, kind, groups }
    }
    default:
      refuseUnknown(value, ['atMs', 'kind'], field)
      return { atMs, kind } as TimelineEvent
  }
}

/** Checks the timeline against n, the shapes and the write phase: the order of events has to make sense. */
export function checkTimeline(scenario: Scenario): void {
  const minN = Math.min(...scenario.n)
  const end = scenario.workload.durationMs
  const hubShapes = scenario.shapes.some((shape) => shape !== 'mesh')
  const lateJoiners = new Set(
    scenario.timeline.flatMap((event) => (event.kind === 'late-join' ? event.peers : [])),
  )
  const up = new Set<number>()
  for (let peer = 0; peer < minN; peer++) if (!lateJoiners.has(peer)) up.add(peer)
  let partitioned = false
  let hubDown = false
  let previous = 0
  for (const [i, event] of scenario.timeline.entries()) {
    const field = `timeline[${i}]`
    if (event.atMs >= end) {
      throw new ScenarioError(
        `${field}.atMs`,
        `${event.kind} at ${event.atMs} ms is after the end of the write phase (workload.durationMs = ${end})`,
      )
    }
    if (event.atMs < previous) throw new ScenarioError(`${field}.atMs`, 'events must be in time order')
    previous = event.atMs
    const inRange = (peers: number[], where: string) => {
      for (const [j, peer] of peers.entries()) {
        if (peer >= minN) {
          throw new ScenarioError(
            `${where}[${j}]`,
            `peer ${peer} is out of range: the smallest n is ${minN} (peers 0..${minN - 1})`,
          )
        }
      }
    }
    switch (event.kind) {
      case 'leave':
        inRange(event.peers, `${field}.peers`)
        for (const peer of event.peers) {
          if (!up.has(peer))
            throw new ScenarioError(`${field}.peers`, `peer ${peer} is not running at ${event.atMs} ms`)
          up.delete(peer)
        }
        if (up.size === 0) throw new ScenarioError(`${field}.peers`, 'at least one peer must stay up')
        break
      case 'join':
        inRange(event.peers, `${field}.peers`)
        for (const peer of event.peers) {
          if (up.has(peer))
            throw new ScenarioError(`${field}.peers`, `peer ${peer} is already up (join follows a leave)`)
          if (
            lateJoiners.has(peer) &&
            !scenario.timeline.slice(0, i).some((e) => e.kind === 'late-join' && e.peers.includes(peer))
          ) {
            throw new ScenarioError(
              `${field}.peers`,
              `peer ${peer} is a late joiner: use late-join for its first start`,
            )
          }
          up.add(peer)
        }
        break
      case 'late-join':
        inRange(event.peers, `${field}.peers`)
        for (const peer of event.peers) {
          if (up.has(peer)) throw new ScenarioError(`${field}.peers`, `peer ${peer} is already up`)
          up.add(peer)
        }
        if (
          scenario.timeline.filter(
            (e) => e.kind === 'late-join' && e.peers.some((p) => event.peers.includes(p)),
          ).length > 1
        ) {
          throw new ScenarioError(`${field}.peers`, 'a peer joins late only once (then leave/join)')
        }
        break
      case 'partition': {
        if (partitioned) throw new ScenarioError(field, 'a partition already holds: heal it first')
        const seen = new Set<number>()
        for (const [g, group] of event.groups.entries()) {
          inRange(group, `${field}.groups[${g}]`)
          for (const peer of group) {
            if (seen.has(peer))
              throw new ScenarioError(`${field}.groups[${g}]`, `peer ${peer} is in two groups`)
            seen.add(peer)
          }
        }
        partitioned = true
        break
      }
      case 'heal':
        if (!partitioned) throw new ScenarioError(field, 'heal without a partition before it')
        partitioned = false
        break
      case 'kill-hub':
        if (!hubShapes) {
          throw new ScenarioError(
            field,
            'kill-hub in a mesh-only scenario: there is no hub (add "hub" or "http-hub" to shapes)',
          )
        }
        if (hubDown) throw new ScenarioError(field, 'the hub is already down')
        hubDown = true
        break
      case 'restart-hub':
        if (!hubShapes) {
          throw new ScenarioError(
            field,
            'restart-hub in a mesh-only scenario: there is no hub (add "hub" or "http-hub" to shapes)',
          )
        }
        if (!hubDown) throw new ScenarioError(field, 'restart-hub without a kill-hub before it')
        hubDown = false
        break
    }
  }
  if (scenario.workload.writers > minN) {
    throw new ScenarioError(
      'workload.writers',
      `${scenario.workload.writers} writers but the smallest n is ${minN}`,
    )
  }
}

/** Builds and checks a scenario from a parsed JSON object. */
export function parseScenario(value: unknown): LoadedScenario {
  if (!isObject(value)) throw new ScenarioError('scenario', 'must be a JSON object')
  refuseUnknown(value, SCENARIO_FIELDS, '')
  const mode = value.mode === undefined ? 'processes' : value.mode
  if (mode !== 'processes' && mode !== 'in-process') {
    throw new ScenarioError('mode', `must be "processes" or "in-process", got ${JSON.stringify(mode)}`)
  }
  if (value.name !== undefined && (typeof value.name !== 'string' || !/^[\w.-]{1,64}$/.test(value.name))) {
    throw new ScenarioError('name', 'must be 1-64 letters, digits, dots, dashes or underscores')
  }
  if (value.timeline !== undefined && !Array.isArray(value.timeline))
    throw new ScenarioError('timeline', 'must be a list of events')
  if (value.out !== undefined && (typeof value.out !== 'string' || value.out === '')) {
    throw new ScenarioError('out', 'must be a directory path')
  }
  const workload = parseWorkload(value.workload)
  const scenario: Scenario = {
    name: (value.name as string | undefined) ?? 'lab',
    shapes: parseShapes(value.shapes ?? [...LAB_SHAPES]),
    n: parseN(value.n ?? [4], mode),
    mode,
    link: parseLink(value.link),
    workload,
    timeline: ((value.timeline as unknown[] | undefined) ?? []).map((event, i) =>
      parseEvent(event, `timeline[${i}]`),
    ),
    settleMs: number(value.settleMs ?? 10_000, 'settleMs', { min: 0, max: MAX_SETTLE_MS }),
    visibleBoundMs: number(value.visibleBoundMs ?? 1000, 'visibleBoundMs', { min: 1, max: MAX_SETTLE_MS }),
    seed: number(value.seed ?? 1, 'seed', { min: 0, integer: true }),
  }
  checkTimeline(scenario)
  return { scenario, out: value.out as string | undefined }
}

/** A scenario file as an object: JSON, or YAML when its name ends in .yaml or .yml. */
export function readScenarioObject(path: string): Json {
  let text: string
  try {
    text = readFileSync(path, 'utf8')
  } catch (error) {
    throw new ScenarioError('scenario', `cannot read ${path}: ${(error as Error).message}`)
  }
  const yaml = /\.ya?ml$/i.test(path)
  let value: unknown
  try {
    value = yaml ? parseYaml(text) : JSON.parse(text)
  } catch (error) {
    throw new ScenarioError(
      'scenario',
      `${path} is not valid ${yaml ? 'YAML' : 'JSON'}: ${(error as Error).message}`,
    )
  }
  if (!isObject(value))
    throw new ScenarioError('scenario', `${path} must hold an object (the scenario's fields)`)
  return value
}

/** Reads and checks a scenario file. */
export function loadScenarioFile(path: string): LoadedScenario {
  return parseScenario(readScenarioObject(path))
}

/** Whether the link conditions need network namespaces: loss and rate are made by the kernel there. */
export function needsNamespaces(link: LinkConditions | undefined): boolean {
  return link !== undefined && (link.lossPercent > 0 || link.rateKbit !== undefined)
}

/** Checks what the scenario asks of the machine (before anything starts). */
export function checkEnvironment(scenario: Scenario, env: LabEnvironment): void {
  if (scenario.mode !== 'processes') return
  if (needsNamespaces(scenario.link) && !(env.isRoot && env.hasIp)) {
    throw new ScenarioError(
      'link',
      `loss and rate limits run in network namespaces, which need root and the "ip" command (${
        env.isRoot ? 'no "ip" found' : 'not running as root'
      }); run as root, use delay/jitter only, or "mode": "in-process"`,
    )
  }
}

/** `3000`, `3000ms`, `3s`, `1.5s` → ms. */
export function parseDuration(text: string, field: string): number {
  const match = /^(\d+(?:\.\d+)?)(ms|s)?$/.exec(text.trim())
  if (match === null)
    throw new ScenarioError(field, `not a duration: ${JSON.stringify(text)} (e.g. 3000, 3000ms, 3s)`)
  return Number(match[1]) * (match[2] === 's' ? 1000 : 1)
}

/**
 * One `--event` flag: `kind@time[:peers]`, e.g. `kill-hub@3s`, `leave@2s:1,2`, `partition@2s:0,1/2,3`.
 */
export function parseEventFlag(text: string, index: number): Json {
  const field = `--event[${index}]`
  const match = /^([a-z-]+)@([^:]+)(?::(.*))?$/.exec(text.trim())
  if (match === null) {
    throw new ScenarioError(
      field,
      `expected kind@time[:peers], e.g. kill-hub@3s, leave@2s:1,2, partition@2s:0,1/2,3; got ${JSON.stringify(text)}`,
    )
  }
  const [, kind, time, rest] = match
  const event: Json = { kind, atMs: parseDuration(time!, field) }
  const list = (part: string) =>
    part
      .split(',')
      .filter((s) => s !== '')
      .map((s) => (/^\d+$/.test(s) ? Number(s) : s))
  if (kind === 'partition') event.groups = (rest ?? '').split('/').map(list)
  else if (kind === 'leave' || kind === 'join' || kind === 'late-join') event.peers = list(rest ?? '')
  return event
}

/** The command-line flags that make or override a scenario. */
export interface ScenarioFlags {
  name?: string
  shapes?: string
  n?: string
  mode?: string
  link?: string
  delay?: string
  jitter?: string
  loss?: string
  'link-rate'?: string
  writers?: string
  'write-rate'?: string
  keys?: string
  'value-bytes'?: string
  duration?: string
  'read-fraction'?: string
  event?: string[]
  settle?: string
  bound?: string
  seed?: string
  out?: string
}

function flagNumber(text: string, field: string): number {
  const value = Number(text)
  if (text.trim() === '' || !Number.isFinite(value))
    throw new ScenarioError(field, `not a number: ${JSON.stringify(text)}`)
  return value
}

/** Merges flags over a scenario object (from a file, or empty) and checks the result. */
export function scenarioFromFlags(flags: ScenarioFlags, base: Json = {}): LoadedScenario {
  const object: Json = { ...base }
  const workload: Json = { ...(isObject(base.workload) ? base.workload : {}) }
  if (flags.name !== undefined) object.name = flags.name
  if (flags.shapes !== undefined) object.shapes = flags.shapes
  if (flags.n !== undefined) object.n = flags.n
  if (flags.mode !== undefined) object.mode = flags.mode
  if (flags.link !== undefined) object.link = flags.link
  const custom: Array<[keyof ScenarioFlags, string, (text: string) => number]> = [
    ['delay', 'delayMs', (t) => parseDuration(t, '--delay')],
    ['jitter', 'jitterMs', (t) => parseDuration(t, '--jitter')],
    ['loss', 'lossPercent', (t) => flagNumber(t.replace(/%$/, ''), '--loss')],
    ['link-rate', 'rateKbit', (t) => flagNumber(t, '--link-rate')],
  ]
  for (const [flag, field, read] of custom) {
    const text = flags[flag] as string | undefined
    if (text === undefined) continue
    const link: Json = isObject(object.link)
      ? { ...object.link }
      : typeof object.link === 'string'
        ? { preset: object.link }
        : {}
    link[field] = read(text)
    object.link = link
  }
  if (flags.writers !== undefined) workload.writers = flagNumber(flags.writers, '--writers')
  if (flags['write-rate'] !== undefined)
    workload.ratePerSecond = flagNumber(flags['write-rate'], '--write-rate')
  if (flags.keys !== undefined) workload.keys = flagNumber(flags.keys, '--keys')
  if (flags['value-bytes'] !== undefined)
    workload.valueBytes = flagNumber(flags['value-bytes'], '--value-bytes')
  if (flags.duration !== undefined) workload.durationMs = parseDuration(flags.duration, '--duration')
  if (flags['read-fraction'] !== undefined)
    workload.readFraction = flagNumber(flags['read-fraction'], '--read-fraction')
  if (Object.keys(workload).length > 0) object.workload = workload
  if (flags.event !== undefined && flags.event.length > 0) {
    object.timeline = flags.event.map((text, i) => parseEventFlag(text, i))
  }
  if (flags.settle !== undefined) object.settleMs = parseDuration(flags.settle, '--settle')
  if (flags.bound !== undefined) object.visibleBoundMs = parseDuration(flags.bound, '--bound')
  if (flags.seed !== undefined) object.seed = flagNumber(flags.seed, '--seed')
  if (flags.out !== undefined) object.out = flags.out
  return parseScenario(object)
}

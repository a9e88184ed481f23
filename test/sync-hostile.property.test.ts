import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { entryBodyHash, entrySigningMessage } from '../src/codec/signature.ts'
import { CausalContext, CrdtDocument, type Delta, type Entry, type SignedHead } from '../src/crdt/index.ts'
import { Replica } from '../src/replica/replica.ts'
import { type EntrySigner, generateEntrySigner, SignatureError, signEntry } from '../src/replica/signing.ts'
import { createMemoryStore } from '../src/store/memory.ts'
import { decodeSyncFrame, encodeSyncFrame } from '../src/sync/frames.ts'
import { SyncSession } from '../src/sync/session.ts'
import { exchangeReplicas } from './helpers/sync-exchange.ts'

/**
 * A hostile sync partner sends arbitrary final DELTAS frames (forged, replayed, tampered or foreign
 * entries, random contexts, random heads) to honest replicas, between honest writes and honest
 * exchanges. Whatever it sends, honest replicas must (1) hold only entries their authors wrote,
 * byte for byte, (2) never believe in a dot its author has not written, (3) never ignore a later
 * honest write, and (4) end equal once they have exchanged with each other.
 * Frames go through the real encoding and the real session; signatures are real Ed25519.
 */

const te = new TextEncoder()
const NAMESPACE = 'ns'
const HONEST = 3
const KEYS = ['a', 'b', 'c']

type Step =
  | { kind: 'write'; peer: number; key: number; value: number; remove: boolean }
  | { kind: 'exchange'; from: number; to: number }
  | { kind: 'gc'; peer: number }
  | { kind: 'attack'; target: number; entries: ForgedEntry[]; claims: Claim[]; heads: ForgedHead[] }

type Signature = 'random' | 'foreign' | 'replay' | 'tampered' | 'own'
interface ForgedEntry {
  author: number // an honest peer, or HONEST for the attacker's own replica
  counterOffset: number
  key: number
  signature: Signature
}
interface Claim {
  author: number
  lo: number
  length: number
}
interface ForgedHead {
  author: number
  counterOffset: number
  signature: 'random' | 'foreign' | 'replay' | 'own'
}

const arbitraryStep: fc.Arbitrary<Step> = fc.oneof(
  fc.record({
    kind: fc.constant('write' as const),
    peer: fc.nat(HONEST - 1),
    key: fc.nat(KEYS.length - 1),
    value: fc.nat(1000),
    remove: fc.boolean(),
  }),
  fc.record({ kind: fc.constant('exchange' as const), from: fc.nat(HONEST - 1), to: fc.nat(HONEST - 1) }),
  fc.record({ kind: fc.constant('gc' as const), peer: fc.nat(HONEST - 1) }),
  fc.record({
    kind: fc.constant('attack' as const),
    target: fc.nat(HONEST - 1),
    entries: fc.array(
      fc.record({
        author: fc.nat(HONEST),
        counterOffset: fc.integer({ min: -3, max: 3 }),
        key: fc.nat(KEYS.length - 1),
        signature: fc.constantFrom<Signature>('random', 'foreign', 'replay', 'tampered', 'own'),
      }),
      { maxLength: 3 },
    ),
    claims: fc.array(
      fc.record({
        author: fc.nat(HONEST),
        lo: fc.integer({ min: 1, max: 20 }),
        length: fc.oneof(fc.integer({ min: 0, max: 5 }), fc.constant(1_000_000)),
      }),
      { maxLength: 3 },
    ),
    heads: fc.array(
      fc.record({
        author: fc.nat(HONEST),
        counterOffset: fc.integer({ min: -2, max: 1_000 }),
        signature: fc.constantFrom('random' as const, 'foreign' as const, 'replay' as const, 'own' as const),
      }),
      { maxLength: 2 },
    ),
  }),
)

interface World {
  honest: Replica[]
  attacker: EntrySigner
  attackerReplica: string
  /** Every honest entry ever written: dot → body hash (what its author signed). */
  written: Map<string, string>
  /** Heads honest replicas made, to replay. */
  realHeads: SignedHead[]
  realEntries: Entry[]
  attackerCounter: number
}

function hex(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString('hex')
}

async function newWorld(): Promise<World> {
  const honest: Replica[] = []
  for (let i = 0; i < HONEST; i++) {
    honest.push(
      Replica.open({ namespace: NAMESPACE, store: createMemoryStore(), signer: generateEntrySigner() }),
    )
  }
  const attacker = generateEntrySigner()
  return {
    honest,
    attacker,
    attackerReplica: `${attacker.peerId}~evil`,
    written: new Map(),
    realHeads: [],
    realEntries: [],
    attackerCounter: 0,
  }
}

function replicaOf(world: World, author: number): string {
  return author < HONEST ? world.honest[author].replicaId : world.attackerReplica
}

/** One full honest session between two replicas, frames through the codec, merges awaited in order. */
async function exchange(a: Replica, b: Replica): Promise<void> {
  const { initiator, responder } = await exchangeReplicas(a, b, { namespace: NAMESPACE, chunkBytes: 512 })
  expect(initiator.done && responder.done).toBe(true)
}

async function write(world: World, replica: Replica, key: string, value: string, remove: boolean) {
  const ack = remove ? await replica.delete(key) : await replica.put(key, te.encode(value), 'text/plain')
  if (ack === undefined) return
  const delta = replica.deltasSince(dotsBelow(ack.replica, ack.counter))
  for (const entry of delta.entries) record(world, entry)
}

/** Everything but one dot: deltasSince then returns exactly that entry (when it is still live). */
function dotsBelow(replica: string, counter: number): CausalContext {
  const context = new CausalContext()
  if (counter > 1) context.addRange(replica, 1, counter - 1)
  return context
}

function record(world: World, entry: Entry): void {
  const dot = `${entry.replica}:${entry.counter}`
  if (world.written.has(dot)) return
  world.written.set(dot, hex(entryBodyHash(entry)))
  world.realEntries.push(entry)
  world.realHeads.push({
    replica: entry.replica,
    counter: entry.counter,
    bodyHash: entryBodyHash(entry),
    signature: entry.signature!,
  })
}

/** Builds the hostile frame's delta and heads from the plan. */
function forge(world: World, step: Extract<Step, { kind: 'attack' }>): { delta: Delta; heads: SignedHead[] } {
  const entries: Entry[] = []
  const context = new CausalContext()
  for (const plan of step.entries) {
    const replica = replicaOf(world, plan.author)
    if (plan.signature === 'replay') {
      const real = world.realEntries.find((e) => e.replica === replica)
      if (real !== undefined) {
        entries.push(real)
        context.add(real.replica, real.counter)
      }
      continue
    }
    const own = plan.signature === 'own'
    const target = own ? world.attackerReplica : replica
    // The attacker never signs two bodies for one of its own dots here: such equivocation splits
    // honest peers on the keys it wrote (a known limit, docs/security.md), which this property does
    // not claim to cover.
    const base =
      target === world.attackerReplica
        ? ++world.attackerCounter
        : Math.max(1, maxOf(world, plan.author) + plan.counterOffset)
    const doc = new CrdtDocument({ replica: target })
    doc.map.load([], dotsBelow(target, base))
    const entry = doc.put(KEYS[plan.key], te.encode('forged'), 'text/plain').entry
    if (plan.signature === 'random') entry.signature = new Uint8Array(64).map((_, i) => (i * 37 + base) & 255)
    else if (plan.signature === 'foreign' || plan.signature === 'own')
      entry.signature = signEntry(world.attacker, NAMESPACE, entry).signature
    else {
      // Tampered: a real signature of this author on a different body.
      const real = world.realEntries.find((e) => e.replica === target)
      entry.signature = real?.signature ?? new Uint8Array(64)
    }
    entries.push(entry)
    context.add(entry.replica, entry.counter)
  }
  for (const claim of step.claims) {
    context.addRange(replicaOf(world, claim.author), claim.lo, claim.lo + claim.length)
  }
  const heads: SignedHead[] = []
  for (const plan of step.heads) {
    const replica = replicaOf(world, plan.author)
    if (plan.signature === 'replay') {
      const real = world.realHeads.filter((h) => h.replica === replica).at(-1)
      if (real !== undefined) heads.push(real)
      continue
    }
    const counter = Math.max(1, maxOf(world, plan.author) + plan.counterOffset)
    const bodyHash = new Uint8Array(32).fill(counter & 255)
    const fake = { replica: plan.signature === 'own' ? world.attackerReplica : replica, counter, bodyHash }
    const signature =
      plan.signature === 'random'
        ? new Uint8Array(64).fill(9)
        : world.attacker.sign(entrySigningMessage(NAMESPACE, fake.replica, counter, bodyHash))
    heads.push({ ...fake, signature })
  }
  return { delta: { entries, context }, heads }
}

function maxOf(world: World, author: number): number {
  if (author >= HONEST) return world.attackerCounter
  const replica = world.honest[author]
  return replica.context().max(replica.replicaId)
}

/** The hostile session: an OPEN from the attacker, then its forged final DELTAS, through the codec. */
async function attack(world: World, target: Replica, step: Extract<Step, { kind: 'attack' }>) {
  const { delta, heads } = forge(world, step)
  const session = new SyncSession({ role: 'responder', namespace: NAMESPACE, state: target })
  session.receive(
    decodeSyncFrame(
      encodeSyncFrame({ type: 'open', namespace: NAMESPACE, digest: 'x', context: new CausalContext() }),
    ),
  )
  const step2 = session.receive(
    decodeSyncFrame(encodeSyncFrame({ type: 'deltas', final: true, delta, heads })),
  )
  if (step2.merge === undefined) return
  try {
    await target.merge(step2.merge.delta, step2.merge.options)
  } catch (error) {
    // A bad signature anywhere refuses the whole frame; nothing else may go wrong.
    if (!(error instanceof SignatureError)) throw error
  }
}

/** What a reader sees: every key's sibling values, by dot. */
function visible(replica: Replica): Array<[string, string[]]> {
  return KEYS.map((key) => [
    key,
    (replica.get(key)?.siblings ?? []).map((sibling) => `${sibling.replica}:${sibling.counter}`).sort(),
  ])
}

function checkInvariants(world: World): void {
  for (const replica of world.honest) {
    // (1) Only what honest authors wrote, byte for byte (the attacker's own entries aside).
    for (const entry of replica.deltasSince(new CausalContext()).entries) {
      if (entry.replica === world.attackerReplica) continue
      expect(world.written.get(`${entry.replica}:${entry.counter}`)).toBe(hex(entryBodyHash(entry)))
    }
    // (2) No belief in a dot its author has not written.
    const context = replica.context()
    for (const author of world.honest) {
      expect(context.max(author.replicaId)).toBeLessThanOrEqual(author.context().max(author.replicaId))
    }
  }
}

async function exchangeAll(world: World): Promise<void> {
  for (let round = 0; round < 2; round++) {
    for (let i = 0; i < HONEST; i++)
      for (let j = 0; j < HONEST; j++) if (i !== j) await exchange(world.honest[i], world.honest[j])
  }
}

describe('a hostile sync partner', () => {
  it('cannot plant entries, inflate contexts, hide later writes or keep honest peers apart, not even on one key', async () => {
    const seed = Number(process.env.HEARSAY_SEED ?? Date.now() % 1_000_000)
    console.info(`[sync-hostile] seed ${seed} (HEARSAY_SEED=${seed} repeats this run)`)
    await fc.assert(
      fc.asyncProperty(fc.array(arbitraryStep, { minLength: 1, maxLength: 25 }), async (steps) => {
        const world = await newWorld()
        for (const step of steps) {
          if (step.kind === 'write') {
            await write(world, world.honest[step.peer], KEYS[step.key], `v${step.value}`, step.remove)
          } else if (step.kind === 'gc') {
            // Collect what every honest peer has seen, as membership would: the collection horizon
            // and the snapshots it triggers then travel with signed heads.
            let stable = world.honest[0].context()
            for (const replica of world.honest) stable = stable.intersection(replica.context())
            await world.honest[step.peer].collectGarbage(stable)
          } else if (step.kind === 'exchange') {
            if (step.from !== step.to) await exchange(world.honest[step.from], world.honest[step.to])
          } else {
            await attack(world, world.honest[step.target], step)
          }
          checkInvariants(world)
        }
        // (3) A later write of every honest peer reaches every honest peer.
        for (const [i, replica] of world.honest.entries())
          await write(world, replica, `fresh${i}`, 'new', false)
        await exchangeAll(world)
        checkInvariants(world)
        for (const replica of world.honest) {
          for (let i = 0; i < HONEST; i++) expect(replica.get(`fresh${i}`)).toBeDefined()
        }
        // (4) Honest peers that exchange with each other end equal: no attack keeps them apart.
        const digests = world.honest.map((replica) => replica.digest())
        expect(new Set(digests).size).toBe(1)
        const states = world.honest.map((replica) => JSON.stringify(visible(replica)))
        expect(new Set(states).size).toBe(1)
      }),
      { seed, numRuns: 60 },
    )
  }, 120_000)
})

describe('the equal-context repair', () => {
  it('closes the gap a forged removal claim leaves, in one honest exchange, and costs nothing otherwise', async () => {
    const world = await newWorld()
    const [a, b] = world.honest
    await write(world, a, 'a', 'kept?', false)
    await write(world, a, 'b', 'stays', false)
    await exchange(a, b)
    expect(b.get('a')).toBeDefined()
    // The attacker claims it saw a's first write and did not keep it: b drops it, its context unchanged.
    await attack(world, b, {
      kind: 'attack',
      target: 1,
      entries: [],
      claims: [{ author: 0, lo: 1, length: 0 }],
      heads: [],
    })
    expect(b.get('a')).toBeUndefined()
    expect(b.context().equals(a.context())).toBe(true)
    expect(b.digest()).not.toBe(a.digest())

    const held = await framesOf(a, b)
    expect(held).toBe(2) // both final chunks carried what their sender holds
    expect(a.digest()).toBe(b.digest())
    expect(a.get('a')).toBeUndefined() // the join: b had seen it and did not hold it
    expect(a.get('b')).toBeDefined()

    // Honest differences never need it.
    await write(world, a, 'c', 'new', false)
    expect(await framesOf(a, b)).toBe(0)
    expect(a.digest()).toBe(b.digest())
  })
})

/** One exchange, counting the final chunks that carried held dots. */
async function framesOf(a: Replica, b: Replica): Promise<number> {
  let held = 0
  const { initiator, responder } = await exchangeReplicas(a, b, {
    namespace: NAMESPACE,
    seen: (frame) => {
      if (frame.type === 'deltas' && frame.held !== undefined) held++
    },
  })
  expect(initiator.done && responder.done).toBe(true)
  return held
}

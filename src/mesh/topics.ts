/**
 * Topic names and the topic allowlist.
 *
 * A namespace of a mesh is one gossipsub topic: `hearsay/<mesh>/<namespace>/v<n>`.
 * gossipsub's own `allowedTopics` is an exact-match set fixed at construction; we need "every namespace
 * of this mesh", including namespaces we join later (a peer's subscription to a topic that was not
 * allowed when it arrived is dropped for good, so a later local join would never see that peer). So the
 * allowlist here is a list of exact names and patterns, installed into gossipsub by node.ts.
 */
import { MAX_NAME_LENGTH, TOPIC_PREFIX } from './constants.ts'
import { TopicNotAllowedError } from './errors.ts'

/** An exact topic or a pattern. Patterns are matched against the whole topic. */
export type TopicRule = string | RegExp

/** What gossipsub consults for every inbound subscription and message: only `has` is used. */
export interface TopicAllowlist {
  has(topic: string): boolean
  readonly rules: readonly TopicRule[]
}

const NAME = `[A-Za-z0-9._-]{1,${MAX_NAME_LENGTH}}`
const NAME_RE = new RegExp(`^${NAME}$`)

/**
 * The version in the topic names this peer publishes on: the gossip message format's
 * (gossip/envelope.ts, GOSSIP_VERSION), so peers of two formats never share a topic. 1: batches with
 * a batch signature; 2: entry signatures only; 3: entry proofs (one signature per commit turn).
 */
export const TOPIC_VERSION = 3

/** `hearsay/<mesh>/<namespace>/v<version>`; throws TopicNotAllowedError on a malformed name. */
export function meshTopic(mesh: string, namespace: string, version = TOPIC_VERSION): string {
  const topic = `${TOPIC_PREFIX}/${mesh}/${namespace}/v${version}`
  if (!NAME_RE.test(mesh)) throw new TopicNotAllowedError(topic, `mesh name must match ${NAME}`)
  if (!NAME_RE.test(namespace)) throw new TopicNotAllowedError(topic, `namespace must match ${NAME}`)
  if (!Number.isSafeInteger(version) || version < 1) throw new TopicNotAllowedError(topic, 'bad version')
  return topic
}

/** The parts of a hearsay topic, or null when the string is not one. */
export function parseMeshTopic(topic: string): { mesh: string; namespace: string; version: number } | null {
  const m = ANY_MESH_TOPIC.exec(topic)
  if (m == null) return null
  return { mesh: m[1]!, namespace: m[2]!, version: Number(m[3]) }
}

const ANY_MESH_TOPIC = new RegExp(`^${TOPIC_PREFIX}/(${NAME})/(${NAME})/v([1-9][0-9]{0,5})$`)

/** Pattern for every namespace topic of one mesh (or of any mesh when `mesh` is omitted). */
export function meshTopicPattern(mesh?: string): RegExp {
  if (mesh == null) return new RegExp(ANY_MESH_TOPIC.source)
  if (!NAME_RE.test(mesh))
    throw new TopicNotAllowedError(`${TOPIC_PREFIX}/${mesh}/`, `mesh name must match ${NAME}`)
  const escaped = mesh.replace(/[.]/g, '\\.')
  return new RegExp(`^${TOPIC_PREFIX}/${escaped}/${NAME}/v[1-9][0-9]{0,5}$`)
}

/**
 * Builds an allowlist. RegExp rules are copied without the `g`/`y` flags: those make `test()`
 * stateful (lastIndex), which would make the allowlist answer differently on every other call.
 */
export function topicAllowlist(rules: readonly TopicRule[]): TopicAllowlist {
  const exact = new Set<string>()
  const patterns: RegExp[] = []
  const kept: TopicRule[] = []
  for (const rule of rules) {
    if (typeof rule === 'string') {
      exact.add(rule)
      kept.push(rule)
    } else {
      const re = new RegExp(rule.source, rule.flags.replace(/[gy]/g, ''))
      patterns.push(re)
      kept.push(re)
    }
  }
  return {
    rules: kept,
    has(topic: string): boolean {
      if (exact.has(topic)) return true
      for (const re of patterns) if (re.test(topic)) return true
      return false
    },
  }
}

import {
  DEFAULT_ACK_TIMEOUT_MS,
  DEFAULT_LIST_LIMIT,
  MAX_ACK_PEERS,
  MAX_ACK_TIMEOUT_MS,
  MAX_JSON_BODY_BYTES,
  MAX_LIST_LIMIT,
  MAX_VALUE_BYTES,
} from './constants.ts'
import type { ApiErrorCode } from './errors.ts'

/**
 * The OpenAPI 3.1 description of the HTTP API, served at /v1/openapi.json and written to
 * docs/openapi.json by `hearsay openapi > docs/openapi.json` (a test keeps the two equal).
 */

type Schema = Record<string, unknown>

const ref = (name: string): Schema => ({ $ref: `#/components/schemas/${name}` })
const jsonContent = (schema: Schema) => ({ 'application/json': { schema } })

function error(description: string, codes: ApiErrorCode[]) {
  return { description: `${description} (codes: ${codes.join(', ')})`, content: jsonContent(ref('Error')) }
}

const nsParam = {
  name: 'ns',
  in: 'path',
  required: true,
  description: 'Namespace: 1-64 of [A-Za-z0-9._-], starting with a letter or digit.',
  schema: { type: 'string', pattern: '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$' },
}
const keyParam = {
  name: 'key',
  in: 'path',
  required: true,
  description:
    'Key: UTF-8, 1-1023 bytes, no NUL. May contain "/" (it takes the rest of the path); %-escape "?", "#" and "%".',
  schema: { type: 'string' },
}
const ackParams = [
  {
    name: 'ack',
    in: 'query',
    description: `Wait until this many other peers hold the write (0-${MAX_ACK_PEERS}); 202 when the timeout comes first.`,
    schema: { type: 'integer', minimum: 0, maximum: MAX_ACK_PEERS },
  },
  {
    name: 'timeout',
    in: 'query',
    description: `How long an ack wait may take, ms (default ${DEFAULT_ACK_TIMEOUT_MS}).`,
    schema: { type: 'integer', minimum: 1, maximum: MAX_ACK_TIMEOUT_MS },
  },
]
const ttlParam = {
  name: 'ttl',
  in: 'query',
  description:
    "Expire the value this long after the write: a whole number with a unit, ms, s, m or h (30s, 10m, 2h), from 1s to 30 days (720h). Every peer hides it once its HLC reaches the write's HLC wall time + ttl.",
  schema: { type: 'string', pattern: '^[0-9]+(ms|s|m|h)$' },
}
const ifMatchHeader = {
  name: 'If-Match',
  in: 'header',
  description:
    'The ETag of a read: the write supersedes exactly the siblings that read saw (concurrent writes it did not see stay). "*" or absent: supersedes every current sibling.',
  schema: { type: 'string' },
}

const writeResponses = (ok: Schema) => ({
  '200': {
    description: 'Durable on this peer (and, with ack, held by the requested number of peers)',
    content: jsonContent(ok),
  },
  '202': {
    description: 'Durable on this peer; fewer peers than `ack` held it before the timeout',
    content: jsonContent(ok),
  },
})

const commonErrors = {
  '400': error('Bad input', [
    'INVALID_KEY',
    'INVALID_NAMESPACE',
    'INVALID_PARAMETER',
    'INVALID_JSON',
    'JSON_TOO_DEEP',
    'INVALID_BODY',
  ]),
  '401': error('The API listens beyond loopback and the bearer token is missing or wrong', ['UNAUTHORIZED']),
  '403': error('A Host that is not loopback (DNS rebinding), or a request from another origin', [
    'FORBIDDEN_HOST',
    'FORBIDDEN_ORIGIN',
  ]),
  '408': error('The request body stopped arriving', ['REQUEST_TIMEOUT']),
  '503': error('Store failed, too many bodies arriving at once, or shutting down', [
    'STORE_FAILED',
    'SERVER_BUSY',
    'SHUTTING_DOWN',
  ]),
}

/** DELETE /v1/ns/{ns}: leave a namespace (see routes-admin.ts). */
const leaveNamespaceOperation = {
  summary: 'Leave a namespace: stop replicating it and delete its local data',
  operationId: 'leaveNamespace',
  parameters: [{ name: 'confirm', in: 'query', required: true, schema: { type: 'string' } }],
  responses: {
    '200': {
      description: 'Left',
      content: jsonContent({
        type: 'object',
        properties: {
          namespace: { type: 'string' },
          left: { type: 'boolean' },
          entriesDropped: { type: 'integer' },
        },
      }),
    },
    '400': error('confirm does not name the namespace', ['CONFIRMATION_REQUIRED', 'INVALID_NAMESPACE']),
    '404': error('Not joined', ['NAMESPACE_NOT_FOUND']),
  },
}

/** Backup, export and forgetting a member (see routes-admin.ts and docs/operations.md). */
const adminPaths = {
  '/v1/admin/backup': {
    post: {
      summary: "Write an online, consistent backup of the store to the data dir's backups/",
      operationId: 'backup',
      requestBody: {
        required: true,
        content: jsonContent({
          type: 'object',
          required: ['name'],
          properties: {
            name: { type: 'string', pattern: '^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$' },
            overwrite: { type: 'boolean' },
          },
        }),
      },
      responses: {
        '201': {
          description: 'Written and verified',
          content: jsonContent({
            type: 'object',
            properties: {
              path: { type: 'string' },
              bytes: { type: 'integer' },
              pages: { type: 'integer' },
              namespaces: { type: 'array', items: { type: 'string' } },
              entries: { type: 'integer' },
              schemaVersion: { type: 'integer' },
              integrity: { type: 'string' },
              tookMs: { type: 'integer' },
            },
          }),
        },
        '400': error('Bad body', ['INVALID_BODY', 'INVALID_JSON', 'JSON_TOO_DEEP']),
        '409': error('Exists, or a backup is running', ['BACKUP_EXISTS', 'BACKUP_UNAVAILABLE']),
        '415': error('Not JSON', ['UNSUPPORTED_MEDIA_TYPE']),
        '422': error('Cannot write the file', ['BACKUP_FAILED']),
      },
    },
  },
  '/v1/admin/export': {
    get: {
      summary: 'Every live key as JSON lines (registers with siblings, counters, sets)',
      operationId: 'export',
      parameters: [
        { name: 'namespace', in: 'query', schema: { type: 'array', items: { type: 'string' } } },
        { name: 'prefix', in: 'query', schema: { type: 'string' } },
      ],
      responses: {
        '200': { description: 'One JSON object per line', content: { 'application/x-ndjson': {} } },
        '404': error('Not joined', ['NAMESPACE_NOT_FOUND']),
      },
    },
  },
  '/v1/peers/{peerId}': {
    parameters: [{ name: 'peerId', in: 'path', required: true, schema: { type: 'string' } }],
    delete: {
      summary: 'Forget a member that is gone for good (it stops holding back tombstone collection)',
      operationId: 'forgetPeer',
      responses: {
        '200': {
          description: 'Forgotten',
          content: jsonContent({
            type: 'object',
            properties: { peerId: { type: 'string' }, forgotten: { type: 'boolean' } },
          }),
        },
        '404': error('Unknown peer', ['PEER_NOT_FOUND']),
        '409': error('Connected right now', ['PEER_CONNECTED']),
      },
    },
  },
}

const nullable = (schema: Schema): Schema => ({ oneOf: [schema, { type: 'null' }] })
const failure: Schema = {
  type: 'object',
  properties: { at: { type: 'string', format: 'date-time' }, reason: { type: 'string' } },
}
const dateTime: Schema = { type: 'string', format: 'date-time' }

/** Replication state, events, explain and conflicts (see routes-insight.ts and docs/api.md). */
const insightPaths = {
  '/v1/ns/{ns}/replication': {
    parameters: [nsParam],
    get: {
      summary: "Per peer: connection, last contact, what each side lacks of the other's writes, last sync",
      operationId: 'replication',
      responses: {
        '200': { description: 'Replication state', content: jsonContent(ref('Replication')) },
        '404': error('Namespace not joined', ['NAMESPACE_NOT_FOUND']),
      },
    },
  },
  '/v1/events': {
    get: {
      summary: 'Server-Sent Events of the mesh: peers connecting and disconnecting, anti-entropy sessions',
      description:
        'First a `ready` event, then `peer-connected`, `peer-disconnected`, `sync-started`, `sync-completed`, `sync-failed` (the SSE event name is the type; data: MeshEvent). Live only (no replay); a client that falls the watch queue bound behind gets `overflow` and the stream ends; `shutdown` when the daemon stops. Comments (`: ping`) keep idle streams open. A web page of another origin may not read it.',
      operationId: 'events',
      responses: {
        '200': {
          description: 'An event stream',
          content: { 'text/event-stream': { schema: ref('MeshEvent') } },
        },
        '401': commonErrors['401'],
        '403': commonErrors['403'],
        '503': error('Shutting down, or no mesh', ['SHUTTING_DOWN', 'MESH_UNAVAILABLE']),
      },
    },
  },
  '/v1/ns/{ns}/kv/{key}/explain': {
    parameters: [nsParam, keyParam],
    get: {
      summary:
        'Why a key reads as it does: every sibling with its writer, HLC, dot and holders; tombstone; horizon',
      description:
        'A key that itself ends in `/explain` is read as `…/kv/{key}%2Fexplain` and explained as `…/kv/{key}/explain/explain`.',
      operationId: 'explainKey',
      responses: {
        '200': { description: 'The explanation', content: jsonContent(ref('Explanation')) },
        '400': error('Bad key', ['INVALID_KEY', 'INVALID_NAMESPACE']),
        '404': error('No such key or namespace', ['KEY_NOT_FOUND', 'NAMESPACE_NOT_FOUND']),
      },
    },
  },
  '/v1/ns/{ns}/conflicts': {
    parameters: [nsParam],
    get: {
      summary: 'Keys with more than one live value (siblings), in key order, a page at a time',
      description:
        'Reads at most 100,000 keys per request: a page may hold fewer than `limit` conflicts (even none) while `cursor` is not null; continue until it is.',
      operationId: 'listConflicts',
      parameters: [
        { name: 'prefix', in: 'query', schema: { type: 'string' } },
        {
          name: 'limit',
          in: 'query',
          schema: { type: 'integer', minimum: 1, maximum: MAX_LIST_LIMIT, default: DEFAULT_LIST_LIMIT },
        },
        {
          name: 'cursor',
          in: 'query',
          description: 'The cursor of the previous page',
          schema: { type: 'string' },
        },
      ],
      responses: {
        '200': {
          description: 'A page of conflicts',
          content: jsonContent({
            type: 'object',
            properties: {
              namespace: { type: 'string' },
              prefix: { type: 'string' },
              conflicts: {
                type: 'array',
                items: {
                  type: 'object',
                  properties: {
                    key: { type: 'string' },
                    siblings: { type: 'integer' },
                    etag: { type: 'string' },
                  },
                },
              },
              cursor: nullable({ type: 'string' }),
            },
          }),
        },
        '400': error('Bad parameter', ['INVALID_PARAMETER', 'INVALID_NAMESPACE']),
        '404': error('Namespace not joined', ['NAMESPACE_NOT_FOUND']),
      },
    },
  },
}

const explainedEntry: Schema = {
  type: 'object',
  properties: {
    replica: { type: 'string' },
    peerId: { type: 'string', description: 'The writer (the author part of the replica id)' },
    hlc: {
      type: 'object',
      properties: { wall: { type: 'integer' }, logical: { type: 'integer' }, at: dateTime },
    },
    dot: { type: 'object', properties: { replica: { type: 'string' }, counter: { type: 'integer' } } },
    covers: {
      type: 'array',
      description: 'The dots on this key the entry supersedes, as ranges per replica',
      items: {
        type: 'object',
        properties: { replica: { type: 'string' }, from: { type: 'integer' }, to: { type: 'integer' } },
      },
    },
    heldBy: {
      type: 'array',
      items: { type: 'string' },
      description:
        "This peer, the write's author, and known peers that hold the dot: by their context from the last sync session, or because gossip showed them with it",
    },
    notYetAt: {
      type: 'array',
      items: { type: 'string' },
      description: 'Known peers that, as far as sync sessions and gossip have shown, lack the dot',
    },
    unknown: {
      type: 'array',
      items: { type: 'string' },
      description: 'Known peers whose context for the namespace was never learned',
    },
    expiresAt: dateTime,
    expired: { type: 'boolean' },
  },
}

const insightSchemas = {
  Replication: {
    type: 'object',
    properties: {
      namespace: { type: 'string' },
      self: {
        type: 'object',
        properties: {
          peerId: { type: 'string' },
          replicaId: { type: 'string' },
          versionVector: { type: 'object', additionalProperties: { type: 'integer' } },
          digest: { type: 'string' },
          dots: { type: 'integer', description: 'Writes in our causal context' },
        },
      },
      peers: { type: 'array', items: ref('PeerReplication') },
    },
  },
  PeerReplication: {
    type: 'object',
    properties: {
      peerId: { type: 'string' },
      connected: { type: 'boolean' },
      connection: {
        type: 'object',
        properties: {
          state: { type: 'string', enum: ['connected', 'disconnected', 'never'] },
          since: nullable(dateTime),
          lastFailure: nullable(failure),
        },
      },
      lastContactAt: nullable(dateTime),
      contextKnown: { type: 'boolean' },
      theyLack: nullable({
        type: 'integer',
        description: 'Writes in our context that they lack, as far as sync sessions and gossip have shown',
      }),
      weLack: nullable({
        type: 'integer',
        description: 'Writes they hold (as far as sessions and gossip have shown) that our context lacks',
      }),
      lastSync: nullable({
        type: 'object',
        properties: {
          at: dateTime,
          reason: {
            type: 'string',
            description:
              'connected, joined, periodic, publish-reached-nobody, ack, relay; remote when the peer started it',
          },
          role: { type: 'string', enum: ['initiator', 'responder'] },
          durationMs: { type: 'number' },
          bytesSent: { type: 'integer' },
          bytesReceived: { type: 'integer' },
          entriesReceived: { type: 'integer' },
          equal: { type: 'boolean', description: 'Digests matched: nothing was exchanged' },
        },
      }),
      lastSyncFailure: nullable(failure),
      rttMs: nullable({ type: 'number' }),
    },
  },
  MeshEvent: {
    type: 'object',
    required: ['type', 'at', 'peerId'],
    properties: {
      type: {
        type: 'string',
        enum: ['peer-connected', 'peer-disconnected', 'sync-started', 'sync-completed', 'sync-failed'],
      },
      at: dateTime,
      atMs: { type: 'integer' },
      peerId: { type: 'string' },
      namespace: { type: 'string' },
      reason: { type: 'string' },
      role: { type: 'string', enum: ['initiator', 'responder'] },
      durationMs: { type: 'number' },
      bytesSent: { type: 'integer' },
      bytesReceived: { type: 'integer' },
      entriesReceived: { type: 'integer' },
      equal: { type: 'boolean' },
      error: { type: 'string' },
      code: { type: 'string' },
    },
  },
  Explanation: {
    type: 'object',
    properties: {
      namespace: { type: 'string' },
      key: { type: 'string' },
      state: { type: 'string', enum: ['live', 'deleted'] },
      resolved: nullable({
        allOf: [ref('Value'), { type: 'object', properties: { etag: { type: 'string' } } }],
      }),
      why: { type: 'string', description: 'A plain sentence' },
      siblings: {
        type: 'array',
        description: 'Every value entry, oldest first (HLC order), expired ones included',
        items: {
          allOf: [
            ref('Value'),
            explainedEntry,
            { type: 'object', properties: { winner: { type: 'boolean' } } },
          ],
        },
      },
      tombstone: nullable({
        allOf: [explainedEntry, { type: 'object', properties: { concurrent: { type: 'integer' } } }],
      }),
      horizon: nullable({
        type: 'object',
        properties: { collected: { type: 'boolean' }, note: { type: 'string' } },
      }),
    },
  },
}

export function openApiDocument(): Record<string, unknown> {
  return {
    openapi: '3.1.0',
    info: {
      title: 'hearsay daemon API',
      version: '1',
      description:
        'The local HTTP API of one hearsay peer. Reads and writes are local and durable before they are acknowledged; the mesh replicates them to other peers. Every error is JSON: {"error":{"code","message"}} with a stable code. Access: on a loopback bind only loopback Host names (and apiAllowedHosts) are served; a request from a web page of another origin may not change state nor read the watch or events stream or status, and a state-changing request with an Origin needs a non-simple Content-Type; beyond loopback every request but /healthz needs the bearer token of the data dir file api.token.',
    },
    security: [{}, { bearer: [] }],
    servers: [{ url: 'http://127.0.0.1:7600' }],
    paths: {
      '/healthz': {
        get: {
          summary: 'Liveness',
          operationId: 'health',
          responses: { '200': { description: 'Serving', content: jsonContent({ type: 'object' }) } },
        },
      },
      '/metrics': {
        get: {
          summary: 'Prometheus metrics (text exposition format)',
          operationId: 'metrics',
          responses: {
            '200': { description: 'Metrics', content: { 'text/plain': { schema: { type: 'string' } } } },
          },
        },
      },
      '/v1/openapi.json': {
        get: {
          summary: 'This document',
          operationId: 'openapi',
          responses: { '200': { description: 'OpenAPI 3.1', content: jsonContent({ type: 'object' }) } },
        },
      },
      '/v1/status': {
        get: {
          summary: 'Peer id, addresses, namespaces with versions, uptime, store, process',
          operationId: 'status',
          responses: { '200': { description: 'Status', content: jsonContent(ref('Status')) } },
        },
      },
      '/v1/peers': {
        get: {
          summary: 'Connected and known peers with RTT and last seen',
          operationId: 'listPeers',
          responses: { '200': { description: 'Peers', content: jsonContent(ref('Peers')) } },
        },
        post: {
          summary: 'Dial a peer by multiaddr',
          operationId: 'dialPeer',
          requestBody: {
            required: true,
            content: jsonContent({
              type: 'object',
              required: ['address'],
              properties: { address: { type: 'string' } },
            }),
          },
          responses: {
            '200': {
              description: 'Connected',
              content: jsonContent({
                type: 'object',
                properties: {
                  peerId: { type: 'string' },
                  address: { type: 'string' },
                  dialMs: { type: 'integer' },
                },
              }),
            },
            '400': error('Bad address', ['INVALID_ADDRESS', 'INVALID_BODY', 'INVALID_JSON', 'JSON_TOO_DEEP']),
            '415': error('Not JSON', ['UNSUPPORTED_MEDIA_TYPE']),
            '502': error('Dial failed', ['DIAL_FAILED']),
            '503': error('No mesh', ['MESH_UNAVAILABLE']),
          },
        },
      },
      '/v1/ns': {
        get: {
          summary: 'Joined namespaces',
          operationId: 'listNamespaces',
          responses: {
            '200': {
              description: 'Namespaces',
              content: jsonContent({
                type: 'object',
                properties: { namespaces: { type: 'array', items: ref('Namespace') } },
              }),
            },
          },
        },
      },
      '/v1/ns/{ns}': {
        parameters: [nsParam],
        get: {
          summary: 'One namespace: replica id, version vector, digest, entries',
          operationId: 'getNamespace',
          responses: {
            '200': { description: 'Namespace', content: jsonContent(ref('Namespace')) },
            '404': error('Not joined', ['NAMESPACE_NOT_FOUND']),
          },
        },
        put: {
          summary: 'Join a namespace (start replicating it)',
          operationId: 'joinNamespace',
          responses: {
            '200': { description: 'Already joined', content: jsonContent(ref('Namespace')) },
            '201': { description: 'Joined', content: jsonContent(ref('Namespace')) },
            '400': error('Bad name', ['INVALID_NAMESPACE']),
          },
        },
        delete: leaveNamespaceOperation,
      },
      ...adminPaths,
      ...insightPaths,
      '/v1/ns/{ns}/kv': {
        parameters: [nsParam],
        get: {
          summary: 'List keys in key order, a page at a time',
          operationId: 'listKeys',
          parameters: [
            { name: 'prefix', in: 'query', schema: { type: 'string' } },
            {
              name: 'limit',
              in: 'query',
              schema: { type: 'integer', minimum: 1, maximum: MAX_LIST_LIMIT, default: DEFAULT_LIST_LIMIT },
            },
            {
              name: 'cursor',
              in: 'query',
              description: 'The `cursor` of the previous page.',
              schema: { type: 'string' },
            },
            {
              name: 'values',
              in: 'query',
              description: 'Include values (default 1).',
              schema: { type: 'string', enum: ['0', '1'] },
            },
          ],
          responses: {
            '200': { description: 'A page', content: jsonContent(ref('ListPage')) },
            '400': error('Bad parameter', ['INVALID_PARAMETER']),
            '404': error('Not joined', ['NAMESPACE_NOT_FOUND']),
          },
        },
        delete: {
          summary:
            'Delete every key under a prefix as one operation (one tombstone per key, one HLC timestamp, one commit); observed-remove: concurrent writes survive',
          operationId: 'deletePrefix',
          parameters: [
            {
              name: 'prefix',
              in: 'query',
              description: 'Keys starting with this; required unless all=1.',
              schema: { type: 'string' },
            },
            {
              name: 'all',
              in: 'query',
              description: '1: every key of the namespace (only without a prefix).',
              schema: { type: 'string', enum: ['0', '1'] },
            },
            ...ackParams,
          ],
          responses: {
            ...writeResponses(ref('PrefixDeleteResult')),
            '400': error('No prefix without all=1, or both', ['INVALID_PARAMETER']),
            '404': error('Not joined', ['NAMESPACE_NOT_FOUND']),
            '503': commonErrors['503'],
          },
        },
      },
      '/v1/ns/{ns}/kv/{key}/touch': {
        parameters: [nsParam, keyParam],
        post: {
          summary: 'Renew a key: a new write of the value a read shows now, with a new ttl',
          operationId: 'touchKey',
          parameters: [{ ...ttlParam, required: true }, ...ackParams],
          responses: {
            ...writeResponses(ref('WriteResult')),
            '400': error('Bad input', ['INVALID_KEY', 'INVALID_PARAMETER']),
            '404': error('No such key or namespace', ['KEY_NOT_FOUND', 'NAMESPACE_NOT_FOUND']),
            '503': commonErrors['503'],
          },
        },
      },
      '/v1/ns/{ns}/kv/{key}': {
        parameters: [nsParam, keyParam],
        get: {
          summary: 'Read a key: the resolved value with its Content-Type, or every sibling with ?siblings=1',
          operationId: 'getKey',
          parameters: [
            { name: 'siblings', in: 'query', schema: { type: 'string', enum: ['0', '1'] } },
            { name: 'If-None-Match', in: 'header', schema: { type: 'string' } },
          ],
          responses: {
            '200': {
              description:
                'The value as stored (Content-Type kept; ETag = causal token; X-Hearsay-Siblings = number of concurrent values), or with ?siblings=1 a JSON document of all siblings',
              headers: {
                ETag: { schema: { type: 'string' } },
                'X-Hearsay-Siblings': { schema: { type: 'integer' } },
              },
              content: { '*/*': { schema: {} }, 'application/json': { schema: ref('Siblings') } },
            },
            '304': { description: 'If-None-Match matched' },
            '400': error('Bad key', ['INVALID_KEY', 'INVALID_NAMESPACE']),
            '404': error('No such key or namespace', ['KEY_NOT_FOUND', 'NAMESPACE_NOT_FOUND']),
          },
        },
        put: {
          summary: 'Write a value (any bytes; Content-Type kept). Joins the namespace.',
          operationId: 'putKey',
          parameters: [ifMatchHeader, ttlParam, ...ackParams],
          requestBody: {
            required: true,
            description: `Up to ${MAX_VALUE_BYTES} bytes. A JSON Content-Type must carry valid JSON. No Content-Type: application/octet-stream.`,
            content: { '*/*': { schema: {} } },
          },
          responses: {
            ...writeResponses(ref('WriteResult')),
            '400': error('Bad input', [
              'INVALID_KEY',
              'INVALID_NAMESPACE',
              'INVALID_JSON',
              'JSON_TOO_DEEP',
              'INVALID_IF_MATCH',
              'INVALID_PARAMETER',
            ]),
            '408': commonErrors['408'],
            '413': error('Value too large', ['VALUE_TOO_LARGE']),
            '415': error('Bad Content-Type', ['INVALID_CONTENT_TYPE']),
            '428': error('If-Match required by configuration', ['PRECONDITION_REQUIRED']),
            '503': commonErrors['503'],
          },
        },
        delete: {
          summary: 'Delete a key (a tombstone that replicates)',
          operationId: 'deleteKey',
          parameters: [ifMatchHeader, ...ackParams],
          responses: {
            ...writeResponses(ref('WriteResult')),
            '400': error('Bad input', ['INVALID_KEY', 'INVALID_IF_MATCH', 'INVALID_PARAMETER']),
            '404': error('No such key or namespace', ['KEY_NOT_FOUND', 'NAMESPACE_NOT_FOUND']),
            '428': error('If-Match required by configuration', ['PRECONDITION_REQUIRED']),
            '503': commonErrors['503'],
          },
        },
      },
      '/v1/ns/{ns}/counter/{key}': {
        parameters: [nsParam, keyParam],
        get: {
          summary: 'Read a counter (0 if never incremented)',
          operationId: 'getCounter',
          responses: {
            '200': { description: 'Value', content: jsonContent(ref('Counter')) },
            '404': error('Not joined', ['NAMESPACE_NOT_FOUND']),
          },
        },
        post: {
          summary: 'Add to a counter (PN-counter: concurrent increments all count). Joins the namespace.',
          operationId: 'incrementCounter',
          parameters: ackParams,
          requestBody: {
            description: `{"by": n}, a safe integer, negative to subtract; empty body = by 1. Up to ${MAX_JSON_BODY_BYTES} bytes.`,
            content: jsonContent({ type: 'object', properties: { by: { type: 'integer', default: 1 } } }),
          },
          responses: {
            ...writeResponses(ref('Counter')),
            '400': error('Bad input', [
              'INVALID_NUMBER',
              'INVALID_JSON',
              'JSON_TOO_DEEP',
              'INVALID_BODY',
              'INVALID_KEY',
            ]),
            '413': error('Body too large', ['PAYLOAD_TOO_LARGE']),
            '415': error('Not JSON', ['UNSUPPORTED_MEDIA_TYPE']),
          },
        },
        delete: {
          summary:
            'Reset a counter to 0 (observed-remove: a peer incrementing concurrently keeps its running total)',
          operationId: 'resetCounter',
          parameters: ackParams,
          responses: {
            ...writeResponses(ref('Counter')),
            '404': error('Not joined', ['NAMESPACE_NOT_FOUND']),
          },
        },
      },
      '/v1/ns/{ns}/set/{key}': {
        parameters: [nsParam, keyParam],
        get: {
          summary: 'Members of an add-wins set, sorted',
          operationId: 'getSet',
          responses: {
            '200': { description: 'Members', content: jsonContent(ref('Set')) },
            '404': error('Not joined', ['NAMESPACE_NOT_FOUND']),
          },
        },
        post: {
          summary: 'Add and/or remove members (add wins over a concurrent remove). Joins the namespace.',
          operationId: 'updateSet',
          parameters: ackParams,
          requestBody: {
            required: true,
            content: jsonContent({
              type: 'object',
              properties: {
                add: { oneOf: [{ type: 'string' }, { type: 'array', items: { type: 'string' } }] },
                remove: { oneOf: [{ type: 'string' }, { type: 'array', items: { type: 'string' } }] },
              },
            }),
          },
          responses: {
            ...writeResponses(ref('Set')),
            '400': error('Bad input', ['INVALID_BODY', 'INVALID_JSON', 'JSON_TOO_DEEP', 'INVALID_KEY']),
            '413': error('Body too large', ['PAYLOAD_TOO_LARGE']),
            '415': error('Not JSON', ['UNSUPPORTED_MEDIA_TYPE']),
          },
        },
      },
      '/v1/ns/{ns}/watch': {
        parameters: [nsParam],
        get: {
          summary:
            'Server-Sent Events of changes, resumable. The namespace must be joined (PUT /v1/ns/{ns}).',
          description:
            'Events: `change` (data: WatchEvent; the last event of each commit has an `id`, a resume token), `conflict` (right after a register change that left the key with more than one sibling where it had one or none: the same data), `ready` (after the replay; its id is the token of now), `reset` (the token is older than this peer can replay: re-read everything), `overflow` (the client read too slowly; resume), `shutdown`. Comments (`: ping`) keep idle streams open. With format=compact a change carries the key, the value and only the fields that differ from the common case (see docs/api.md).',
          operationId: 'watch',
          parameters: [
            { name: 'prefix', in: 'query', schema: { type: 'string' } },
            {
              name: 'since',
              in: 'query',
              description:
                'A token from an event id: replay what changed after it first. "now" or absent: live changes only.',
              schema: { type: 'string' },
            },
            {
              name: 'format',
              in: 'query',
              description:
                'full (default): every field of WatchEvent; compact: the key, the value and what differs from the common case.',
              schema: { type: 'string', enum: ['full', 'compact'] },
            },
            {
              name: 'Last-Event-ID',
              in: 'header',
              description:
                'Same as since, and preferred over it (an EventSource sends it when it reconnects).',
              schema: { type: 'string' },
            },
          ],
          responses: {
            '200': {
              description: 'An event stream',
              content: { 'text/event-stream': { schema: ref('WatchEvent') } },
            },
            '400': error('Bad input', ['INVALID_SINCE', 'INVALID_NAMESPACE', 'INVALID_PARAMETER']),
            '401': commonErrors['401'],
            '403': commonErrors['403'],
            '404': error('Namespace not joined (a GET never joins)', ['NAMESPACE_NOT_FOUND']),
          },
        },
      },
    },
    components: {
      securitySchemes: {
        bearer: {
          type: 'http',
          scheme: 'bearer',
          description:
            'Required only when the API listens beyond loopback: the content of api.token in the data dir.',
        },
      },
      schemas: {
        Error: {
          type: 'object',
          required: ['error'],
          properties: {
            error: {
              type: 'object',
              required: ['code', 'message'],
              properties: { code: { type: 'string' }, message: { type: 'string' } },
            },
          },
        },
        Value: {
          type: 'object',
          description:
            'A value inside JSON, as `encoding` says: `json`, the JSON value itself (its stored text, embedded as is: only for a JSON Content-Type whose bytes are valid UTF-8 JSON nested at most 128 deep); `utf8`, a string of the text (text types, and JSON-typed values failing that check); `base64`, the bytes in base64.',
          properties: {
            contentType: { type: 'string' },
            encoding: { type: 'string', enum: ['json', 'utf8', 'base64'] },
            value: {},
          },
        },
        WriteResult: {
          type: 'object',
          properties: {
            namespace: { type: 'string' },
            key: { type: 'string' },
            etag: {
              type: 'string',
              description:
                'Causal token of this write: its dot and what it superseded (send as If-Match to replace this write alone, not a concurrent one)',
            },
            replica: { type: 'string' },
            counter: { type: 'integer' },
            writtenAt: { type: 'string', format: 'date-time' },
            expiresAt: {
              type: 'string',
              format: 'date-time',
              description: 'With ttl: when the value expires on every peer (HLC wall time + ttl)',
            },
            deleted: { type: 'boolean' },
            ack: ref('Ack'),
          },
        },
        PrefixDeleteResult: {
          type: 'object',
          properties: {
            namespace: { type: 'string' },
            prefix: { type: 'string' },
            deleted: { type: 'integer', description: 'How many keys were deleted' },
            ack: ref('Ack'),
          },
        },
        Ack: {
          type: 'object',
          properties: {
            requested: { type: 'integer' },
            replicated: { type: 'integer' },
            reached: { type: 'boolean' },
            timeoutMs: { type: 'integer' },
            written: {
              type: 'boolean',
              description:
                'false: the request wrote nothing (nothing matched), so there was nothing to wait for: reached, replicated 0',
            },
          },
        },
        Siblings: {
          type: 'object',
          properties: {
            namespace: { type: 'string' },
            key: { type: 'string' },
            etag: { type: 'string' },
            winner: { type: 'integer', description: 'Index of the sibling a plain read returns' },
            siblings: {
              type: 'array',
              items: {
                allOf: [
                  ref('Value'),
                  {
                    type: 'object',
                    properties: {
                      replica: { type: 'string' },
                      counter: { type: 'integer' },
                      wall: { type: 'integer' },
                      writtenAt: { type: 'string' },
                    },
                  },
                ],
              },
            },
          },
        },
        ListPage: {
          type: 'object',
          properties: {
            namespace: { type: 'string' },
            prefix: { type: 'string' },
            items: {
              type: 'array',
              items: {
                allOf: [
                  ref('Value'),
                  {
                    type: 'object',
                    properties: {
                      key: { type: 'string' },
                      etag: { type: 'string' },
                      siblings: { type: 'integer' },
                      writtenAt: { type: 'string' },
                    },
                  },
                ],
              },
            },
            cursor: { type: 'string', description: 'Absent on the last page' },
          },
        },
        Counter: {
          type: 'object',
          properties: {
            namespace: { type: 'string' },
            key: { type: 'string' },
            value: { type: 'integer' },
            ack: ref('Ack'),
          },
        },
        Set: {
          type: 'object',
          properties: {
            namespace: { type: 'string' },
            key: { type: 'string' },
            members: { type: 'array', items: { type: 'string' } },
            added: { type: 'array', items: { type: 'string' } },
            removed: { type: 'array', items: { type: 'string' } },
            ack: ref('Ack'),
          },
        },
        Namespace: {
          type: 'object',
          properties: {
            name: { type: 'string' },
            replicaId: { type: 'string' },
            digest: { type: 'string' },
            versionVector: { type: 'object', additionalProperties: { type: 'integer' } },
            entries: { type: 'integer' },
            tombstones: { type: 'integer' },
            sync: {
              type: 'object',
              description:
                'Anti-entropy under way for the namespace (a catch-up in progress); zeros when none',
              properties: {
                sessions: { type: 'integer' },
                waiting: { type: 'integer' },
                entriesReceived: { type: 'integer' },
                entriesMerged: { type: 'integer' },
                bytesReceived: { type: 'integer' },
              },
            },
          },
        },
        Peer: {
          type: 'object',
          properties: {
            peerId: { type: 'string' },
            addresses: { type: 'array', items: { type: 'string' } },
            connected: { type: 'boolean' },
            rttMs: { type: 'number' },
            lastSeen: { type: 'integer' },
            lastSeenAt: { type: 'string' },
          },
        },
        Peers: {
          type: 'object',
          properties: { meshAttached: { type: 'boolean' }, peers: { type: 'array', items: ref('Peer') } },
        },
        Status: {
          type: 'object',
          properties: {
            peerId: { type: 'string' },
            version: { type: 'string' },
            pid: { type: 'integer' },
            startedAt: { type: 'string' },
            uptimeMs: { type: 'integer' },
            api: { type: 'object', properties: { url: { type: 'string' } } },
            dataDir: { type: 'string' },
            topology: {
              type: 'string',
              enum: ['mesh', 'hub', 'hub-client'],
              description:
                'mesh: peer-to-peer; hub: the server of the client-server shape (hearsay hub); hub-client: talks only to its hubs',
            },
            mesh: {
              type: 'object',
              properties: {
                name: { type: 'string' },
                attached: { type: 'boolean' },
                addresses: { type: 'array', items: { type: 'string' } },
                mdns: { type: 'boolean' },
                bootstrap: { type: 'array', items: { type: 'string' } },
                hubs: {
                  type: 'array',
                  items: { type: 'string' },
                  description: 'The hubs a hub client talks to (empty otherwise)',
                },
                private: {
                  type: 'object',
                  properties: { swarmKey: { type: 'boolean' }, allowPeers: { type: 'integer' } },
                },
              },
            },
            peers: {
              type: 'object',
              properties: { connected: { type: 'integer' }, known: { type: 'integer' } },
            },
            namespaces: { type: 'array', items: ref('Namespace') },
            store: {
              type: 'object',
              properties: {
                kind: { type: 'string' },
                sizeBytes: { type: 'integer' },
                path: { type: 'string' },
              },
            },
            process: {
              type: 'object',
              properties: { rssBytes: { type: 'integer' }, heapUsedBytes: { type: 'integer' } },
            },
            watchClients: { type: 'integer' },
          },
        },
        ...insightSchemas,
        WatchEvent: {
          type: 'object',
          description: 'The `data` of a `change` event: the state of the key when the event was produced.',
          properties: {
            namespace: { type: 'string' },
            type: { type: 'string', enum: ['register', 'counter', 'set'] },
            key: { type: 'string' },
            element: { type: 'string', description: 'Set events' },
            op: { type: 'string', enum: ['put', 'delete', 'update', 'add', 'remove'] },
            origin: { type: 'string', enum: ['local', 'remote', 'replay'] },
            contentType: { type: 'string' },
            encoding: { type: 'string', enum: ['json', 'utf8', 'base64'] },
            value: { description: 'Register: the resolved value; counter: the total' },
            etag: { type: 'string' },
            siblings: { type: 'integer' },
          },
        },
      },
    },
  }
}

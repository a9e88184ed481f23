/** The mesh layer's public surface. See docs/mesh.md. */
export * from './connector.ts'
export * from './constants.ts'
export * from './errors.ts'
export * from './identity.ts'
export * from './message-id.ts'
export * from './node.ts'
export * from './peer-exchange.ts'
export * from './topics.ts'

/**
 * gRPC adapters of the edge gateway: the `edgegateway.v1.EdgeGateway` server (with health
 * and reflection), the status mapping, and the downstream `CommandHandler` client.
 * Generated messages live in `@edge-gateway/adapters-grpc/generated`.
 */
export * from './status-mapping.js';
export * from './message-mapping.js';
export * from './trace-context.js';
export * from './edge-gateway-service.js';
export * from './event-encoding.js';
export * from './grpc-server.js';
export * from './reloadable-tls-credentials.js';
export * from './proto-files.js';
export * from './grpc-command-downstream.js';
export * from './downstream-routes.js';

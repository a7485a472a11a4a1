/**
 * gRPC adapters of the edge gateway: the `edgegateway.v1.EdgeGateway` server (with health
 * and reflection), the status mapping, and the downstream `CommandHandler` client.
 * Generated messages live in `@edge-gateway/adapters-grpc/generated`.
 */
export { grpcStatusFor, grpcStatusName, INTERNAL_ERROR_DETAILS, RETRY_AFTER_MS_TRAILER, RETRY_PUSHBACK_MS_TRAILER, toServiceError, type GatewayStatus } from './status-mapping.js';
export { fromCommandRequest, fromCommandResult, fromDownstreamCommand, fromGatewayEvent, fromSubscribeRequest, toCommandRequest, toCommandResult, toDownstreamResult, toGatewayEvent, toSubscribeRequest } from './message-mapping.js';
export { metadataGetter, metadataSetter } from './trace-context.js';
export { createEdgeGatewayService, deadlineOf, type EdgeGatewayServiceOptions, type GrpcMethodName } from './edge-gateway-service.js';
export { edgeGatewayServiceDefinition, encodeGatewayEventOnce, wireGatewayEvent } from './event-encoding.js';
export { bindAddress, DEFAULT_KEEPALIVE_TIME_MS, DEFAULT_MAX_CONNECTION_AGE_GRACE_MS, DEFAULT_KEEPALIVE_TIMEOUT_MS, EDGE_GATEWAY_SERVICE_NAME, RECEIVE_HEADROOM_BYTES, startGrpcServer, type ConnectionGuard, type GrpcServerHandle, type GrpcServerOptions } from './grpc-server.js';
export { ReloadableTlsCredentials, type TlsKeyPair } from './reloadable-tls-credentials.js';
export { routeGrpcJsLogs } from './grpc-js-logs.js';
export { loadReflectionDescriptor, protoDir, ProtoFiles } from './proto-files.js';
export { GrpcCommandDownstream, mapDownstreamError, type GrpcCommandDownstreamOptions } from './grpc-command-downstream.js';
export { createDownstreamRouter, parseDownstreamRoutes, type DownstreamRoute, type DownstreamRouter, type DownstreamRouterOptions } from './downstream-routes.js';

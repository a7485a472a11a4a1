/**
 * TypeScript client for device apps: signs ExecuteCommand / SubscribeEvents requests,
 * verifies gateway signatures and bindings, exposes push events as an async iterable.
 */
export { GatewayBindingError, GatewaySignatureError, GatewayStatusError, RateLimitedError, isServiceError, toClientError } from './errors.js';
export { devicePrivateKey, TrustedGatewayKeys, type GatewayPublicKey } from './trusted-keys.js';
export { DEFAULT_CHANNEL_OPTIONS, GatewayClient, type BackoffOptions, type CommandResponse, type ExecuteOptions, type GatewayClientOptions, type SubscribeOptions, type VerifiedEvent } from './gateway-client.js';
export { ServerStreamReader } from './stream-reader.js';
export { GrpcDeviceTransport, type GrpcDeviceTransportOptions } from './grpc-transport.js';
// The transport-free client and its transport interface, for a transport of your own.
export { DeviceClient, type DeviceTransport } from '@edge-gateway/protocol';
// Canonical signing bytes (SPEC §3), for apps and tests that sign or verify by hand.
export { commandRequestBytes, commandResultBytes, eventBytes, subscribeRequestBytes, keyId } from './signing.js';

/**
 * `@edge-gateway/client-web`: the device client over WebSocket, for browsers (and Node with
 * the `ws` package), on WebCrypto Ed25519. The client is the protocol package's `DeviceClient`
 * (signing, verification, session state, reconnects); this package adds the WebSocket framing.
 *
 * @packageDocumentation
 */
export { WebGatewayClient, type WebExecuteOptions, type WebGatewayClientOptions, type WebSubscribeOptions } from './web-gateway-client.js';
export {
  RETRYABLE_CLOSE_CODES,
  WebSocketDeviceTransport,
  isIdleClose,
  isRetryableEnd,
  type CloseInfo,
  type WebSocketConstructor,
  type WebSocketDeviceTransportOptions,
  type WebSocketLike,
} from './websocket-transport.js';
export {
  DEFAULT_BACKOFF,
  DeviceClient,
  GatewayBindingError,
  GatewaySignatureError,
  GatewayStatusError,
  MAX_CALL_TIMEOUT_MS,
  RateLimitedError,
  StatusCodes,
  importDevicePrivateKey,
  type BackoffOptions,
  type DeviceTransport,
  type VerifiedCommandResult,
  type VerifiedEvent,
} from '@edge-gateway/protocol';

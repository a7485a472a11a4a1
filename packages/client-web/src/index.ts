/**
 * `@edge-gateway/client-web`: the device client over WebSocket, for browsers (and Node with
 * the `ws` package), on WebCrypto Ed25519. Verification and framing come from
 * `@edge-gateway/protocol`.
 *
 * @packageDocumentation
 */
export {
  RETRYABLE_CLOSE_CODES,
  WebGatewayClient,
  isIdleClose,
  isRetryableEnd,
  type CloseInfo,
  type WebExecuteOptions,
  type WebGatewayClientOptions,
  type WebSocketConstructor,
  type WebSocketLike,
  type WebSubscribeOptions,
} from './web-gateway-client.js';
export {
  DEFAULT_BACKOFF,
  GatewayBindingError,
  GatewaySignatureError,
  GatewayStatusError,
  MAX_CALL_TIMEOUT_MS,
  RateLimitedError,
  StatusCodes,
  importDevicePrivateKey,
  type BackoffOptions,
  type VerifiedCommandResult,
  type VerifiedEvent,
} from '@edge-gateway/protocol';

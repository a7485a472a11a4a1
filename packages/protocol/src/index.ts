/**
 * `@edge-gateway/protocol`: everything about the EdgeGateway protocol that is not a transport
 * or a server — the protobuf messages, canonical signing bytes (SPEC §3), the `ServerTime`
 * codec, the Redis field builders (SPEC §5), WebSocket framing (SPEC §2.2) and device-side
 * signing and verification on WebCrypto. No dependencies; runs in browsers and in Node 20+.
 *
 * @packageDocumentation
 */

// Messages (edgegateway.v1)
export {
  decodeExecuteCommandRequest,
  decodeExecuteCommandResponse,
  decodeGatewayEvent,
  decodeServerTime,
  decodeSubscribeEventsRequest,
  encodeExecuteCommandRequest,
  encodeExecuteCommandResponse,
  encodeGatewayEvent,
  encodeServerTime,
  encodeSubscribeEventsRequest,
  type ExecuteCommandRequest,
  type ExecuteCommandResponse,
  type GatewayEvent,
  type ServerTime,
  type SubscribeEventsRequest,
} from './messages.js';
export { WireFormatError } from './protobuf-wire.js';

// Canonical signing bytes (SPEC §3)
export {
  SigningContexts,
  canonical,
  commandRequestBytes,
  commandRequestBytesAsync,
  commandResultBytes,
  commandResultBytesAsync,
  createSyncSigning,
  eventBytes,
  eventBytesAsync,
  i64,
  sha256,
  sha256Async,
  subscribeRequestBytes,
  type SyncSha256,
  type SyncSigning,
} from './canonical.js';

// Statuses (SPEC §4)
export {
  DEFAULT_RETRY_AFTER_MS,
  GatewayStatusError,
  RATE_LIMITED_MESSAGE,
  RateLimitedError,
  StatusCodes,
  statusError,
  statusName,
  httpStatusFor,
  type StatusCode,
} from './status-codes.js';
export { withRateLimitRetries, type RateLimitRetryOptions } from './rate-limit-retry.js';

// Device side: keys, signing, verification
export {
  GatewaySignatureError,
  TrustedKeys,
  importDevicePrivateKey,
  keyId,
  keyIdAsync,
  signCommandRequest,
  signEd25519,
  signSubscribeRequest,
  type GatewayPublicKey,
} from './device-crypto.js';
export {
  GatewayBindingError,
  GatewayEventTypes,
  StreamVerifier,
  verifyCommandResult,
  type VerifiedCommandResult,
  type VerifiedEvent,
} from './device-verification.js';
export { DeviceSessionState, type DeviceSessionStateOptions } from './device-session-state.js';
export {
  DeviceClient,
  isRetryableStatus,
  type DeviceClientOptions,
  type DeviceExecuteOptions,
  type DeviceSigner,
  type DeviceSubscribeOptions,
} from './device-client.js';
export type { DeviceTransport, ReceivedEvent, TransportCallOptions, TransportStreamOptions } from './device-transport.js';
export { DEFAULT_BACKOFF, reconnectingStream, type BackoffOptions, type ReconnectingStreamOptions } from './reconnect.js';

// Redis field builders (SPEC §5)
export { clientEventFields, sessionRecordFields, type ClientEventInput, type SessionRecordInput } from './fields.js';
export { base64DecodedLength, fromBase64, isStandardBase64, toBase64, toHex } from './base64.js';

// WebSocket framing (SPEC §2.2)
export {
  CloseCodes,
  FRAME_HEADER_BYTES,
  FrameTypes,
  MAX_CALL_TIMEOUT_MS,
  RETRY_AFTER_TRAILER,
  WEBSOCKET_PATH,
  WEBSOCKET_SUBPROTOCOL,
  WEBSOCKET_SUBPROTOCOL_TRAILERS,
  decodeAnyStatus,
  decodeFrame,
  decodeStatus,
  decodeStatusWithTrailers,
  encodeStatusWithTrailers,
  decodeTimedExecute,
  encodeFrame,
  encodeStatus,
  encodeTimedExecute,
  type CallStatus,
  type Frame,
  type FrameType,
  type TimedExecute,
} from './websocket-framing.js';

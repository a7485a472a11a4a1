import { fromUtf8, utf8, WireFormatError } from './protobuf-wire.js';

/**
 * The EdgeGateway WebSocket protocol (SPEC §2.2). One connection carries any number of
 * concurrent calls, each named by a client-chosen 32-bit call id. Every frame is one binary
 * WebSocket message: a 1-byte frame type, the call id (uint32 big-endian), then the body,
 * which is the same protobuf message as on gRPC (so the signed bytes are identical).
 */
export const WEBSOCKET_SUBPROTOCOL = 'edgegateway.v1';

/**
 * `edgegateway.v1` plus status frames with trailers (`0x84`). A client that can read them
 * offers this before {@link WEBSOCKET_SUBPROTOCOL}; a gateway that knows it picks it, an older
 * one picks `edgegateway.v1`. On an `edgegateway.v1` connection the gateway never sends `0x84`,
 * so old clients keep reading every status as code and message.
 */
export const WEBSOCKET_SUBPROTOCOL_TRAILERS = 'edgegateway.v1.1';

/** The path the gateway accepts WebSocket upgrades on. */
export const WEBSOCKET_PATH = '/v1/ws';

/** Frame types; client → gateway below 0x80, gateway → client from 0x80. */
export const FrameTypes = {
  /** Body `ExecuteCommandRequest`; answered by one `result` or one `status` frame. */
  execute: 0x01,
  /** Body `SubscribeEventsRequest`; answered by `event` frames, ended by one `status` frame. */
  subscribe: 0x02,
  /** Empty body: the client gives up the call (no answer follows). */
  cancel: 0x03,
  /**
   * A command with a per-call timeout: 4 bytes timeout in ms (uint32 big-endian, 1 to
   * {@link MAX_CALL_TIMEOUT_MS}), then `ExecuteCommandRequest`; answered like `execute`. The
   * gateway's deadline is its arrival plus the timeout (relative, so no clock sync is needed).
   */
  executeWithTimeout: 0x04,
  /** Body `ExecuteCommandResponse`: the call succeeded. */
  result: 0x81,
  /** Body `GatewayEvent`: one push event of the stream. */
  event: 0x82,
  /** Body: 1-byte status code (SPEC §4, gRPC numbering), then the UTF-8 message. Ends the call. */
  status: 0x83,
  /**
   * Only on `edgegateway.v1.1` connections: a status with trailers (see
   * {@link encodeStatusWithTrailers}), e.g. `retry-after-ms` of a rate-limited call. Ends the call.
   */
  statusWithTrailers: 0x84,
} as const;

export type FrameType = (typeof FrameTypes)[keyof typeof FrameTypes];

const KNOWN = new Set<number>(Object.values(FrameTypes));

/** WebSocket close codes the gateway uses (RFC 6455 §7.4.1). */
export const CloseCodes = {
  /** The client closed, the gateway after answering everything, or an idle connection (reason `idle`). */
  normal: 1000,
  /** Gateway shutdown: every stream got its `UNAVAILABLE` status frame first. */
  goingAway: 1001,
  /** A malformed frame: too short, unknown type, a call id already in use. */
  protocolError: 1002,
  /** A text frame (the protocol is binary only). */
  unsupportedData: 1003,
  /** Too many calls in flight on one connection, or no frame after the upgrade (reason `no frame received`). */
  policyViolation: 1008,
  /** A frame larger than the maximum frame size. */
  messageTooBig: 1009,
  /** An unexpected gateway error. */
  internalError: 1011,
} as const;

/** Bytes before the body. */
export const FRAME_HEADER_BYTES = 5;

/** The largest per-call timeout of an `executeWithTimeout` frame: 5 minutes. */
export const MAX_CALL_TIMEOUT_MS = 300_000;

/** One decoded frame. */
export interface Frame {
  readonly type: FrameType;
  readonly callId: number;
  readonly body: Uint8Array;
}

/** Encodes one frame. */
export function encodeFrame(type: FrameType, callId: number, body: Uint8Array = new Uint8Array(0)): Uint8Array {
  const out = new Uint8Array(FRAME_HEADER_BYTES + body.length);
  const id = callId >>> 0;
  // The call id big-endian, byte by byte (a DataView per frame costs more than the header).
  out[0] = type;
  out[1] = id >>> 24;
  out[2] = (id >>> 16) & 0xff;
  out[3] = (id >>> 8) & 0xff;
  out[4] = id & 0xff;
  out.set(body, FRAME_HEADER_BYTES);
  return out;
}

/** Decodes one frame; throws `WireFormatError` for a short frame or an unknown type. */
export function decodeFrame(data: Uint8Array): Frame {
  if (data.length < FRAME_HEADER_BYTES) throw new WireFormatError('frame shorter than its header');
  const type = data[0] as number;
  if (!KNOWN.has(type)) throw new WireFormatError(`unknown frame type ${type}`);
  const callId = new DataView(data.buffer, data.byteOffset, data.byteLength).getUint32(1);
  return { type: type as FrameType, callId, body: data.subarray(FRAME_HEADER_BYTES) };
}

/** A call's terminal status. */
export interface CallStatus {
  readonly code: number;
  readonly details: string;
  /**
   * A rate-limited call (`8` `rate limit exceeded`): whole ms after which the same request
   * would be admitted. Sent as the trailer `retry-after-ms` (gRPC: the trailer of that name).
   */
  readonly retryAfterMs?: number;
}

/** The trailer name of {@link CallStatus.retryAfterMs}, the same as the gRPC trailer. */
export const RETRY_AFTER_TRAILER = 'retry-after-ms';

/** Body of a `status` frame. */
export function encodeStatus(status: CallStatus): Uint8Array {
  const details = utf8(status.details);
  const out = new Uint8Array(1 + details.length);
  out[0] = status.code;
  out.set(details, 1);
  return out;
}

/** Decodes the body of a `status` frame. */
export function decodeStatus(body: Uint8Array): CallStatus {
  if (body.length < 1) throw new WireFormatError('status frame without a code');
  return { code: body[0] as number, details: fromUtf8(body.subarray(1)) };
}

/**
 * Body of a `statusWithTrailers` frame: 1 byte code, 2 bytes message length (big-endian),
 * the UTF-8 message, then trailers until the end of the body, each a 1-byte name length, the
 * ASCII name, a 2-byte value length and the UTF-8 value. Readers skip trailers they do not know.
 * The only trailer today: `retry-after-ms` (decimal). Messages longer than 65535 bytes are cut.
 */
export function encodeStatusWithTrailers(status: CallStatus): Uint8Array {
  const details = utf8(status.details).subarray(0, 0xffff);
  const trailers: Array<[Uint8Array, Uint8Array]> = [];
  if (status.retryAfterMs !== undefined) trailers.push([utf8(RETRY_AFTER_TRAILER), utf8(String(Math.max(0, Math.ceil(status.retryAfterMs))))]);
  let size = 3 + details.length;
  for (const [name, value] of trailers) size += 3 + name.length + value.length;
  const out = new Uint8Array(size);
  const view = new DataView(out.buffer);
  out[0] = status.code;
  view.setUint16(1, details.length);
  out.set(details, 3);
  let at = 3 + details.length;
  for (const [name, value] of trailers) {
    out[at] = name.length;
    out.set(name, at + 1);
    view.setUint16(at + 1 + name.length, value.length);
    out.set(value, at + 3 + name.length);
    at += 3 + name.length + value.length;
  }
  return out;
}

/** Decodes the body of a `statusWithTrailers` frame; throws `WireFormatError` for a truncated one. */
export function decodeStatusWithTrailers(body: Uint8Array): CallStatus {
  const view = new DataView(body.buffer, body.byteOffset, body.byteLength);
  if (body.length < 3) throw new WireFormatError('status frame without a code and message length');
  const length = view.getUint16(1);
  if (body.length < 3 + length) throw new WireFormatError('status message longer than its frame');
  const status: { code: number; details: string; retryAfterMs?: number } = { code: body[0] as number, details: fromUtf8(body.subarray(3, 3 + length)) };
  let at = 3 + length;
  while (at < body.length) {
    const nameLength = body[at] as number;
    if (at + 3 + nameLength > body.length) throw new WireFormatError('truncated status trailer');
    const name = fromUtf8(body.subarray(at + 1, at + 1 + nameLength));
    const valueLength = view.getUint16(at + 1 + nameLength);
    const valueStart = at + 3 + nameLength;
    if (valueStart + valueLength > body.length) throw new WireFormatError('truncated status trailer');
    if (name === RETRY_AFTER_TRAILER) {
      const value = fromUtf8(body.subarray(valueStart, valueStart + valueLength));
      if (/^\d{1,10}$/.test(value)) status.retryAfterMs = Number(value);
    }
    at = valueStart + valueLength;
  }
  return status;
}

/** The status of a `status` or `statusWithTrailers` frame body. */
export function decodeAnyStatus(type: number, body: Uint8Array): CallStatus {
  return type === FrameTypes.statusWithTrailers ? decodeStatusWithTrailers(body) : decodeStatus(body);
}

/** A decoded `executeWithTimeout` body. */
export interface TimedExecute {
  /** As sent; the receiver checks it is 1 to {@link MAX_CALL_TIMEOUT_MS}. */
  readonly timeoutMs: number;
  /** The `ExecuteCommandRequest` bytes. */
  readonly request: Uint8Array;
}

/** Body of an `executeWithTimeout` frame. */
export function encodeTimedExecute(timeoutMs: number, request: Uint8Array): Uint8Array {
  const out = new Uint8Array(4 + request.length);
  new DataView(out.buffer).setUint32(0, timeoutMs >>> 0);
  out.set(request, 4);
  return out;
}

/** Decodes the body of an `executeWithTimeout` frame; throws `WireFormatError` when it has no timeout. */
export function decodeTimedExecute(body: Uint8Array): TimedExecute {
  if (body.length < 4) throw new WireFormatError('execute frame without a timeout');
  return { timeoutMs: new DataView(body.buffer, body.byteOffset, body.byteLength).getUint32(0), request: body.subarray(4) };
}

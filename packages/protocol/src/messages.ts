import { encodeMessage, FieldKinds, FieldReader, type MessageSchema } from './protobuf-wire.js';

const { string, bytes, int64 } = FieldKinds;

// The messages of `edgegateway.v1` (proto/edgegateway/v1/edge_gateway.proto in
// @edge-gateway/adapters-grpc), with the same field names as the generated gRPC code, so a
// message is the same bytes and the same signature on every transport.

/** `edgegateway.v1.ExecuteCommandRequest`. */
export interface ExecuteCommandRequest {
  readonly deviceSessionId: string;
  readonly messageType: string;
  readonly requestId: string;
  readonly timestampMs: number;
  readonly payload: Uint8Array;
  readonly signature: Uint8Array;
}

/** `edgegateway.v1.ExecuteCommandResponse`. */
export interface ExecuteCommandResponse {
  readonly requestId: string;
  readonly resultCode: string;
  readonly payload: Uint8Array;
  readonly timestampMs: number;
  readonly signerKeyId: string;
  readonly signature: Uint8Array;
}

/** `edgegateway.v1.SubscribeEventsRequest`. */
export interface SubscribeEventsRequest {
  readonly deviceSessionId: string;
  readonly requestId: string;
  readonly timestampMs: number;
  readonly resumeAfterEventId: string;
  readonly signature: Uint8Array;
}

/** `edgegateway.v1.GatewayEvent`. */
export interface GatewayEvent {
  readonly eventId: string;
  readonly eventType: string;
  readonly userId: string;
  readonly deviceSessionId: string;
  readonly timestampMs: number;
  readonly payload: Uint8Array;
  readonly signerKeyId: string;
  readonly signature: Uint8Array;
}

/** `edgegateway.v1.ServerTime`: the payload of the `gateway.server_time` bootstrap event. */
export interface ServerTime {
  readonly serverTimeMs: number;
  readonly requestId: string;
}

const EXECUTE_COMMAND_REQUEST_SCHEMA: MessageSchema<ExecuteCommandRequest> = [
  [1, string, 'deviceSessionId'],
  [2, string, 'messageType'],
  [3, string, 'requestId'],
  [4, int64, 'timestampMs'],
  [5, bytes, 'payload'],
  [6, bytes, 'signature'],
];

export function encodeExecuteCommandRequest(m: ExecuteCommandRequest): Uint8Array {
  return encodeMessage(EXECUTE_COMMAND_REQUEST_SCHEMA, m);
}

export function decodeExecuteCommandRequest(data: Uint8Array): ExecuteCommandRequest {
  const r = new FieldReader(data);
  return {
    deviceSessionId: r.string(1),
    messageType: r.string(2),
    requestId: r.string(3),
    timestampMs: r.int64(4),
    payload: r.bytes(5),
    signature: r.bytes(6),
  };
}

const EXECUTE_COMMAND_RESPONSE_SCHEMA: MessageSchema<ExecuteCommandResponse> = [
  [1, string, 'requestId'],
  [2, string, 'resultCode'],
  [3, bytes, 'payload'],
  [4, int64, 'timestampMs'],
  [5, string, 'signerKeyId'],
  [6, bytes, 'signature'],
];

export function encodeExecuteCommandResponse(m: ExecuteCommandResponse): Uint8Array {
  return encodeMessage(EXECUTE_COMMAND_RESPONSE_SCHEMA, m);
}

export function decodeExecuteCommandResponse(data: Uint8Array): ExecuteCommandResponse {
  const r = new FieldReader(data);
  return {
    requestId: r.string(1),
    resultCode: r.string(2),
    payload: r.bytes(3),
    timestampMs: r.int64(4),
    signerKeyId: r.string(5),
    signature: r.bytes(6),
  };
}

const SUBSCRIBE_EVENTS_REQUEST_SCHEMA: MessageSchema<SubscribeEventsRequest> = [
  [1, string, 'deviceSessionId'],
  [2, string, 'requestId'],
  [3, int64, 'timestampMs'],
  [4, string, 'resumeAfterEventId'],
  [5, bytes, 'signature'],
];

export function encodeSubscribeEventsRequest(m: SubscribeEventsRequest): Uint8Array {
  return encodeMessage(SUBSCRIBE_EVENTS_REQUEST_SCHEMA, m);
}

export function decodeSubscribeEventsRequest(data: Uint8Array): SubscribeEventsRequest {
  const r = new FieldReader(data);
  return {
    deviceSessionId: r.string(1),
    requestId: r.string(2),
    timestampMs: r.int64(3),
    resumeAfterEventId: r.string(4),
    signature: r.bytes(5),
  };
}

const GATEWAY_EVENT_SCHEMA: MessageSchema<GatewayEvent> = [
  [1, string, 'eventId'],
  [2, string, 'eventType'],
  [3, string, 'userId'],
  [4, string, 'deviceSessionId'],
  [5, int64, 'timestampMs'],
  [6, bytes, 'payload'],
  [7, string, 'signerKeyId'],
  [8, bytes, 'signature'],
];

export function encodeGatewayEvent(m: GatewayEvent): Uint8Array {
  return encodeMessage(GATEWAY_EVENT_SCHEMA, m);
}

export function decodeGatewayEvent(data: Uint8Array): GatewayEvent {
  const r = new FieldReader(data);
  return {
    eventId: r.string(1),
    eventType: r.string(2),
    userId: r.string(3),
    deviceSessionId: r.string(4),
    timestampMs: r.int64(5),
    payload: r.bytes(6),
    signerKeyId: r.string(7),
    signature: r.bytes(8),
  };
}

const SERVER_TIME_SCHEMA: MessageSchema<ServerTime> = [
  [1, int64, 'serverTimeMs'],
  [2, string, 'requestId'],
];

/** Encodes the `ServerTime` payload of the `gateway.server_time` bootstrap event. */
export function encodeServerTime(serverTimeMs: number, requestId: string): Uint8Array {
  return encodeMessage(SERVER_TIME_SCHEMA, { serverTimeMs, requestId });
}

/** Decodes a `ServerTime` payload; throws `WireFormatError` for anything else. */
export function decodeServerTime(data: Uint8Array): ServerTime {
  const r = new FieldReader(data);
  return { serverTimeMs: r.int64(1), requestId: r.string(2) };
}

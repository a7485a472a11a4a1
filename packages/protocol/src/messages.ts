import { FieldReader, ProtoWriter } from './protobuf-wire.js';

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

export function encodeExecuteCommandRequest(m: ExecuteCommandRequest): Uint8Array {
  return new ProtoWriter()
    .string(1, m.deviceSessionId)
    .string(2, m.messageType)
    .string(3, m.requestId)
    .int64(4, m.timestampMs)
    .bytes(5, m.payload)
    .bytes(6, m.signature)
    .finish();
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

export function encodeExecuteCommandResponse(m: ExecuteCommandResponse): Uint8Array {
  return new ProtoWriter()
    .string(1, m.requestId)
    .string(2, m.resultCode)
    .bytes(3, m.payload)
    .int64(4, m.timestampMs)
    .string(5, m.signerKeyId)
    .bytes(6, m.signature)
    .finish();
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

export function encodeSubscribeEventsRequest(m: SubscribeEventsRequest): Uint8Array {
  return new ProtoWriter()
    .string(1, m.deviceSessionId)
    .string(2, m.requestId)
    .int64(3, m.timestampMs)
    .string(4, m.resumeAfterEventId)
    .bytes(5, m.signature)
    .finish();
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

export function encodeGatewayEvent(m: GatewayEvent): Uint8Array {
  return new ProtoWriter()
    .string(1, m.eventId)
    .string(2, m.eventType)
    .string(3, m.userId)
    .string(4, m.deviceSessionId)
    .int64(5, m.timestampMs)
    .bytes(6, m.payload)
    .string(7, m.signerKeyId)
    .bytes(8, m.signature)
    .finish();
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

/** Encodes the `ServerTime` payload of the `gateway.server_time` bootstrap event. */
export function encodeServerTime(serverTimeMs: number, requestId: string): Uint8Array {
  return new ProtoWriter().int64(1, serverTimeMs).string(2, requestId).finish();
}

/** Decodes a `ServerTime` payload; throws `WireFormatError` for anything else. */
export function decodeServerTime(data: Uint8Array): ServerTime {
  const r = new FieldReader(data);
  return { serverTimeMs: r.int64(1), requestId: r.string(2) };
}

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  ExecuteCommandRequest as GrpcExecuteCommandRequest,
  ExecuteCommandResponse as GrpcExecuteCommandResponse,
  GatewayEvent as GrpcGatewayEvent,
  ServerTime as GrpcServerTime,
  SubscribeEventsRequest as GrpcSubscribeEventsRequest,
} from '@edge-gateway/adapters-grpc/generated';
import {
  decodeGatewayEvent,
  encodeExecuteCommandRequest,
  encodeExecuteCommandResponse,
  encodeFrame,
  encodeGatewayEvent,
  encodeServerTime,
  encodeSubscribeEventsRequest,
  FrameTypes,
  type ExecuteCommandRequest,
  type ExecuteCommandResponse,
  type GatewayEvent,
  type SubscribeEventsRequest,
} from '@edge-gateway/protocol';
import { LegacyProtoWriter } from './legacy-proto-writer.js';

// The sized writer (size the message, then write into one Uint8Array) must give the bytes the
// previous writer and ts-proto (the gRPC adapter's generated code) give, for every message.

const legacy = {
  request: (m: ExecuteCommandRequest) =>
    new LegacyProtoWriter().string(1, m.deviceSessionId).string(2, m.messageType).string(3, m.requestId).int64(4, m.timestampMs).bytes(5, m.payload).bytes(6, m.signature).finish(),
  response: (m: ExecuteCommandResponse) =>
    new LegacyProtoWriter().string(1, m.requestId).string(2, m.resultCode).bytes(3, m.payload).int64(4, m.timestampMs).string(5, m.signerKeyId).bytes(6, m.signature).finish(),
  subscribe: (m: SubscribeEventsRequest) =>
    new LegacyProtoWriter().string(1, m.deviceSessionId).string(2, m.requestId).int64(3, m.timestampMs).string(4, m.resumeAfterEventId).bytes(5, m.signature).finish(),
  event: (m: GatewayEvent) =>
    new LegacyProtoWriter()
      .string(1, m.eventId)
      .string(2, m.eventType)
      .string(3, m.userId)
      .string(4, m.deviceSessionId)
      .int64(5, m.timestampMs)
      .bytes(6, m.payload)
      .string(7, m.signerKeyId)
      .bytes(8, m.signature)
      .finish(),
  serverTime: (serverTimeMs: number, requestId: string) => new LegacyProtoWriter().int64(1, serverTimeMs).string(2, requestId).finish(),
};

// ts-proto declares bytes fields as Buffer.
const buffers = <T extends object>(m: T): { [K in keyof T]: T[K] extends Uint8Array ? Buffer : T[K] } =>
  Object.fromEntries(Object.entries(m).map(([k, v]) => [k, v instanceof Uint8Array ? Buffer.from(v) : v])) as { [K in keyof T]: T[K] extends Uint8Array ? Buffer : T[K] };
const tsProto = (writer: { finish(): Uint8Array }): Uint8Array => new Uint8Array(writer.finish());
// Byte equality without an element-by-element deep compare (slow for kilobytes); the hex on a mismatch.
const same = (actual: Uint8Array, expected: Uint8Array): void => {
  if (!Buffer.from(actual.buffer, actual.byteOffset, actual.length).equals(Buffer.from(expected.buffer, expected.byteOffset, expected.length))) {
    expect(Buffer.from(actual).toString('hex')).toBe(Buffer.from(expected).toString('hex'));
  }
};

// Strings: ASCII, any code point (pairs), lone surrogates (TextEncoder writes U+FFFD), long ones.
const anyUnit = fc.integer({ min: 0, max: 0xffff }).map((c) => String.fromCharCode(c));
const text = fc.oneof(
  fc.constant(''),
  fc.string({ maxLength: 40 }),
  fc.string({ unit: 'binary', maxLength: 40 }),
  fc.string({ unit: anyUnit, maxLength: 40 }),
  fc.string({ unit: 'binary', minLength: 60, maxLength: 400 }),
  fc.string({ minLength: 60, maxLength: 300 }),
);
const SAFE_EDGES = [0, 1, -1, 127, 128, 16_383, 16_384, 2 ** 31 - 1, 2 ** 31, 2 ** 32 - 1, 2 ** 32, 2 ** 35, 1_764_201_600_123, Number.MAX_SAFE_INTEGER, Number.MIN_SAFE_INTEGER, -(2 ** 31)];
const int64 = fc.oneof(fc.constantFrom(...SAFE_EDGES), fc.integer(), fc.maxSafeInteger());
const payload = fc.oneof(
  fc.constant(new Uint8Array(0)),
  fc.uint8Array({ maxLength: 300 }),
  fc.integer({ min: 1000, max: 9000 }).map((n) => Uint8Array.from({ length: n }, (_, i) => (i * 131) & 0xff)),
);
const signature = fc.oneof(fc.constant(new Uint8Array(0)), fc.uint8Array({ minLength: 64, maxLength: 64 }));
const event = fc.record({ eventId: text, eventType: text, userId: text, deviceSessionId: text, timestampMs: int64, payload, signerKeyId: text, signature });

describe('sized protobuf writer: the same bytes as the previous writer and ts-proto', () => {
  it('GatewayEvent, for random events (empty fields, unicode, lone surrogates, large payloads, int64 edges)', () => {
    fc.assert(
      fc.property(event, (e) => {
        const bytes = encodeGatewayEvent(e);
        same(bytes, legacy.event(e));
        same(bytes, tsProto(GrpcGatewayEvent.encode(buffers(e))));
        // Exactly sized: no slack at the end of the buffer.
        expect(bytes.buffer.byteLength).toBe(bytes.length);
      }),
      { numRuns: 500 },
    );
  });

  it('ExecuteCommandRequest / Response, SubscribeEventsRequest, ServerTime, for random messages', () => {
    fc.assert(
      fc.property(event, text, text, (e, a, b) => {
        const request = { deviceSessionId: e.deviceSessionId, messageType: a, requestId: b, timestampMs: e.timestampMs, payload: e.payload, signature: e.signature };
        same(encodeExecuteCommandRequest(request), legacy.request(request));
        same(encodeExecuteCommandRequest(request), tsProto(GrpcExecuteCommandRequest.encode(buffers(request))));
        const response = { requestId: b, resultCode: a, payload: e.payload, timestampMs: e.timestampMs, signerKeyId: e.signerKeyId, signature: e.signature };
        same(encodeExecuteCommandResponse(response), legacy.response(response));
        same(encodeExecuteCommandResponse(response), tsProto(GrpcExecuteCommandResponse.encode(buffers(response))));
        const subscribe = { deviceSessionId: e.deviceSessionId, requestId: b, timestampMs: e.timestampMs, resumeAfterEventId: e.eventId, signature: e.signature };
        same(encodeSubscribeEventsRequest(subscribe), legacy.subscribe(subscribe));
        same(encodeSubscribeEventsRequest(subscribe), tsProto(GrpcSubscribeEventsRequest.encode(buffers(subscribe))));
        same(encodeServerTime(e.timestampMs, a), legacy.serverTime(e.timestampMs, a));
        same(encodeServerTime(e.timestampMs, a), tsProto(GrpcServerTime.encode({ serverTimeMs: e.timestampMs, requestId: a })));
      }),
      { numRuns: 300 },
    );
  });

  it('int64 beyond ±2^53 and at ±2^63: the previous writer’s two’s complement varints', () => {
    for (const ts of [2 ** 53, 2 ** 60, 2 ** 63, -(2 ** 53), -(2 ** 63), 2 ** 64 - 2 ** 12]) {
      const e = { eventId: '1-0', eventType: 't', userId: 'u', deviceSessionId: 'ds', timestampMs: ts, payload: new Uint8Array([1]), signerKeyId: 'k', signature: new Uint8Array(64) };
      same(encodeGatewayEvent(e), legacy.event(e));
    }
    // A negative int64 is 10 bytes (tag 0x28 then 9 bytes of 0xff and 0x01 for -1).
    expect(Array.from(encodeServerTime(-1, ''))).toEqual([0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]);
    // As before, a timestamp that is not an integer is refused rather than truncated.
    expect(() => encodeServerTime(1.5, '')).toThrow(RangeError);
    expect(() => legacy.serverTime(1.5, '')).toThrow(RangeError);
  });

  it('fixed examples: an all-default message is empty, a 256-byte push event round-trips', () => {
    expect(encodeGatewayEvent({ eventId: '', eventType: '', userId: '', deviceSessionId: '', timestampMs: 0, payload: new Uint8Array(0), signerKeyId: '', signature: new Uint8Array(0) })).toEqual(new Uint8Array(0));
    const e = {
      eventId: '1764201600123-0',
      eventType: 'chat.message',
      userId: 'user-ü-😀',
      deviceSessionId: 'ds-1',
      timestampMs: 1_764_201_600_123,
      payload: Uint8Array.from({ length: 256 }, (_, i) => i),
      signerKeyId: '0011223344556677',
      signature: new Uint8Array(64).fill(7),
    };
    const bytes = encodeGatewayEvent(e);
    same(bytes, legacy.event(e));
    expect(decodeGatewayEvent(bytes)).toEqual(e);
  });

  it('frames: the call id big-endian after the type, for the whole uint32 range', () => {
    fc.assert(
      fc.property(fc.integer({ min: -(2 ** 32), max: 2 ** 33 }), fc.uint8Array({ maxLength: 20 }), (callId, body) => {
        const frame = encodeFrame(FrameTypes.event, callId, body);
        const expected = new Uint8Array(5 + body.length);
        expected[0] = FrameTypes.event;
        new DataView(expected.buffer).setUint32(1, callId >>> 0);
        expected.set(body, 5);
        expect(frame).toEqual(expected);
      }),
    );
  });
});

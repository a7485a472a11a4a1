import { readFileSync } from 'node:fs';
import { createHash, generateKeyPairSync, sign } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  ExecuteCommandRequest as GrpcExecuteCommandRequest,
  ExecuteCommandResponse as GrpcExecuteCommandResponse,
  GatewayEvent as GrpcGatewayEvent,
  ServerTime as GrpcServerTime,
  SubscribeEventsRequest as GrpcSubscribeEventsRequest,
} from '@edge-gateway/adapters-grpc/generated';
import { encodeServerTime as coreEncodeServerTime, eventBytes as coreEventBytes, keyId as coreKeyId, parseClientEvent, parseSessionFields, rawPublicKey } from '@edge-gateway/core';
import * as protocol from '@edge-gateway/protocol';
import {
  GatewayBindingError,
  GatewaySignatureError,
  StreamVerifier,
  TrustedKeys,
  WireFormatError,
  canonical,
  clientEventFields,
  commandRequestBytesAsync,
  commandResultBytesAsync,
  createSyncSigning,
  decodeExecuteCommandRequest,
  decodeExecuteCommandResponse,
  decodeFrame,
  decodeGatewayEvent,
  decodeServerTime,
  decodeStatus,
  decodeSubscribeEventsRequest,
  decodeTimedExecute,
  encodeExecuteCommandRequest,
  encodeExecuteCommandResponse,
  encodeFrame,
  encodeGatewayEvent,
  encodeServerTime,
  encodeStatus,
  encodeSubscribeEventsRequest,
  encodeTimedExecute,
  eventBytesAsync,
  keyIdAsync,
  sessionRecordFields,
  subscribeRequestBytes,
  toHex,
  verifyCommandResult,
  FrameTypes,
  MAX_CALL_TIMEOUT_MS,
} from '@edge-gateway/protocol';

const vectors = JSON.parse(readFileSync(new URL('../../core/test/vectors/signing.json', import.meta.url), 'utf8')) as {
  keys: Record<'client' | 'gateway', { public_key_base64: string; key_id: string }>;
  cases: Array<{ name: string; signer: 'client' | 'gateway'; fields: Record<string, string | number>; canonical_hex: string; signature_hex: string }>;
};
const hex = (h: string): Uint8Array => new Uint8Array(Buffer.from(h, 'hex'));

describe('canonical bytes (WebCrypto) match the signing vectors of SPEC §3', () => {
  it.each(vectors.cases.map((c) => [c.name, c] as const))('%s', async (_name, c) => {
    const f = c.fields;
    const payload = hex(String(f['payload_hex'] ?? ''));
    const ts = Number(f['timestamp_ms']);
    let bytes: Uint8Array;
    if ('message_type' in f) {
      bytes = await commandRequestBytesAsync({ deviceSessionId: String(f['device_session_id']), messageType: String(f['message_type']), requestId: String(f['request_id']), timestampMs: ts, payload });
    } else if ('resume_after_event_id' in f) {
      bytes = subscribeRequestBytes({ deviceSessionId: String(f['device_session_id']), requestId: String(f['request_id']), timestampMs: ts, resumeAfterEventId: String(f['resume_after_event_id']) });
    } else if ('result_code' in f) {
      bytes = await commandResultBytesAsync({ requestId: String(f['request_id']), resultCode: String(f['result_code']), timestampMs: ts, payload });
    } else {
      bytes = await eventBytesAsync({ eventId: String(f['event_id']), eventType: String(f['event_type']), userId: String(f['user_id']), deviceSessionId: String(f['device_session_id']), timestampMs: ts, payload });
    }
    expect(toHex(bytes)).toBe(c.canonical_hex);
    // And the vector's signature verifies through WebCrypto with the vector's key.
    const key = vectors.keys[c.signer];
    const trusted = await TrustedKeys.create([key.public_key_base64]);
    expect(trusted.ids).toEqual([key.key_id]);
    await expect(trusted.verify('vector', key.key_id, bytes, hex(c.signature_hex))).resolves.toBeUndefined();
    await expect(trusted.verify('vector', key.key_id, canonical(['x']), hex(c.signature_hex))).rejects.toThrow(GatewaySignatureError);
  });
});

describe('one name, one meaning across packages', () => {
  it('the WebCrypto helpers carry the Async suffix; the deprecated unsuffixed names are the same functions', async () => {
    expect(protocol.keyId).toBe(protocol.keyIdAsync);
    expect(protocol.sha256).toBe(protocol.sha256Async);
    expect(protocol.eventBytes).toBe(protocol.eventBytesAsync);
    expect(protocol.commandRequestBytes).toBe(protocol.commandRequestBytesAsync);
    expect(protocol.commandResultBytes).toBe(protocol.commandResultBytesAsync);
    const raw = rawPublicKey(generateKeyPairSync('ed25519').privateKey);
    const event = { eventId: '1-0', eventType: 't', userId: 'u', deviceSessionId: 'ds', timestampMs: 5, payload: new Uint8Array([1, 2]) };
    // Core's unsuffixed names are synchronous Buffers with the same bytes.
    expect(coreKeyId(raw)).toBe(await keyIdAsync(raw));
    expect(Buffer.isBuffer(coreEventBytes(event))).toBe(true);
    expect(toHex(coreEventBytes(event))).toBe(toHex(await eventBytesAsync(event)));
  });
});

describe('createSyncSigning: the same bytes without awaiting, with a host SHA-256', () => {
  const sync = createSyncSigning((data) => createHash('sha256').update(data).digest());
  it.each(vectors.cases.map((c) => [c.name, c] as const))('%s', (_name, c) => {
    const f = c.fields;
    const payload = hex(String(f['payload_hex'] ?? ''));
    const ts = Number(f['timestamp_ms']);
    let bytes: Uint8Array;
    if ('message_type' in f) {
      bytes = sync.commandRequestBytes({ deviceSessionId: String(f['device_session_id']), messageType: String(f['message_type']), requestId: String(f['request_id']), timestampMs: ts, payload });
    } else if ('resume_after_event_id' in f) {
      bytes = sync.subscribeRequestBytes({ deviceSessionId: String(f['device_session_id']), requestId: String(f['request_id']), timestampMs: ts, resumeAfterEventId: String(f['resume_after_event_id']) });
    } else if ('result_code' in f) {
      bytes = sync.commandResultBytes({ requestId: String(f['request_id']), resultCode: String(f['result_code']), timestampMs: ts, payload });
    } else {
      bytes = sync.eventBytes({ eventId: String(f['event_id']), eventType: String(f['event_type']), userId: String(f['user_id']), deviceSessionId: String(f['device_session_id']), timestampMs: ts, payload });
    }
    expect(toHex(bytes)).toBe(c.canonical_hex);
    const key = vectors.keys[c.signer];
    expect(sync.keyId(new Uint8Array(Buffer.from(key.public_key_base64, 'base64')))).toBe(key.key_id);
  });
});

describe('protobuf codec: the same bytes as the generated gRPC code', () => {
  // Buffers: the generated gRPC types declare bytes fields as Buffer.
  const plain = (o: object) => Object.fromEntries(Object.entries(o).map(([k, v]) => [k, v instanceof Uint8Array ? new Uint8Array(v) : v]));
  const bytes = (n: number, seed: number) => Buffer.from(Array.from({ length: n }, (_, i) => (i * 31 + seed) & 0xff));
  it('ExecuteCommandRequest / Response, SubscribeEventsRequest, GatewayEvent, ServerTime round-trip both ways', () => {
    const request = { deviceSessionId: 'ds-ü', messageType: 'echo.ping', requestId: 'r1', timestampMs: 1_764_201_600_123, payload: bytes(300, 1), signature: bytes(64, 2) };
    expect(encodeExecuteCommandRequest(request)).toEqual(new Uint8Array(GrpcExecuteCommandRequest.encode(request).finish()));
    expect(plain(decodeExecuteCommandRequest(GrpcExecuteCommandRequest.encode(request).finish()))).toEqual(plain(request));
    const response = { requestId: 'r1', resultCode: 'ok', payload: bytes(5, 3), timestampMs: -5, signerKeyId: '0011223344556677', signature: bytes(64, 4) };
    expect(encodeExecuteCommandResponse(response)).toEqual(new Uint8Array(GrpcExecuteCommandResponse.encode(response).finish()));
    expect(plain(decodeExecuteCommandResponse(GrpcExecuteCommandResponse.encode(response).finish()))).toEqual(plain(response));
    const subscribe = { deviceSessionId: 'ds', requestId: 'r2', timestampMs: 0, resumeAfterEventId: '1-0', signature: bytes(64, 5) };
    expect(encodeSubscribeEventsRequest(subscribe)).toEqual(new Uint8Array(GrpcSubscribeEventsRequest.encode(subscribe).finish()));
    expect(plain(decodeSubscribeEventsRequest(GrpcSubscribeEventsRequest.encode(subscribe).finish()))).toEqual(plain(subscribe));
    const event = { eventId: '5-1', eventType: 't', userId: 'u', deviceSessionId: '', timestampMs: 5, payload: Buffer.alloc(0), signerKeyId: 'k', signature: bytes(64, 6) };
    expect(encodeGatewayEvent(event)).toEqual(new Uint8Array(GrpcGatewayEvent.encode(event).finish()));
    expect(plain(decodeGatewayEvent(GrpcGatewayEvent.encode(event).finish()))).toEqual(plain(event));
    expect(encodeServerTime(1_764_201_600_000, 'sub-1')).toEqual(coreEncodeServerTime(1_764_201_600_000, 'sub-1'));
    expect(decodeServerTime(GrpcServerTime.encode({ serverTimeMs: 42, requestId: 'x' }).finish())).toEqual({ serverTimeMs: 42, requestId: 'x' });
  });

  it('refuses truncated and mistyped input with WireFormatError', () => {
    expect(() => decodeGatewayEvent(new Uint8Array([0x0a, 0x05, 0x61]))).toThrow(WireFormatError);
    expect(() => decodeGatewayEvent(new Uint8Array([0x08, 0x01]))).toThrow('field 1 is not length-delimited');
    expect(() => decodeServerTime(new Uint8Array([0x12, 0x01, 0xff]))).toThrow('field 2 is not valid UTF-8');
    expect(() => decodeFrame(new Uint8Array([1, 0, 0]))).toThrow('frame shorter than its header');
    expect(() => decodeFrame(new Uint8Array([9, 0, 0, 0, 1]))).toThrow('unknown frame type 9');
  });

  it('frames and statuses round-trip', () => {
    const frame = decodeFrame(encodeFrame(FrameTypes.status, 0xfffffffe, encodeStatus({ code: 9, details: 'device session is revoked' })));
    expect(frame.type).toBe(FrameTypes.status);
    expect(frame.callId).toBe(0xfffffffe);
    expect(decodeStatus(frame.body)).toEqual({ code: 9, details: 'device session is revoked' });
  });

  it('an execute-with-timeout body is the timeout (uint32 big-endian) then the request bytes', () => {
    const request = new Uint8Array([0x0a, 0x01, 0x61]);
    const body = encodeTimedExecute(MAX_CALL_TIMEOUT_MS, request);
    expect(Array.from(body.subarray(0, 4))).toEqual([0x00, 0x04, 0x93, 0xe0]);
    const frame = decodeFrame(encodeFrame(FrameTypes.executeWithTimeout, 3, body));
    expect(frame.type).toBe(0x04);
    expect(decodeTimedExecute(frame.body)).toEqual({ timeoutMs: 300_000, request });
    expect(decodeTimedExecute(encodeTimedExecute(0xffffffff, new Uint8Array(0))).timeoutMs).toBe(0xffffffff);
    expect(() => decodeTimedExecute(new Uint8Array([0, 1, 2]))).toThrow(new WireFormatError('execute frame without a timeout'));
  });
});

describe('field builders are the inverses of the core parsers', () => {
  it('session records and client-event entries', () => {
    const key = rawPublicKey(generateKeyPairSync('ed25519').privateKey);
    const fields = sessionRecordFields({ deviceSessionId: 'ds-1', userId: 'u-1', status: 'revoked', clientPublicKey: key, revokedAtMs: 17 });
    expect(parseSessionFields(fields)).toEqual({ ok: true, session: { deviceSessionId: 'ds-1', userId: 'u-1', status: 'revoked', clientPublicKey: new Uint8Array(key), revokedAtMs: 17 } });
    const entry = clientEventFields({ userId: 'u-1', eventType: 'chat.message', payload: new Uint8Array([1, 2, 3]), deviceSessionId: 'ds-1' });
    const parsed = parseClientEvent({ id: '9-0', fields: entry });
    expect(parsed).toMatchObject({ ok: true, event: { userId: 'u-1', eventType: 'chat.message', deviceSessionId: 'ds-1', timestampMs: 9 } });
    expect(parsed.ok && Array.from(parsed.event.payload)).toEqual([1, 2, 3]);
  });
});

describe('device-side verification', () => {
  const gateway = generateKeyPairSync('ed25519').privateKey;
  const gatewayRaw = rawPublicKey(gateway);
  const signed = async <T extends object>(fields: T, bytes: (f: T) => Promise<Uint8Array>): Promise<T & { signerKeyId: string; signature: Uint8Array }> => ({
    ...fields,
    signerKeyId: await keyIdAsync(gatewayRaw),
    signature: sign(null, await bytes(fields), gateway),
  });

  it('accepts a result for its request, refuses another request id and an untrusted signer', async () => {
    const trusted = await TrustedKeys.create([gatewayRaw]);
    const result = await signed({ requestId: 'r1', resultCode: 'ok', timestampMs: 1, payload: new Uint8Array([1]) }, commandResultBytesAsync);
    await expect(verifyCommandResult(trusted, result, 'r1')).resolves.toMatchObject({ requestId: 'r1', resultCode: 'ok' });
    await expect(verifyCommandResult(trusted, result, 'r2')).rejects.toThrow(GatewayBindingError);
    const other = await TrustedKeys.create([rawPublicKey(generateKeyPairSync('ed25519').privateKey)]);
    await expect(verifyCommandResult(other, result, 'r1')).rejects.toThrow(/signed by unknown key id/);
    await expect(verifyCommandResult(trusted, { ...result, resultCode: 'forged' }, 'r1')).rejects.toThrow('command response has an invalid signature');
  });

  it('checks the bootstrap first, its request id, then the user and session of every event', async () => {
    const trusted = await TrustedKeys.create([gatewayRaw]);
    const event = (over: Partial<{ eventId: string; eventType: string; userId: string; deviceSessionId: string; payload: Uint8Array }>) =>
      signed({ eventId: '', eventType: 'gateway.server_time', userId: 'u', deviceSessionId: 'ds', timestampMs: 1000, payload: encodeServerTime(5000, 'sub-1'), ...over }, eventBytesAsync);
    const verifier = new StreamVerifier(trusted, 'ds', 'sub-1');
    await expect(verifier.verify(await event({ eventId: '1-0', eventType: 'chat' }))).rejects.toThrow('expected gateway.server_time first, got chat');
    const fresh = new StreamVerifier(trusted, 'ds', 'sub-1');
    await expect(fresh.verify(await event({}), 4000)).resolves.toMatchObject({ serverTime: { serverTimeMs: 5000, requestId: 'sub-1' } });
    expect(fresh.userId).toBe('u');
    expect(fresh.clockOffsetMs).toBe(1000);
    await expect(fresh.verify(await event({ eventId: '2-0', eventType: 'chat', payload: new Uint8Array(0) }))).resolves.toMatchObject({ eventId: '2-0' });
    await expect(fresh.verify(await event({ eventId: '3-0', eventType: 'chat', userId: 'intruder' }))).rejects.toThrow('event for user "intruder" reached user "u"');
    await expect(fresh.verify(await event({ eventId: '4-0', eventType: 'chat', deviceSessionId: 'ds-other' }))).rejects.toThrow(GatewayBindingError);
    const wrongRequest = new StreamVerifier(trusted, 'ds', 'sub-2');
    await expect(wrongRequest.verify(await event({}))).rejects.toThrow('bootstrap answers subscribe request "sub-1", not "sub-2"');
  });
});

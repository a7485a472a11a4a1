import { afterEach, describe, expect, it } from 'vitest';
import { sign } from 'node:crypto';
import { connect, type Socket } from 'node:net';
import { WebSocket } from 'ws';
import { GatewayStatusError, type VerifiedEvent } from '@edge-gateway/client-web';
import { MetricNames, commandRequestBytes, noopLogger, parseFailureLimit, subscribeRequestBytes, type LogFields, type Logger } from '@edge-gateway/core';
import { MetricsHarness } from '@edge-gateway/core/testing/metrics';
import {
  CloseCodes,
  FrameTypes,
  MAX_CALL_TIMEOUT_MS,
  StatusCodes,
  WEBSOCKET_PATH,
  WEBSOCKET_SUBPROTOCOL,
  decodeFrame,
  decodeGatewayEvent,
  decodeExecuteCommandResponse,
  decodeStatus,
  encodeExecuteCommandRequest,
  encodeFrame,
  encodeSubscribeEventsRequest,
  encodeTimedExecute,
} from '@edge-gateway/protocol';
import { FRAME_HEADROOM_BYTES } from '../src/index.js';
import { WsFixture, closeOf, refusedWith, type Device } from './fixture.js';

let f: WsFixture | undefined;
afterEach(async () => {
  await f?.stop();
  f = undefined;
});

async function take<T>(iterator: AsyncIterator<T>, n: number): Promise<T[]> {
  const out: T[] = [];
  while (out.length < n) {
    const next = await iterator.next();
    if (next.done === true) throw new Error(`stream ended after ${out.length} of ${n}`);
    out.push(next.value);
  }
  return out;
}

async function endError<T>(iterator: AsyncIterator<T>): Promise<unknown> {
  for (;;) {
    try {
      if ((await iterator.next()).done === true) return undefined;
    } catch (error) {
      return error;
    }
  }
}

/** A signed subscribe frame for `device` on `callId`. */
function subscribeFrame(device: Device, callId: number): Uint8Array {
  const fields = { deviceSessionId: device.deviceSessionId, requestId: `sub-${callId}-${Date.now()}`, timestampMs: Date.now(), resumeAfterEventId: '' };
  const signature = sign(null, subscribeRequestBytes(fields), device.privateKey);
  return encodeFrame(FrameTypes.subscribe, callId, encodeSubscribeEventsRequest({ ...fields, signature }));
}

/** Frames received on a raw socket, by type. */
function framesOf(ws: WebSocket) {
  const frames: Array<{ type: number; callId: number; body: Uint8Array }> = [];
  const waiters: Array<() => void> = [];
  ws.on('message', (data: Buffer) => {
    frames.push(decodeFrame(new Uint8Array(data)));
    for (const w of waiters.splice(0)) w();
  });
  return {
    frames,
    async until(predicate: () => boolean): Promise<void> {
      while (!predicate()) await new Promise<void>((resolve) => waiters.push(resolve));
    },
  };
}

describe('WebSocket transport: lifecycle', () => {
  it('await using closes the server at scope exit: an open connection gets 1001, new upgrades are refused', async () => {
    f = await WsFixture.start();
    const fixture = f;
    let url = '';
    let ws: WebSocket | undefined;
    let closed: Promise<{ code: number; reason: string }> | undefined;
    {
      await using server = fixture.server;
      url = fixture.url;
      ws = await fixture.raw();
      closed = closeOf(ws);
      expect(server.connections).toBe(1);
    }
    expect(await closed).toEqual({ code: CloseCodes.goingAway, reason: 'gateway is shutting down' });
    expect(fixture.server.connections).toBe(0);
    await expect(fixture.server.close()).resolves.toBe('graceful');
    await expect(new Promise((resolve, reject) => {
      const late = new WebSocket(url, WEBSOCKET_SUBPROTOCOL);
      late.once('open', () => resolve('open'));
      late.once('error', reject);
    })).rejects.toMatchObject({ code: 'ECONNREFUSED' });
  });
});

describe('WebSocket transport: commands', () => {
  it('runs a signed command, verified by the client, and refuses its replay with the gRPC status and message', async () => {
    f = await WsFixture.start();
    const client = await f.client(f.addDevice());
    const result = await client.execute('echo.ping', new TextEncoder().encode('hi'), { requestId: 'req-ws-1' });
    expect(result).toMatchObject({ requestId: 'req-ws-1', resultCode: 'ok', signerKeyId: f.signer.keyId });
    expect(new TextDecoder().decode(result.payload)).toBe('hi');
    const replay = await client.execute('echo.ping', new TextEncoder().encode('hi'), { requestId: 'req-ws-1' }).catch((e: unknown) => e);
    expect(replay).toBeInstanceOf(GatewayStatusError);
    expect(replay).toMatchObject({ code: StatusCodes.ALREADY_EXISTS, details: 'request_id was already used' });
    const unrouted = await client.execute('billing.pay', new Uint8Array(0)).catch((e: unknown) => e);
    expect(unrouted).toMatchObject({ code: StatusCodes.UNIMPLEMENTED, details: 'no route for message type billing.pay' });
  });

  it('correlates concurrent commands on one connection by call id', async () => {
    f = await WsFixture.start();
    const client = await f.client(f.addDevice());
    const results = await Promise.all(Array.from({ length: 20 }, (_, i) => client.execute('echo.n', new TextEncoder().encode(String(i)), { requestId: `req-many-${i}` })));
    expect(results.map((r) => new TextDecoder().decode(r.payload))).toEqual(Array.from({ length: 20 }, (_, i) => String(i)));
    expect(results.map((r) => r.requestId)).toEqual(Array.from({ length: 20 }, (_, i) => `req-many-${i}`));
  });

  it('records each call in gateway_websocket_requests_total and _request_duration_seconds by method and status name, and open connections', async () => {
    const harness = new MetricsHarness();
    f = await WsFixture.start({ metrics: harness.metrics });
    const device = f.addDevice();
    const client = await f.client(device);
    expect(await harness.value(MetricNames.websocketConnections)).toBe(1);
    await client.execute('echo.ping', new TextEncoder().encode('1'), { requestId: 'req-metrics-1' });
    await client.execute('echo.ping', new TextEncoder().encode('1'), { requestId: 'req-metrics-1' }).catch(() => undefined);
    const ws = await f.raw();
    const closed = closeOf(ws);
    ws.send(subscribeFrame(device, 3));
    ws.send(encodeFrame(FrameTypes.cancel, 3));
    ws.close();
    await closed;
    const calls = (method: string, code: string) =>
      Promise.all([harness.value(MetricNames.websocketRequests, { method, code }), harness.value(MetricNames.websocketDuration, { method, code })]);
    expect(await calls('ExecuteCommand', 'OK')).toEqual([1, 1]);
    expect(await calls('ExecuteCommand', 'ALREADY_EXISTS')).toEqual([1, 1]);
    expect(await calls('SubscribeEvents', 'CANCELLED')).toEqual([1, 1]);
    expect(await harness.value(MetricNames.websocketDuration)).toBe(3);
    await expect.poll(() => harness.value(MetricNames.websocketConnections), { timeout: 5000 }).toBe(1);
  });
});

describe('WebSocket transport: push streams', () => {
  it('delivers the bootstrap, then events; a revoke ends the stream FAILED_PRECONDITION and later calls fail', async () => {
    f = await WsFixture.start();
    const device = f.addDevice();
    const client = await f.client(device);
    const events = client.subscribe()[Symbol.asyncIterator]();
    const [bootstrap] = await take(events, 1);
    expect(bootstrap).toMatchObject({ eventType: 'gateway.server_time', eventId: '', userId: device.userId });
    const id = f.publish(device.userId, 'chat.message', new TextEncoder().encode('hello'));
    const [event] = (await take(events, 1)) as VerifiedEvent[];
    expect(event).toMatchObject({ eventId: id, eventType: 'chat.message', deviceSessionId: '' });
    f.revoke(device);
    expect(await endError(events)).toMatchObject({ code: StatusCodes.FAILED_PRECONDITION, details: 'device session is revoked' });
    const refused = await client.execute('echo.ping', new Uint8Array(0)).catch((e: unknown) => e);
    expect(refused).toMatchObject({ code: StatusCodes.FAILED_PRECONDITION, details: 'device session is revoked' });
  });

  it('resumes after an event id: the bootstrap, then what was missed, in order', async () => {
    f = await WsFixture.start();
    const device = f.addDevice();
    const first = f.publish(device.userId, 'a', new Uint8Array([1]));
    const second = f.publish(device.userId, 'b', new Uint8Array([2]));
    const third = f.publish(device.userId, 'c', new Uint8Array([3]));
    const client = await f.client(device);
    const events = client.subscribe({ resumeAfterEventId: first })[Symbol.asyncIterator]();
    const got = await take(events, 3);
    expect(got.map((e) => e.eventId)).toEqual(['', second, third]);
    expect(client.lastEventId).toBe(third);
  });

  it('a stream reopened with the same signed request (what a browser EventSource reconnect sends) is ALREADY_EXISTS; one signed anew, resuming after the last event id, gets what it missed (SPEC §8.3)', async () => {
    f = await WsFixture.start();
    const device = f.addDevice();
    const signedSubscribe = (requestId: string, resumeAfterEventId: string): Uint8Array => {
      const fields = { deviceSessionId: device.deviceSessionId, requestId, timestampMs: Date.now(), resumeAfterEventId };
      return encodeSubscribeEventsRequest({ ...fields, signature: sign(null, subscribeRequestBytes(fields), device.privateKey) });
    };
    const once = signedSubscribe('sub-once', '');
    const first = await f.raw();
    const firstSeen = framesOf(first);
    first.send(encodeFrame(FrameTypes.subscribe, 1, once));
    await callFrames(firstSeen, 1, 1);
    const seenId = f.publish(device.userId, 'chat.seen', new Uint8Array([1]));
    const [, delivered] = await callFrames(firstSeen, 1, 2);
    expect(decodeGatewayEvent(delivered?.body as Uint8Array).eventId).toBe(seenId);
    // The connection is lost; an event is published meanwhile.
    const firstClosed = closeOf(first);
    first.terminate();
    await firstClosed;
    await expect.poll(() => f?.core.hub.sessionStreams(device.deviceSessionId), { timeout: 5000 }).toBe(0);
    const missedId = f.publish(device.userId, 'chat.missed', new Uint8Array([2]));

    const second = await f.raw();
    const seen = framesOf(second);
    // The same bytes again: a replay, whoever sends them.
    second.send(encodeFrame(FrameTypes.subscribe, 1, once));
    const [refused] = await callFrames(seen, 1, 1);
    expect(refused?.type).toBe(FrameTypes.status);
    expect(decodeStatus(refused?.body as Uint8Array)).toEqual({ code: StatusCodes.ALREADY_EXISTS, details: 'request_id was already used' });
    // A request signed anew by the device, resuming after the last event it got.
    second.send(encodeFrame(FrameTypes.subscribe, 2, signedSubscribe('sub-again', seenId)));
    const resumed = await callFrames(seen, 2, 2);
    expect(resumed.map((fr) => decodeGatewayEvent(fr.body))).toMatchObject([{ eventType: 'gateway.server_time' }, { eventId: missedId, eventType: 'chat.missed' }]);
    second.close();
  });

  it('frees the hub slot when the client cancels, even before the stream opened', async () => {
    f = await WsFixture.start();
    const device = f.addDevice();
    const ws = await f.raw();
    // Subscribe and cancel in the same turn: the cancel reaches the core before the checks finish.
    ws.send(subscribeFrame(device, 7));
    ws.send(encodeFrame(FrameTypes.cancel, 7));
    const other = await f.client(f.addDevice());
    await take(other.subscribe()[Symbol.asyncIterator](), 1);
    // The other stream opened after the cancelled one was handled: only it is registered.
    await expect.poll(() => f?.core.hub.sessionStreams(device.deviceSessionId), { timeout: 5000 }).toBe(0);
    expect(f.core.hub.size).toBe(1);
    ws.close();
  });

  it('overflows a stalled stream RESOURCE_EXHAUSTED while another stream of the user goes on', async () => {
    f = await WsFixture.start({ bufferSize: 8, bufferHighWaterBytes: 16 * 1024 });
    const user = 'user-overflow';
    const stalled = f.addDevice(user);
    const reader = await f.client(f.addDevice(user));
    const readerEvents = reader.subscribe()[Symbol.asyncIterator]();
    await take(readerEvents, 1);
    const ws = await f.raw();
    const seen = framesOf(ws);
    ws.send(subscribeFrame(stalled, 1));
    await seen.until(() => seen.frames.length >= 1);
    expect(decodeGatewayEvent(seen.frames[0]?.body as Uint8Array).eventType).toBe('gateway.server_time');
    ws.pause();
    const payload = new Uint8Array(32 * 1024).fill(7);
    let published = 0;
    while (f.core.hub.sessionStreams(stalled.deviceSessionId) > 0 && published < 2000) {
      const id = f.publish(user, 'bulk.item', payload);
      published += 1;
      expect((await take(readerEvents, 1))[0]?.eventId).toBe(id);
    }
    expect(f.core.hub.sessionStreams(stalled.deviceSessionId)).toBe(0);
    expect(published).toBeLessThan(2000);
    ws.resume();
    await seen.until(() => seen.frames.some((fr) => fr.type === FrameTypes.status));
    const status = seen.frames.find((fr) => fr.type === FrameTypes.status);
    expect(decodeStatus(status?.body as Uint8Array)).toEqual({ code: StatusCodes.RESOURCE_EXHAUSTED, details: 'push stream overflowed' });
    ws.close();
  });
});

/** A raw TCP connection to 127.0.0.1:`port`: what it received, and the moment the server closed it. */
function rawTcp(port: number): { socket: Socket; received: () => string; closed: Promise<void> } {
  const socket = connect({ host: '127.0.0.1', port });
  let text = '';
  socket.setEncoding('utf8');
  socket.on('data', (chunk: string) => (text += chunk));
  socket.on('error', () => undefined);
  return { socket, received: () => text, closed: new Promise((resolve) => socket.once('close', () => resolve())) };
}

describe('WebSocket transport: handshake and framing limits', () => {
  it('an upgrade request whose headers never finish gets 408 and is closed at headersTimeoutMs; an open connection with a stream lives on past the bounds', async () => {
    f = await WsFixture.start({ headersTimeoutMs: 200, requestTimeoutMs: 200, keepAliveTimeoutMs: 200, idleTimeoutMs: 200 });
    const client = await f.client(f.addDevice());
    // A call in flight: neither the HTTP bounds nor the idle bound apply to its connection.
    const stream = client.subscribe();
    await take(stream, 1);
    const slow = rawTcp(f.server.port);
    // A valid upgrade request, minus the blank line that ends its headers.
    slow.socket.write(`GET ${WEBSOCKET_PATH} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Protocol: ${WEBSOCKET_SUBPROTOCOL}\r\n`);
    await slow.closed;
    expect(slow.received()).toMatch(/^HTTP\/1\.1 408 /);
    expect(f.server.connections).toBe(1);
    // The WebSocket opened before the slow client is older than every bound, and still serves.
    const result = await client.execute('echo.ping', new TextEncoder().encode('still here'));
    expect(new TextDecoder().decode(result.payload)).toBe('still here');
    expect(f.server.connections).toBe(1);
    await stream.return(undefined);
    // A plain request is answered 426, then the idle keep-alive connection is closed.
    const plain = rawTcp(f.server.port);
    plain.socket.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
    await plain.closed;
    expect(plain.received()).toMatch(/^HTTP\/1\.1 426 /);
  });

  it('refuses a wrong path 404, a missing subprotocol 400 and a browser origin not allowed 403', async () => {
    f = await WsFixture.start({ allowedOrigins: ['https://app.example.com'] });
    const base = `ws://${f.server.address}`;
    expect(await refusedWith(`${base}/other`, [WEBSOCKET_SUBPROTOCOL])).toBe(404);
    expect(await refusedWith(`${base}${WEBSOCKET_PATH}`, ['chat'])).toBe(400);
    expect(await refusedWith(`${base}${WEBSOCKET_PATH}`, [WEBSOCKET_SUBPROTOCOL], { Origin: 'https://evil.example.com' })).toBe(403);
    const allowed = await f.raw({ origin: 'https://app.example.com' });
    expect(allowed.protocol).toBe(WEBSOCKET_SUBPROTOCOL);
    allowed.close();
  });

  it('refuses every browser origin by default (fail closed)', async () => {
    f = await WsFixture.start();
    expect(await refusedWith(`ws://${f.server.address}${WEBSOCKET_PATH}`, [WEBSOCKET_SUBPROTOCOL], { Origin: 'http://localhost:3000' })).toBe(403);
  });

  it('takes `Origin: null` (a sandboxed iframe, a file: or data: page) as an origin, not as no origin: 403 unless `null` is listed or `*` is (SPEC §2.2)', async () => {
    f = await WsFixture.start({ allowedOrigins: ['https://app.example.com'] });
    expect(await refusedWith(f.url, [WEBSOCKET_SUBPROTOCOL], { Origin: 'null' })).toBe(403);
    // An Origin header present but empty is a browser's too.
    expect(await refusedWith(f.url, [WEBSOCKET_SUBPROTOCOL], { Origin: '' })).toBe(403);
    // No Origin header at all (not a browser): accepted.
    const native = await f.raw();
    expect(native.protocol).toBe(WEBSOCKET_SUBPROTOCOL);
    native.close();
    await f.stop();

    f = await WsFixture.start({ allowedOrigins: ['null'] });
    const opaque = await f.raw({ origin: 'null' });
    expect(opaque.protocol).toBe(WEBSOCKET_SUBPROTOCOL);
    opaque.close();
    expect(await refusedWith(f.url, [WEBSOCKET_SUBPROTOCOL], { Origin: 'https://app.example.com' })).toBe(403);
    await f.stop();

    f = await WsFixture.start({ allowedOrigins: ['*'] });
    const any = await f.raw({ origin: 'null' });
    expect(any.protocol).toBe(WEBSOCKET_SUBPROTOCOL);
    any.close();
  });

  it('bounds the whole frame, its 5-byte header included, by maxPayloadBytes + 64 KiB: a frame of exactly the bound is read and answered, one byte more closes 1009 (SPEC §2.2)', async () => {
    f = await WsFixture.start();
    const bound = 64 * 1024 + FRAME_HEADROOM_BYTES;
    const ws = await f.raw();
    const seen = framesOf(ws);
    const closed = closeOf(ws);
    // 0xff bytes are no protobuf message: the call is answered, the connection stays open.
    const exactly = encodeFrame(FrameTypes.execute, 1, new Uint8Array(bound - 5).fill(0xff));
    expect(exactly.length).toBe(bound);
    ws.send(exactly);
    const [answer] = await callFrames(seen, 1, 1);
    expect(decodeStatus(answer?.body as Uint8Array)).toEqual({ code: StatusCodes.INVALID_ARGUMENT, details: 'malformed request message' });
    // A body of exactly the bound, with its header one frame over it.
    ws.send(encodeFrame(FrameTypes.execute, 2, new Uint8Array(bound).fill(0xff)));
    expect((await closed).code).toBe(CloseCodes.messageTooBig);
    expect(seen.frames.filter((fr) => fr.callId === 2)).toEqual([]);
  });

  it.each([
    ['a text frame', (ws: WebSocket) => ws.send('hello'), CloseCodes.unsupportedData],
    ['a frame shorter than its header', (ws: WebSocket) => ws.send(new Uint8Array([1, 0])), CloseCodes.protocolError],
    ['an unknown frame type', (ws: WebSocket) => ws.send(encodeFrame(0x7f as never, 1)), CloseCodes.protocolError],
    ['a gateway frame type from the client', (ws: WebSocket) => ws.send(encodeFrame(FrameTypes.event, 1)), CloseCodes.protocolError],
    ['a frame over the maximum size', (ws: WebSocket) => ws.send(new Uint8Array(64 * 1024 + 64 * 1024 + 1)), CloseCodes.messageTooBig],
  ])('closes the connection for %s', async (_name, send, code) => {
    f = await WsFixture.start();
    const ws = await f.raw();
    const closed = closeOf(ws);
    send(ws);
    expect((await closed).code).toBe(code);
  });

  it('answers a body that is not protobuf INVALID_ARGUMENT "malformed request message" on that call only', async () => {
    f = await WsFixture.start();
    const ws = await f.raw();
    const seen = framesOf(ws);
    ws.send(encodeFrame(FrameTypes.execute, 1, new Uint8Array([0x0a, 0xff])));
    // int64 timestamp beyond 2^53: refused like grpc does, not silently rounded.
    ws.send(encodeFrame(FrameTypes.subscribe, 2, new Uint8Array([0x18, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f])));
    await seen.until(() => seen.frames.length >= 2);
    for (const frame of seen.frames) {
      expect(frame.type).toBe(FrameTypes.status);
      expect(decodeStatus(frame.body)).toEqual({ code: StatusCodes.INVALID_ARGUMENT, details: 'malformed request message' });
    }
    expect(seen.frames.map((fr) => fr.callId).sort()).toEqual([1, 2]);
    expect(ws.readyState).toBe(WebSocket.OPEN);
    ws.close();
  });

  it('closes 1002 for a call id already in flight and 1008 beyond the calls in flight per connection', async () => {
    f = await WsFixture.start({ maxCallsInFlight: 2 });
    const device = f.addDevice();
    const dup = await f.raw();
    const dupClosed = closeOf(dup);
    dup.send(subscribeFrame(device, 1));
    dup.send(subscribeFrame(device, 1));
    expect((await dupClosed).code).toBe(CloseCodes.protocolError);

    const many = await f.raw();
    const manyClosed = closeOf(many);
    for (const id of [1, 2, 3]) many.send(subscribeFrame(device, id));
    expect(await manyClosed).toEqual({ code: CloseCodes.policyViolation, reason: 'too many calls in flight' });
  });

  it('closes 1008 "no frame received" a connection that sends no complete frame within headersTimeoutMs of the upgrade (a frame dripped byte by byte, pings included)', async () => {
    f = await WsFixture.start({ headersTimeoutMs: 300, idleTimeoutMs: 5000 });
    const silent = await f.raw();
    const dripping = await f.raw();
    const pinging = await f.raw();
    const opened = performance.now();
    const closes = [closeOf(silent), closeOf(dripping), closeOf(pinging)];
    // The header of a 1 KiB binary frame, then its bytes one at a time: never complete in time.
    const socket = (dripping as unknown as { _socket: Socket })._socket;
    socket.write(Buffer.from([0x82, 0xfe, 0x04, 0x00, 0, 0, 0, 0]));
    const drip = setInterval(() => socket.write(Buffer.from([0])), 20);
    const ping = setInterval(() => pinging.ping(), 20);
    const outcomes = await Promise.all(closes);
    clearInterval(drip);
    clearInterval(ping);
    expect(outcomes).toEqual(Array(3).fill({ code: CloseCodes.policyViolation, reason: 'no frame received' }));
    expect(performance.now() - opened).toBeGreaterThanOrEqual(280);
  });

  it('closes 1000 "idle" a connection with no call in flight for idleTimeoutMs (pings do not count); a command or a stream in flight keeps it open, and the idle time counts from when the last call ended', async () => {
    f = await WsFixture.start({ headersTimeoutMs: 300, idleTimeoutMs: 400 });
    const device = f.addDevice();
    // One frame that opens no call (a cancel of an unknown id), then only pings.
    const idle = await f.raw();
    const idleClosed = closeOf(idle);
    idle.send(encodeFrame(FrameTypes.cancel, 9));
    const framedAt = performance.now();
    const ping = setInterval(() => idle.ping(), 20);
    // A stream keeps its connection busy; a held command keeps its own.
    const streaming = await f.raw();
    const streamFrames = framesOf(streaming);
    streaming.send(subscribeFrame(device, 1));
    await streamFrames.until(() => streamFrames.frames.length >= 1);
    const commanding = await f.raw();
    const commandFrames = framesOf(commanding);
    const commandClosed = closeOf(commanding);
    const fields = { deviceSessionId: device.deviceSessionId, messageType: 'hold.slow', requestId: `req-${Date.now()}`, timestampMs: Date.now(), payload: new Uint8Array([1]) };
    commanding.send(encodeFrame(FrameTypes.execute, 1, encodeExecuteCommandRequest({ ...fields, signature: sign(null, commandRequestBytes(fields), device.privateKey) })));
    await f.held.waitForCalls(1);

    expect(await idleClosed).toEqual({ code: CloseCodes.normal, reason: 'idle' });
    clearInterval(ping);
    expect(performance.now() - framedAt).toBeGreaterThanOrEqual(380);
    // Both busy connections outlive twice the idle bound (nothing to await: a close that does not come).
    await new Promise<void>((resolve) => setTimeout(resolve, 800));
    expect([streaming.readyState, commanding.readyState]).toEqual([WebSocket.OPEN, WebSocket.OPEN]);
    // The command answers: from then on its connection is idle, and closed one bound later.
    f.held.calls[0]?.release();
    await commandFrames.until(() => commandFrames.frames.length >= 1);
    const answeredAt = performance.now();
    expect(await commandClosed).toEqual({ code: CloseCodes.normal, reason: 'idle' });
    expect(performance.now() - answeredAt).toBeGreaterThanOrEqual(380);
    expect(streaming.readyState).toBe(WebSocket.OPEN);
    streaming.close();
  });

  it('the web client dials a new connection for its next call after the gateway closed the last one as idle', async () => {
    f = await WsFixture.start({ headersTimeoutMs: 200, idleTimeoutMs: 200 });
    const client = await f.client(f.addDevice());
    expect(await client.closed).toEqual({ code: CloseCodes.policyViolation, reason: 'no frame received' });
    const first = await client.execute('echo.ping', new TextEncoder().encode('one'));
    expect(new TextDecoder().decode(first.payload)).toBe('one');
    expect(await client.closed).toEqual({ code: CloseCodes.normal, reason: 'idle' });
    const second = await client.execute('echo.ping', new TextEncoder().encode('two'));
    expect(new TextDecoder().decode(second.payload)).toBe('two');
  });

  it('drops a connection that does not answer pings', async () => {
    f = await WsFixture.start({ pingIntervalMs: 300 });
    const silent = await f.raw({ autoPong: false });
    const closed = closeOf(silent);
    const healthy = await f.raw();
    // Terminated without a close frame: the client sees 1006.
    expect((await closed).code).toBe(1006);
    expect(healthy.readyState).toBe(WebSocket.OPEN);
    healthy.close();
  });
});

/** A signed execute frame of `device` for `messageType`. */
function executeFrame(device: Device, callId: number, messageType: string, payload: Uint8Array = Buffer.from('p')): Uint8Array {
  const fields = { deviceSessionId: device.deviceSessionId, messageType, requestId: `cmd-${callId}-${Math.random()}`, timestampMs: Date.now(), payload };
  return encodeFrame(FrameTypes.execute, callId, encodeExecuteCommandRequest({ ...fields, signature: sign(null, commandRequestBytes(fields), device.privateKey) }));
}

describe('WebSocket transport: connection bounds (SPEC §2.3)', () => {
  it('the refusal past the failure budget gets its status, then 1008 "too many failed requests"; a running command counts RESOURCE_EXHAUSTED; later frames are not read', async () => {
    const harness = new MetricsHarness();
    f = await WsFixture.start({ metrics: harness.metrics, connectionLimits: { failureLimit: parseFailureLimit('1/h:3') } });
    const device = f.addDevice();
    const ws = await f.raw();
    const seen = framesOf(ws);
    const closed = closeOf(ws);
    ws.send(executeFrame(device, 1, 'hold.slow'));
    await f.held.waitForCalls(1);
    // Four refusals (a bad signature each): three within the budget, the fourth past it.
    for (const id of [2, 3, 4, 5]) {
      const frame = executeFrame(device, id, 'echo.x');
      frame[frame.length - 1] = (frame[frame.length - 1] as number) ^ 1;
      ws.send(frame);
      await seen.until(() => seen.frames.some((fr) => fr.callId === id));
    }
    expect(await closed).toEqual({ code: CloseCodes.policyViolation, reason: 'too many failed requests' });
    expect(seen.frames.map((fr) => [fr.callId, decodeStatus(fr.body)])).toEqual([2, 3, 4, 5].map((id) => [id, { code: StatusCodes.UNAUTHENTICATED, details: 'invalid request signature' }]));
    await f.held.calls[0]?.aborted;
    expect(await harness.value(MetricNames.connectionsClosed, { transport: 'websocket', reason: 'failures' })).toBe(1);
    expect(await harness.value('gateway_websocket_requests_total', { method: 'ExecuteCommand', code: 'RESOURCE_EXHAUSTED' })).toBe(1);
    // A frame sent after the close began was not run.
    expect(f.executions).toHaveLength(5);
  });

  it('a client that reads nothing: past the buffer bound the connection is not read, and after the drain timeout it is closed 1008 "not reading"', async () => {
    const harness = new MetricsHarness();
    let closeLogged!: (fields: LogFields | undefined) => void;
    const closeLine = new Promise<LogFields | undefined>((resolve) => (closeLogged = resolve));
    const logger: Logger = {
      ...noopLogger,
      warn: (message, fields) => {
        if (message === 'connection closed') closeLogged(fields);
      },
      child: () => logger,
    };
    f = await WsFixture.start({ metrics: harness.metrics, logger, connectionLimits: { maxBufferBytes: 64 * 1024, drainTimeoutMs: 500 } });
    const device = f.addDevice();
    const ws = await f.raw();
    ws.pause();
    const closed = closeOf(ws);
    const payload = new Uint8Array(16 * 1024);
    // Far more than the bound plus the socket buffers, one call at a time on the wire.
    for (let id = 1; id <= 1200; id += 1) ws.send(executeFrame(device, id, 'echo.big', payload));
    expect(await closeLine).toMatchObject({ transport: 'websocket', reason: 'not reading', drain_timeout_ms: 500 });
    ws.resume();
    const end = await closed;
    // The close frame waits behind the unread answers; read at last, the client gets it (or a reset).
    expect(end.code === CloseCodes.policyViolation ? end.reason : end.code).toSatisfy((v: unknown) => v === 'not reading' || v === 1006);
    expect(await harness.value(MetricNames.connectionsClosed, { transport: 'websocket', reason: 'not_reading' })).toBe(1);
    // Not every command was read: the connection stopped being read at the bound.
    expect(f.executions.length).toBeLessThan(1200);
  });
});

describe('WebSocket transport: shutdown', () => {
  it('streams end UNAVAILABLE with the hub, an in-flight command finishes, then connections close 1001', async () => {
    f = await WsFixture.start();
    const device = f.addDevice();
    const client = await f.client(device);
    const events = client.subscribe()[Symbol.asyncIterator]();
    await take(events, 1);
    f.core.beginShutdown();
    f.core.hub.close();
    expect(await endError(events)).toMatchObject({ code: StatusCodes.UNAVAILABLE, details: 'gateway is shutting down' });
    const refused = await client.execute('echo.ping', new Uint8Array(0)).catch((e: unknown) => e);
    expect(refused).toMatchObject({ code: StatusCodes.UNAVAILABLE, details: 'gateway is shutting down' });
    expect(await f.server.close(2000)).toBe('graceful');
    expect(await client.closed).toEqual({ code: CloseCodes.goingAway, reason: 'gateway is shutting down' });
  });
});

/** A signed ExecuteCommand request of `device`, encoded. */
function commandBody(device: Device, messageType: string, requestId: string): Uint8Array {
  const fields = { deviceSessionId: device.deviceSessionId, messageType, requestId, timestampMs: Date.now(), payload: new TextEncoder().encode(requestId) };
  return encodeExecuteCommandRequest({ ...fields, signature: sign(null, commandRequestBytes(fields), device.privateKey) });
}

/** Frames of `callId` once `count` of them arrived. */
async function callFrames(seen: ReturnType<typeof framesOf>, callId: number, count: number) {
  await seen.until(() => seen.frames.filter((fr) => fr.callId === callId).length >= count);
  return seen.frames.filter((fr) => fr.callId === callId);
}

describe('WebSocket transport: per-call deadline', () => {
  it('a command whose timeout passes while the downstream is slow ends DEADLINE_EXCEEDED "Deadline exceeded", as on gRPC; the downstream got that deadline and is cut', async () => {
    const harness = new MetricsHarness();
    f = await WsFixture.start({ metrics: harness.metrics });
    const client = await f.client(f.addDevice());
    const sentAt = Date.now();
    const error = await client.execute('hold.slow', new Uint8Array(0), { requestId: 'req-deadline', timeoutMs: 300 }).catch((e: unknown) => e);
    const answeredAt = Date.now();
    expect(error).toBeInstanceOf(GatewayStatusError);
    expect(error).toMatchObject({ code: StatusCodes.DEADLINE_EXCEEDED, codeName: 'DEADLINE_EXCEEDED', details: 'Deadline exceeded' });
    const [held] = f.held.calls;
    expect(held?.command.requestId).toBe('req-deadline');
    // The gateway's deadline is the frame's arrival plus the timeout, not its 10 s default.
    expect(held?.deadlineMs).toBeGreaterThanOrEqual(sentAt + 300);
    expect(held?.deadlineMs).toBeLessThanOrEqual(answeredAt);
    await held?.aborted;
    expect(await harness.value(MetricNames.websocketRequests, { method: 'ExecuteCommand', code: 'DEADLINE_EXCEEDED' })).toBe(1);
    // The connection goes on; a timeout that is not reached changes nothing.
    await expect(client.execute('echo.after', new Uint8Array([1]), { timeoutMs: 5000 })).resolves.toMatchObject({ resultCode: 'ok' });
    held?.release();
  });

  it('a plain execute frame (a client without per-call timeouts) gets the gateway default deadline', async () => {
    f = await WsFixture.start();
    const client = await f.client(f.addDevice());
    const sentAt = Date.now();
    const pending = client.execute('hold.plain', new Uint8Array(0), { requestId: 'req-plain' });
    await f.held.waitForCalls(1);
    // GATEWAY_DOWNSTREAM_TIMEOUT's default, 10 s, from the call's arrival.
    expect(f.held.calls[0]?.deadlineMs).toBeGreaterThanOrEqual(sentAt + 10_000);
    f.held.calls[0]?.release();
    await expect(pending).resolves.toMatchObject({ requestId: 'req-plain', resultCode: 'held' });
  });

  it('a deadline already passed fails at once on the client, sending nothing', async () => {
    f = await WsFixture.start();
    const client = await f.client(f.addDevice());
    const error = await client.execute('hold.late', new Uint8Array(0), { deadlineMs: Date.now() - 1 }).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: StatusCodes.DEADLINE_EXCEEDED, details: 'Deadline exceeded' });
    await expect(client.execute('echo.next', new Uint8Array(0))).resolves.toMatchObject({ resultCode: 'ok' });
    expect(f.held.calls).toEqual([]);
    expect(f.executions).toHaveLength(1);
  });

  it('refuses a timeout of 0 or above 5 minutes INVALID_ARGUMENT, and a body without one "malformed request message", on that call only', async () => {
    const harness = new MetricsHarness();
    f = await WsFixture.start({ metrics: harness.metrics });
    const device = f.addDevice();
    const ws = await f.raw();
    const seen = framesOf(ws);
    const request = commandBody(device, 'echo.bounds', 'req-bounds');
    const timed = (callId: number, timeoutMs: number) => encodeFrame(FrameTypes.executeWithTimeout, callId, encodeTimedExecute(timeoutMs, request));
    ws.send(timed(1, 0));
    ws.send(timed(2, MAX_CALL_TIMEOUT_MS + 1));
    ws.send(timed(3, 0xffffffff));
    ws.send(encodeFrame(FrameTypes.executeWithTimeout, 4, new Uint8Array([0, 1])));
    await seen.until(() => seen.frames.length >= 4);
    const statuses = Object.fromEntries(seen.frames.map((fr) => [fr.callId, fr.type === FrameTypes.status ? decodeStatus(fr.body) : fr.type]));
    const rule = { code: StatusCodes.INVALID_ARGUMENT, details: 'timeout_ms: must be 1-300000 milliseconds' };
    expect(statuses).toEqual({ 1: rule, 2: rule, 3: rule, 4: { code: StatusCodes.INVALID_ARGUMENT, details: 'malformed request message' } });
    expect(await harness.value(MetricNames.websocketRequests, { method: 'ExecuteCommand', code: 'INVALID_ARGUMENT' })).toBe(4);
    // None reached the core, so the request id is still free: the same request with a sane timeout runs.
    expect(f.executions).toEqual([]);
    ws.send(timed(5, MAX_CALL_TIMEOUT_MS));
    const [answer] = await callFrames(seen, 5, 1);
    expect(answer?.type).toBe(FrameTypes.result);
    expect(decodeExecuteCommandResponse(answer?.body as Uint8Array)).toMatchObject({ requestId: 'req-bounds', resultCode: 'ok' });
    expect(ws.readyState).toBe(WebSocket.OPEN);
    ws.close();
  });

  it('reads a 0x04 frame in its byte order: an out-of-range timeout_ms is refused as such whatever the body (which is not decoded), a good one with an undecodable body is "malformed request message" (SPEC §2.2)', async () => {
    const harness = new MetricsHarness();
    f = await WsFixture.start({ metrics: harness.metrics });
    const ws = await f.raw();
    const seen = framesOf(ws);
    const undecodable = new Uint8Array([0x0a, 0xff]);
    ws.send(encodeFrame(FrameTypes.executeWithTimeout, 1, encodeTimedExecute(0, undecodable)));
    ws.send(encodeFrame(FrameTypes.executeWithTimeout, 2, encodeTimedExecute(MAX_CALL_TIMEOUT_MS + 1, undecodable)));
    ws.send(encodeFrame(FrameTypes.executeWithTimeout, 3, encodeTimedExecute(1000, undecodable)));
    await seen.until(() => seen.frames.length >= 3);
    const statuses = Object.fromEntries(seen.frames.map((fr) => [fr.callId, fr.type === FrameTypes.status ? decodeStatus(fr.body) : fr.type]));
    const rule = { code: StatusCodes.INVALID_ARGUMENT, details: 'timeout_ms: must be 1-300000 milliseconds' };
    expect(statuses).toEqual({ 1: rule, 2: rule, 3: { code: StatusCodes.INVALID_ARGUMENT, details: 'malformed request message' } });
    expect(await harness.value(MetricNames.websocketRequests, { method: 'ExecuteCommand', code: 'INVALID_ARGUMENT' })).toBe(3);
    expect(f.executions).toEqual([]);
    expect(ws.readyState).toBe(WebSocket.OPEN);
    ws.close();
  });

  it('a command cut by its deadline after the downstream call started keeps its request_id: the same signed request again is ALREADY_EXISTS and never reaches the downstream (SPEC §4)', async () => {
    f = await WsFixture.start();
    const device = f.addDevice();
    const ws = await f.raw();
    const seen = framesOf(ws);
    const body = commandBody(device, 'hold.cut', 'req-cut');
    ws.send(encodeFrame(FrameTypes.executeWithTimeout, 1, encodeTimedExecute(200, body)));
    await f.held.waitForCalls(1);
    const [cut] = await callFrames(seen, 1, 1);
    expect(decodeStatus(cut?.body as Uint8Array)).toEqual({ code: StatusCodes.DEADLINE_EXCEEDED, details: 'Deadline exceeded' });
    await f.held.calls[0]?.aborted;
    // The downstream may have run it (it was cut, not undone): sending it again must not run it twice.
    ws.send(encodeFrame(FrameTypes.execute, 2, body));
    const [again] = await callFrames(seen, 2, 1);
    expect(again?.type).toBe(FrameTypes.status);
    expect(decodeStatus(again?.body as Uint8Array)).toEqual({ code: StatusCodes.ALREADY_EXISTS, details: 'request_id was already used' });
    expect(f.held.calls).toHaveLength(1);
    f.held.calls[0]?.release();
    ws.close();
  });

  it('the late answer of a timed-out command never reaches a newer call that reused its call id', async () => {
    f = await WsFixture.start();
    const device = f.addDevice();
    const ws = await f.raw();
    const seen = framesOf(ws);
    ws.send(encodeFrame(FrameTypes.executeWithTimeout, 7, encodeTimedExecute(200, commandBody(device, 'hold.first', 'req-first'))));
    const [expired] = await callFrames(seen, 7, 1);
    expect(decodeStatus(expired?.body as Uint8Array)).toEqual({ code: StatusCodes.DEADLINE_EXCEEDED, details: 'Deadline exceeded' });
    // The id is free again for the client: a new command on it while the first is still held.
    ws.send(encodeFrame(FrameTypes.execute, 7, commandBody(device, 'hold.second', 'req-second')));
    await f.held.waitForCalls(2);
    f.held.calls[0]?.release();
    await f.executions[0];
    f.held.calls[1]?.release();
    const frames = await callFrames(seen, 7, 2);
    expect(frames.map((fr) => fr.type)).toEqual([FrameTypes.status, FrameTypes.result]);
    expect(decodeExecuteCommandResponse(frames[1]?.body as Uint8Array).requestId).toBe('req-second');
    await f.executions[1];
    expect(seen.frames.filter((fr) => fr.callId === 7)).toHaveLength(2);
    ws.close();
  });
});

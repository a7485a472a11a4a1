import { afterEach, describe, expect, it, vi } from 'vitest';
import type { WebSocket } from 'ws';
import { sign } from 'node:crypto';
import { subscribeRequestBytes, type GatewayEvent } from '@edge-gateway/core';
import { FrameTypes, decodeFrame, decodeGatewayEvent, encodeFrame, encodeGatewayEvent, encodeSubscribeEventsRequest } from '@edge-gateway/protocol';
import type * as Protocol from '@edge-gateway/protocol';
import { createEventEncoder } from '../src/event-encoding.js';
import { WsFixture, type Device } from './fixture.js';

// Every protobuf encoding of a push event the adapter makes, counted (the real encoder runs).
const encoded = vi.hoisted(() => ({ events: [] as unknown[] }));
vi.mock('@edge-gateway/protocol', async (importOriginal) => {
  const original = await importOriginal<typeof Protocol>();
  return {
    ...original,
    encodeGatewayEvent: (event: Parameters<typeof original.encodeGatewayEvent>[0]) => {
      encoded.events.push(event);
      return original.encodeGatewayEvent(event);
    },
  };
});

let f: WsFixture | undefined;
afterEach(async () => {
  await f?.stop();
  f = undefined;
});

const event = (n: number): GatewayEvent => ({
  eventId: `1-${n}`,
  eventType: 'chat.message',
  userId: 'u',
  deviceSessionId: '',
  timestampMs: 1,
  payload: new Uint8Array(1000).fill(n),
  signerKeyId: 'k',
  signature: new Uint8Array(64).fill(n),
});

describe('push event encoding (WebSocket)', () => {
  it('createEventEncoder encodes each event object once, whatever the order of its deliveries', () => {
    const calls: GatewayEvent[] = [];
    const encode = createEventEncoder((e) => {
      calls.push(e);
      return encodeGatewayEvent(e);
    });
    const [a, b] = [event(1), event(2)];
    const first = encode(a);
    expect(encode(a)).toBe(first);
    encode(b);
    // Back to an earlier event (another stream's turn): from the weak cache, not encoded again.
    expect(encode(a)).toBe(first);
    expect(encode(b)).toEqual(encodeGatewayEvent(b));
    expect(calls).toEqual([a, b]);
    expect(first).toEqual(encodeGatewayEvent(a));
  });

  it('one event to 6 streams on 3 connections: encoded once, the same bytes in every frame', async () => {
    f = await WsFixture.start();
    const fixture = f;
    const userId = 'user-encode-once';
    const devices = [fixture.addDevice(userId), fixture.addDevice(userId), fixture.addDevice(userId)];
    const sockets = await Promise.all(devices.map(() => fixture.raw()));
    const received = sockets.map((ws) => collect(ws));
    // Two streams per connection (call ids 1 and 2), each started with its bootstrap.
    sockets.forEach((ws, i) => {
      ws.send(subscribeFrame(devices[i] as Device, 1));
      ws.send(subscribeFrame(devices[i] as Device, 2));
    });
    await Promise.all(received.map((r) => r.until((frames) => frames.filter((x) => x.type === FrameTypes.event).length === 2)));

    encoded.events.length = 0;
    const id = fixture.publish(userId, 'chat.message', new Uint8Array(4096).fill(7));
    await Promise.all(received.map((r) => r.until((frames) => frames.filter((x) => x.type === FrameTypes.event).length === 4)));
    expect(encoded.events).toHaveLength(1);
    expect((encoded.events[0] as GatewayEvent).eventId).toBe(id);

    const bodies = received.flatMap((r) => r.frames.filter((x) => x.type === FrameTypes.event).slice(2));
    expect(bodies.map((x) => x.callId).sort()).toEqual([1, 1, 1, 2, 2, 2]);
    const expected = encodeGatewayEvent(decodeGatewayEvent(bodies[0]?.body as Uint8Array));
    for (const frame of bodies) expect(Buffer.from(frame.body).equals(Buffer.from(expected))).toBe(true);
    expect(decodeGatewayEvent(expected)).toMatchObject({ eventId: id, userId, eventType: 'chat.message' });
    for (const ws of sockets) ws.close();
  });
});

function subscribeFrame(device: Device, callId: number): Uint8Array {
  const fields = { deviceSessionId: device.deviceSessionId, requestId: `sub-${callId}-${device.deviceSessionId}`, timestampMs: Date.now(), resumeAfterEventId: '' };
  const signature = sign(null, subscribeRequestBytes(fields), device.privateKey);
  return encodeFrame(FrameTypes.subscribe, callId, encodeSubscribeEventsRequest({ ...fields, signature }));
}

function collect(ws: WebSocket) {
  const frames: Array<{ type: number; callId: number; body: Uint8Array }> = [];
  const waiters: Array<() => void> = [];
  ws.on('message', (data: Buffer) => {
    frames.push(decodeFrame(new Uint8Array(data)));
    for (const wake of waiters.splice(0)) wake();
  });
  return {
    frames,
    async until(predicate: (frames: ReadonlyArray<{ type: number }>) => boolean): Promise<void> {
      while (!predicate(frames)) await new Promise<void>((resolve) => waiters.push(resolve));
    },
  };
}

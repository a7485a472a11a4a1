import { status } from '@grpc/grpc-js';
import { afterEach, describe, expect, it } from 'vitest';
import { GatewayFixture, pollUntil, signedSubscribe, subscribe } from './fixtures.js';

describe('SubscribeEvents push streams over a real gRPC server (SPEC §8.3)', () => {
  let f: GatewayFixture | undefined;
  afterEach(async () => {
    await f?.close();
    f = undefined;
  });

  it('delivers targeted client events in order and never another user\'s or session\'s', async () => {
    f = await GatewayFixture.start();
    const a1 = f.addDevice();
    const a2 = f.addDevice({ userId: a1.userId });
    const b = f.addDevice();
    const r1 = subscribe(f.client, signedSubscribe(a1));
    const r2 = subscribe(f.client, signedSubscribe(a2));
    const rb = subscribe(f.client, signedSubscribe(b));
    await Promise.all([r1.waitForEvents(1), r2.waitForEvents(1), rb.waitForEvents(1)]);

    const all = f.publish(a1.userId, 'chat.message', Buffer.from('to-all'));
    const only1 = f.publish(a1.userId, 'chat.message', Buffer.from('to-1'), a1.deviceSessionId);
    const forB = f.publish(b.userId, 'chat.message', Buffer.from('to-b'));
    // Session of user B addressed with user A's id: must reach nobody.
    f.publish(a1.userId, 'chat.message', Buffer.from('spoof'), b.deviceSessionId);

    expect((await r1.waitForEvents(3)).slice(1).map((e) => [e.eventId, Buffer.from(e.payload).toString()])).toEqual([
      [all, 'to-all'],
      [only1, 'to-1'],
    ]);
    expect((await r2.waitForEvents(2)).slice(1).map((e) => e.eventId)).toEqual([all]);
    expect((await rb.waitForEvents(2)).slice(1).map((e) => e.eventId)).toEqual([forB]);
    for (const r of [r1, r2, rb]) r.call.cancel();
    await pollUntil(() => f!.hub.size === 0, 'streams to leave the hub');
    expect(r1.events).toHaveLength(3);
    expect(r2.events).toHaveLength(2);
    expect(rb.events).toHaveLength(2);
  });

  it('a client cancel removes the stream from the hub at once', async () => {
    f = await GatewayFixture.start();
    const d = f.addDevice();
    const reader = subscribe(f.client, signedSubscribe(d));
    await reader.waitForEvents(1);
    expect(f.hub.size).toBe(1);
    reader.call.cancel();
    expect((await reader.status).code).toBe(status.CANCELLED);
    await pollUntil(() => f!.hub.size === 0, 'hub.size to drop to 0');
    expect(f.hub.sessionStreams(d.deviceSessionId)).toBe(0);
  });

  it('a revoked snapshot ends every open stream of that session with FAILED_PRECONDITION, and only those', async () => {
    f = await GatewayFixture.start();
    const d = f.addDevice();
    const sibling = f.addDevice({ userId: d.userId });
    const streams = [subscribe(f.client, signedSubscribe(d)), subscribe(f.newClient(), signedSubscribe(d))];
    const other = subscribe(f.client, signedSubscribe(sibling));
    await Promise.all([...streams, other].map((r) => r.waitForEvents(1)));

    f.revoke(d);
    for (const r of streams) {
      expect(await r.status).toEqual({ code: status.FAILED_PRECONDITION, details: 'device session is revoked' });
    }
    expect(f.hub.size).toBe(1);
    const id = f.publish(d.userId, 'chat.message', Buffer.from('still here'));
    expect((await other.waitForEvents(2))[1]!.eventId).toBe(id);
    // And a new subscription of the revoked session is refused.
    const again = subscribe(f.client, signedSubscribe(d));
    expect(await again.status).toEqual({ code: status.FAILED_PRECONDITION, details: 'device session is revoked' });
    other.call.cancel();
  });

  it('closing the hub ends open streams with UNAVAILABLE gateway is shutting down', async () => {
    f = await GatewayFixture.start();
    const readers = [subscribe(f.client, signedSubscribe(f.addDevice())), subscribe(f.client, signedSubscribe(f.addDevice()))];
    await Promise.all(readers.map((r) => r.waitForEvents(1)));
    f.hub.close();
    for (const r of readers) expect(await r.status).toEqual({ code: status.UNAVAILABLE, details: 'gateway is shutting down' });
    expect(f.hub.size).toBe(0);
  });

  it('a stalled client overflows only its own queue: RESOURCE_EXHAUSTED, while a reading client gets every event', async () => {
    f = await GatewayFixture.start({ bufferSize: 8 });
    const stalledDevice = f.addDevice();
    const readingDevice = f.addDevice({ userId: stalledDevice.userId });
    const stalled = subscribe(f.newClient(), signedSubscribe(stalledDevice));
    const reading = subscribe(f.newClient(), signedSubscribe(readingDevice));
    await Promise.all([stalled.waitForEvents(1), reading.waitForEvents(1)]);
    stalled.call.pause();

    const payload = Buffer.alloc(64 * 1024, 7);
    const ids: string[] = [];
    // HTTP/2 windows (64 KiB per stream by default) fill after a few events; then the
    // 16-message grpc-js buffer and the 8-event hub queue; then the stream must overflow.
    for (let i = 0; i < 200 && f.hub.sessionStreams(stalledDevice.deviceSessionId) > 0; i += 1) {
      ids.push(f.publish(stalledDevice.userId, 'bulk.data', payload));
      // Let the reading client drain between publishes, as a live feed would.
      await reading.waitForEvents(ids.length + 1);
    }
    expect(f.hub.sessionStreams(stalledDevice.deviceSessionId)).toBe(0);
    expect(f.hub.sessionStreams(readingDevice.deviceSessionId)).toBe(1);
    expect(ids.length).toBeLessThan(200);

    // Once the stalled client reads again it gets what was already in flight, then the status.
    stalled.call.resume();
    expect(await stalled.status).toEqual({ code: status.RESOURCE_EXHAUSTED, details: 'push stream overflowed' });
    expect(stalled.events.length).toBeLessThan(ids.length + 1);

    const more = f.publish(stalledDevice.userId, 'bulk.data', Buffer.from('after'));
    const got = await reading.waitForEvents(ids.length + 2);
    expect(got.slice(1).map((e) => e.eventId)).toEqual([...ids, more]);
    reading.call.cancel();
  });

  it('resume_after_event_id replays later events first, then the live feed', async () => {
    f = await GatewayFixture.start();
    const d = f.addDevice();
    const before = f.publish(d.userId, 'chat.message', Buffer.from('seen'));
    const missed = [f.publish(d.userId, 'chat.message', Buffer.from('m1')), f.publish(d.userId, 'chat.message', Buffer.from('m2'))];
    const reader = subscribe(f.client, signedSubscribe(d, { resumeAfterEventId: before }));
    await reader.waitForEvents(3);
    const live = f.publish(d.userId, 'chat.message', Buffer.from('live'));
    const events = await reader.waitForEvents(4);
    expect(events.map((e) => e.eventType)).toEqual(['gateway.server_time', 'chat.message', 'chat.message', 'chat.message']);
    expect(events.slice(1).map((e) => e.eventId)).toEqual([...missed, live]);
    reader.call.cancel();
  });

  it('a resume from a trimmed id gets gateway.resume_incomplete after the bootstrap', async () => {
    f = await GatewayFixture.start();
    const d = f.addDevice();
    const old = f.publish(d.userId, 'chat.message', Buffer.from('old'));
    f.publish(d.userId, 'chat.message', Buffer.from('x'));
    const kept = f.publish(d.userId, 'chat.message', Buffer.from('kept'));
    f.clientEvents.trim(1);
    const reader = subscribe(f.client, signedSubscribe(d, { resumeAfterEventId: old }));
    const events = await reader.waitForEvents(3);
    expect(events.map((e) => [e.eventType, e.eventId])).toEqual([
      ['gateway.server_time', ''],
      ['gateway.resume_incomplete', ''],
      ['chat.message', kept],
    ]);
    expect(events[1]).toMatchObject({ userId: d.userId, deviceSessionId: d.deviceSessionId });
    reader.call.cancel();
  });
});

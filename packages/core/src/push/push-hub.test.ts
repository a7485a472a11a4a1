import { describe, expect, it } from 'vitest';
import { CapturingLogger, MetricsHarness, RecordingSink } from '../../test/helpers.js';
import type { GatewayEvent } from '../domain.js';
import { GatewayError } from '../errors.js';
import { MetricNames } from '../observability/metrics.js';
import { PushHub } from './push-hub.js';

let seq = 0;
function event(userId: string, deviceSessionId = '', eventId = `1000-${(seq += 1)}`): GatewayEvent {
  return {
    eventId,
    eventType: 'chat.message_created',
    userId,
    deviceSessionId,
    timestampMs: 1000,
    payload: new Uint8Array([1, 2, 3]),
    signerKeyId: 'k',
    signature: new Uint8Array(64),
  };
}

function bootstrap(userId: string, deviceSessionId: string): GatewayEvent {
  return { ...event(userId, deviceSessionId, ''), eventType: 'gateway.server_time' };
}

function setup(bufferSize = 4) {
  const harness = new MetricsHarness();
  const logger = new CapturingLogger();
  const hub = new PushHub({ bufferSize, metrics: harness.metrics, logger });
  const open = (userId: string, deviceSessionId: string, started = true) => {
    const sink = new RecordingSink();
    const stream = hub.register({ userId, deviceSessionId, sink });
    if (started) stream.start([]);
    return { sink, stream };
  };
  return { harness, logger, hub, open };
}

describe('PushHub', () => {
  it('refuses a non-positive buffer size', () => {
    expect(() => new PushHub({ bufferSize: 0 })).toThrow(RangeError);
    expect(() => new PushHub({ bufferSize: 1.5 })).toThrow(RangeError);
  });

  describe('strict targeting', () => {
    it("never delivers user A's event to user B", () => {
      const { hub, open } = setup();
      const a = open('user-a', 'ds-a');
      const b = open('user-b', 'ds-b');
      expect(hub.publish(event('user-a'))).toBe(1);
      expect(a.sink.events).toHaveLength(1);
      expect(b.sink.events).toHaveLength(0);
      expect(hub.publish(event('user-c'))).toBe(0);
      expect(hub.hasTargets('user-a', '')).toBe(true);
      expect(hub.hasTargets('user-c', '')).toBe(false);
    });

    it('a user-wide event reaches every session of the user', () => {
      const { hub, open } = setup();
      const s1 = open('user-a', 'ds-1');
      const s2 = open('user-a', 'ds-2');
      const s2b = open('user-a', 'ds-2');
      expect(hub.publish(event('user-a'))).toBe(3);
      for (const s of [s1, s2, s2b]) expect(s.sink.events).toHaveLength(1);
    });

    it('a session-targeted event reaches only that session', () => {
      const { hub, open } = setup();
      const s1 = open('user-a', 'ds-1');
      const s2 = open('user-a', 'ds-2');
      const e = event('user-a', 'ds-2');
      expect(hub.publish(e)).toBe(1);
      expect(s1.sink.events).toHaveLength(0);
      expect(s2.sink.events).toEqual([e]);
      expect(hub.hasTargets('user-a', 'ds-2')).toBe(true);
      expect(hub.hasTargets('user-a', 'ds-3')).toBe(false);
    });

    it("a session-targeted event whose user_id is not the session's user reaches nobody", () => {
      const { hub, open } = setup();
      const s1 = open('user-a', 'ds-1');
      const b = open('user-b', 'ds-b');
      expect(hub.hasTargets('user-b', 'ds-1')).toBe(false);
      expect(hub.publish(event('user-b', 'ds-1'))).toBe(0);
      expect(s1.sink.events).toHaveLength(0);
      expect(b.sink.events).toHaveLength(0);
    });
  });

  describe('held streams', () => {
    it('delivers start() events first, then live events queued before start, in order', () => {
      const { hub, open } = setup();
      const { sink, stream } = open('user-a', 'ds-1', false);
      const live = [event('user-a'), event('user-a', 'ds-1'), event('user-a')];
      for (const e of live) hub.publish(e);
      expect(sink.events).toHaveLength(0);
      expect(stream.queued).toBe(3);
      const boot = bootstrap('user-a', 'ds-1');
      stream.start([boot]);
      expect(sink.events).toEqual([boot, ...live]);
      const later = event('user-a');
      hub.publish(later);
      expect(sink.events.at(-1)).toBe(later);
      stream.start([boot]); // a second start is ignored
      expect(sink.events).toHaveLength(5);
    });

    it('start() drops queued live events at or before skipThroughEventId', () => {
      const { hub, open } = setup();
      const { sink, stream } = open('user-a', 'ds-1', false);
      for (const id of ['5-0', '5-1', '6-0', '10-0']) hub.publish(event('user-a', '', id));
      stream.start([bootstrap('user-a', 'ds-1')], { skipThroughEventId: '5-1' });
      expect(sink.ids).toEqual(['', '6-0', '10-0']);
    });
  });

  describe('bounded queue', () => {
    it('closes only the stream whose queue overflowed, with RESOURCE_EXHAUSTED, at the (buffer+1)th queued event', async () => {
      const { hub, open, harness, logger } = setup(3);
      const slow = open('user-a', 'ds-slow');
      const fast = open('user-a', 'ds-fast');
      slow.sink.accept = false;
      const events = Array.from({ length: 5 }, () => event('user-a'));
      hub.publish(events[0] as GatewayEvent); // written; transport then reports full
      for (const e of events.slice(1, 4)) hub.publish(e); // 3 queued = buffer
      expect(slow.stream.queued).toBe(3);
      expect(slow.stream.closed).toBe(false);
      expect(slow.sink.ended).toBe(false);
      hub.publish(events[4] as GatewayEvent); // the 4th queued event overflows
      expect(slow.stream.closed).toBe(true);
      expect(slow.sink.ends).toHaveLength(1);
      expect(slow.sink.ends[0]).toBeInstanceOf(GatewayError);
      expect(slow.sink.ends[0]?.code).toBe('resource_exhausted');
      expect(slow.sink.ends[0]?.message).toBe('push stream overflowed');
      expect(slow.stream.closeError?.code).toBe('resource_exhausted');
      expect(slow.sink.events).toEqual([events[0]]);
      expect(fast.sink.events).toEqual(events);
      expect(fast.stream.closed).toBe(false);
      expect(hub.size).toBe(1);
      expect(await harness.value(MetricNames.pushStreamsClosed, { reason: 'overflow' })).toBe(1);
      expect(await harness.value(MetricNames.pushStreamsActive)).toBe(1);
      expect(logger.find('push stream overflowed')).toHaveLength(1);
      slow.stream.resume(); // nothing happens on a closed stream
      expect(slow.sink.events).toHaveLength(1);
    });

    it('resume() drains the queue in order and goes back to direct delivery', () => {
      const { hub, open } = setup(10);
      const { sink, stream } = open('user-a', 'ds-1');
      sink.accept = false;
      const events = Array.from({ length: 6 }, () => event('user-a'));
      for (const e of events.slice(0, 4)) hub.publish(e);
      expect(sink.events).toEqual([events[0]]);
      expect(stream.queued).toBe(3);
      sink.accept = true;
      stream.resume();
      expect(sink.events).toEqual(events.slice(0, 4));
      expect(stream.queued).toBe(0);
      for (const e of events.slice(4)) hub.publish(e);
      expect(sink.events).toEqual(events);
    });

    it('resume() stops again when the transport fills up mid-drain', () => {
      const { hub, open } = setup(10);
      const { sink, stream } = open('user-a', 'ds-1');
      sink.accept = false;
      const events = Array.from({ length: 5 }, () => event('user-a'));
      for (const e of events) hub.publish(e);
      stream.resume(); // writes one, sink still full
      expect(sink.events).toEqual(events.slice(0, 2));
      expect(stream.queued).toBe(3);
      sink.accept = true;
      stream.resume();
      expect(sink.events).toEqual(events);
    });

    it('a held stream keeps the newest events of a burst longer than the buffer and reports the loss', () => {
      const { hub, open } = setup(2);
      const { sink, stream } = open('user-a', 'ds-1', false);
      const burst = Array.from({ length: 4 }, () => event('user-a'));
      for (const e of burst) hub.publish(e);
      expect(stream.closed).toBe(false);
      // The two oldest were dropped: lost unless the caller's history covers them.
      expect(stream.lostWhileHeld(undefined)).toBe(true);
      expect(stream.lostWhileHeld(burst[0]?.eventId)).toBe(true);
      expect(stream.lostWhileHeld(burst[1]?.eventId)).toBe(false);
      expect(stream.lostWhileHeld(burst[3]?.eventId)).toBe(false);
      stream.start([], { skipThroughEventId: burst[1]?.eventId as string });
      expect(sink.events.map((e) => e.eventId)).toEqual([burst[2]?.eventId, burst[3]?.eventId]);
    });

    it('a started stream that queues more than the buffer overflows', () => {
      const { hub, open } = setup(2);
      const { sink, stream } = open('user-a', 'ds-1');
      sink.accept = false;
      for (let i = 0; i < 4; i += 1) hub.publish(event('user-a'));
      expect(stream.closed).toBe(true);
      expect(sink.ends[0]?.code).toBe('resource_exhausted');
    });

    it('start() may hand over more than the buffer (a resume) without overflowing', () => {
      const { hub, open } = setup(2);
      const { sink, stream } = open('user-a', 'ds-1', false);
      sink.accept = false;
      const first = Array.from({ length: 5 }, () => event('user-a'));
      stream.start(first);
      expect(stream.closed).toBe(false);
      expect(sink.events).toHaveLength(1);
      sink.accept = true;
      stream.resume();
      expect(sink.events).toEqual(first);
      expect(hub.size).toBe(1);
    });
  });

  describe('closing', () => {
    it('closeSession closes exactly that session with FAILED_PRECONDITION revoked', async () => {
      const { hub, open, harness } = setup();
      const s1a = open('user-a', 'ds-1');
      const s1b = open('user-a', 'ds-1');
      const s2 = open('user-a', 'ds-2');
      expect(hub.closeSession('ds-1')).toBe(2);
      for (const s of [s1a, s1b]) {
        expect(s.sink.ends).toHaveLength(1);
        expect(s.sink.ends[0]?.code).toBe('failed_precondition');
        expect(s.sink.ends[0]?.message).toBe('device session is revoked');
      }
      expect(s2.sink.ended).toBe(false);
      expect(hub.sessionStreams('ds-1')).toBe(0);
      expect(hub.sessionStreams('ds-2')).toBe(1);
      hub.publish(event('user-a'));
      expect(s1a.sink.events).toHaveLength(0);
      expect(s2.sink.events).toHaveLength(1);
      expect(hub.closeSession('ds-1')).toBe(0);
      expect(await harness.value(MetricNames.pushStreamsClosed, { reason: 'revoked' })).toBe(2);
    });

    it('close() ends every stream with UNAVAILABLE "gateway is shutting down" and refuses later registrations', async () => {
      const { hub, open, harness } = setup();
      const streams = [open('user-a', 'ds-1'), open('user-b', 'ds-2'), open('user-b', 'ds-3', false)];
      expect(hub.close()).toBe(3);
      expect(hub.closed).toBe(true);
      for (const s of streams) {
        expect(s.sink.ends).toHaveLength(1);
        expect(s.sink.ends[0]?.code).toBe('unavailable');
        expect(s.sink.ends[0]?.message).toBe('gateway is shutting down');
        expect(s.stream.closed).toBe(true);
      }
      expect(hub.size).toBe(0);
      const error = (() => {
        try {
          hub.register({ userId: 'user-a', deviceSessionId: 'ds-9', sink: new RecordingSink() });
        } catch (e) {
          return e;
        }
        return undefined;
      })();
      expect(error).toBeInstanceOf(GatewayError);
      expect(error).toMatchObject({ code: 'unavailable', message: 'gateway is shutting down' });
      expect(await harness.value(MetricNames.pushStreamsClosed, { reason: 'shutdown' })).toBe(3);
      expect(await harness.value(MetricNames.pushStreamsActive)).toBe(0);
      expect(hub.close()).toBe(0);
    });

    it('await using closes the hub at scope exit: every stream ends UNAVAILABLE "gateway is shutting down"', async () => {
      const { hub: outer, open } = setup();
      const streams = [open('user-a', 'ds-1'), open('user-b', 'ds-2')];
      {
        await using hub = outer;
        expect(hub.size).toBe(2);
      }
      expect(outer.closed).toBe(true);
      expect(outer.size).toBe(0);
      for (const s of streams) expect(s.sink.ends).toEqual([expect.objectContaining({ code: 'unavailable', message: 'gateway is shutting down' })]);
    });

    it('cancel() removes the stream without calling sink.end', async () => {
      const { hub, open, harness } = setup();
      const { sink, stream } = open('user-a', 'ds-1');
      stream.cancel();
      expect(sink.ends).toHaveLength(0);
      expect(stream.closed).toBe(true);
      expect(stream.closeError).toBeUndefined();
      expect(hub.size).toBe(0);
      expect(hub.publish(event('user-a'))).toBe(0);
      expect(sink.events).toHaveLength(0);
      stream.cancel();
      expect(await harness.value(MetricNames.pushStreamsClosed, { reason: 'client_cancelled' })).toBe(1);
      expect(await harness.value(MetricNames.pushStreamsActive)).toBe(0);
    });

    it('closeSession affects the streams open at that moment: a later (reactivated) stream lives until the next revoke', () => {
      // The hub keeps no revocation state (a later `active` snapshot may reactivate a session);
      // the revoke-vs-register race is closed by SubscriptionService, see its tests.
      const { hub, open } = setup();
      const old = open('user-a', 'ds-1');
      hub.closeSession('ds-1');
      const late = open('user-a', 'ds-1');
      expect(old.stream.closed).toBe(true);
      expect(late.stream.closed).toBe(false);
      hub.closeSession('ds-1');
      expect(late.stream.closed).toBe(true);
    });

    it('a close during delivery (a sink that closes its own session) does not break fan-out', () => {
      const { hub } = setup();
      const victim = new RecordingSink();
      const trigger: RecordingSink = Object.assign(new RecordingSink(), {
        write(e: GatewayEvent): boolean {
          trigger.events.push(e);
          hub.closeSession('ds-victim');
          return true;
        },
      });
      hub.register({ userId: 'user-a', deviceSessionId: 'ds-trigger', sink: trigger }).start([]);
      hub.register({ userId: 'user-a', deviceSessionId: 'ds-victim', sink: victim }).start([]);
      const other = new RecordingSink();
      hub.register({ userId: 'user-a', deviceSessionId: 'ds-other', sink: other }).start([]);
      hub.publish(event('user-a'));
      expect(trigger.events).toHaveLength(1);
      expect(victim.events).toHaveLength(0);
      expect(victim.ends[0]?.code).toBe('failed_precondition');
      expect(other.events).toHaveLength(1);
    });
  });

  describe('streams per session (issue 12)', () => {
    function sessionSetup(maxStreamsPerSession: number) {
      const harness = new MetricsHarness();
      const hub = new PushHub({ bufferSize: 4, maxStreamsPerSession, metrics: harness.metrics });
      const open = (userId: string, deviceSessionId: string) => {
        const sink = new RecordingSink();
        const stream = hub.register({ userId, deviceSessionId, sink });
        stream.start([]);
        return { sink, stream };
      };
      return { harness, hub, open };
    }

    it('one stream more than maxStreamsPerSession closes the oldest with RESOURCE_EXHAUSTED "push stream replaced by a newer stream"', async () => {
      const { hub, open, harness } = sessionSetup(2);
      const first = open('u-1', 'ds-1');
      const second = open('u-1', 'ds-1');
      const other = open('u-1', 'ds-2');
      expect(first.stream.closed).toBe(false);
      const third = open('u-1', 'ds-1');
      expect(first.sink.ends).toEqual([expect.objectContaining({ code: 'resource_exhausted', message: 'push stream replaced by a newer stream' })]);
      expect([second.stream.closed, third.stream.closed, other.stream.closed]).toEqual([false, false, false]);
      expect(hub.sessionStreams('ds-1')).toBe(2);
      hub.publish(event('u-1'));
      expect([second.sink.events.length, third.sink.events.length, other.sink.events.length, first.sink.events.length]).toEqual([1, 1, 1, 0]);
      expect(await harness.value(MetricNames.pushStreamsClosed, { reason: 'replaced' })).toBe(1);
      expect(await harness.value(MetricNames.pushStreamsClosed, { reason: 'overflow' })).toBe(0);
    });

    it('bounds the streams of a session however many are opened; other sessions keep theirs', async () => {
      const { hub, open, harness } = sessionSetup(4);
      const other = open('u-2', 'ds-other');
      for (let i = 0; i < 1000; i += 1) open('u-1', 'ds-storm');
      expect(hub.sessionStreams('ds-storm')).toBe(4);
      expect(hub.size).toBe(5);
      expect(other.stream.closed).toBe(false);
      expect(await harness.value(MetricNames.pushStreamsActive)).toBe(5);
      expect(await harness.value(MetricNames.pushStreamsClosed, { reason: 'replaced' })).toBe(996);
    });

    it('defaults to 4 and refuses a non-positive bound', () => {
      const hub = new PushHub({ bufferSize: 1 });
      for (let i = 0; i < 5; i += 1) hub.register({ userId: 'u', deviceSessionId: 'ds', sink: new RecordingSink() });
      expect(hub.sessionStreams('ds')).toBe(4);
      expect(() => new PushHub({ bufferSize: 1, maxStreamsPerSession: 0 })).toThrow(RangeError);
    });
  });

  describe('queued bytes per stream (issue 12)', () => {
    const sized = (userId: string, bytes: number, eventId?: string): GatewayEvent => ({ ...event(userId, '', eventId), payload: new Uint8Array(bytes) });

    it('overflows a stream whose queued payload bytes would exceed bufferBytes, like a count overflow', async () => {
      const harness = new MetricsHarness();
      const hub = new PushHub({ bufferSize: 100, bufferBytes: 1000, metrics: harness.metrics });
      const stalled = new RecordingSink();
      stalled.accept = false;
      hub.register({ userId: 'u-1', deviceSessionId: 'ds-1', sink: stalled }).start([]);
      const reading = new RecordingSink();
      hub.register({ userId: 'u-1', deviceSessionId: 'ds-2', sink: reading }).start([]);
      hub.publish(sized('u-1', 400)); // written to the transport, which then says "full"
      hub.publish(sized('u-1', 400)); // queued: 400
      hub.publish(sized('u-1', 600)); // queued: 1000, at the bound
      expect(stalled.ended).toBe(false);
      hub.publish(sized('u-1', 1)); // 1001 > 1000
      expect(stalled.ends).toEqual([expect.objectContaining({ code: 'resource_exhausted', message: 'push stream overflowed' })]);
      expect(reading.events).toHaveLength(4);
      expect(await harness.value(MetricNames.pushStreamsClosed, { reason: 'overflow' })).toBe(1);
    });

    it('delivered events free their bytes', () => {
      const hub = new PushHub({ bufferSize: 100, bufferBytes: 1000 });
      const sink = new RecordingSink();
      sink.accept = false;
      const stream = hub.register({ userId: 'u-1', deviceSessionId: 'ds-1', sink });
      stream.start([]);
      hub.publish(sized('u-1', 10));
      for (let round = 0; round < 5; round += 1) {
        hub.publish(sized('u-1', 900));
        stream.resume(); // the transport took it (and is full again)
      }
      expect(stream.closed).toBe(false);
      expect(sink.events).toHaveLength(6);
    });

    it('a held stream keeps the newest events within the byte bound and reports the loss', () => {
      const hub = new PushHub({ bufferSize: 100, bufferBytes: 1000 });
      const sink = new RecordingSink();
      const stream = hub.register({ userId: 'u-1', deviceSessionId: 'ds-1', sink });
      hub.publish(sized('u-1', 600, '5-1'));
      hub.publish(sized('u-1', 600, '5-2'));
      hub.publish(sized('u-1', 2000, '5-3')); // larger than the bound on its own
      hub.publish(sized('u-1', 300, '5-4'));
      expect(stream.lostWhileHeld('5-2')).toBe(true);
      stream.start([]);
      expect(sink.ids).toEqual(['5-2', '5-4']);
      expect(stream.closed).toBe(false);
    });

    it('replayed history handed to start() does not count against the byte bound', () => {
      const hub = new PushHub({ bufferSize: 100, bufferBytes: 100 });
      const sink = new RecordingSink();
      sink.accept = false;
      const stream = hub.register({ userId: 'u-1', deviceSessionId: 'ds-1', sink });
      stream.start([sized('u-1', 500, '6-1'), sized('u-1', 500, '6-2')]);
      hub.publish(sized('u-1', 100, '6-3'));
      expect(stream.closed).toBe(false);
    });
  });

  it('counts active streams and delivered events', async () => {
    const { hub, open, harness } = setup();
    const a = open('user-a', 'ds-1');
    open('user-a', 'ds-2');
    const held = open('user-a', 'ds-3', false);
    expect(await harness.value(MetricNames.pushStreamsActive)).toBe(3);
    expect(hub.size).toBe(3);
    hub.publish(event('user-a'));
    hub.publish(event('user-a', 'ds-1'));
    expect(await harness.value(MetricNames.pushEventsDelivered)).toBe(3); // the held stream has not delivered yet
    held.stream.start([bootstrap('user-a', 'ds-3')]);
    expect(await harness.value(MetricNames.pushEventsDelivered)).toBe(5);
    a.stream.cancel();
    expect(await harness.value(MetricNames.pushStreamsActive)).toBe(2);
  });
  it('tells its feed about every stream registered and closed (follow/unfollow pairs), whatever ends it', async () => {
    const calls: string[] = [];
    const hub = new PushHub({
      bufferSize: 1,
      feed: {
        follow: (userId) => {
          calls.push(`follow ${userId}`);
          return Promise.resolve();
        },
        unfollow: (userId) => calls.push(`unfollow ${userId}`),
      },
    });
    const a = hub.register({ userId: 'u-a', deviceSessionId: 's-1', sink: new RecordingSink() });
    const b = hub.register({ userId: 'u-a', deviceSessionId: 's-2', sink: new RecordingSink() });
    hub.register({ userId: 'u-b', deviceSessionId: 's-3', sink: new RecordingSink() });
    await expect(a.following).resolves.toBeUndefined();
    expect(hub.userSessions('u-a').sort()).toEqual(['s-1', 's-2']);
    a.cancel();
    a.cancel();
    hub.closeSession('s-2');
    hub.close();
    expect(calls).toEqual(['follow u-a', 'follow u-a', 'follow u-b', 'unfollow u-a', 'unfollow u-a', 'unfollow u-b']);
    expect(b.closed).toBe(true);
  });
});


import { describe, expect, it } from 'vitest';
import {
  CapturingLogger,
  ControlledReplayStore,
  CountingSigner,
  MetricsHarness,
  RecordingSink,
  TestDevice,
  clientEventFields,
  decodeServerTime,
  deferred,
  eventVerifies,
  flipByte,
  vectors,
} from '../../test/helpers.js';
import type { GatewayEvent, StreamEntry, SubscribeRequest } from '../domain.js';
import { GatewayError } from '../errors.js';
import { ClientEventsHandler } from '../handlers/client-events-handler.js';
import { SessionEventsHandler } from '../handlers/session-events-handler.js';
import { MetricNames } from '../observability/metrics.js';
import type { EventHistory, EventHistoryPage } from '../ports/event-history.port.js';
import type { ReplayStore } from '../ports/replay-store.port.js';
import type { UserFeed } from '../ports/user-feed.port.js';
import { PushHub } from '../push/push-hub.js';
import { SessionCache } from '../session/session-cache.js';
import { FakeClock } from '../memory/fake-clock.js';
import { InMemoryEventStream } from '../memory/in-memory-event-stream.js';
import { InMemoryReplayStore } from '../memory/in-memory-replay-store.js';
import { InMemorySessionStore } from '../memory/in-memory-session-store.js';
import { SubscriptionService } from './subscription-service.js';

const WINDOW = 60_000;
const alice1 = new TestDevice('ds-alice-1', 'u-alice');
const alice2 = new TestDevice('ds-alice-2', 'u-alice');
const bob = new TestDevice('ds-bob', 'u-bob');
const revoked = new TestDevice('ds-revoked', 'u-rev');
const stranger = new TestDevice('ds-unknown', 'u-nobody');

interface SetupOptions {
  /** `undefined`: the in-memory event stream; `null`: no history configured. */
  readonly history?: (events: InMemoryEventStream) => EventHistory | null;
  readonly replay?: ReplayStore;
  readonly resumeMaxEvents?: number;
  readonly resumeMaxScan?: number;
  readonly resumeMaxBytes?: number;
  readonly bufferSize?: number;
  readonly bufferBytes?: number;
  readonly maxConcurrentChecks?: number;
  readonly asyncCrypto?: boolean;
  readonly maxEventBytes?: number;
  readonly feed?: UserFeed;
}

function setup(options: SetupOptions = {}) {
  const clock = new FakeClock();
  const store = new InMemorySessionStore();
  for (const d of [alice1, alice2, bob]) store.set(d.deviceSessionId, d.record('active'));
  store.set(revoked.deviceSessionId, revoked.record('revoked'));
  const memoryReplay = new InMemoryReplayStore(clock);
  const harness = new MetricsHarness();
  const logger = new CapturingLogger();
  const signer = new CountingSigner();
  const cache = new SessionCache(store, { maxEntries: 100, ttlMs: 30_000, clock, logger });
  const hub = new PushHub({
    bufferSize: options.bufferSize ?? 64,
    ...(options.bufferBytes === undefined ? {} : { bufferBytes: options.bufferBytes }),
    metrics: harness.metrics, logger, ...(options.feed === undefined ? {} : { feed: options.feed }) });
  const events = new InMemoryEventStream(clock);
  const limit = options.maxEventBytes === undefined ? {} : { maxEventBytes: options.maxEventBytes };
  events.subscribe(new ClientEventsHandler({ hub, signer, metrics: harness.metrics, logger, ...limit }));
  const sessionEvents = new SessionEventsHandler({ cache, hub, metrics: harness.metrics, logger });
  const history = options.history === undefined ? events : options.history(events);
  const service = new SubscriptionService({
    sessions: cache,
    replay: options.replay ?? memoryReplay,
    hub,
    signer,
    clock,
    logger,
    metrics: harness.metrics,
    freshnessWindowMs: WINDOW,
    ...(history === null ? {} : { history }),
    ...(options.resumeMaxEvents === undefined ? {} : { resumeMaxEvents: options.resumeMaxEvents }),
    ...(options.resumeMaxScan === undefined ? {} : { resumeMaxScan: options.resumeMaxScan }),
    ...(options.resumeMaxBytes === undefined ? {} : { resumeMaxBytes: options.resumeMaxBytes }),
    ...(options.maxConcurrentChecks === undefined ? {} : { maxConcurrentChecks: options.maxConcurrentChecks }),
    ...(options.asyncCrypto === undefined ? {} : { asyncCrypto: options.asyncCrypto }),
    ...limit,
  });
  const request = (device: TestDevice, overrides: Partial<SubscribeRequest> = {}) =>
    device.subscribe({ timestampMs: clock.now(), ...overrides });
  const open = async (device: TestDevice, overrides: Partial<SubscribeRequest> = {}) => {
    const sink = new RecordingSink();
    const req = request(device, overrides);
    const stream = await service.subscribe(req, sink);
    return { sink, stream, req };
  };
  /** Appends a client event; a new millisecond every other entry, like a real stream. */
  let tick = 0;
  const publish = (fields: Record<string, string>): string => {
    if ((tick += 1) % 2 === 0) clock.advance(1);
    return events.append(fields);
  };
  return { clock, store, memoryReplay, harness, logger, signer, cache, hub, events, sessionEvents, service, request, open, publish };
}

async function expectFailure(promise: Promise<unknown>, code: string, message: string): Promise<GatewayError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(GatewayError);
  expect({ code: (error as GatewayError).code, message: (error as GatewayError).message }).toEqual({ code, message });
  return error as GatewayError;
}

function expectGatewayEvent(event: GatewayEvent | undefined, type: string, device: TestDevice, timestampMs: number): void {
  expect(event).toBeDefined();
  expect(event).toMatchObject({
    eventId: '',
    eventType: type,
    userId: device.userId,
    deviceSessionId: device.deviceSessionId,
    timestampMs,
    signerKeyId: vectors.keys.gateway.key_id,
  });
  expect(eventVerifies(Buffer.from(vectors.keys.gateway.public_key_base64, 'base64'), event as GatewayEvent)).toBe(true);
}

describe('SubscriptionService', () => {
  describe('bootstrap and live feed', () => {
    it('sends a signed gateway.server_time bootstrap first, carrying the subscribe request_id', async () => {
      const { open, clock, hub } = setup();
      const { sink, req } = await open(alice1, { requestId: 'sub-0001' });
      expect(sink.events).toHaveLength(1);
      const [boot] = sink.events;
      expectGatewayEvent(boot, 'gateway.server_time', alice1, clock.now());
      expect(decodeServerTime(boot?.payload ?? new Uint8Array())).toEqual({ serverTimeMs: clock.now(), requestId: req.requestId });
      expect(hub.size).toBe(1);
      expect(hub.sessionStreams(alice1.deviceSessionId)).toBe(1);
    });

    it('signs the bootstrap per stream: each binds its own request_id', async () => {
      const { open, signer } = setup();
      const a = await open(alice1, { requestId: 'first' });
      const b = await open(alice1, { requestId: 'second' });
      expect(signer.calls).toBe(2);
      expect(decodeServerTime(a.sink.events[0]?.payload ?? new Uint8Array()).requestId).toBe('first');
      expect(decodeServerTime(b.sink.events[0]?.payload ?? new Uint8Array()).requestId).toBe('second');
    });

    it('then delivers, in stream order, exactly the client events that target the stream', async () => {
      const { open, publish } = setup();
      const a1 = await open(alice1);
      const a2 = await open(alice2);
      const b = await open(bob);
      const ids = [
        publish(clientEventFields('u-alice', 'chat.message_created', 'all alice')),
        publish(clientEventFields('u-bob', 'chat.message_created', 'bob')),
        publish(clientEventFields('u-alice', 'chat.typing', 'alice-1 only', 'ds-alice-1')),
        publish(clientEventFields('u-alice', 'chat.typing', 'alice-2 only', 'ds-alice-2')),
        publish(clientEventFields('u-bob', 'chat.typing', 'bob at alice-1: nobody', 'ds-alice-1')),
      ];
      expect(a1.sink.ids).toEqual(['', ids[0], ids[2]]);
      expect(a2.sink.ids).toEqual(['', ids[0], ids[3]]);
      expect(b.sink.ids).toEqual(['', ids[1]]);
    });

    it('a revoked snapshot closes the open stream with FAILED_PRECONDITION', async () => {
      const { open, sessionEvents } = setup();
      const a1 = await open(alice1);
      const a2 = await open(alice2);
      sessionEvents.handle({ id: '1-0', fields: alice1.record('revoked') });
      expect(a1.sink.ends[0]).toMatchObject({ code: 'failed_precondition', message: 'device session is revoked' });
      expect(a2.sink.ended).toBe(false);
    });
  });

  describe('§4 rows (no route step)', () => {
    it('1: field rules → INVALID_ARGUMENT, nothing registered', async () => {
      const { service, request, hub } = setup();
      const sink = new RecordingSink();
      await expectFailure(service.subscribe(request(alice1, { requestId: '' }), sink), 'invalid_argument', 'request_id: must be 1-128 characters of [A-Za-z0-9._:-]');
      await expectFailure(service.subscribe(request(alice1, { deviceSessionId: 'a b' }), sink), 'invalid_argument', 'device_session_id: must be 1-128 characters of [A-Za-z0-9._:-]');
      await expectFailure(
        service.subscribe(request(alice1, { resumeAfterEventId: '12' }), sink),
        'invalid_argument',
        'resume_after_event_id: must be empty or a stream id <ms>-<seq>',
      );
      await expectFailure(service.subscribe(request(alice1, { signature: new Uint8Array(65) }), sink), 'invalid_argument', 'signature: must be exactly 64 bytes');
      expect(hub.size).toBe(0);
      expect(sink.events).toHaveLength(0);
    });

    it('2: freshness window boundaries', async () => {
      const { service, request, clock } = setup();
      const now = clock.now();
      await expect(service.subscribe(request(alice1, { timestampMs: now - WINDOW }), new RecordingSink())).resolves.toBeDefined();
      await expect(service.subscribe(request(alice1, { timestampMs: now + WINDOW }), new RecordingSink())).resolves.toBeDefined();
      const stale = 'request timestamp is outside the freshness window';
      await expectFailure(service.subscribe(request(alice1, { timestampMs: now - WINDOW - 1 }), new RecordingSink()), 'unauthenticated', stale);
      await expectFailure(service.subscribe(request(alice1, { timestampMs: now + WINDOW + 1 }), new RecordingSink()), 'unauthenticated', stale);
    });

    it('3, 4, 5: unknown, revoked, bad signature', async () => {
      const { service, request, hub } = setup();
      await expectFailure(service.subscribe(request(stranger), new RecordingSink()), 'unauthenticated', 'unknown device session');
      await expectFailure(service.subscribe(request(revoked), new RecordingSink()), 'failed_precondition', 'device session is revoked');
      const req = request(alice1);
      await expectFailure(service.subscribe({ ...req, signature: flipByte(req.signature, 5) }, new RecordingSink()), 'unauthenticated', 'invalid request signature');
      await expectFailure(service.subscribe({ ...req, resumeAfterEventId: '1-0' }, new RecordingSink()), 'unauthenticated', 'invalid request signature');
      expect(hub.size).toBe(0);
    });

    it('7: replay → ALREADY_EXISTS and counted', async () => {
      const { service, request, harness, hub } = setup();
      const req = request(alice1);
      await service.subscribe(req, new RecordingSink());
      await expectFailure(service.subscribe(req, new RecordingSink()), 'already_exists', 'request_id was already used');
      expect(await harness.value(MetricNames.replayRejections)).toBe(1);
      expect(hub.size).toBe(1);
    });

    it('session store / replay store unreachable → UNAVAILABLE, nothing registered', async () => {
      const { service, request, store, memoryReplay, hub } = setup();
      store.failing = true;
      await expectFailure(service.subscribe(request(alice1), new RecordingSink()), 'unavailable', 'session store unavailable');
      store.failing = false;
      memoryReplay.failing = true;
      await expectFailure(service.subscribe(request(alice1), new RecordingSink()), 'unavailable', 'replay store unavailable');
      expect(hub.size).toBe(0);
    });

    it('7: reservation not replicated → UNAVAILABLE "replay store not durable", nothing registered; the same request opens the stream once replication is back', async () => {
      const { service, request, memoryReplay, hub, harness } = setup();
      memoryReplay.unreplicated = true;
      const req = request(alice1);
      await expectFailure(service.subscribe(req, new RecordingSink()), 'unavailable', 'replay store not durable');
      expect(hub.size).toBe(0);
      memoryReplay.unreplicated = false;
      await service.subscribe(req, new RecordingSink());
      expect(hub.size).toBe(1);
      expect(await harness.value(MetricNames.replayReservations, { outcome: 'not_replicated' })).toBe(1);
      expect(await harness.value(MetricNames.replayReservations, { outcome: 'ok' })).toBe(1);
    });

    it('order: invalid+stale → invalid; stale+unknown → stale; unknown+bad sig → unknown; revoked+bad sig → revoked', async () => {
      const { service, request, clock, store } = setup();
      const old = clock.now() - 10 * WINDOW;
      await expectFailure(service.subscribe(request(alice1, { requestId: 'a/b', timestampMs: old }), new RecordingSink()), 'invalid_argument', 'request_id: must be 1-128 characters of [A-Za-z0-9._:-]');
      await expectFailure(service.subscribe(request(stranger, { timestampMs: old }), new RecordingSink()), 'unauthenticated', 'request timestamp is outside the freshness window');
      expect(store.reads).toBe(0);
      const unknown = request(stranger);
      await expectFailure(service.subscribe({ ...unknown, signature: flipByte(unknown.signature) }, new RecordingSink()), 'unauthenticated', 'unknown device session');
      const rev = request(revoked);
      await expectFailure(service.subscribe({ ...rev, signature: flipByte(rev.signature) }, new RecordingSink()), 'failed_precondition', 'device session is revoked');
    });

    it('a bad signature does not consume the request_id', async () => {
      const { service, request } = setup();
      const req = request(alice1);
      await expectFailure(service.subscribe({ ...req, signature: flipByte(req.signature) }, new RecordingSink()), 'unauthenticated', 'invalid request signature');
      await expect(service.subscribe(req, new RecordingSink())).resolves.toBeDefined();
    });

    it('shutdown: beginShutdown or a closed hub → UNAVAILABLE "gateway is shutting down"', async () => {
      const a = setup();
      a.service.beginShutdown();
      await expectFailure(a.service.subscribe(a.request(alice1), new RecordingSink()), 'unavailable', 'gateway is shutting down');
      const b = setup();
      const open = await b.open(alice1);
      b.hub.close();
      expect(open.sink.ends[0]).toMatchObject({ code: 'unavailable', message: 'gateway is shutting down' });
      await expectFailure(b.service.subscribe(b.request(alice1), new RecordingSink()), 'unavailable', 'gateway is shutting down');
    });
  });

  describe('a stream registered while its session is being revoked does not survive', () => {
    it('revoke applied during the replay reservation (before register) → FAILED_PRECONDITION, nothing registered', async () => {
      const controlled = new ControlledReplayStore();
      const { service, request, sessionEvents, hub } = setup({ replay: controlled });
      const sink = new RecordingSink();
      const pending = service.subscribe(request(alice1), sink);
      await controlled.reached(1);
      sessionEvents.handle({ id: '1-0', fields: alice1.record('revoked') });
      controlled.calls[0]?.outcome.resolve('reserved');
      await expectFailure(pending, 'failed_precondition', 'device session is revoked');
      expect(hub.size).toBe(0);
      expect(sink.events).toHaveLength(0);
      expect(sink.ended).toBe(false);
    });

    it('revoke applied after register (during the resume history read) → the stream is closed, nothing delivered', async () => {
      const gate = deferred<void>();
      const reached = deferred<void>();
      const { service, request, sessionEvents, hub, publish } = setup({
        history: (events) => ({
          async readAfter(afterId: string, count: number): Promise<EventHistoryPage> {
            reached.resolve();
            await gate.promise;
            return events.readAfter(afterId, count);
          },
        }),
      });
      const cursor = publish(clientEventFields('u-alice', 'chat.x', 'old'));
      publish(clientEventFields('u-alice', 'chat.x', 'missed'));
      const sink = new RecordingSink();
      const pending = service.subscribe(request(alice1, { resumeAfterEventId: cursor }), sink);
      await reached.promise;
      expect(hub.sessionStreams(alice1.deviceSessionId)).toBe(1);
      sessionEvents.handle({ id: '9-0', fields: alice1.record('revoked') });
      gate.resolve();
      const stream = await pending;
      expect(stream.closed).toBe(true);
      expect(sink.events).toHaveLength(0);
      expect(sink.ends).toHaveLength(1);
      expect(sink.ends[0]).toMatchObject({ code: 'failed_precondition', message: 'device session is revoked' });
      expect(hub.size).toBe(0);
    });
  });

  describe('resume_after_event_id', () => {
    it('replays exactly the missed events for this stream, in order, then goes live with no duplicates', async () => {
      const { open, publish, clock, harness } = setup();
      const cursor = publish(clientEventFields('u-alice', 'chat.message_created', 'seen already'));
      const missed: string[] = [];
      missed.push(publish(clientEventFields('u-alice', 'chat.message_created', 'm1')));
      publish(clientEventFields('u-bob', 'chat.message_created', 'bob 1'));
      missed.push(publish(clientEventFields('u-alice', 'chat.typing', 'm2', 'ds-alice-1')));
      publish(clientEventFields('u-alice', 'chat.typing', 'for alice-2', 'ds-alice-2'));
      publish({ user_id: 'u-alice', event_type: 'gateway.server_time', payload_base64: '' }); // malformed
      publish(clientEventFields('u-bob', 'chat.typing', 'bob at alice-1', 'ds-alice-1'));
      missed.push(publish(clientEventFields('u-alice', 'chat.message_created', 'm3')));
      publish(clientEventFields('u-bob', 'chat.message_created', 'bob 2'));
      missed.push(publish(clientEventFields('u-alice', 'chat.message_created', 'm4')));

      const { sink } = await open(alice1, { resumeAfterEventId: cursor });
      expect(sink.types[0]).toBe('gateway.server_time');
      expect(sink.ids).toEqual(['', ...missed]);
      expect(sink.events.slice(1).map((e) => Buffer.from(e.payload).toString())).toEqual(['m1', 'm2', 'm3', 'm4']);
      for (const e of sink.events.slice(1)) {
        expect(eventVerifies(Buffer.from(vectors.keys.gateway.public_key_base64, 'base64'), e)).toBe(true);
        expect(e.timestampMs).toBe(Number(e.eventId.split('-')[0]));
      }

      clock.advance(5);
      const live = [
        publish(clientEventFields('u-alice', 'chat.message_created', 'live 1')),
        publish(clientEventFields('u-bob', 'chat.message_created', 'bob live')),
        publish(clientEventFields('u-alice', 'chat.message_created', 'live 2', 'ds-alice-1')),
      ];
      expect(sink.ids).toEqual(['', ...missed, live[0], live[2]]);
      expect(await harness.value(MetricNames.pushResumes)).toBe(1);
      expect(await harness.value(MetricNames.pushResumeReplayed)).toBe(4);
      expect(await harness.value(MetricNames.pushResumeIncomplete)).toBe(0);
    });

    it('skips an oversized or multi-MiB entry alone and replays every other one, complete (issue 12)', async () => {
      const { open, publish, harness } = setup({ maxEventBytes: 1024 });
      const cursor = publish(clientEventFields('u-alice', 'chat.x', 'seen'));
      const before = publish(clientEventFields('u-alice', 'chat.x', 'before'));
      publish(clientEventFields('u-alice', 'chat.x', Buffer.alloc(1025)));
      publish(clientEventFields('u-alice', 'chat.x', Buffer.alloc(4 * 1024 * 1024, 3)));
      const after = publish(clientEventFields('u-alice', 'chat.x', 'after'));
      const { sink } = await open(alice1, { resumeAfterEventId: cursor });
      expect(sink.ids).toEqual(['', before, after]);
      expect(sink.types).not.toContain('gateway.resume_incomplete');
      expect(await harness.value(MetricNames.pushResumeIncomplete)).toBe(0);
    });

    it('resuming from the newest id replays nothing and sends no incomplete notice', async () => {
      const { open, publish } = setup();
      publish(clientEventFields('u-alice', 'chat.x', 'a'));
      const last = publish(clientEventFields('u-alice', 'chat.x', 'b'));
      const { sink } = await open(alice1, { resumeAfterEventId: last });
      expect(sink.types).toEqual(['gateway.server_time']);
    });

    it('pages through long histories (more than one page)', async () => {
      const { open, publish } = setup();
      const cursor = publish(clientEventFields('u-alice', 'chat.x', 'seen'));
      const missed: string[] = [];
      for (let i = 0; i < 700; i += 1) {
        missed.push(publish(clientEventFields('u-alice', 'chat.x', `m${i}`)));
        publish(clientEventFields('u-bob', 'chat.x', `b${i}`));
      }
      const { sink } = await open(alice1, { resumeAfterEventId: cursor });
      expect(sink.ids).toEqual(['', ...missed]);
    });

    it('a page caught up with the live feed ends the replay: no further read, the events written meanwhile arrive live, once, in order', async () => {
      const gate = deferred<void>();
      const reached = deferred<void>();
      const reads: string[] = [];
      const { service, request, publish, harness } = setup({
        history: (events) => ({
          async readAfter(afterId: string, count: number): Promise<EventHistoryPage> {
            reads.push(afterId);
            // What the live consumer has handed to the hub so far: this page ends there.
            const page = await events.readAfter(afterId, count);
            reached.resolve();
            await gate.promise;
            return { ...page, caughtUp: true };
          },
        }),
      });
      const cursor = publish(clientEventFields('u-alice', 'chat.x', 'seen'));
      const missed = [publish(clientEventFields('u-alice', 'chat.x', 'm1')), publish(clientEventFields('u-alice', 'chat.x', 'm2'))];
      const sink = new RecordingSink();
      const pending = service.subscribe(request(alice1, { resumeAfterEventId: cursor }), sink);
      await reached.promise;
      // Written after the page was read: the live feed brings them to the held stream.
      const during = [publish(clientEventFields('u-bob', 'chat.x', 'bob')), publish(clientEventFields('u-alice', 'chat.x', 'd1'))];
      gate.resolve();
      await pending;
      const after = publish(clientEventFields('u-alice', 'chat.x', 'after'));
      expect(reads).toEqual([cursor]);
      expect(sink.ids).toEqual(['', ...missed, during[1], after]);
      expect(await harness.value(MetricNames.pushResumeIncomplete)).toBe(0);
    });

    describe.each([
      ['the page is read after the hold (it already holds the live events)', 'late'],
      ['the page was read before the hold (live events come after it)', 'early'],
    ] as const)('events published while the history read is pending: %s', (_label, mode) => {
      it('are delivered exactly once, in order, after the replayed ones', async () => {
        const gate = deferred<void>();
        const reached = deferred<void>();
        let calls = 0;
        const { service, request, publish } = setup({
          history: (events) => ({
            async readAfter(afterId: string, count: number): Promise<EventHistoryPage> {
              calls += 1;
              if (calls > 1) return events.readAfter(afterId, count);
              const early = mode === 'early' ? await events.readAfter(afterId, count) : undefined;
              reached.resolve();
              await gate.promise;
              return early ?? events.readAfter(afterId, count);
            },
          }),
        });
        const cursor = publish(clientEventFields('u-alice', 'chat.x', 'seen'));
        const missed = [
          publish(clientEventFields('u-alice', 'chat.x', 'm1')),
          publish(clientEventFields('u-alice', 'chat.x', 'm2', 'ds-alice-1')),
        ];
        publish(clientEventFields('u-bob', 'chat.x', 'bob'));

        const sink = new RecordingSink();
        const pending = service.subscribe(request(alice1, { resumeAfterEventId: cursor }), sink);
        await reached.promise;
        const during = [
          publish(clientEventFields('u-alice', 'chat.x', 'd1')),
          publish(clientEventFields('u-bob', 'chat.x', 'bob d')),
          publish(clientEventFields('u-alice', 'chat.x', 'd2', 'ds-alice-1')),
          publish(clientEventFields('u-alice', 'chat.x', 'for alice-2', 'ds-alice-2')),
        ];
        expect(sink.events).toHaveLength(0); // held until the bootstrap goes first
        gate.resolve();
        await pending;
        const after = publish(clientEventFields('u-alice', 'chat.x', 'after'));
        expect(sink.ids).toEqual(['', ...missed, during[0], during[2], after]);
        expect(new Set(sink.ids).size).toBe(sink.ids.length);
      });
    });

    describe.each([
      ['history covers the dropped events (page read after the burst)', 'late', false],
      ['history does not cover them (page read before the burst)', 'early', true],
    ] as const)('a live burst longer than the buffer while the history read is pending: %s', (_label, mode, lost) => {
      it(lost ? 'keeps the stream open and sends gateway.resume_incomplete' : 'loses nothing and sends no notice', async () => {
        const gate = deferred<void>();
        const reached = deferred<void>();
        let calls = 0;
        const { service, request, publish, harness } = setup({
          bufferSize: 2,
          history: (events) => ({
            async readAfter(afterId: string, count: number): Promise<EventHistoryPage> {
              calls += 1;
              // 'early': the history's last page was read before the burst reached the stream.
              if (calls > 1) return mode === 'early' ? { entries: [], truncated: false } : events.readAfter(afterId, count);
              const early = mode === 'early' ? await events.readAfter(afterId, count) : undefined;
              reached.resolve();
              await gate.promise;
              return early ?? events.readAfter(afterId, count);
            },
          }),
        });
        const cursor = publish(clientEventFields('u-alice', 'chat.x', 'seen'));
        const missed = publish(clientEventFields('u-alice', 'chat.x', 'm1'));
        const sink = new RecordingSink();
        const pending = service.subscribe(request(alice1, { resumeAfterEventId: cursor }), sink);
        await reached.promise;
        const burst = Array.from({ length: 5 }, (_, i) => publish(clientEventFields('u-alice', 'chat.x', `b${i}`)));
        gate.resolve();
        const stream = await pending;
        expect(stream.closed).toBe(false);
        if (lost) {
          // The two newest live events survive the held queue; the notice tells the client.
          expect(sink.ids).toEqual(['', '', missed, burst[3], burst[4]]);
          expect(sink.types[1]).toBe('gateway.resume_incomplete');
          expect(await harness.value(MetricNames.pushResumeIncomplete, { reason: 'live_overflow' })).toBe(1);
        } else {
          expect(sink.ids).toEqual(['', missed, ...burst]);
          expect(await harness.value(MetricNames.pushResumeIncomplete)).toBe(0);
        }
      });
    });

    it('a trimmed stream (cursor older than the trim point) → signed gateway.resume_incomplete right after the bootstrap', async () => {
      const { open, publish, events, clock, harness } = setup();
      const cursor = publish(clientEventFields('u-alice', 'chat.x', 'seen'));
      publish(clientEventFields('u-alice', 'chat.x', 'lost 1'));
      publish(clientEventFields('u-alice', 'chat.x', 'lost 2'));
      const kept = [publish(clientEventFields('u-alice', 'chat.x', 'kept 1')), publish(clientEventFields('u-alice', 'chat.x', 'kept 2'))];
      events.trim(2);
      const { sink } = await open(alice1, { resumeAfterEventId: cursor });
      expect(sink.types.slice(0, 2)).toEqual(['gateway.server_time', 'gateway.resume_incomplete']);
      const notice = sink.events[1];
      expectGatewayEvent(notice, 'gateway.resume_incomplete', alice1, clock.now());
      expect(notice?.payload).toHaveLength(0);
      expect(sink.ids.slice(2)).toEqual(kept);
      const live = publish(clientEventFields('u-alice', 'chat.x', 'live'));
      expect(sink.ids.at(-1)).toBe(live);
      expect(await harness.value(MetricNames.pushResumeIncomplete, { reason: 'truncated' })).toBe(1);
    });

    it('a cursor in a range a failover lost (history says diverged) → gateway.resume_incomplete, counted as diverged, the rest replayed', async () => {
      let cursor = '';
      const { open, publish, harness } = setup({
        history: (events) => ({
          async readAfter(afterId: string, count: number): Promise<EventHistoryPage> {
            // The id exists on the new master (reused), so only the history's divergence flag tells.
            const page = await events.readAfter(afterId, count);
            return afterId === cursor ? { ...page, diverged: true } : page;
          },
        }),
      });
      cursor = publish(clientEventFields('u-alice', 'chat.x', 'reused id'));
      const after = publish(clientEventFields('u-alice', 'chat.x', 'new'));
      const { sink } = await open(alice1, { resumeAfterEventId: cursor });
      expect(sink.types.slice(0, 2)).toEqual(['gateway.server_time', 'gateway.resume_incomplete']);
      expect(sink.ids.slice(2)).toEqual([after]);
      expect(await harness.value(MetricNames.pushResumeIncomplete, { reason: 'diverged' })).toBe(1);
      expect(await harness.value(MetricNames.pushResumeIncomplete, { reason: 'truncated' })).toBe(0);
    });

    it('diverged on a later page (after an id just read from the current history) does not make the resume incomplete', async () => {
      let cursor = '';
      const { open, publish, harness } = setup({
        history: (events) => ({
          async readAfter(afterId: string, count: number): Promise<EventHistoryPage> {
            const page = await events.readAfter(afterId, Math.min(count, 1));
            return afterId === cursor ? page : { ...page, diverged: true };
          },
        }),
      });
      cursor = publish(clientEventFields('u-alice', 'chat.x', 'seen'));
      const missed = [publish(clientEventFields('u-alice', 'chat.x', 'm1')), publish(clientEventFields('u-alice', 'chat.x', 'm2'))];
      const { sink } = await open(alice1, { resumeAfterEventId: cursor });
      expect(sink.ids).toEqual(['', ...missed]);
      expect(await harness.value(MetricNames.pushResumeIncomplete)).toBe(0);
    });

    it('a cursor exactly at the trim point is not incomplete', async () => {
      const { open, publish, events } = setup();
      publish(clientEventFields('u-alice', 'chat.x', 'a'));
      const cursor = publish(clientEventFields('u-alice', 'chat.x', 'b'));
      const kept = publish(clientEventFields('u-alice', 'chat.x', 'c'));
      events.trim(1);
      const { sink } = await open(alice1, { resumeAfterEventId: cursor });
      expect(sink.ids).toEqual(['', kept]);
      expect(sink.types).not.toContain('gateway.resume_incomplete');
    });

    it('resumeMaxEvents: replays at most that many, then the incomplete notice tells the client', async () => {
      const { open, publish, harness } = setup({ resumeMaxEvents: 3 });
      const cursor = publish(clientEventFields('u-alice', 'chat.x', 'seen'));
      const missed: string[] = [];
      for (let i = 0; i < 5; i += 1) {
        missed.push(publish(clientEventFields('u-alice', 'chat.x', `m${i}`)));
        publish(clientEventFields('u-bob', 'chat.x', `b${i}`));
      }
      const { sink } = await open(alice1, { resumeAfterEventId: cursor });
      expect(sink.types.slice(0, 2)).toEqual(['gateway.server_time', 'gateway.resume_incomplete']);
      expect(sink.ids.slice(2)).toEqual(missed.slice(0, 3));
      const live = publish(clientEventFields('u-alice', 'chat.x', 'live'));
      expect(sink.ids.at(-1)).toBe(live);
      expect(await harness.value(MetricNames.pushResumeIncomplete, { reason: 'max_events' })).toBe(1);
    });

    for (const bound of ['max_events', 'max_bytes'] as const) {
      it(`${bound}: the missed events the replay did not send are not sent later by a live consumer that lags the history (SPEC §8.3)`, async () => {
        // The live consumer hands the missed entries over only while the resume reads the history
        // (it lags the master): they queue in the held stream, after the replay's cursor.
        const late: { handler?: ClientEventsHandler } = {};
        const lagging: StreamEntry[] = [];
        const { open, publish, hub, signer, harness, logger, events } = setup({
          ...(bound === 'max_events' ? { resumeMaxEvents: 2 } : { resumeMaxBytes: 4 }),
          history: (stream) => ({
            async readAfter(afterId: string, count: number): Promise<EventHistoryPage> {
              for (const entry of lagging.splice(0)) late.handler?.handle(entry);
              return stream.readAfter(afterId, count);
            },
            newestId: () => stream.newestId(),
          }),
        });
        late.handler = new ClientEventsHandler({ hub, signer, metrics: harness.metrics, logger });
        const cursor = publish(clientEventFields('u-alice', 'chat.x', 'seen'));
        const missed: string[] = [];
        for (let i = 0; i < 4; i += 1) missed.push(publish(clientEventFields('u-alice', 'chat.x', `m${i}`)));
        lagging.push(...(await events.readAfter(cursor, 10)).entries);
        const { sink } = await open(alice1, { resumeAfterEventId: cursor });
        expect(sink.types.slice(0, 2)).toEqual(['gateway.server_time', 'gateway.resume_incomplete']);
        expect(sink.ids.slice(2)).toEqual(missed.slice(0, 2));
        const live = publish(clientEventFields('u-alice', 'chat.x', 'live'));
        expect(sink.ids.slice(2)).toEqual([...missed.slice(0, 2), live]);
        expect(await harness.value(MetricNames.pushResumeIncomplete, { reason: bound })).toBe(1);
      });
    }

    it('resumeMaxEvents on a trimmed stream stops reading at the limit (no re-scanning of the same entries)', async () => {
      let reads = 0;
      const { open, publish, events } = setup({
        resumeMaxEvents: 2,
        history: (stream) => ({
          readAfter(afterId: string, count: number): Promise<EventHistoryPage> {
            reads += 1;
            return stream.readAfter(afterId, count);
          },
        }),
      });
      const cursor = publish(clientEventFields('u-alice', 'chat.x', 'seen'));
      publish(clientEventFields('u-alice', 'chat.x', 'lost'));
      const kept = [0, 1, 2, 3, 4].map((i) => publish(clientEventFields('u-alice', 'chat.x', `k${i}`)));
      events.trim(5);
      const { sink } = await open(alice1, { resumeAfterEventId: cursor });
      expect(sink.types.slice(0, 2)).toEqual(['gateway.server_time', 'gateway.resume_incomplete']);
      expect(sink.ids.slice(2)).toEqual(kept.slice(0, 2));
      expect(sink.types.filter((t) => t === 'gateway.resume_incomplete')).toHaveLength(1);
      expect(reads).toBeLessThanOrEqual(2);
    });

    it('resumeMaxEvents exactly reached is complete', async () => {
      const { open, publish } = setup({ resumeMaxEvents: 3 });
      const cursor = publish(clientEventFields('u-alice', 'chat.x', 'seen'));
      const missed = [0, 1, 2].map((i) => publish(clientEventFields('u-alice', 'chat.x', `m${i}`)));
      const { sink } = await open(alice1, { resumeAfterEventId: cursor });
      expect(sink.ids).toEqual(['', ...missed]);
    });

    it('resumeMaxBytes: replays events while their payload bytes fit, then the incomplete notice (reason max_bytes)', async () => {
      let reads = 0;
      const { open, publish, harness } = setup({
        resumeMaxBytes: 250,
        history: (stream) => ({
          readAfter(afterId: string, count: number): Promise<EventHistoryPage> {
            reads += 1;
            return stream.readAfter(afterId, count);
          },
        }),
      });
      const cursor = publish(clientEventFields('u-alice', 'chat.x', 'seen'));
      const missed: string[] = [];
      for (let i = 0; i < 5; i += 1) {
        missed.push(publish(clientEventFields('u-alice', 'chat.x', 'x'.repeat(100))));
        // Other users' payloads do not count against this stream's bound.
        publish(clientEventFields('u-bob', 'chat.x', 'y'.repeat(1000)));
      }
      const { sink } = await open(alice1, { resumeAfterEventId: cursor });
      expect(sink.types.slice(0, 2)).toEqual(['gateway.server_time', 'gateway.resume_incomplete']);
      expect(sink.types.filter((t) => t === 'gateway.resume_incomplete')).toHaveLength(1);
      expect(sink.ids.slice(2)).toEqual(missed.slice(0, 2));
      expect(reads).toBe(1);
      const live = publish(clientEventFields('u-alice', 'chat.x', 'live'));
      expect(sink.ids.at(-1)).toBe(live);
      expect(await harness.value(MetricNames.pushResumeIncomplete, { reason: 'max_bytes' })).toBe(1);
      expect(await harness.value(MetricNames.pushResumeIncomplete, { reason: 'max_events' })).toBe(0);
      expect(await harness.value(MetricNames.pushResumeReplayed)).toBe(2);
    });

    it('resumeMaxBytes exactly reached is complete; zero-byte payloads always fit', async () => {
      const { open, publish } = setup({ resumeMaxBytes: 200 });
      const cursor = publish(clientEventFields('u-alice', 'chat.x', 'seen'));
      const missed = [
        publish(clientEventFields('u-alice', 'chat.x', 'x'.repeat(100))),
        publish(clientEventFields('u-alice', 'chat.x', '')),
        publish(clientEventFields('u-alice', 'chat.x', 'x'.repeat(100))),
        publish(clientEventFields('u-alice', 'chat.x', '')),
      ];
      const { sink } = await open(alice1, { resumeAfterEventId: cursor });
      expect(sink.ids).toEqual(['', ...missed]);
    });

    it('resumeMaxBytes defaults to the hub’s per-stream byte bound (a resume never queues more than a live stream may hold)', async () => {
      const { open, publish, harness } = setup({ bufferBytes: 300 });
      const cursor = publish(clientEventFields('u-alice', 'chat.x', 'seen'));
      const missed = [0, 1, 2, 3].map(() => publish(clientEventFields('u-alice', 'chat.x', 'x'.repeat(100))));
      const { sink } = await open(alice1, { resumeAfterEventId: cursor });
      expect(sink.types.slice(0, 2)).toEqual(['gateway.server_time', 'gateway.resume_incomplete']);
      expect(sink.ids.slice(2)).toEqual(missed.slice(0, 3));
      expect(await harness.value(MetricNames.pushResumeIncomplete, { reason: 'max_bytes' })).toBe(1);
    });

    it('resumeMaxScan: reads at most that many entries, then the incomplete notice', async () => {
      const { open, publish, harness } = setup({ resumeMaxScan: 4 });
      const cursor = publish(clientEventFields('u-alice', 'chat.x', 'seen'));
      const a1 = publish(clientEventFields('u-alice', 'chat.x', 'a1'));
      publish(clientEventFields('u-bob', 'chat.x', 'b1'));
      publish(clientEventFields('u-bob', 'chat.x', 'b2'));
      const a2 = publish(clientEventFields('u-alice', 'chat.x', 'a2'));
      publish(clientEventFields('u-alice', 'chat.x', 'a3 beyond the scan'));
      const { sink } = await open(alice1, { resumeAfterEventId: cursor });
      expect(sink.types.slice(0, 2)).toEqual(['gateway.server_time', 'gateway.resume_incomplete']);
      expect(sink.ids.slice(2)).toEqual([a1, a2]);
      expect(await harness.value(MetricNames.pushResumeIncomplete, { reason: 'max_scan' })).toBe(1);
    });

    it('resumeMaxScan exactly covering the rest of the stream is complete', async () => {
      const { open, publish } = setup({ resumeMaxScan: 4 });
      const cursor = publish(clientEventFields('u-alice', 'chat.x', 'seen'));
      const a1 = publish(clientEventFields('u-alice', 'chat.x', 'a1'));
      publish(clientEventFields('u-bob', 'chat.x', 'b1'));
      publish(clientEventFields('u-bob', 'chat.x', 'b2'));
      const a2 = publish(clientEventFields('u-alice', 'chat.x', 'a2'));
      const { sink } = await open(alice1, { resumeAfterEventId: cursor });
      expect(sink.ids).toEqual(['', a1, a2]);
    });

    it('a history read failure → bootstrap + incomplete notice, and the stream stays live', async () => {
      const { open, publish, logger, harness } = setup({
        history: () => ({ readAfter: () => Promise.reject(new Error('redis down')) }),
      });
      const cursor = publish(clientEventFields('u-alice', 'chat.x', 'seen'));
      const { sink, stream } = await open(alice1, { resumeAfterEventId: cursor });
      expect(sink.types).toEqual(['gateway.server_time', 'gateway.resume_incomplete']);
      expect(stream.closed).toBe(false);
      const live = publish(clientEventFields('u-alice', 'chat.x', 'live'));
      expect(sink.ids).toEqual(['', '', live]);
      expect(logger.find('push resume failed')[0]?.fields).toMatchObject({ device_session_id: alice1.deviceSessionId });
      expect(await harness.value(MetricNames.pushResumeIncomplete, { reason: 'read_error' })).toBe(1);
    });

    it('never logs payloads, signatures or keys (resume, live, malformed, revoke, failure paths)', async () => {
      const { open, publish, logger, sessionEvents, service } = setup({ resumeMaxEvents: 1 });
      const cursor = publish(clientEventFields('u-alice', 'chat.x', 'SECRET-PAYLOAD-1'));
      publish(clientEventFields('u-alice', 'chat.x', 'SECRET-PAYLOAD-2'));
      publish(clientEventFields('u-alice', 'chat.x', 'SECRET-PAYLOAD-3'));
      const { sink, req } = await open(alice1, { resumeAfterEventId: cursor });
      publish(clientEventFields('u-alice', 'chat.x', 'SECRET-PAYLOAD-4'));
      publish({ user_id: 'u-alice', event_type: 'BAD', payload_base64: Buffer.from('SECRET-PAYLOAD-5').toString('base64') });
      await expectFailure(service.subscribe({ ...req, signature: flipByte(req.signature) }, new RecordingSink()), 'unauthenticated', 'invalid request signature');
      sessionEvents.handle({ id: '99-0', fields: alice1.record('revoked') });
      expect(sink.ended).toBe(true);
      expect(logger.lines.length).toBeGreaterThan(0);
      const text = logger.serialized();
      expect(text).not.toContain('BYTES(');
      expect(text).not.toContain('SECRET-PAYLOAD');
      expect(text).not.toContain(Buffer.from('SECRET-PAYLOAD').toString('base64').slice(0, 16));
      expect(text).not.toContain(alice1.publicKeyBase64);
      for (const e of sink.events) {
        expect(text).not.toContain(Buffer.from(e.signature).toString('hex'));
        expect(text).not.toContain(Buffer.from(e.signature).toString('base64'));
      }
      expect(text).not.toContain(Buffer.from(req.signature).toString('base64'));
    });

    it('without a configured history a resume is always incomplete', async () => {
      const { open } = setup({ history: () => null });
      const { sink } = await open(alice1, { resumeAfterEventId: '1-0' });
      expect(sink.types).toEqual(['gateway.server_time', 'gateway.resume_incomplete']);
    });
  });
});

describe('SubscriptionService admission (subscribe storms)', () => {
  it('checks at most maxConcurrentChecks subscribes at a time; the others wait their turn, in order', async () => {
    const replay = new ControlledReplayStore();
    // Synchronous verification: threadpool verifies of the two admitted requests may finish in
    // either order, and this test is about admission order, not about crypto scheduling.
    const { service, request } = setup({ replay, maxConcurrentChecks: 2, asyncCrypto: false });
    const sinks = [new RecordingSink(), new RecordingSink(), new RecordingSink()];
    const opened = [alice1, alice2, bob].map((d, i) => service.subscribe(request(d), sinks[i] as RecordingSink));
    await replay.reached(2);
    // Give the third request every chance to start its checks: it must not.
    for (let i = 0; i < 20; i += 1) await new Promise<void>((r) => setImmediate(r));
    expect(replay.calls.map((c) => c.deviceSessionId)).toEqual([alice1.deviceSessionId, alice2.deviceSessionId]);
    replay.calls[0]?.outcome.resolve('reserved');
    await opened[0];
    await replay.reached(3);
    expect(replay.calls[2]?.deviceSessionId).toBe(bob.deviceSessionId);
    replay.calls[1]?.outcome.resolve('reserved');
    replay.calls[2]?.outcome.resolve('duplicate');
    await opened[1];
    await expect(opened[2]).rejects.toMatchObject({ code: 'already_exists' });
  });

  it('frees the slot of a request that failed a check', async () => {
    const { service, request } = setup({ maxConcurrentChecks: 1 });
    await expect(service.subscribe(request(stranger), new RecordingSink())).rejects.toBeInstanceOf(GatewayError);
    await expect(service.subscribe(request(alice1), new RecordingSink())).resolves.toBeDefined();
  });
});

describe('SubscriptionService with a per-user feed (routed fan-out)', () => {
  /** A feed whose follow() settles when the test says so (or fails with `failWith`); it records every call. */
  class ControlledFeed implements UserFeed {
    readonly calls: string[] = [];
    readonly pending = deferred<void>();
    /** Resolves when follow() was called. */
    readonly followed = deferred<void>();
    failWith: Error | undefined;
    follow(userId: string): Promise<void> {
      this.calls.push(`follow ${userId}`);
      this.followed.resolve();
      return this.failWith === undefined ? this.pending.promise : Promise.reject(this.failWith);
    }
    unfollow(userId: string): void {
      this.calls.push(`unfollow ${userId}`);
    }
  }

  it('sends the bootstrap only after the feed follows the user; unfollows when the stream ends', async () => {
    const feed = new ControlledFeed();
    const { service, request } = setup({ feed });
    const sink = new RecordingSink();
    let opened = false;
    const subscribing = service.subscribe(request(alice1), sink).then((s) => {
      opened = true;
      return s;
    });
    await feed.followed.promise;
    // Let the subscribe run as far as it can without the feed.
    for (let i = 0; i < 5; i++) await new Promise((resolve) => setImmediate(resolve));
    expect(feed.calls).toEqual(['follow u-alice']);
    expect(opened).toBe(false);
    expect(sink.events).toHaveLength(0);
    feed.pending.resolve();
    const stream = await subscribing;
    expect(sink.events.map((e) => e.eventType)).toEqual(['gateway.server_time']);
    stream.cancel();
    expect(feed.calls).toEqual(['follow u-alice', 'unfollow u-alice']);
  });

  it('fails closed with UNAVAILABLE "push feed unavailable" when the feed cannot follow; nothing stays registered', async () => {
    const feed = new ControlledFeed();
    const { service, request, hub, logger } = setup({ feed });
    feed.failWith = new Error('CLUSTERDOWN');
    const sink = new RecordingSink();
    await expectFailure(service.subscribe(request(alice1), sink), 'unavailable', 'push feed unavailable');
    expect(hub.size).toBe(0);
    expect(sink.events).toHaveLength(0);
    expect(feed.calls).toEqual(['follow u-alice', 'unfollow u-alice']);
    expect(logger.find('push feed could not follow the user')).toHaveLength(1);
  });

  it('reads the resume history of the subscriber\'s own user', async () => {
    const users: string[] = [];
    const history: EventHistory = {
      readAfter: (_afterId: string, _count: number, userId: string): Promise<EventHistoryPage> => {
        users.push(userId);
        return Promise.resolve({ entries: [], truncated: false });
      },
    };
    const feed = new ControlledFeed();
    feed.pending.resolve();
    const { open } = setup({ feed, history: () => history });
    await open(bob, { resumeAfterEventId: '5-0' });
    expect(users).toEqual(['u-bob']);
  });
});


import { describe, expect, it } from 'vitest';
import { CapturingLogger, CountingSigner, MetricsHarness, ModeRecordingSigner, RecordingSink, clientEventFields, eventVerifies } from '../../test/helpers.js';
import type { RawFields } from '../domain.js';
import { MetricNames } from '../observability/metrics.js';
import { PushHub } from '../push/push-hub.js';
import { ClientEventsHandler, DEFAULT_ASYNC_SIGN_MIN_BATCH } from './client-events-handler.js';
import { parseClientEvent } from './client-event.js';

function setup() {
  const harness = new MetricsHarness();
  const logger = new CapturingLogger();
  const signer = new CountingSigner();
  const hub = new PushHub({ bufferSize: 16, metrics: harness.metrics });
  const handler = new ClientEventsHandler({ hub, signer, metrics: harness.metrics, logger });
  const open = (userId: string, deviceSessionId: string) => {
    const sink = new RecordingSink();
    hub.register({ userId, deviceSessionId, sink }).start([]);
    return sink;
  };
  return { harness, logger, signer, hub, handler, open };
}

const good = clientEventFields('u-1', 'chat.message_created', '{"text":"hi"}');
const without = (field: string): RawFields => Object.fromEntries(Object.entries(good).filter(([k]) => k !== field));

describe('ClientEventsHandler (SPEC §5.4)', () => {
  it('builds the event from the entry: event_id = entry id, timestamp = its ms part, empty session when absent', () => {
    const { handler, open, signer } = setup();
    const sink = open('u-1', 'ds-1');
    handler.handle({ id: '1764201600500-7', fields: good });
    expect(sink.events).toHaveLength(1);
    const e = sink.events[0];
    expect(e).toMatchObject({
      eventId: '1764201600500-7',
      eventType: 'chat.message_created',
      userId: 'u-1',
      deviceSessionId: '',
      timestampMs: 1764201600500,
      signerKeyId: signer.keyId,
    });
    expect(Buffer.from(e?.payload ?? []).toString()).toBe('{"text":"hi"}');
    expect(e && eventVerifies(signer.publicKey, e)).toBe(true);
  });

  it('carries device_session_id when present and only that session gets it', () => {
    const { handler, open } = setup();
    const s1 = open('u-1', 'ds-1');
    const s2 = open('u-1', 'ds-2');
    handler.handle({ id: '5-0', fields: clientEventFields('u-1', 'chat.typing', 'x', 'ds-2') });
    expect(s1.events).toHaveLength(0);
    expect(s2.events.map((e) => e.deviceSessionId)).toEqual(['ds-2']);
  });

  it('treats an empty device_session_id as user-wide', () => {
    const { handler, open } = setup();
    const s1 = open('u-1', 'ds-1');
    const s2 = open('u-1', 'ds-2');
    handler.handle({ id: '5-0', fields: { ...good, device_session_id: '' } });
    expect(s1.events).toHaveLength(1);
    expect(s2.events).toHaveLength(1);
  });

  it('signs a client event once for many recipient streams', () => {
    const { handler, open, signer } = setup();
    const sinks = [open('u-1', 'ds-1'), open('u-1', 'ds-2'), open('u-1', 'ds-2'), open('u-1', 'ds-3')];
    handler.handle({ id: '7-0', fields: good });
    expect(signer.calls).toBe(1);
    for (const sink of sinks) expect(sink.events).toHaveLength(1);
    const [first] = sinks[0]?.events ?? [];
    for (const sink of sinks) expect(sink.events[0]).toBe(first);
  });

  it('does not sign at all when nobody is subscribed', async () => {
    const { handler, open, signer, harness } = setup();
    open('u-other', 'ds-9');
    handler.handle({ id: '7-0', fields: good });
    handler.handle({ id: '7-1', fields: clientEventFields('u-1', 'chat.typing', 'x', 'ds-9') });
    expect(signer.calls).toBe(0);
    expect(await harness.value(MetricNames.streamEntriesConsumed, { stream: 'client_events' })).toBe(2);
  });

  it('accepts an empty payload (zero bytes)', () => {
    const { handler, open } = setup();
    const sink = open('u-1', 'ds-1');
    handler.handle({ id: '8-0', fields: { ...good, payload_base64: '' } });
    expect(sink.events).toHaveLength(1);
    expect(sink.events[0]?.payload).toHaveLength(0);
  });

  describe('malformed entries are dropped, counted, logged with entry id and reason; consumption goes on', () => {
    const cases: ReadonlyArray<readonly [string, RawFields, string]> = [
      ['missing user_id', without('user_id'), 'user_id is missing'],
      ['empty user_id', { ...good, user_id: '' }, 'user_id is missing'],
      ['257-character user_id', { ...good, user_id: 'u'.repeat(257) }, 'user_id is invalid'],
      ['user_id with a control character', { ...good, user_id: 'alice\u0007' }, 'user_id is invalid'],
      ['missing event_type', without('event_type'), 'event_type is missing'],
      ['empty event_type', { ...good, event_type: '' }, 'event_type is missing'],
      ['upper-case event_type', { ...good, event_type: 'Chat.Message' }, 'event_type is invalid'],
      ['event_type starting with a digit', { ...good, event_type: '1chat' }, 'event_type is invalid'],
      ['129-character event_type', { ...good, event_type: `a${'b'.repeat(128)}` }, 'event_type is invalid'],
      ['reserved gateway. prefix', { ...good, event_type: 'gateway.server_time' }, 'event_type uses the reserved gateway. prefix'],
      ['reserved gateway. prefix (other)', { ...good, event_type: 'gateway.anything' }, 'event_type uses the reserved gateway. prefix'],
      ['missing payload_base64', without('payload_base64'), 'payload_base64 is missing'],
      ['url-safe base64', { ...good, payload_base64: Buffer.from([0xfb, 0xff, 0xbf]).toString('base64url') }, 'payload_base64 is not standard base64'],
      ['base64 without padding', { ...good, payload_base64: 'aGk' }, 'payload_base64 is not standard base64'],
      ['base64 with whitespace', { ...good, payload_base64: 'aGk= ' }, 'payload_base64 is not standard base64'],
      ['not base64 at all', { ...good, payload_base64: '%%%%' }, 'payload_base64 is not standard base64'],
    ];

    it.each(cases)('%s', async (_label, fields, reason) => {
      const { handler, open, logger, harness, signer } = setup();
      const sink = open('u-1', 'ds-1');
      handler.handle({ id: '100-0', fields });
      handler.handle({ id: '100-1', fields: good });
      expect(sink.ids).toEqual(['100-1']);
      expect(signer.calls).toBe(1);
      expect(logger.find('malformed stream entry dropped')).toEqual([
        { level: 'warn', message: 'malformed stream entry dropped', fields: { stream: 'client_events', entry_id: '100-0', reason } },
      ]);
      expect(await harness.value(MetricNames.streamEntriesMalformed, { stream: 'client_events' })).toBe(1);
      expect(await harness.value(MetricNames.streamEntriesMalformed, { stream: 'session_events' })).toBe(0);
      expect(await harness.value(MetricNames.streamEntriesConsumed, { stream: 'client_events' })).toBe(2);
    });

    it('an entry id that is not a stream id', () => {
      expect(parseClientEvent({ id: 'abc', fields: good })).toEqual({ ok: false, reason: 'entry id is not a stream id' });
    });
  });

  it('the url-safe alphabet really differs (guards the test data above)', () => {
    expect(Buffer.from([0xfb, 0xff, 0xbf]).toString('base64url')).toBe('-_-_');
  });

  describe('handleBatch: the entries of one read', () => {
    function batchSetup(asyncSignMinBatch?: number) {
      const harness = new MetricsHarness();
      const logger = new CapturingLogger();
      const signer = new ModeRecordingSigner();
      const hub = new PushHub({ bufferSize: 64, metrics: harness.metrics });
      const handler = new ClientEventsHandler({ hub, signer, metrics: harness.metrics, logger, ...(asyncSignMinBatch === undefined ? {} : { asyncSignMinBatch }) });
      const open = (userId: string, deviceSessionId: string) => {
        const sink = new RecordingSink();
        hub.register({ userId, deviceSessionId, sink }).start([]);
        return sink;
      };
      return { harness, logger, signer, hub, handler, open };
    }

    /** Ten entries: eight for u-1 (two of them malformed), two for a user nobody follows. */
    const read = Array.from({ length: 10 }, (_, i) => {
      const id = `200-${i}`;
      if (i === 3 || i === 7) return { id, fields: { ...good, event_type: 'Bad.Type' } };
      if (i === 5 || i === 8) return { id, fields: clientEventFields('u-nobody', 'chat.message_created', '{}') };
      return { id, fields: clientEventFields('u-1', 'chat.message_created', `{"n":${i}}`) };
    });
    const deliveredIds = ['200-0', '200-1', '200-2', '200-4', '200-6', '200-9'];

    it(`signs ${DEFAULT_ASYNC_SIGN_MIN_BATCH} or more deliverable events together in the threadpool and publishes them in stream order`, async () => {
      const { handler, open, signer, harness } = batchSetup();
      const first = open('u-1', 'ds-1');
      const second = open('u-1', 'ds-2');
      await handler.handleBatch(read);
      expect(first.ids).toEqual(deliveredIds);
      expect(second.ids).toEqual(deliveredIds);
      // Once per event, only for events someone receives; none for the malformed or unfollowed.
      expect(signer.modes).toEqual(Array(deliveredIds.length).fill('threadpool'));
      for (const event of first.events) expect(eventVerifies(signer.publicKey, event)).toBe(true);
      expect(await harness.value(MetricNames.streamEntriesConsumed, { stream: 'client_events' })).toBe(10);
      expect(await harness.value(MetricNames.streamEntriesMalformed, { stream: 'client_events' })).toBe(2);
    });

    it('signs inline when the read has fewer deliverable events than asyncSignMinBatch, with the same result', async () => {
      const { handler, open, signer } = batchSetup(deliveredIds.length + 1);
      const sink = open('u-1', 'ds-1');
      await handler.handleBatch(read);
      expect(sink.ids).toEqual(deliveredIds);
      expect(signer.modes).toEqual(Array(deliveredIds.length).fill('inline'));
      for (const event of sink.events) expect(eventVerifies(signer.publicKey, event)).toBe(true);
    });

    it('drops only the event whose signing failed, and logs it', async () => {
      const { handler, open, signer, logger } = batchSetup(1);
      const sink = open('u-1', 'ds-1');
      signer.failNext = true;
      await handler.handleBatch(read);
      expect(sink.ids).toEqual(deliveredIds.slice(1));
      expect(logger.find('event signing failed; event dropped')).toEqual([
        { level: 'error', message: 'event signing failed; event dropped', fields: { entry_id: '200-0', error: 'Error: signer unavailable' } },
      ]);
    });
  });

  describe('entry isolation (issue 12): one entry never takes the others of its read with it', () => {
    function isolationSetup(options: { maxEventBytes?: number; asyncSignMinBatch?: number } = {}) {
      const harness = new MetricsHarness();
      const logger = new CapturingLogger();
      const signer = new ModeRecordingSigner();
      const hub = new PushHub({ bufferSize: 64, metrics: harness.metrics });
      const handler = new ClientEventsHandler({ hub, signer, metrics: harness.metrics, logger, ...options });
      const sink = new RecordingSink();
      hub.register({ userId: 'u-1', deviceSessionId: 'ds-1', sink }).start([]);
      const other = new RecordingSink();
      hub.register({ userId: 'u-2', deviceSessionId: 'ds-2', sink: other }).start([]);
      return { harness, logger, signer, handler, sink, other };
    }
    const event = (id: string, userId: string, payload: string | Buffer) => ({ id, fields: clientEventFields(userId, 'chat.message_created', payload) });

    it('a payload of several MiB is checked without throwing and the rest of the read is delivered', async () => {
      const { handler, sink, other } = isolationSetup({ maxEventBytes: 8 * 1024 * 1024 });
      const big = Buffer.alloc(4 * 1024 * 1024, 1);
      await handler.handleBatch([event('300-0', 'u-2', 'before'), event('300-1', 'u-1', big), event('300-2', 'u-2', 'after')]);
      expect(sink.ids).toEqual(['300-1']);
      expect(sink.events[0]?.payload.length).toBe(big.length);
      expect(other.ids).toEqual(['300-0', '300-2']);
    });

    it(`drops a payload larger than maxEventBytes alone, counted and logged without its payload`, async () => {
      const { handler, sink, other, logger, harness } = isolationSetup({ maxEventBytes: 1024 });
      await handler.handleBatch([event('301-0', 'u-2', 'a'), event('301-1', 'u-1', Buffer.alloc(1025)), event('301-2', 'u-1', Buffer.alloc(1024)), event('301-3', 'u-2', 'b')]);
      expect(sink.ids).toEqual(['301-2']);
      expect(other.ids).toEqual(['301-0', '301-3']);
      expect(logger.find('malformed stream entry dropped')).toEqual([
        { level: 'warn', message: 'malformed stream entry dropped', fields: { stream: 'client_events', entry_id: '301-1', reason: 'payload exceeds GATEWAY_PUSH_MAX_EVENT_BYTES' } },
      ]);
      expect(await harness.value(MetricNames.streamEntriesMalformed, { stream: 'client_events' })).toBe(1);
      expect(await harness.value(MetricNames.streamEntriesConsumed, { stream: 'client_events' })).toBe(4);
    });

    it('the default bound is 1 MiB', () => {
      const at = parseClientEvent({ id: '1-0', fields: clientEventFields('u', 'a.b', Buffer.alloc(1024 * 1024)) });
      const over = parseClientEvent({ id: '1-1', fields: clientEventFields('u', 'a.b', Buffer.alloc(1024 * 1024 + 1)) });
      expect(at.ok).toBe(true);
      expect(over).toEqual({ ok: false, reason: 'payload exceeds GATEWAY_PUSH_MAX_EVENT_BYTES' });
    });

    it('an entry that throws while parsing is dropped alone, with a reason and no field values', async () => {
      const { handler, sink, other, logger, harness } = isolationSetup();
      const hostile = {
        id: '302-1',
        fields: new Proxy({}, { get: () => { throw new TypeError('boom'); } }),
      };
      await handler.handleBatch([event('302-0', 'u-2', 'a'), hostile, event('302-2', 'u-1', 'b')]);
      expect(other.ids).toEqual(['302-0']);
      expect(sink.ids).toEqual(['302-2']);
      expect(logger.find('malformed stream entry dropped')[0]?.fields).toEqual({ stream: 'client_events', entry_id: '302-1', reason: 'entry could not be parsed (TypeError)' });
      expect(await harness.value(MetricNames.streamEntriesMalformed, { stream: 'client_events' })).toBe(1);
    });

    it('an event whose inline signing throws is dropped alone and counted', async () => {
      const { handler, sink, other, signer, harness } = isolationSetup({ asyncSignMinBatch: 100 });
      let calls = 0;
      const sign = signer.sign.bind(signer);
      signer.sign = (data) => {
        calls += 1;
        if (calls === 2) throw new Error('signer broke');
        return sign(data);
      };
      await handler.handleBatch([event('303-0', 'u-2', 'a'), event('303-1', 'u-1', 'b'), event('303-2', 'u-1', 'c')]);
      expect(other.ids).toEqual(['303-0']);
      expect(sink.ids).toEqual(['303-2']);
      expect(await harness.value(MetricNames.streamEntriesMalformed, { stream: 'client_events' })).toBe(1);
    });
  });

  it('discontinuity(user): one signed gateway.resume_incomplete per open session of that user only', () => {
    const { handler, open, signer } = setup();
    const a1 = open('u-1', 'ds-1');
    const a1b = open('u-1', 'ds-1');
    const a2 = open('u-1', 'ds-2');
    const other = open('u-2', 'ds-3');
    expect(handler.discontinuity('u-1')).toBe(2);
    for (const [sink, session] of [[a1, 'ds-1'], [a1b, 'ds-1'], [a2, 'ds-2']] as const) {
      expect(sink.events).toHaveLength(1);
      expect(sink.events[0]).toMatchObject({ eventId: '', eventType: 'gateway.resume_incomplete', userId: 'u-1', deviceSessionId: session });
      expect(sink.events[0]?.payload).toHaveLength(0);
      expect(eventVerifies(signer.publicKey, sink.events[0]!)).toBe(true);
    }
    expect(other.events).toHaveLength(0);
    expect(handler.discontinuity('u-nobody')).toBe(0);
  });

  describe('onHistoryLost: a failover lost client events (SPEC §5.6)', () => {
    const event = (id: string, userId: string) => ({ id, fields: clientEventFields(userId, 'chat.n', id) });

    it('tells each open session that was handed an event after the shared point, or whose user had lost entries; no one else', async () => {
      const { handler, hub, open, signer, harness, logger } = setup();
      const handed = open('u-1', 'ds-1');
      const before = open('u-2', 'ds-2');
      const lostUser = open('u-3', 'ds-3');
      const lostUserOther = open('u-3', 'ds-3b');
      const quiet = open('u-2', 'ds-5');
      handler.handle(event('5-1', 'u-2'));
      handler.handle(event('10-1', 'u-1'));
      // A resumed stream handed history (12-0) the live consumer had not reached.
      const resumedSink = new RecordingSink();
      const resumed = hub.register({ userId: 'u-4', deviceSessionId: 'ds-4', sink: resumedSink });
      resumed.start([{ eventId: '12-0', eventType: 'chat.n', userId: 'u-4', deviceSessionId: '', timestampMs: 12, payload: new Uint8Array(1), signerKeyId: signer.keyId, signature: new Uint8Array(64) }], { skipThroughEventId: '12-0' });

      handler.onHistoryLost({ after: '8-0', upTo: '12-0', userIds: ['u-3'] });

      const notices = (sink: RecordingSink) => sink.events.filter((e) => e.eventType === 'gateway.resume_incomplete');
      for (const [sink, userId, session] of [[handed, 'u-1', 'ds-1'], [lostUser, 'u-3', 'ds-3'], [lostUserOther, 'u-3', 'ds-3b'], [resumedSink, 'u-4', 'ds-4']] as const) {
        expect(notices(sink)).toHaveLength(1);
        expect(notices(sink)[0]).toMatchObject({ eventId: '', userId, deviceSessionId: session });
        expect(notices(sink)[0]?.payload).toHaveLength(0);
        expect(eventVerifies(signer.publicKey, notices(sink)[0]!)).toBe(true);
      }
      expect(notices(before)).toHaveLength(0);
      expect(notices(quiet)).toHaveLength(0);
      expect(await harness.value(MetricNames.pushLossNotices, { reason: 'history_diverged' })).toBe(4);
      expect(logger.lines.find((l) => l.message === 'push streams told of lost events')?.fields).toMatchObject({ lost_after: '8-0', lost_up_to: '12-0', sessions_told: 4 });

      // The new master reuses a lost id: the resumed stream no longer skips it as replayed.
      handler.handle(event('9-0', 'u-4'));
      expect(resumedSink.events.map((e) => e.eventId).slice(-1)).toEqual(['9-0']);
    });

    it('tells every open stream when the shared point is unknown', () => {
      const { handler, open } = setup();
      const sinks = [open('u-1', 'ds-1'), open('u-2', 'ds-2')];
      handler.onHistoryLost({ after: undefined, upTo: '12-0', userIds: [] });
      for (const sink of sinks) expect(sink.events.map((e) => e.eventType)).toEqual(['gateway.resume_incomplete']);
    });
  });
});

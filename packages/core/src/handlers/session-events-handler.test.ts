import { describe, expect, it, vi } from 'vitest';
import { CapturingLogger, MetricsHarness, RecordingSink, TestDevice } from '../../test/helpers.js';
import type { RawFields } from '../domain.js';
import { MetricNames } from '../observability/metrics.js';
import { PushHub } from '../push/push-hub.js';
import { SessionCache } from '../session/session-cache.js';
import { FakeClock } from '../memory/fake-clock.js';
import { InMemoryEventStream } from '../memory/in-memory-event-stream.js';
import { InMemoryRevocationStore } from '../memory/in-memory-revocation-store.js';
import { InMemorySessionStore } from '../memory/in-memory-session-store.js';
import { RevocationMemory } from '../session/revocation-memory.js';
import { RevocationReasserter } from '../session/revocation-reasserter.js';
import { SessionEventsHandler } from './session-events-handler.js';

const alice1 = new TestDevice('ds-alice-1', 'u-alice');
const alice2 = new TestDevice('ds-alice-2', 'u-alice');

function setup() {
  const harness = new MetricsHarness();
  const logger = new CapturingLogger();
  const store = new InMemorySessionStore();
  const cache = new SessionCache(store, { maxEntries: 100, ttlMs: 30_000, clock: new FakeClock() });
  const hub = new PushHub({ bufferSize: 8, metrics: harness.metrics });
  const handler = new SessionEventsHandler({ cache, hub, metrics: harness.metrics, logger });
  const open = (d: TestDevice) => {
    const sink = new RecordingSink();
    const stream = hub.register({ userId: d.userId, deviceSessionId: d.deviceSessionId, sink });
    stream.start([]);
    return { sink, stream };
  };
  return { harness, logger, store, cache, hub, handler, open };
}

describe('SessionEventsHandler (SPEC §5.3)', () => {
  it('a well-formed snapshot replaces the cached session, last snapshot wins', async () => {
    const { handler, cache, store, harness } = setup();
    handler.handle({ id: '1-0', fields: alice1.record('active') });
    expect(cache.peek(alice1.deviceSessionId)?.session.status).toBe('active');
    handler.handle({ id: '2-0', fields: alice1.record('revoked') });
    expect((await cache.lookup(alice1.deviceSessionId))?.session.status).toBe('revoked');
    handler.handle({ id: '3-0', fields: alice1.record('active') });
    expect((await cache.lookup(alice1.deviceSessionId))?.session.status).toBe('active');
    expect(store.reads).toBe(0);
    expect(await harness.value(MetricNames.streamEntriesConsumed, { stream: 'session_events' })).toBe(3);
  });

  it('a revoked snapshot closes exactly that session’s streams with FAILED_PRECONDITION', async () => {
    const { handler, open, hub, harness, logger } = setup();
    const a1 = open(alice1);
    const a1b = open(alice1);
    const a2 = open(alice2);
    handler.handle({ id: '5-0', fields: alice1.record('revoked', { revoked_at_ms: '1764201600000' }) });
    for (const s of [a1, a1b]) {
      expect(s.sink.ends).toHaveLength(1);
      expect(s.sink.ends[0]).toMatchObject({ code: 'failed_precondition', message: 'device session is revoked' });
    }
    expect(a2.sink.ended).toBe(false);
    expect(a2.stream.closed).toBe(false);
    expect(hub.size).toBe(1);
    expect(await harness.value(MetricNames.pushStreamsClosed, { reason: 'revoked' })).toBe(2);
    expect(logger.find('device session revoked')[0]?.fields).toMatchObject({ device_session_id: alice1.deviceSessionId, entry_id: '5-0', streams_closed: 2 });
  });

  it('an active snapshot closes nothing', () => {
    const { handler, open } = setup();
    const a1 = open(alice1);
    handler.handle({ id: '5-0', fields: alice1.record('active') });
    expect(a1.stream.closed).toBe(false);
  });

  describe('malformed snapshots are dropped, counted, logged; consumption goes on', () => {
    // An active base: a revoked one with a malformed field revokes anyway (next describe).
    const good = alice1.record('active');
    const without = (field: string): RawFields => Object.fromEntries(Object.entries(good).filter(([k]) => k !== field));
    const cases: ReadonlyArray<readonly [string, RawFields, string]> = [
      ['missing device_session_id', without('device_session_id'), 'device_session_id is missing'],
      ['invalid device_session_id', { ...good, device_session_id: 'bad id' }, 'device_session_id is invalid'],
      ['missing user_id', without('user_id'), 'user_id is missing'],
      ['257-character user_id', { ...good, user_id: 'u'.repeat(257) }, 'user_id is invalid'],
      ['user_id with a control character', { ...good, user_id: 'alice\u0007' }, 'user_id is invalid'],
      ['missing status', without('status'), 'status is missing'],
      ['unknown status', { ...good, status: 'REVOKED' }, 'status is unknown'],
      ['missing client_public_key', without('client_public_key'), 'client_public_key is missing'],
      ['non-base64 key', { ...good, client_public_key: 'not base64!' }, 'client_public_key is not standard base64'],
      ['unpadded base64 key', { ...good, client_public_key: alice1.publicKeyBase64.replace(/=+$/, '') }, 'client_public_key is not standard base64'],
      ['31-byte key', { ...good, client_public_key: Buffer.alloc(31, 1).toString('base64') }, 'client_public_key is not 32 bytes'],
      ['bad revoked_at_ms', { ...good, revoked_at_ms: '-5' }, 'revoked_at_ms is not an integer'],
    ];

    it.each(cases)('%s', async (_label, fields, reason) => {
      const { handler, open, cache, logger, harness } = setup();
      const a1 = open(alice1);
      handler.handle({ id: '9-0', fields });
      // Dropped: nothing cached, no stream closed.
      expect(cache.peek(alice1.deviceSessionId)).toBeUndefined();
      expect(a1.stream.closed).toBe(false);
      expect(logger.find('malformed stream entry dropped')).toEqual([
        { level: 'warn', message: 'malformed stream entry dropped', fields: { stream: 'session_events', entry_id: '9-0', reason } },
      ]);
      expect(await harness.value(MetricNames.streamEntriesMalformed, { stream: 'session_events' })).toBe(1);
      // The next entry is consumed normally.
      handler.handle({ id: '9-1', fields: alice1.record('revoked') });
      expect(a1.sink.ends[0]?.code).toBe('failed_precondition');
      expect(cache.peek(alice1.deviceSessionId)?.session.status).toBe('revoked');
      expect(await harness.value(MetricNames.streamEntriesConsumed, { stream: 'session_events' })).toBe(2);
    });
  });

  describe('a revoked snapshot with otherwise malformed fields still revokes (fail closed, issue 12)', () => {
    const revoked = alice1.record('revoked');
    const without = (field: string): RawFields => Object.fromEntries(Object.entries(revoked).filter(([k]) => k !== field));
    const cases: ReadonlyArray<readonly [string, RawFields, string]> = [
      ['missing client_public_key', without('client_public_key'), 'client_public_key is missing'],
      ['non-base64 key', { ...revoked, client_public_key: 'not base64!' }, 'client_public_key is not standard base64'],
      ['31-byte key', { ...revoked, client_public_key: Buffer.alloc(31, 1).toString('base64') }, 'client_public_key is not 32 bytes'],
      ['missing user_id', without('user_id'), 'user_id is missing'],
      ['bad revoked_at_ms', { ...revoked, revoked_at_ms: '-5' }, 'revoked_at_ms is not an integer'],
    ];
    /** The log fields of the snapshot's user_id: as is when valid, nothing when missing. */
    const userFields = (fields: RawFields) => (fields['user_id'] === undefined ? {} : { user_id: fields['user_id'] });
    it.each(cases)('%s', async (_label, fields, reason) => {
      const { handler, open, cache, logger, harness } = setup();
      const a1 = open(alice1);
      const a2 = open(alice2);
      handler.handle({ id: '10-0', fields: alice1.record('active') });
      handler.handle({ id: '10-1', fields });
      expect(a1.sink.ends).toEqual([expect.objectContaining({ code: 'failed_precondition', message: 'device session is revoked' })]);
      expect(a2.stream.closed).toBe(false);
      // Commands and subscribes are refused at the revoked check: the cache says revoked.
      expect((await cache.lookup(alice1.deviceSessionId))?.session.status).toBe('revoked');
      expect(logger.find('incomplete revoked snapshot applied')).toEqual([
        {
          level: 'warn',
          message: 'incomplete revoked snapshot applied',
          fields: { stream: 'session_events', entry_id: '10-1', device_session_id: alice1.deviceSessionId, ...userFields(fields), reason },
        },
      ]);
      expect(logger.find('device session revoked')[0]?.fields).toMatchObject({ device_session_id: alice1.deviceSessionId, streams_closed: 1 });
      expect(await harness.value(MetricNames.streamEntriesMalformed, { stream: 'session_events' })).toBe(1);
      expect(await harness.value(MetricNames.pushStreamsClosed, { reason: 'revoked' })).toBe(1);
    });

    it.each([
      ['257 characters', 'u'.repeat(257)],
      ['1 MiB', 'u'.repeat(1 << 20)],
      ['with a line break', 'alice@example.com\nforged line'],
    ])('an invalid user_id (%s) still revokes; the log holds only its bounded preview, the cache not at all', async (_label, userId) => {
      const { handler, open, cache, logger, harness } = setup();
      const a1 = open(alice1);
      handler.handle({ id: '10-0', fields: alice1.record('active') });
      handler.handle({ id: '10-1', fields: { ...revoked, user_id: userId } });
      expect(a1.sink.ends).toEqual([expect.objectContaining({ code: 'failed_precondition', message: 'device session is revoked' })]);
      const cached = await cache.lookup(alice1.deviceSessionId);
      expect(cached?.session.status).toBe('revoked');
      expect(cached?.session.userId).toBe('');
      expect(logger.find('incomplete revoked snapshot applied')).toEqual([
        {
          level: 'warn',
          message: 'incomplete revoked snapshot applied',
          fields: {
            stream: 'session_events',
            entry_id: '10-1',
            device_session_id: alice1.deviceSessionId,
            user_id: userId.slice(0, 64),
            user_id_length: userId.length,
            reason: 'user_id is invalid',
          },
        },
      ]);
      expect(logger.serialized().length).toBeLessThan(2000);
      expect(await harness.value(MetricNames.streamEntriesMalformed, { stream: 'session_events' })).toBe(1);
    });

    it('an invalid device_session_id or a status other than revoked is still only dropped', () => {
      const { handler, open, cache } = setup();
      const a1 = open(alice1);
      handler.handle({ id: '11-0', fields: { ...revoked, device_session_id: 'bad id', client_public_key: '' } });
      handler.handle({ id: '11-1', fields: { ...revoked, status: 'Revoked', client_public_key: '' } });
      expect(a1.stream.closed).toBe(false);
      expect(cache.size).toBe(0);
    });
  });

  it('an entry that throws while being handled is dropped alone and counted', async () => {
    const { handler, open, logger, harness } = setup();
    const a1 = open(alice1);
    handler.handle({ id: '12-0', fields: new Proxy({}, { get: () => { throw new RangeError('boom'); } }) });
    handler.handle({ id: '12-1', fields: alice1.record('revoked') });
    expect(a1.sink.ends[0]?.code).toBe('failed_precondition');
    expect(logger.find('malformed stream entry dropped')[0]?.fields).toEqual({ stream: 'session_events', entry_id: '12-0', reason: 'entry could not be processed (RangeError)' });
    expect(await harness.value(MetricNames.streamEntriesMalformed, { stream: 'session_events' })).toBe(1);
    expect(await harness.value(MetricNames.streamEntriesConsumed, { stream: 'session_events' })).toBe(2);
  });

  it('onReconnect clears the cache', async () => {
    const { handler, cache, store, logger } = setup();
    store.set(alice2.deviceSessionId, alice2.record());
    await cache.lookup(alice2.deviceSessionId);
    handler.handle({ id: '1-0', fields: alice1.record('revoked') });
    expect(cache.size).toBe(2);
    handler.onReconnect();
    expect(cache.size).toBe(0);
    await cache.lookup(alice2.deviceSessionId);
    expect(store.reads).toBe(2);
    expect(logger.find('session cache cleared after session-events reconnect')).toHaveLength(1);
  });
});

describe('SessionEventsHandler: revocations survive a failover (SPEC §5.3, §5.5)', () => {
  const RETENTION = 600_000;

  function withRevocations(recordTtl?: (id: string) => Promise<number | undefined>) {
    const clock = new FakeClock();
    const harness = new MetricsHarness();
    const logger = new CapturingLogger();
    const store = new InMemorySessionStore();
    const stream = new InMemoryEventStream(clock);
    const revocationStore = new InMemoryRevocationStore(store, stream);
    if (recordTtl !== undefined) revocationStore.recordTtl = recordTtl;
    const memory = new RevocationMemory({ maxEntries: 100, retentionMs: RETENTION, clock });
    const reasserter = new RevocationReasserter({ memory, store: revocationStore, clock, metrics: harness.metrics, logger });
    const cache = new SessionCache(store, { maxEntries: 100, ttlMs: 30_000, clock, revocations: memory });
    const hub = new PushHub({ bufferSize: 8, metrics: harness.metrics });
    const handler = new SessionEventsHandler({ cache, hub, revocations: { memory, store: revocationStore, reasserter }, clock, metrics: harness.metrics, logger });
    return { clock, harness, logger, store, stream, memory, reasserter, cache, handler };
  }

  /** The old master's state: record and snapshot revoked; the new master: the active record only. */
  function revokeThenFailover(h: ReturnType<typeof withRevocations>) {
    h.store.set(alice1.deviceSessionId, alice1.record('revoked', { revoked_at_ms: '1764201600000' }));
    h.handler.handle({ id: '7-0', fields: alice1.record('revoked', { revoked_at_ms: '1764201600000' }) });
    h.store.set(alice1.deviceSessionId, alice1.record('active'));
  }

  it('a diverged history: the session stays refused and its record and snapshot are written again', async () => {
    const h = withRevocations();
    revokeThenFailover(h);
    h.handler.onReconnect({ historyDiverged: true, masterChanged: false });
    expect((await h.cache.lookup(alice1.deviceSessionId))?.session.status).toBe('revoked');
    await h.reasserter.idle();
    const revoked = alice1.record('revoked', { revoked_at_ms: '1764201600000' });
    expect(h.store.peekRecord(alice1.deviceSessionId)).toEqual(revoked);
    expect((await h.stream.readAfter('0-0', 10)).entries.map((e) => e.fields)).toEqual([revoked]);
    expect(await h.harness.value(MetricNames.revocationsReasserted)).toBe(1);
    expect(h.logger.find('revocations re-asserted: the master lacked them (lost in a failover)')[0]?.fields).toMatchObject({
      reason: 'session-events history diverged',
      device_session_ids: [alice1.deviceSessionId],
    });
    expect(h.logger.find('session cache cleared after session-events reconnect')[0]?.fields).toMatchObject({ revocations_kept: 1 });
  });

  it('a master change re-asserts too; a plain reconnect (same master, same history) writes nothing', async () => {
    const h = withRevocations();
    revokeThenFailover(h);
    h.handler.onReconnect({ historyDiverged: false, masterChanged: false });
    h.handler.onReconnect();
    expect(h.reasserter.busy).toBe(false);
    expect(h.store.peekRecord(alice1.deviceSessionId)?.['status']).toBe('active');
    // Still refused meanwhile: the memory answers.
    expect((await h.cache.lookup(alice1.deviceSessionId))?.session.status).toBe('revoked');
    h.handler.onReconnect({ historyDiverged: false, masterChanged: true });
    await h.reasserter.idle();
    expect(h.store.peekRecord(alice1.deviceSessionId)?.['status']).toBe('revoked');
    expect(h.logger.find('revocations re-asserted: the master lacked them (lost in a failover)')[0]?.fields['reason']).toBe('master changed');
  });

  it("asks the record's remaining life and remembers the revocation at least that long", async () => {
    const h = withRevocations(async () => 3 * RETENTION);
    h.handler.handle({ id: '7-0', fields: alice1.record('revoked') });
    h.handler.handle({ id: '7-1', fields: { device_session_id: alice2.deviceSessionId, status: 'revoked' } });
    await vi.waitFor(() => expect(h.memory.get(alice1.deviceSessionId)?.recordExpiresAtMs).toBe(h.clock.now() + 3 * RETENTION));
    expect(h.memory.get(alice2.deviceSessionId)?.recordExpiresAtMs).toBe(h.clock.now() + 3 * RETENTION);
    h.clock.advance(2 * RETENTION);
    expect((await h.cache.lookup(alice1.deviceSessionId))?.session.status).toBe('revoked');
    h.clock.advance(RETENTION);
    expect(h.memory.get(alice1.deviceSessionId)).toBeUndefined();
  });

  it('a revocation whose record expiry cannot be read is remembered for the retention', async () => {
    const h = withRevocations(() => Promise.reject(new Error('no master')));
    h.handler.handle({ id: '7-0', fields: alice1.record('revoked') });
    await vi.waitFor(() => expect(h.logger.find('session record expiry unknown')).toHaveLength(1));
    h.clock.advance(RETENTION - 1);
    expect(h.memory.get(alice1.deviceSessionId)?.recordExpiresAtMs).toBeUndefined();
    h.clock.advance(1);
    expect(h.memory.get(alice1.deviceSessionId)).toBeUndefined();
  });

  it('an active snapshot (re-activation) forgets the revocation: nothing is re-asserted', async () => {
    const h = withRevocations();
    revokeThenFailover(h);
    h.handler.handle({ id: '8-0', fields: alice1.record('active') });
    h.handler.onReconnect({ historyDiverged: true, masterChanged: true });
    await h.reasserter.idle();
    expect(h.store.peekRecord(alice1.deviceSessionId)?.['status']).toBe('active');
    expect((await h.cache.lookup(alice1.deviceSessionId))?.session.status).toBe('active');
  });
});

import { describe, expect, it } from 'vitest';
import { CapturingLogger, MetricsHarness, TestDevice } from '../../test/helpers.js';
import { FakeClock } from '../memory/fake-clock.js';
import { InMemoryEventStream } from '../memory/in-memory-event-stream.js';
import { InMemoryRevocationStore } from '../memory/in-memory-revocation-store.js';
import { InMemorySessionStore } from '../memory/in-memory-session-store.js';
import { MetricNames } from '../observability/metrics.js';
import type { ReassertOutcome, RevocationStore, RevocationToReassert } from '../ports/revocation-store.port.js';
import { RevocationMemory } from './revocation-memory.js';
import { RevocationReasserter } from './revocation-reasserter.js';

const alice = new TestDevice('ds-alice', 'u-alice');
const bob = new TestDevice('ds-bob', 'u-bob');
const carol = new TestDevice('ds-carol', 'u-carol');

/** A store that rejects its first `failures` calls, then delegates. */
class FlakyStore implements RevocationStore {
  calls = 0;
  constructor(
    private readonly inner: RevocationStore,
    private failures: number,
  ) {}
  recordTtl(id: string): Promise<number | undefined> {
    return this.inner.recordTtl(id);
  }
  async reassert(revocation: RevocationToReassert): Promise<ReassertOutcome> {
    this.calls += 1;
    if (this.failures > 0) {
      this.failures -= 1;
      throw new Error('no master');
    }
    return this.inner.reassert(revocation);
  }
}

function setup(failures = 0) {
  const clock = new FakeClock();
  const harness = new MetricsHarness();
  const logger = new CapturingLogger();
  const sessions = new InMemorySessionStore();
  const stream = new InMemoryEventStream(clock);
  const inner = new InMemoryRevocationStore(sessions, stream);
  const store = new FlakyStore(inner, failures);
  const memory = new RevocationMemory({ maxEntries: 100, retentionMs: 600_000, clock });
  const reasserter = new RevocationReasserter({ memory, store, clock, metrics: harness.metrics, logger, retry: { minDelayMs: 1, maxDelayMs: 4 } });
  const remember = (d: TestDevice, extra: { userId?: string; clientPublicKey?: string } = {}) =>
    memory.remember({ deviceSessionId: d.deviceSessionId, userId: extra.userId ?? d.userId, clientPublicKey: extra.clientPublicKey ?? d.publicKeyBase64, revokedAtMs: 1_764_000_000_000 });
  return { clock, harness, logger, sessions, stream, inner, store, memory, reasserter, remember };
}

describe('RevocationReasserter (SPEC §5.3)', () => {
  it('writes the revoked record and snapshot where the store lacks them, and nothing where the record says revoked', async () => {
    const { sessions, stream, memory, reasserter, remember, harness, logger } = setup();
    // The new master: alice's older active record, bob already revoked, carol's record lost entirely.
    sessions.set(alice.deviceSessionId, alice.record('active'));
    sessions.set(bob.deviceSessionId, bob.record('revoked', { revoked_at_ms: '5' }));
    for (const d of [alice, bob, carol]) remember(d);
    reasserter.trigger('session-events history diverged');
    await reasserter.idle();

    expect(sessions.peekRecord(alice.deviceSessionId)).toEqual(alice.record('revoked', { revoked_at_ms: '1764000000000' }));
    expect(sessions.peekRecord(bob.deviceSessionId)).toEqual(bob.record('revoked', { revoked_at_ms: '5' }));
    expect(sessions.peekRecord(carol.deviceSessionId)).toEqual(carol.record('revoked', { revoked_at_ms: '1764000000000' }));
    // Newest first (a failover loses the revocations written last).
    const snapshots = (await stream.readAfter('0-0', 10)).entries.map((e) => e.fields);
    expect(snapshots).toEqual([carol.record('revoked', { revoked_at_ms: '1764000000000' }), alice.record('revoked', { revoked_at_ms: '1764000000000' })]);
    expect(await harness.value(MetricNames.revocationsReasserted)).toBe(2);
    const line = logger.find('revocations re-asserted: the master lacked them (lost in a failover)')[0];
    expect(line?.level).toBe('warn');
    expect(line?.fields).toMatchObject({ reason: 'session-events history diverged', count: 2, device_session_ids: [carol.deviceSessionId, alice.deviceSessionId] });
    expect(logger.find('revocations checked against the master')[0]?.fields).toMatchObject({ remembered: 3, reasserted: 2 });
    expect(memory.size).toBe(3);

    // Idempotent: a second round finds every record revoked and writes nothing.
    reasserter.trigger('master changed');
    await reasserter.idle();
    expect(stream.length).toBe(2);
    expect(await harness.value(MetricNames.revocationsReasserted)).toBe(2);
  });

  it("keeps the record's own user and key, and fills only what the record lacks", async () => {
    const { sessions, reasserter, remember } = setup();
    const other = new TestDevice('ds-other', 'u-other');
    sessions.set(alice.deviceSessionId, { device_session_id: alice.deviceSessionId, user_id: alice.userId, status: 'active', client_public_key: alice.publicKeyBase64 });
    // Learned from a malformed snapshot: another key, no user.
    remember(alice, { userId: '', clientPublicKey: other.publicKeyBase64 });
    reasserter.trigger('master changed');
    await reasserter.idle();
    expect(sessions.peekRecord(alice.deviceSessionId)).toMatchObject({ user_id: alice.userId, client_public_key: alice.publicKeyBase64, status: 'revoked' });
  });

  it('retries with backoff while the store cannot answer, until every revocation is written', async () => {
    const { sessions, store, reasserter, remember, logger, harness } = setup(3);
    remember(alice);
    remember(bob);
    reasserter.trigger('master changed');
    await reasserter.idle();
    expect(sessions.peekRecord(alice.deviceSessionId)?.['status']).toBe('revoked');
    expect(sessions.peekRecord(bob.deviceSessionId)?.['status']).toBe('revoked');
    expect(store.calls).toBe(5);
    const retries = logger.find('revocation re-assert failed; retrying');
    expect(retries.map((l) => l.fields['retry_in_ms'])).toEqual([1, 2]);
    expect(retries[0]?.fields).toMatchObject({ failed: 2, error: 'no master' });
    expect(await harness.value(MetricNames.revocationsReasserted)).toBe(2);
  });

  it('does not write a revocation forgotten meanwhile (the auth service re-activated the session)', async () => {
    const { sessions, store, memory, reasserter, remember } = setup(1);
    remember(alice);
    reasserter.trigger('master changed');
    memory.forget(alice.deviceSessionId);
    await reasserter.idle();
    expect(store.calls).toBe(1);
    expect(sessions.peekRecord(alice.deviceSessionId)).toBeUndefined();
  });

  it('a trigger during a round runs one more round (the master may have changed again)', async () => {
    const { sessions, store, reasserter, remember } = setup();
    remember(alice);
    reasserter.trigger('master changed');
    reasserter.trigger('session-events history diverged');
    expect(reasserter.busy).toBe(true);
    await reasserter.idle();
    expect(store.calls).toBe(2);
    expect(sessions.peekRecord(alice.deviceSessionId)?.['status']).toBe('revoked');
  });

  it('close() ends the retries; nothing is triggered with an empty memory', async () => {
    const { store, reasserter, remember, memory } = setup(1_000_000);
    reasserter.trigger('master changed');
    expect(reasserter.busy).toBe(false);
    remember(alice);
    reasserter.trigger('master changed');
    await reasserter.close();
    expect(reasserter.busy).toBe(false);
    const calls = store.calls;
    reasserter.trigger('master changed');
    expect(reasserter.busy).toBe(false);
    expect(store.calls).toBe(calls);
    expect(memory.size).toBe(1);
  });

  it('await using closes it at scope exit: retries end, a later trigger does nothing (stop() is the deprecated alias)', async () => {
    const { store, remember, reasserter: outer } = setup(1_000_000);
    remember(alice);
    {
      await using reasserter = outer;
      reasserter.trigger('master changed');
      expect(reasserter.busy).toBe(true);
    }
    expect(outer.busy).toBe(false);
    const calls = store.calls;
    outer.trigger('master changed');
    expect(outer.busy).toBe(false);
    expect(store.calls).toBe(calls);
    expect(outer.stop).toBeTypeOf('function');
    await outer.stop();
  });
});

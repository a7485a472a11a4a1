import { describe, expect, it } from 'vitest';
import { CapturingLogger, MetricsHarness } from '../../test/helpers.js';
import { FakeClock } from '../memory/fake-clock.js';
import { MetricNames } from '../observability/metrics.js';
import { RevocationMemory } from './revocation-memory.js';

const RETENTION = 10 * 60_000;

function setup(maxEntries = 100) {
  const clock = new FakeClock();
  const harness = new MetricsHarness();
  const logger = new CapturingLogger();
  const memory = new RevocationMemory({ maxEntries, retentionMs: RETENTION, clock, metrics: harness.metrics, logger });
  harness.metrics.observeRevocations(memory);
  const revocation = (id: string, extra: { userId?: string; clientPublicKey?: string } = {}) => ({
    deviceSessionId: id,
    userId: extra.userId ?? `u-${id}`,
    clientPublicKey: extra.clientPublicKey ?? 'a2V5',
    revokedAtMs: clock.now(),
  });
  return { clock, harness, logger, memory, revocation };
}

describe('RevocationMemory (SPEC §5.5)', () => {
  it('remembers a revocation for exactly the retention (twice the freshness window)', () => {
    const { clock, memory, revocation } = setup();
    memory.remember(revocation('ds-1'));
    clock.advance(RETENTION - 1);
    expect(memory.get('ds-1')).toMatchObject({ deviceSessionId: 'ds-1', userId: 'u-ds-1', clientPublicKey: 'a2V5' });
    clock.advance(1);
    expect(memory.get('ds-1')).toBeUndefined();
    expect(memory.size).toBe(0);
  });

  it('a record that lives longer keeps the revocation until the record expires; a record without expiry does not extend it', () => {
    const { clock, memory, revocation } = setup();
    memory.remember(revocation('ds-long'));
    memory.remember(revocation('ds-forever'));
    memory.remember(revocation('ds-short'));
    memory.recordExpiry('ds-long', clock.now() + 3 * RETENTION);
    memory.recordExpiry('ds-forever', Infinity);
    memory.recordExpiry('ds-short', clock.now() + 1000);
    clock.advance(RETENTION);
    expect(memory.get('ds-long')?.recordExpiresAtMs).toBe(clock.now() + 2 * RETENTION);
    expect(memory.get('ds-forever')).toBeUndefined();
    expect(memory.get('ds-short')).toBeUndefined();
    clock.advance(2 * RETENTION - 1);
    expect(memory.get('ds-long')).toBeDefined();
    clock.advance(1);
    expect(memory.get('ds-long')).toBeUndefined();
  });

  it('seeing a revocation again restarts its retention and keeps what the earlier sighting knew', () => {
    const { clock, memory, revocation } = setup();
    memory.remember(revocation('ds-1'));
    memory.recordExpiry('ds-1', clock.now() + 1000);
    clock.advance(RETENTION - 10);
    // A malformed snapshot: no user, no key.
    memory.remember(revocation('ds-1', { userId: '', clientPublicKey: '' }));
    clock.advance(RETENTION - 1);
    expect(memory.get('ds-1')).toMatchObject({ userId: 'u-ds-1', clientPublicKey: 'a2V5' });
  });

  it('forgets a session re-activated by the auth service', () => {
    const { memory, revocation } = setup();
    memory.remember(revocation('ds-1'));
    expect(memory.forget('ds-1')).toBe(true);
    expect(memory.get('ds-1')).toBeUndefined();
    expect(memory.forget('ds-1')).toBe(false);
  });

  it('at the bound forgets the revocation seen longest ago, counted and logged', async () => {
    const { clock, memory, revocation, harness, logger } = setup(3);
    for (const id of ['ds-1', 'ds-2', 'ds-3']) {
      memory.remember(revocation(id));
      clock.advance(1000);
    }
    // Seen again: now the newest.
    memory.remember(revocation('ds-1'));
    memory.remember(revocation('ds-4'));
    expect(memory.size).toBe(3);
    expect(memory.get('ds-2')).toBeUndefined();
    expect(memory.list().map((r) => r.deviceSessionId)).toEqual(['ds-3', 'ds-1', 'ds-4']);
    expect(await harness.value(MetricNames.revocationsForgotten)).toBe(1);
    expect(await harness.value(MetricNames.revocationsRemembered)).toBe(3);
    const line = logger.find('revocation forgotten before its retention ended (GATEWAY_SESSION_REVOCATIONS_MAX_ENTRIES reached)')[0];
    expect(line?.level).toBe('warn');
    expect(line?.fields).toMatchObject({ device_session_id: 'ds-2', remembered_for_ms: 2000, max_entries: 3 });
  });

  it('an expired entry making room is not counted as forgotten', async () => {
    const { clock, memory, revocation, harness } = setup(2);
    memory.remember(revocation('ds-1'));
    clock.advance(RETENTION - 30_000);
    memory.remember(revocation('ds-2'));
    // ds-1 has expired, but the last sweep was 40 s ago: the bound drops it.
    clock.advance(40_000);
    memory.remember(revocation('ds-3'));
    expect(memory.list().map((r) => r.deviceSessionId)).toEqual(['ds-2', 'ds-3']);
    expect(await harness.value(MetricNames.revocationsForgotten)).toBe(0);
  });

  it('sweeps expired revocations (at most once a minute), so memory shrinks without lookups', () => {
    const { clock, memory, revocation } = setup();
    for (let i = 0; i < 10; i += 1) memory.remember(revocation(`ds-${i}`));
    clock.advance(RETENTION + 60_000);
    memory.remember(revocation('ds-new'));
    expect(memory.size).toBe(1);
  });

  it('refuses a bound below 1', () => {
    expect(() => new RevocationMemory({ maxEntries: 0, retentionMs: RETENTION })).toThrow(RangeError);
  });
});

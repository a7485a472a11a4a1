import { describe, expect, it } from 'vitest';
import { CapturingLogger, TestDevice, deferred, type Deferred } from '../../test/helpers.js';
import type { RawFields } from '../domain.js';
import { GatewayError } from '../errors.js';
import type { SessionStore } from '../ports/session-store.port.js';
import { FakeClock } from '../memory/fake-clock.js';
import { InMemorySessionStore } from '../memory/in-memory-session-store.js';
import { RevocationMemory } from './revocation-memory.js';
import { SessionCache } from './session-cache.js';
import { parseSessionFields } from './session-fields.js';

const TTL = 30_000;

/** A session store whose reads stay pending until the test answers them. */
class GatedSessionStore implements SessionStore {
  readonly reads: Array<{ id: string; answer: Deferred<RawFields | undefined> }> = [];
  getRecord(deviceSessionId: string): Promise<RawFields | undefined> {
    const answer = deferred<RawFields | undefined>();
    this.reads.push({ id: deviceSessionId, answer });
    return answer.promise;
  }
}

function setup(options: { maxEntries?: number } = {}) {
  const clock = new FakeClock();
  const store = new InMemorySessionStore();
  const logger = new CapturingLogger();
  const cache = new SessionCache(store, { maxEntries: options.maxEntries ?? 1000, ttlMs: TTL, clock, logger });
  return { clock, store, logger, cache };
}

describe('SessionCache', () => {
  const alice = new TestDevice('ds-alice', 'u-alice');
  const bob = new TestDevice('ds-bob', 'u-bob');
  const carol = new TestDevice('ds-carol', 'u-carol');

  it('parses a record once and reuses the key object: the store is read once for many lookups', async () => {
    const { store, cache } = setup();
    store.set(alice.deviceSessionId, alice.record());
    const first = await cache.lookup(alice.deviceSessionId);
    expect(first?.session).toEqual(alice.session());
    expect(first?.publicKey.asymmetricKeyType).toBe('ed25519');
    for (let i = 0; i < 100; i += 1) {
      const again = await cache.lookup(alice.deviceSessionId);
      expect(again?.publicKey).toBe(first?.publicKey);
    }
    expect(store.reads).toBe(1);
    expect(cache.peek(alice.deviceSessionId)).toBe(first);
  });

  it('trusts an entry for exactly the TTL, then reads the store again', async () => {
    const { clock, store, cache } = setup();
    store.set(alice.deviceSessionId, alice.record());
    await cache.lookup(alice.deviceSessionId);
    clock.advance(TTL - 1);
    await cache.lookup(alice.deviceSessionId);
    expect(store.reads).toBe(1);
    store.set(alice.deviceSessionId, alice.record('revoked'));
    clock.advance(1);
    expect(cache.peek(alice.deviceSessionId)).toBeUndefined();
    expect((await cache.lookup(alice.deviceSessionId))?.session.status).toBe('revoked');
    expect(store.reads).toBe(2);
  });

  it('caches "unknown" too (negative caching) until the TTL passes', async () => {
    const { clock, store, cache } = setup();
    expect(await cache.lookup(alice.deviceSessionId)).toBeUndefined();
    store.set(alice.deviceSessionId, alice.record());
    expect(await cache.lookup(alice.deviceSessionId)).toBeUndefined();
    expect(await cache.lookup(alice.deviceSessionId)).toBeUndefined();
    expect(store.reads).toBe(1);
    expect(cache.size).toBe(1);
    clock.advance(TTL);
    expect((await cache.lookup(alice.deviceSessionId))?.session.userId).toBe('u-alice');
    expect(store.reads).toBe(2);
  });

  it('is bounded by maxEntries, evicting the least recently used entry', async () => {
    const { store, cache } = setup({ maxEntries: 2 });
    for (const d of [alice, bob, carol]) store.set(d.deviceSessionId, d.record());
    await cache.lookup(alice.deviceSessionId);
    await cache.lookup(bob.deviceSessionId);
    await cache.lookup(alice.deviceSessionId); // alice is now the most recently used
    expect(store.reads).toBe(2);
    await cache.lookup(carol.deviceSessionId); // evicts bob
    expect(cache.size).toBe(2);
    expect(cache.peek(bob.deviceSessionId)).toBeUndefined();
    expect(cache.peek(alice.deviceSessionId)).toBeDefined();
    await cache.lookup(alice.deviceSessionId);
    expect(store.reads).toBe(3);
    await cache.lookup(bob.deviceSessionId);
    expect(store.reads).toBe(4);
    expect(cache.size).toBe(2);
  });

  it('applies snapshots last-wins: a later active snapshot does reactivate a revoked session', async () => {
    const { store, cache } = setup();
    store.set(alice.deviceSessionId, alice.record());
    cache.apply(alice.session('revoked'));
    expect((await cache.lookup(alice.deviceSessionId))?.session.status).toBe('revoked');
    cache.apply(alice.session('active'));
    expect((await cache.lookup(alice.deviceSessionId))?.session.status).toBe('active');
    cache.apply(alice.session('revoked'));
    expect(cache.peek(alice.deviceSessionId)?.session.status).toBe('revoked');
    expect(store.reads).toBe(0);
  });

  it('clear() forgets every entry', async () => {
    const { store, cache } = setup();
    store.set(alice.deviceSessionId, alice.record());
    await cache.lookup(alice.deviceSessionId);
    cache.apply(bob.session('revoked'));
    expect(cache.size).toBe(2);
    cache.clear();
    expect(cache.size).toBe(0);
    expect(cache.peek(bob.deviceSessionId)).toBeUndefined();
    await cache.lookup(alice.deviceSessionId);
    expect(store.reads).toBe(2);
  });

  it('rejects UNAVAILABLE "session store unavailable" when the store fails, and caches nothing', async () => {
    const { store, cache } = setup();
    store.set(alice.deviceSessionId, alice.record());
    store.failing = true;
    const error = await cache.lookup(alice.deviceSessionId).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(GatewayError);
    expect((error as GatewayError).code).toBe('unavailable');
    expect((error as GatewayError).message).toBe('session store unavailable');
    expect((error as GatewayError).cause).toBeInstanceOf(Error);
    expect(cache.size).toBe(0);
    store.failing = false;
    expect((await cache.lookup(alice.deviceSessionId))?.session.status).toBe('active');
  });

  describe('malformed records are treated as unknown and logged', () => {
    const good = alice.record();
    const without = (field: string) => Object.fromEntries(Object.entries(good).filter(([k]) => k !== field));
    const cases: ReadonlyArray<readonly [string, RawFields, string]> = [
      ['missing device_session_id', without('device_session_id'), 'device_session_id is missing'],
      ['missing user_id', without('user_id'), 'user_id is missing'],
      ['empty user_id', { ...good, user_id: '' }, 'user_id is missing'],
      ['257-character user_id', { ...good, user_id: 'u'.repeat(257) }, 'user_id is invalid'],
      ['1 MiB user_id', { ...good, user_id: 'u'.repeat(1 << 20) }, 'user_id is invalid'],
      ['user_id with a control character', { ...good, user_id: 'alice\u0007' }, 'user_id is invalid'],
      ['user_id with a line break', { ...good, user_id: 'u-1\nforged log line' }, 'user_id is invalid'],
      ['missing status', without('status'), 'status is missing'],
      ['unknown status', { ...good, status: 'suspended' }, 'status is unknown'],
      ['missing client_public_key', without('client_public_key'), 'client_public_key is missing'],
      ['bad base64 key', { ...good, client_public_key: '!!!not-base64!!!' }, 'client_public_key is not standard base64'],
      ['url-safe base64 key', { ...good, client_public_key: alice.publicKeyBase64.replace(/\+/g, '-').replace(/\//g, '_').replace('=', '-') }, 'client_public_key is not standard base64'],
      ['31-byte key', { ...good, client_public_key: Buffer.alloc(31, 7).toString('base64') }, 'client_public_key is not 32 bytes'],
      ['33-byte key', { ...good, client_public_key: Buffer.alloc(33, 7).toString('base64') }, 'client_public_key is not 32 bytes'],
      ['small-order key (all zero)', { ...good, client_public_key: Buffer.alloc(32).toString('base64') }, 'client_public_key is a small-order point'],
      ['bad revoked_at_ms', { ...good, revoked_at_ms: 'yesterday' }, 'revoked_at_ms is not an integer'],
      ['id not matching the key', { ...good, device_session_id: 'ds-someone-else' }, 'device_session_id does not match key'],
    ];

    it.each(cases)('%s', async (_label, record, reason) => {
      const { store, cache, logger } = setup();
      store.set(alice.deviceSessionId, record);
      expect(await cache.lookup(alice.deviceSessionId)).toBeUndefined();
      expect(logger.find('malformed session record')).toEqual([
        { level: 'warn', message: 'malformed session record', fields: { device_session_id: alice.deviceSessionId, reason } },
      ]);
      expect(logger.serialized()).not.toContain(alice.publicKeyBase64);
    });
  });

  it('a lookup in flight while a revoked snapshot is applied returns the snapshot, not the older record', async () => {
    const store = new GatedSessionStore();
    const cache = new SessionCache(store, { maxEntries: 10, ttlMs: TTL, clock: new FakeClock() });
    const pending = cache.lookup(alice.deviceSessionId);
    expect(store.reads).toHaveLength(1);
    cache.apply(alice.session('revoked'));
    store.reads[0]?.answer.resolve(alice.record('active'));
    expect((await pending)?.session.status).toBe('revoked');
    expect((await cache.lookup(alice.deviceSessionId))?.session.status).toBe('revoked');
    expect(store.reads).toHaveLength(1);
  });

  it('the snapshot still wins when its cache entry was evicted before the older read returned', async () => {
    const store = new GatedSessionStore();
    const cache = new SessionCache(store, { maxEntries: 1, ttlMs: TTL, clock: new FakeClock() });
    const pending = cache.lookup(alice.deviceSessionId);
    cache.apply(alice.session('revoked'));
    cache.apply(bob.session('active')); // evicts alice's snapshot (maxEntries 1)
    expect(cache.peek(alice.deviceSessionId)).toBeUndefined();
    store.reads[0]?.answer.resolve(alice.record('active'));
    expect((await pending)?.session.status).toBe('revoked');
    // The stale "active" read was not cached either.
    expect(cache.peek(alice.deviceSessionId)).toBeUndefined();
  });

  it('a snapshot applied during a read that raced clear() still wins over that read', async () => {
    const store = new GatedSessionStore();
    const cache = new SessionCache(store, { maxEntries: 10, ttlMs: TTL, clock: new FakeClock() });
    const pending = cache.lookup(alice.deviceSessionId);
    cache.clear();
    cache.apply(alice.session('revoked'));
    store.reads[0]?.answer.resolve(alice.record('active'));
    expect((await pending)?.session.status).toBe('revoked');
    expect(cache.peek(alice.deviceSessionId)?.session.status).toBe('revoked');
  });

  it('a snapshot applied after a read finished does not leak into a later read', async () => {
    const store = new GatedSessionStore();
    const clock = new FakeClock();
    const cache = new SessionCache(store, { maxEntries: 10, ttlMs: TTL, clock });
    const first = cache.lookup(alice.deviceSessionId);
    store.reads[0]?.answer.resolve(alice.record('active'));
    await first;
    cache.apply(alice.session('revoked'));
    clock.advance(TTL);
    const second = cache.lookup(alice.deviceSessionId);
    store.reads[1]?.answer.resolve(alice.record('active')); // reactivated by the auth service
    expect((await second)?.session.status).toBe('active');
  });

  it('keeps no per-session state for snapshots of sessions nobody is reading (bounded memory)', () => {
    const cache = new SessionCache(new InMemorySessionStore(), { maxEntries: 10, ttlMs: TTL, clock: new FakeClock() });
    for (let i = 0; i < 1000; i += 1) cache.apply({ ...alice.session('revoked'), deviceSessionId: `ds-${i}` });
    expect(cache.size).toBe(10);
    // White-box: the race bookkeeping must not grow with every session ever seen.
    const internals = cache as unknown as Record<string, unknown>;
    for (const value of Object.values(internals)) {
      if (value instanceof Map && value !== internals['entries']) expect(value.size).toBe(0);
    }
  });

  it('concurrent lookups of one session share a single store read', async () => {
    const store = new GatedSessionStore();
    const cache = new SessionCache(store, { maxEntries: 10, ttlMs: TTL, clock: new FakeClock() });
    const lookups = Array.from({ length: 10 }, () => cache.lookup(alice.deviceSessionId));
    const other = cache.lookup(bob.deviceSessionId);
    expect(store.reads.map((r) => r.id)).toEqual([alice.deviceSessionId, bob.deviceSessionId]);
    store.reads[0]?.answer.resolve(alice.record());
    store.reads[1]?.answer.resolve(undefined);
    const results = await Promise.all(lookups);
    expect(new Set(results.map((r) => r?.publicKey)).size).toBe(1);
    expect(results[0]?.session.userId).toBe('u-alice');
    expect(await other).toBeUndefined();
    // Shared failures too: a failed read is not cached and the next lookup reads again.
    cache.clear();
    const failing = [cache.lookup(alice.deviceSessionId), cache.lookup(alice.deviceSessionId)];
    expect(store.reads).toHaveLength(3);
    store.reads[2]?.answer.reject(new Error('timeout'));
    for (const f of failing) await expect(f).rejects.toMatchObject({ code: 'unavailable', message: 'session store unavailable' });
    void cache.lookup(alice.deviceSessionId);
    expect(store.reads).toHaveLength(4);
  });

  it('a read that raced clear() is returned but not cached', async () => {
    const store = new GatedSessionStore();
    const cache = new SessionCache(store, { maxEntries: 10, ttlMs: TTL, clock: new FakeClock() });
    const pending = cache.lookup(alice.deviceSessionId);
    cache.clear();
    store.reads[0]?.answer.resolve(alice.record());
    expect((await pending)?.session.status).toBe('active');
    expect(cache.size).toBe(0);
  });
});

describe('SessionCache with a revocation memory (SPEC §5.5)', () => {
  const alice = new TestDevice('ds-alice', 'u-alice');
  const bob = new TestDevice('ds-bob', 'u-bob');

  function withMemory() {
    const clock = new FakeClock();
    const store = new InMemorySessionStore();
    const revocations = new RevocationMemory({ maxEntries: 100, retentionMs: 10 * 60_000, clock });
    const cache = new SessionCache(store, { maxEntries: 1000, ttlMs: TTL, clock, revocations });
    return { clock, store, revocations, cache };
  }

  it('clear() keeps what is known to be revoked: a store that lost the revocation still answers revoked', async () => {
    const { store, cache, revocations } = withMemory();
    store.set(alice.deviceSessionId, alice.record('active'));
    cache.apply(alice.session('revoked'));
    // The failover: the new master holds the older active record; the reader reconnect clears the cache.
    cache.clear();
    expect(cache.peek(alice.deviceSessionId)?.session.status).toBe('revoked');
    expect((await cache.lookup(alice.deviceSessionId))?.session).toMatchObject({ deviceSessionId: alice.deviceSessionId, userId: alice.userId, status: 'revoked' });
    expect(store.reads).toBe(0);
    expect(revocations.get(alice.deviceSessionId)?.clientPublicKey).toBe(alice.publicKeyBase64);
  });

  it('a missing record (created and revoked, both lost) is revoked, not unknown', async () => {
    const { cache } = withMemory();
    cache.revoke(bob.deviceSessionId, '');
    cache.clear();
    expect((await cache.lookup(bob.deviceSessionId))?.session.status).toBe('revoked');
  });

  it('remembers a revoked record read from the store', async () => {
    const { store, cache } = withMemory();
    store.set(alice.deviceSessionId, alice.record('revoked', { revoked_at_ms: '1764201600000' }));
    expect((await cache.lookup(alice.deviceSessionId))?.session.status).toBe('revoked');
    store.set(alice.deviceSessionId, alice.record('active'));
    cache.clear();
    expect((await cache.lookup(alice.deviceSessionId))?.session).toMatchObject({ status: 'revoked', revokedAtMs: 1764201600000 });
  });

  it('a remembered revocation answers without a store read; one learned during a read overrides the record read', async () => {
    const clock = new FakeClock();
    const store = new GatedSessionStore();
    const revocations = new RevocationMemory({ maxEntries: 100, retentionMs: 60_000, clock });
    const cache = new SessionCache(store, { maxEntries: 10, ttlMs: TTL, clock, revocations });
    revocations.remember({ deviceSessionId: alice.deviceSessionId, userId: alice.userId, clientPublicKey: '', revokedAtMs: 1 });
    expect((await cache.lookup(alice.deviceSessionId))?.session.status).toBe('revoked');
    expect(store.reads).toHaveLength(0);

    const pending = cache.lookup(bob.deviceSessionId);
    revocations.remember({ deviceSessionId: bob.deviceSessionId, userId: bob.userId, clientPublicKey: '', revokedAtMs: 1 });
    store.reads[0]?.answer.resolve(bob.record('active'));
    expect((await pending)?.session.status).toBe('revoked');
  });

  it('an active snapshot (the auth service re-activated the session) forgets the revocation', async () => {
    const { store, cache, revocations } = withMemory();
    cache.apply(alice.session('revoked'));
    cache.apply(alice.session('active'));
    expect(revocations.get(alice.deviceSessionId)).toBeUndefined();
    store.set(alice.deviceSessionId, alice.record('active'));
    cache.clear();
    expect((await cache.lookup(alice.deviceSessionId))?.session.status).toBe('active');
  });

  it('after the retention the store is trusted again', async () => {
    const { clock, store, cache } = withMemory();
    cache.apply(alice.session('revoked'));
    store.set(alice.deviceSessionId, alice.record('active'));
    clock.advance(10 * 60_000);
    cache.clear();
    expect((await cache.lookup(alice.deviceSessionId))?.session.status).toBe('active');
  });
});

describe('parseSessionFields', () => {
  const device = new TestDevice('ds-1', 'u-1');

  it('parses a full record with revoked_at_ms', () => {
    const parsed = parseSessionFields(device.record('revoked', { revoked_at_ms: '1764201600000' }));
    expect(parsed).toEqual({ ok: true, session: { ...device.session('revoked'), revokedAtMs: 1764201600000 } });
  });

  it('treats an empty revoked_at_ms as absent', () => {
    const parsed = parseSessionFields(device.record('active', { revoked_at_ms: '' }));
    expect(parsed.ok && parsed.session.revokedAtMs).toBe(undefined);
  });

  it('rejects an invalid device_session_id', () => {
    expect(parseSessionFields({ ...device.record(), device_session_id: 'has space' })).toEqual({ ok: false, reason: 'device_session_id is invalid' });
  });
});

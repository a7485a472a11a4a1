import { describe, expect, it } from 'vitest';
import type { RawFields } from '../domain.js';
import type { ReplayStore } from '../ports/replay-store.port.js';
import type { SessionStore } from '../ports/session-store.port.js';

/** What a session store contract run needs from the implementation under test. */
export interface SessionStoreHarness {
  readonly store: SessionStore;
  /** Writes a record the way the auth/session service does. */
  seed(deviceSessionId: string, fields: RawFields): Promise<void>;
  /** Makes the backing store unreachable (e.g. stops Redis); the store must then reject. */
  breakStore?(): Promise<void>;
  /** Undoes `breakStore`. */
  repairStore?(): Promise<void>;
}

let counter = 0;
const uniqueId = (label: string) => `${label}-${process.pid}-${Date.now()}-${(counter += 1)}`;

/** Contract every `SessionStore` must pass; run it from the adapter's own test file. */
export function sessionStoreContract(name: string, setup: () => Promise<SessionStoreHarness> | SessionStoreHarness): void {
  describe(`SessionStore contract: ${name}`, () => {
    it('returns undefined for a session that has no record', async () => {
      const h = await setup();
      await expect(h.store.getRecord(uniqueId('missing'))).resolves.toBeUndefined();
    });

    it('returns every field of a stored record', async () => {
      const h = await setup();
      const id = uniqueId('ds');
      const fields = {
        device_session_id: id,
        user_id: 'user-1',
        status: 'active',
        client_public_key: '6kpsY+KcUgq+9VB7Ey7F+ZVHdq6+vnuSQh7qaRRG0iw=',
        revoked_at_ms: '',
      };
      await h.seed(id, fields);
      await expect(h.store.getRecord(id)).resolves.toEqual(fields);
    });

    it('returns records as stored, malformed ones included (the core judges them)', async () => {
      const h = await setup();
      const id = uniqueId('ds');
      await h.seed(id, { device_session_id: id, status: 'weird' });
      await expect(h.store.getRecord(id)).resolves.toEqual({ device_session_id: id, status: 'weird' });
    });

    it('keeps records of different sessions apart', async () => {
      const h = await setup();
      const a = uniqueId('a');
      const b = uniqueId('b');
      await h.seed(a, { device_session_id: a, user_id: 'ua' });
      await h.seed(b, { device_session_id: b, user_id: 'ub' });
      await expect(h.store.getRecord(a)).resolves.toMatchObject({ user_id: 'ua' });
      await expect(h.store.getRecord(b)).resolves.toMatchObject({ user_id: 'ub' });
    });

    it('rejects (never answers "unknown") when the store is unreachable', async () => {
      const h = await setup();
      if (h.breakStore === undefined) return expect(h.breakStore).toBeUndefined();
      const id = uniqueId('ds');
      await h.seed(id, { device_session_id: id, user_id: 'u' });
      await h.breakStore();
      try {
        await expect(h.store.getRecord(id)).rejects.toBeInstanceOf(Error);
      } finally {
        await h.repairStore?.();
      }
      await expect(h.store.getRecord(id)).resolves.toMatchObject({ user_id: 'u' });
    });
  });
}

/** What a replay store contract run needs from the implementation under test. */
export interface ReplayStoreHarness {
  readonly store: ReplayStore;
  /** Lets `ms` pass for the store's expiry (real wait for Redis, fake clock in memory). */
  elapse(ms: number): Promise<void>;
  breakStore?(): Promise<void>;
  repairStore?(): Promise<void>;
  /**
   * For a store that confirms durability (SPEC §5.2): makes confirmation fail while the store
   * itself still answers (e.g. stops the Redis replica), so a new reservation is
   * `'not_replicated'`.
   */
  breakReplication?(): Promise<void>;
  /** Undoes `breakReplication` and resolves once reservations are confirmed again. */
  repairReplication?(): Promise<void>;
}

/** Contract every `ReplayStore` must pass. */
export function replayStoreContract(name: string, setup: () => Promise<ReplayStoreHarness> | ReplayStoreHarness): void {
  describe(`ReplayStore contract: ${name}`, () => {
    it('reserves a new request id once, then reports duplicates', async () => {
      const h = await setup();
      const ds = uniqueId('ds');
      await expect(h.store.reserve(ds, 'req-1', 60_000)).resolves.toBe('reserved');
      await expect(h.store.reserve(ds, 'req-1', 60_000)).resolves.toBe('duplicate');
      await expect(h.store.reserve(ds, 'req-1', 60_000)).resolves.toBe('duplicate');
    });

    it('scopes request ids to the device session', async () => {
      const h = await setup();
      const a = uniqueId('a');
      const b = uniqueId('b');
      await expect(h.store.reserve(a, 'req-1', 60_000)).resolves.toBe('reserved');
      await expect(h.store.reserve(b, 'req-1', 60_000)).resolves.toBe('reserved');
      await expect(h.store.reserve(a, 'req-2', 60_000)).resolves.toBe('reserved');
    });

    it('never confuses two different pairs of valid ids, whatever the ":" in them (issue 12)', async () => {
      const h = await setup();
      const col = uniqueId('col');
      await expect(h.store.reserve(col, 'a:b', 60_000)).resolves.toBe('reserved');
      await expect(h.store.reserve(`${col}:a`, 'b', 60_000)).resolves.toBe('reserved');
      await expect(h.store.reserve(col, 'a:b', 60_000)).resolves.toBe('duplicate');
    });

    it('release (when implemented) lets the same request id be reserved again', async () => {
      const h = await setup();
      if (h.store.release === undefined) return expect(h.store.release).toBeUndefined();
      const ds = uniqueId('ds');
      await expect(h.store.reserve(ds, 'req-1', 60_000)).resolves.toBe('reserved');
      await h.store.release(ds, 'req-1');
      await expect(h.store.reserve(ds, 'req-1', 60_000)).resolves.toBe('reserved');
      await expect(h.store.reserve(ds, 'req-1', 60_000)).resolves.toBe('duplicate');
    });

    it('gives exactly one winner among concurrent reservations', async () => {
      const h = await setup();
      const ds = uniqueId('ds');
      const outcomes = await Promise.all(Array.from({ length: 20 }, () => h.store.reserve(ds, 'same', 60_000)));
      expect(outcomes.filter((o) => o === 'reserved')).toHaveLength(1);
      expect(outcomes.filter((o) => o === 'duplicate')).toHaveLength(19);
    });

    it('lets a reservation expire after its ttl', async () => {
      const h = await setup();
      const ds = uniqueId('ds');
      await expect(h.store.reserve(ds, 'req-1', 50)).resolves.toBe('reserved');
      await h.elapse(120);
      await expect(h.store.reserve(ds, 'req-1', 50)).resolves.toBe('reserved');
    });

    it('not replicated (when the store confirms durability): withdrawn, so the same id reserves once replication is back; a replay is still a duplicate', async () => {
      const h = await setup();
      if (h.breakReplication === undefined) return expect(h.breakReplication).toBeUndefined();
      const ds = uniqueId('ds');
      await expect(h.store.reserve(ds, 'before', 60_000)).resolves.toBe('reserved');
      await h.breakReplication();
      try {
        await expect(h.store.reserve(ds, 'req-1', 60_000)).resolves.toBe('not_replicated');
        // Withdrawn: asking again is not a replay, it is not replicated again.
        await expect(h.store.reserve(ds, 'req-1', 60_000)).resolves.toBe('not_replicated');
        // A reservation that exists answers at once, whatever the replicas.
        await expect(h.store.reserve(ds, 'before', 60_000)).resolves.toBe('duplicate');
      } finally {
        await h.repairReplication?.();
      }
      await expect(h.store.reserve(ds, 'req-1', 60_000)).resolves.toBe('reserved');
      await expect(h.store.reserve(ds, 'req-1', 60_000)).resolves.toBe('duplicate');
    });

    it('rejects when the store is unreachable (the core fails closed)', async () => {
      const h = await setup();
      if (h.breakStore === undefined) return expect(h.breakStore).toBeUndefined();
      await h.breakStore();
      try {
        await expect(h.store.reserve(uniqueId('ds'), 'req-1', 60_000)).rejects.toBeInstanceOf(Error);
      } finally {
        await h.repairStore?.();
      }
      await expect(h.store.reserve(uniqueId('ds'), 'req-1', 60_000)).resolves.toBe('reserved');
    });
  });
}

import { describe, expect, it } from 'vitest';
import type { RawFields } from '../domain.js';
import type { RevocationStore } from '../ports/revocation-store.port.js';

/** What a revocation store contract run needs from the implementation under test. */
export interface RevocationStoreHarness {
  readonly store: RevocationStore;
  /** Writes a session record the way the auth service does (optionally with an expiry). */
  seed(deviceSessionId: string, fields: RawFields, ttlMs?: number): Promise<void>;
  /** The record as stored, or `undefined`. */
  record(deviceSessionId: string): Promise<RawFields | undefined>;
  /** The session-events snapshots appended for `deviceSessionId`, oldest first. */
  snapshots(deviceSessionId: string): Promise<RawFields[]>;
  /** Whether the store keeps record expiries (Redis does; the in-memory store has none). */
  readonly expires: boolean;
}

let counter = 0;
const uniqueId = (label: string) => `${label}-${process.pid}-${Date.now()}-${(counter += 1)}`;
const KEY = '6kpsY+KcUgq+9VB7Ey7F+ZVHdq6+vnuSQh7qaRRG0iw=';
const OTHER_KEY = 'O2onvM62pC1io6jQKm8Nc2UyFXcd4kOmOsBIoYtZ2ik=';

/** Contract every `RevocationStore` must pass (SPEC §5.3). */
export function revocationStoreContract(name: string, setup: () => Promise<RevocationStoreHarness> | RevocationStoreHarness): void {
  describe(`RevocationStore contract: ${name}`, () => {
    it('writes back a lost revocation over the older active record, keeping its user and key, then appends the snapshot', async () => {
      const h = await setup();
      const id = uniqueId('ds');
      await h.seed(id, { device_session_id: id, user_id: 'alice@example.com', status: 'active', client_public_key: KEY });
      await expect(h.store.reassert({ deviceSessionId: id, userId: '', clientPublicKey: OTHER_KEY, revokedAtMs: 1_764_201_600_000 })).resolves.toBe('written');
      const revoked = { device_session_id: id, user_id: 'alice@example.com', status: 'revoked', client_public_key: KEY, revoked_at_ms: '1764201600000' };
      await expect(h.record(id)).resolves.toEqual(revoked);
      await expect(h.snapshots(id)).resolves.toEqual([revoked]);
    });

    it('writes back a record lost entirely from what is remembered', async () => {
      const h = await setup();
      const id = uniqueId('ds');
      await expect(h.store.reassert({ deviceSessionId: id, userId: 'bob', clientPublicKey: KEY, revokedAtMs: 5 })).resolves.toBe('written');
      const revoked = { device_session_id: id, user_id: 'bob', status: 'revoked', client_public_key: KEY, revoked_at_ms: '5' };
      await expect(h.record(id)).resolves.toEqual(revoked);
      await expect(h.snapshots(id)).resolves.toEqual([revoked]);
    });

    it('writes nothing where the record already says revoked (another gateway was first)', async () => {
      const h = await setup();
      const id = uniqueId('ds');
      await h.seed(id, { device_session_id: id, user_id: 'carol', status: 'revoked', client_public_key: KEY, revoked_at_ms: '7' });
      await expect(h.store.reassert({ deviceSessionId: id, userId: 'carol', clientPublicKey: KEY, revokedAtMs: 9 })).resolves.toBe('present');
      await expect(h.record(id)).resolves.toMatchObject({ revoked_at_ms: '7' });
      await expect(h.snapshots(id)).resolves.toEqual([]);
    });

    it('of concurrent re-asserts of one session, one writes', async () => {
      const h = await setup();
      const id = uniqueId('ds');
      await h.seed(id, { device_session_id: id, user_id: 'dave', status: 'active', client_public_key: KEY });
      const outcomes = await Promise.all(Array.from({ length: 8 }, () => h.store.reassert({ deviceSessionId: id, userId: 'dave', clientPublicKey: KEY, revokedAtMs: 1 })));
      expect(outcomes.filter((o) => o === 'written')).toHaveLength(1);
      await expect(h.snapshots(id)).resolves.toHaveLength(1);
    });

    it("reports the record's remaining life: undefined without a record, Infinity without expiry", async () => {
      const h = await setup();
      const id = uniqueId('ds');
      await expect(h.store.recordTtl(id)).resolves.toBeUndefined();
      await h.seed(id, { device_session_id: id, status: 'revoked' });
      await expect(h.store.recordTtl(id)).resolves.toBe(Infinity);
      if (!h.expires) return;
      const expiring = uniqueId('ds');
      await h.seed(expiring, { device_session_id: expiring, status: 'revoked' }, 60_000);
      const ttl = await h.store.recordTtl(expiring);
      expect(ttl).toBeGreaterThan(50_000);
      expect(ttl).toBeLessThanOrEqual(60_000);
    });
  });
}

import { describe, expect, it } from 'vitest';
import type { RateLimitBucket, RateLimiter, RateLimitSubject, RateLimitVerdict } from '../ports/rate-limiter.port.js';
import type { ReplayStore } from '../ports/replay-store.port.js';

/** What a rate limiter contract run needs from the implementation under test. */
export interface RateLimiterHarness {
  readonly limiter: RateLimiter;
  /**
   * With a limiter that has `acquireAndReserve`: the replay store that sees the same
   * reservations (its `reserve` answers `duplicate` for one the limiter made).
   */
  readonly replay?: ReplayStore;
}

let counter = 0;
const uniqueId = (label: string) => `${label}-${process.pid}-${Date.now()}-${(counter += 1)}`;

/**
 * Contract every `RateLimiter` must pass, on real time (a shared store keeps its own clock):
 * rules of 1 per second (a 1 s emission interval), so a slow, shared machine does not refill a
 * bucket between two steps that expect it empty.
 */
export function rateLimiterContract(name: string, setup: () => Promise<RateLimiterHarness> | RateLimiterHarness): void {
  const rule = (burst: number, id = uniqueId('session')): Omit<RateLimitBucket, 'subject'> => ({ rule: `${id}=1/s:${burst}`, intervalMs: 1000, burst });
  const subjectOf = (): RateLimitSubject => ({ deviceSessionId: uniqueId('ds'), userId: uniqueId('user') });
  const acquire = async (limiter: RateLimiter, buckets: readonly RateLimitBucket[], subject: RateLimitSubject): Promise<RateLimitVerdict> => limiter.acquire(buckets, subject);

  describe(`RateLimiter contract: ${name}`, () => {
    it('admits exactly the burst at once, then refuses for at most one emission interval', async () => {
      const { limiter } = await setup();
      const subject = subjectOf();
      const bucket = { ...rule(3), subject: subject.deviceSessionId };
      const verdicts = [];
      for (let i = 0; i < 4; i++) verdicts.push(await acquire(limiter, [bucket], subject));
      expect(verdicts.slice(0, 3).every((v) => v.admitted)).toBe(true);
      const refused = verdicts[3] as RateLimitVerdict;
      expect(refused.admitted).toBe(false);
      if (refused.admitted) return;
      expect(refused.refusedBy).toBe(0);
      expect(refused.retryAfterMs).toBeGreaterThan(0);
      expect(refused.retryAfterMs).toBeLessThanOrEqual(1000);
    });

    it('admits again once the retry-after has passed', async () => {
      const { limiter } = await setup();
      const subject = subjectOf();
      const bucket = { ...rule(1), subject: subject.deviceSessionId };
      expect((await acquire(limiter, [bucket], subject)).admitted).toBe(true);
      const refused = await acquire(limiter, [bucket], subject);
      if (refused.admitted) throw new Error('expected a refusal');
      // Waiting is the behaviour under test: the bucket refills with time, no event to await.
      await new Promise((resolve) => setTimeout(resolve, Math.ceil(refused.retryAfterMs) + 5));
      expect((await acquire(limiter, [bucket], subject)).admitted).toBe(true);
    });

    it('is all or nothing: a refusal takes nothing from the buckets that had room', async () => {
      const { limiter } = await setup();
      const subject = subjectOf();
      const roomy = { ...rule(2), subject: subject.deviceSessionId };
      const tight = { ...rule(1), subject: subject.userId };
      expect((await acquire(limiter, [tight], subject)).admitted).toBe(true);
      const refused = await acquire(limiter, [roomy, tight], subject);
      expect(refused).toMatchObject({ admitted: false, refusedBy: 1 });
      // The roomy bucket still has its whole burst of 2.
      expect((await acquire(limiter, [roomy], subject)).admitted).toBe(true);
      expect((await acquire(limiter, [roomy], subject)).admitted).toBe(true);
      expect((await acquire(limiter, [roomy], subject)).admitted).toBe(false);
    });

    it('keeps buckets of different subjects and rules apart', async () => {
      const { limiter } = await setup();
      const subject = subjectOf();
      const other = subjectOf();
      const shape = rule(1);
      expect((await acquire(limiter, [{ ...shape, subject: subject.deviceSessionId }], subject)).admitted).toBe(true);
      expect((await acquire(limiter, [{ ...shape, subject: other.deviceSessionId }], other)).admitted).toBe(true);
      expect((await acquire(limiter, [{ ...rule(1), subject: subject.deviceSessionId }], subject)).admitted).toBe(true);
      expect((await acquire(limiter, [{ ...shape, subject: subject.deviceSessionId }], subject)).admitted).toBe(false);
    });

    it('with acquireAndReserve: a refused request leaves no reservation, an admitted one reserves once', async () => {
      const { limiter, replay } = await setup();
      if (limiter.acquireAndReserve === undefined) return;
      const subject = subjectOf();
      const bucket = { ...rule(1), subject: subject.deviceSessionId };
      expect(await limiter.acquireAndReserve([bucket], subject, 'first', 60_000)).toEqual({ admitted: true, reservation: 'reserved' });
      const refused = await limiter.acquireAndReserve([bucket], subject, 'second', 60_000);
      expect(refused).toMatchObject({ admitted: false, refusedBy: 0 });
      if (refused.admitted) return;
      await new Promise((resolve) => setTimeout(resolve, Math.ceil(refused.retryAfterMs) + 5));
      // The limited request_id was not reserved: the same id is admitted after the wait.
      expect(await limiter.acquireAndReserve([bucket], subject, 'second', 60_000)).toEqual({ admitted: true, reservation: 'reserved' });
      // Without buckets it is the reservation alone; a used id is a duplicate.
      expect(await limiter.acquireAndReserve([], subject, 'second', 60_000)).toEqual({ admitted: true, reservation: 'duplicate' });
      expect(await limiter.acquireAndReserve([], subject, 'third', 60_000)).toEqual({ admitted: true, reservation: 'reserved' });
      if (limiter.releaseReservation !== undefined) {
        await limiter.releaseReservation(subject, 'third');
        expect(await limiter.acquireAndReserve([], subject, 'third', 60_000)).toEqual({ admitted: true, reservation: 'reserved' });
      }
      if (replay !== undefined) await expect(replay.reserve(subject.deviceSessionId, 'first', 60_000)).resolves.toBe('duplicate');
    });
  });
}

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { rateLimiterContract } from '../testing/rate-limiter-contract.js';
import type { RateLimitBucket } from '../ports/rate-limiter.port.js';
import { FakeClock } from './fake-clock.js';
import { InMemoryRateLimiter } from './in-memory-rate-limiter.js';

function bucket(count: number, periodMs: number, burst: number, subject = 'ds-1', rule = `session=${count}/${periodMs}ms:${burst}`): RateLimitBucket {
  return { rule, intervalMs: periodMs / count, burst, subject };
}

/** Runs arrivals (ms offsets from a fixed start) through one bucket; `A` admitted, `R<retry>` refused. */
function run(arrivals: readonly number[], count: number, periodMs: number, burst: number): string[] {
  const clock = new FakeClock(1_000_000);
  const limiter = new InMemoryRateLimiter({ clock });
  const b = bucket(count, periodMs, burst);
  return arrivals.map((at) => {
    clock.set(1_000_000 + at);
    const verdict = limiter.acquire([b]);
    return verdict.admitted ? 'A' : `R${Math.round(verdict.retryAfterMs * 1000) / 1000}`;
  });
}

describe('InMemoryRateLimiter (GCRA)', () => {
  // (arrival times in ms, rate, burst) -> admitted (A) or refused with its exact retry-after (R<ms>).
  const table: Array<{ name: string; arrivals: number[]; count: number; periodMs: number; burst: number; expected: string[] }> = [
    { name: 'burst 1: one per interval', arrivals: [0, 0, 50, 99, 100, 150, 200], count: 10, periodMs: 1000, burst: 1, expected: ['A', 'R100', 'R50', 'R1', 'A', 'R50', 'A'] },
    { name: 'burst 3 at once, then the rate', arrivals: [0, 0, 0, 0, 100, 100, 250], count: 10, periodMs: 1000, burst: 3, expected: ['A', 'A', 'A', 'R100', 'A', 'R100', 'A'] },
    { name: 'burst defaults to count (20/s): 20 pass, the 21st waits 50 ms', arrivals: [...Array(21).fill(0), 50], count: 20, periodMs: 1000, burst: 20, expected: [...Array(20).fill('A'), 'R50', 'A'] },
    { name: 'an idle bucket refills to its burst, not beyond', arrivals: [0, 0, 10_000, 10_000, 10_000], count: 1, periodMs: 1000, burst: 2, expected: ['A', 'A', 'A', 'A', 'R1000'] },
    { name: 'per minute: 10/m burst 1', arrivals: [0, 1000, 6000, 6001], count: 10, periodMs: 60_000, burst: 1, expected: ['A', 'R5000', 'A', 'R5999'] },
    { name: 'refusals take nothing: a steady flood still gets the rate', arrivals: [0, 25, 50, 75, 100, 125, 150, 175, 200], count: 10, periodMs: 1000, burst: 1, expected: ['A', 'R75', 'R50', 'R25', 'A', 'R75', 'R50', 'R25', 'A'] },
    { name: 'fractional interval (3/s)', arrivals: [0, 0, 333, 334], count: 3, periodMs: 1000, burst: 1, expected: ['A', 'R333.333', 'R0.333', 'A'] },
  ];
  for (const row of table) {
    it(row.name, () => {
      expect(run(row.arrivals, row.count, row.periodMs, row.burst)).toEqual(row.expected);
    });
  }

  it('answers synchronously (no promise on the hot path)', () => {
    const verdict = new InMemoryRateLimiter().acquire([bucket(10, 1000, 1)]);
    expect(verdict).toEqual({ admitted: true });
  });

  it('refuses with the largest wait among refusing buckets and names the first refusing one', () => {
    const clock = new FakeClock(0);
    const limiter = new InMemoryRateLimiter({ clock });
    const fast = bucket(10, 1000, 1, 'ds-1', 'fast');
    const slow = bucket(1, 1000, 1, 'ds-1', 'slow');
    expect(limiter.acquire([fast, slow]).admitted).toBe(true);
    clock.advance(10);
    expect(limiter.acquire([fast, slow])).toEqual({ admitted: false, refusedBy: 0, retryAfterMs: 990 });
  });

  it('a clock that steps back never makes a refusal longer than one emission interval', () => {
    const clock = new FakeClock(1_000_000);
    const limiter = new InMemoryRateLimiter({ clock });
    const b = bucket(1, 1000, 1);
    expect(limiter.acquire([b]).admitted).toBe(true);
    clock.set(1_000_000 - 60_000);
    const verdict = limiter.acquire([b]);
    expect(verdict).toEqual({ admitted: false, refusedBy: 0, retryAfterMs: 1000 });
  });

  it('forgets buckets that are full again, without timers, as traffic goes on', () => {
    const clock = new FakeClock(0);
    const limiter = new InMemoryRateLimiter({ clock });
    for (let i = 0; i < 100; i++) limiter.acquire([bucket(10, 1000, 1, `ds-${i}`, 'r')]);
    expect(limiter.size).toBe(100);
    clock.advance(1000);
    for (let i = 0; i < 100; i++) limiter.acquire([bucket(10, 1000, 1, 'active', 'r')]);
    // Each call forgets up to two cold buckets: the 100 idle ones are gone, `active` remains.
    expect(limiter.size).toBe(1);
  });

  it('bounds the buckets per rule, forgetting the least recently used', () => {
    const clock = new FakeClock(0);
    const limiter = new InMemoryRateLimiter({ clock, maxBucketsPerRule: 3 });
    for (const id of ['a', 'b', 'c', 'd']) expect(limiter.acquire([bucket(1, 1000, 1, id, 'r')]).admitted).toBe(true);
    expect(limiter.size).toBe(3);
    expect(limiter.acquire([bucket(1, 1000, 1, 'd', 'r')]).admitted).toBe(false);
    // `a` was forgotten: it gets a fresh burst.
    expect(limiter.acquire([bucket(1, 1000, 1, 'a', 'r')]).admitted).toBe(true);
  });

  it('property: over any window, admitted <= burst + rate x window; every refusal waits at most one interval', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 50 }),
        fc.constantFrom(1000, 60_000),
        fc.integer({ min: 1, max: 20 }),
        fc.array(fc.integer({ min: 0, max: 200 }), { minLength: 1, maxLength: 300 }),
        (count, periodMs, burst, gaps) => {
          const clock = new FakeClock(0);
          const limiter = new InMemoryRateLimiter({ clock });
          const b = bucket(count, periodMs, burst);
          const interval = periodMs / count;
          const admitted: number[] = [];
          let now = 0;
          for (const gap of gaps) {
            now += (gap * interval) / 50;
            clock.set(now);
            const verdict = limiter.acquire([b]);
            if (verdict.admitted) {
              admitted.push(now);
              continue;
            }
            if (!(verdict.retryAfterMs > 0 && verdict.retryAfterMs <= interval + 1e-9)) return false;
          }
          // Every window [admitted[i], admitted[j]] of length w holds j - i + 1 admissions.
          for (let i = 0; i < admitted.length; i++) {
            for (let j = i; j < admitted.length; j++) {
              const w = (admitted[j] as number) - (admitted[i] as number);
              if (j - i + 1 > burst + w / interval + 1e-9) return false;
            }
          }
          return true;
        },
      ),
      { numRuns: 300 },
    );
  });

  it('property: the retry-after is exact (refused a hair before it, admitted at it)', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 100 }), fc.integer({ min: 1, max: 10 }), fc.integer({ min: 0, max: 50 }), fc.double({ min: 0, max: 1, noNaN: true }), (count, burst, extra, offset) => {
        const clock = new FakeClock(0);
        const limiter = new InMemoryRateLimiter({ clock });
        const b = bucket(count, 1000, burst);
        for (let i = 0; i < burst + extra; i++) limiter.acquire([b]);
        clock.advance((offset * 1000) / count);
        const verdict = limiter.acquire([b]);
        if (verdict.admitted) return true;
        const at = clock.now() + verdict.retryAfterMs;
        clock.set(at - 1e-6);
        if (limiter.acquire([b]).admitted) return false;
        clock.set(at);
        return limiter.acquire([b]).admitted;
      }),
      // The examples failed before the wait was rounded up to the double that reaches the admission time:
      // `now + (allowAt - now)` fell one ulp short of `allowAt` (about 0.4 % of 300-run seeds).
      {
        numRuns: 300,
        examples: [
          [55, 1, 0, 0.0859021856960217],
          [65, 1, 0, 0.04580025055693988],
          [96, 1, 0, 0.016570214483119544],
          [34, 1, 0, 0.3355138760705566],
        ],
      },
    );
  });
});

rateLimiterContract('InMemoryRateLimiter', () => ({ limiter: new InMemoryRateLimiter() }));

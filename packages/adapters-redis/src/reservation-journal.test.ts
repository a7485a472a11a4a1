import { describe, expect, it } from 'vitest';
import { ReservationJournal } from './reservation-journal.js';

describe('ReservationJournal', () => {
  it('holds a confirmed reservation for its window, not past its own expiry', () => {
    const journal = new ReservationJournal(1000, 10);
    journal.add('a', 10_500, 10_000);
    expect(journal.has('a', 10_000)).toBe(true);
    expect(journal.has('a', 10_499)).toBe(true);
    // Expired in Redis: no longer a replay anywhere.
    expect(journal.has('a', 10_500)).toBe(false);
    journal.add('b', 100_000, 20_000);
    expect(journal.has('b', 21_000)).toBe(true);
    // Past the window: Redis alone decides again.
    expect(journal.has('b', 21_001)).toBe(false);
    expect(journal.has('never', 20_000)).toBe(false);
  });

  it('lists what it holds, newest first, with the expiry, and drops entries past the window', () => {
    const journal = new ReservationJournal(1000, 10);
    journal.add('old', 90_000, 10_000);
    journal.add('mid', 90_000, 10_600);
    journal.add('new', 10_900, 10_800);
    expect(journal.list(10_800)).toEqual([
      { key: 'new', expiresAtMs: 10_900 },
      { key: 'mid', expiresAtMs: 90_000 },
      { key: 'old', expiresAtMs: 90_000 },
    ]);
    // 'old' leaves the window, 'new' expired.
    expect(journal.list(11_100)).toEqual([{ key: 'mid', expiresAtMs: 90_000 }]);
    expect(journal.size).toBe(1);
  });

  it('is bounded: past maxEntries the oldest goes first, counted', () => {
    const journal = new ReservationJournal(60_000, 3);
    for (let i = 0; i < 5; i += 1) journal.add(`k${i}`, 1_000_000, 1000 + i);
    expect(journal.size).toBe(3);
    expect(journal.evictedEarly).toBe(2);
    expect(journal.has('k0', 2000)).toBe(false);
    expect(journal.has('k1', 2000)).toBe(false);
    expect(journal.list(2000).map((e) => e.key)).toEqual(['k4', 'k3', 'k2']);
    // Many rounds through the ring keep the bound and the order.
    for (let i = 5; i < 1000; i += 1) journal.add(`k${i}`, 1_000_000, 1000 + i);
    expect(journal.size).toBe(3);
    expect(journal.list(2000).map((e) => e.key)).toEqual(['k999', 'k998', 'k997']);
  });

  it('forgets a withdrawn reservation; the same key added again counts from then', () => {
    const journal = new ReservationJournal(1000, 4);
    journal.add('a', 50_000, 1000);
    journal.delete('a');
    expect(journal.has('a', 1001)).toBe(false);
    expect(journal.list(1001)).toEqual([]);
    journal.add('a', 50_000, 1900);
    // The first slot of 'a' leaves the window without taking the second with it.
    expect(journal.has('a', 2500)).toBe(true);
    expect(journal.list(2500)).toEqual([{ key: 'a', expiresAtMs: 50_000 }]);
  });

  it('does nothing with a bound of 0', () => {
    const journal = new ReservationJournal(1000, 0);
    expect(journal.disabled).toBe(true);
    journal.add('a', 50_000, 1000);
    expect(journal.has('a', 1000)).toBe(false);
    expect(journal.list(1000)).toEqual([]);
  });
});

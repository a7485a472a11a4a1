import { describe, expect, it } from 'vitest';
import { INDEX_ENTRY_BYTES, INDEX_USER_BYTES, UserEventIndex } from './user-event-index.js';

const id = (n: number) => `1000-${n}`;

/** Feeds entries 1..count, user `u${n % users}`. */
function fed(index: UserEventIndex, count: number, users = 3, from = 1): UserEventIndex {
  for (let n = from; n < from + count; n += 1) index.add(id(n), `u${n % users}`);
  return index;
}

describe('UserEventIndex', () => {
  it('covers nothing before the feed starts: a cursor is never answered then', () => {
    const index = new UserEventIndex();
    index.add(id(1), 'u1');
    expect(index.read('u1', '0-0', 10)).toBeUndefined();
    expect(index.coveredFrom).toBeUndefined();
    expect(index.size).toBe(0);
  });

  it("answers a cursor at or after the feed's start with the user's ids only, in order", () => {
    const index = fed(new UserEventIndex(), 30);
    index.reset('1000-0');
    fed(index, 30);
    expect(index.read('u1', id(0), 100)).toEqual({ ids: [1, 4, 7, 10, 13, 16, 19, 22, 25, 28].map(id), through: id(30) });
    expect(index.read('u1', id(7), 3)).toEqual({ ids: [10, 13, 16].map(id), through: id(30) });
    expect(index.read('u1', id(8), 3)?.ids).toEqual([10, 13, 16].map(id));
    expect(index.read('u1', id(28), 3)).toEqual({ ids: [], through: id(30) });
    // After everything the feed saw: nothing, the caller reads on after `through`.
    expect(index.read('u1', id(99), 3)).toEqual({ ids: [], through: id(30) });
    expect(index.read('nobody', id(0), 3)).toEqual({ ids: [], through: id(30) });
    // A process that just started: a cursor before its start is not answered.
    expect(index.read('u1', '999-5', 3)).toBeUndefined();
  });

  it('evicts the oldest entries past maxBytes and stops answering cursors before them', () => {
    const perEntry = INDEX_ENTRY_BYTES + id(10).length;
    const index = new UserEventIndex(3 * (INDEX_USER_BYTES + 2) + 10 * perEntry);
    index.reset('1000-0');
    fed(index, 20, 3, 10);
    expect(index.bytes).toBeLessThanOrEqual(index.maxBytes);
    expect(index.size).toBe(10);
    // 1000-10..1000-29 fed; room for the three users and ten entries: 1000-20..1000-29 stay.
    expect(index.coveredFrom).toBe(id(19));
    expect(index.read('u1', id(18), 100)).toBeUndefined();
    expect(index.read('u1', id(19), 100)?.ids).toEqual([22, 25, 28].map(id));
  });

  it('evicts a user whose every entry went, and charges its bytes back', () => {
    const index = new UserEventIndex(INDEX_USER_BYTES + 2 + 2 * (INDEX_ENTRY_BYTES + 6));
    index.reset('0-0');
    index.add('1-1', 'ua');
    index.add('1-2', 'ua');
    expect(index.bytes).toBe(INDEX_USER_BYTES + 2 + 2 * (INDEX_ENTRY_BYTES + 3));
    index.add('1-3', 'ub');
    // ub's user charge pushed both of ua's entries out.
    expect(index.read('ua', '1-2', 10)).toEqual({ ids: [], through: '1-3' });
    expect(index.read('ub', '1-2', 10)).toEqual({ ids: ['1-3'], through: '1-3' });
    expect(index.read('ua', '1-1', 10)).toBeUndefined();
    expect(index.bytes).toBe(INDEX_USER_BYTES + 2 + INDEX_ENTRY_BYTES + 3);
  });

  it('entries no stream can have (no or invalid user_id) move the coverage but are not held', () => {
    const index = new UserEventIndex();
    index.reset('0-0');
    index.add('1-1', undefined);
    index.add('1-2', '');
    index.add('1-3', 'x'.repeat(10_000));
    index.add('1-4', 'ok');
    expect(index.size).toBe(1);
    expect(index.through).toBe('1-4');
    expect(index.read('ok', '0-0', 10)?.ids).toEqual(['1-4']);
  });

  it('a feed that goes back restarts the coverage after the entry it went back to', () => {
    const index = new UserEventIndex();
    index.reset('0-0');
    fed(index, 10);
    index.add(id(5), 'u2');
    expect(index.size).toBe(0);
    expect(index.read('u2', id(4), 10)).toBeUndefined();
    expect(index.read('u2', id(5), 10)).toEqual({ ids: [], through: id(5) });
    index.add(id(6), 'u2');
    expect(index.read('u2', id(5), 10)?.ids).toEqual([id(6)]);
  });

  it('clear() covers nothing until the next reset; maxBytes 0 never covers', () => {
    const index = new UserEventIndex();
    index.reset('0-0');
    fed(index, 5);
    index.clear();
    expect(index.read('u1', id(1), 10)).toBeUndefined();
    fed(index, 5, 3, 6);
    expect(index.size).toBe(0);
    const off = new UserEventIndex(0);
    off.reset('0-0');
    fed(off, 5);
    expect(off.read('u1', '0-0', 10)).toBeUndefined();
    expect(() => new UserEventIndex(-1)).toThrow(RangeError);
  });

  it('stays within maxBytes and answers correctly across many compactions', () => {
    const index = new UserEventIndex(200_000);
    index.reset('0-0');
    for (let n = 1; n <= 50_000; n += 1) index.add(`${n}-0`, `user-${n % 7}`);
    expect(index.bytes).toBeLessThanOrEqual(200_000);
    const from = index.coveredFrom as string;
    const fromMs = Number(from.split('-')[0]);
    const got = index.read('user-3', from, 1_000_000)?.ids ?? [];
    const expected: string[] = [];
    for (let n = fromMs + 1; n <= 50_000; n += 1) if (n % 7 === 3) expected.push(`${n}-0`);
    expect(got).toEqual(expected);
    expect(index.size).toBe(50_000 - fromMs);
  });
});

import { describe, expect, it } from 'vitest';
import { CallTable } from './call-table.js';

describe('CallTable', () => {
  it('keeps one call without a map, several with one, by id', () => {
    const table = new CallTable<string>();
    expect(table.size).toBe(0);
    expect(table.get(0)).toBeUndefined();
    table.set(0, 'a');
    expect([table.size, table.get(0), table.has(0), table.has(1)]).toEqual([1, 'a', true, false]);
    table.set(7, 'b');
    table.set(9, 'c');
    expect([table.size, table.get(7), table.get(9), table.get(0)]).toEqual([3, 'b', 'c', 'a']);
    expect(table.values().sort()).toEqual(['a', 'b', 'c']);
    // Replacing keeps one entry per id, wherever it is held.
    table.set(0, 'a2');
    table.set(9, 'c2');
    expect([table.size, table.get(0), table.get(9)]).toEqual([3, 'a2', 'c2']);
  });

  it('deletes by id, answers whether it held the id, and takes new calls in freed places', () => {
    const table = new CallTable<string>();
    table.set(1, 'a');
    table.set(2, 'b');
    expect(table.delete(1)).toBe(true);
    expect(table.delete(1)).toBe(false);
    expect([table.size, table.get(1), table.get(2)]).toEqual([1, undefined, 'b']);
    table.set(3, 'c');
    expect([table.size, table.get(3), table.get(2)]).toEqual([2, 'c', 'b']);
    expect(table.delete(2)).toBe(true);
    expect(table.delete(3)).toBe(true);
    expect(table.size).toBe(0);
    expect(table.delete(4)).toBe(false);
    table.set(4, 'd');
    expect([table.size, table.get(4)]).toEqual([1, 'd']);
  });

  it('values() is a copy the caller may go through while it clears the table', () => {
    const table = new CallTable<number>();
    for (const id of [5, 6, 7]) table.set(id, id * 10);
    const seen: number[] = [];
    for (const v of table.values()) {
      seen.push(v);
      table.delete(v / 10);
    }
    expect(seen.sort()).toEqual([50, 60, 70]);
    expect(table.size).toBe(0);
    table.set(1, 1);
    table.clear();
    expect([table.size, table.get(1), table.values()]).toEqual([0, undefined, []]);
  });
});

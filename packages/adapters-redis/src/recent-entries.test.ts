import { describe, expect, it } from 'vitest';
import { DivergedRanges } from './diverged-ranges.js';
import { RecentEntries, fingerprint, previousStreamId } from './recent-entries.js';

describe('RecentEntries', () => {
  it('tells consumed entries from other entries with the same id, and forgets beyond its capacity', () => {
    const recent = new RecentEntries(2);
    recent.remember({ id: '1-0', fields: { a: 'x' } });
    recent.remember({ id: '2-0', fields: { a: 'y' } });
    expect(recent.matches({ id: '2-0', fields: { a: 'y' } })).toBe(true);
    expect(recent.matches({ id: '2-0', fields: { a: 'z' } })).toBe(false);
    expect(recent.matches({ id: '3-0', fields: { a: 'y' } })).toBeUndefined();
    expect([recent.has('2-0'), recent.has('3-0')]).toEqual([true, false]);
    recent.remember({ id: '3-0', fields: { a: 'z' } });
    expect(recent.size).toBe(2);
    expect(recent.matches({ id: '1-0', fields: { a: 'x' } })).toBeUndefined();
  });

  it('fingerprints field order independently, and values by prefix and length', () => {
    expect(fingerprint({ a: '1', b: '2' })).toBe(fingerprint({ b: '2', a: '1' }));
    expect(fingerprint({ a: '1' })).not.toBe(fingerprint({ a: '2' }));
    const long = 'p'.repeat(100);
    expect(fingerprint({ a: long })).not.toBe(fingerprint({ a: `${long}q` }));
  });
});

describe('RecentEntries with a remembered field', () => {
  it('keeps each entry\'s user (at most 256 characters) and answers by id range', () => {
    const recent = new RecentEntries(3, 'user_id');
    recent.remember({ id: '1-0', fields: { user_id: 'a' } });
    recent.remember({ id: '2-0', fields: { user_id: 'b' } });
    recent.remember({ id: '3-0', fields: { user_id: 'x'.repeat(257) } });
    recent.remember({ id: '4-0', fields: { user_id: 'b' } });
    expect(recent.oldestId).toBe('2-0');
    expect([...recent.valuesIn('2-0', '4-0')]).toEqual(['b']);
    expect([...recent.valuesIn(undefined, '3-0')]).toEqual(['b']);
    expect(recent.newestAfter('2-0')).toBe('4-0');
    expect(recent.newestAfter('4-0')).toBeUndefined();
    recent.forgetIn('2-0', '3-0');
    expect([recent.has('2-0'), recent.has('3-0'), recent.has('4-0')]).toEqual([true, false, true]);
    expect(() => new RecentEntries(0)).toThrow(RangeError);
  });

  it('forgets the oldest in insertion order; a forgotten entry keeps its slot until the ring passes it', () => {
    const recent = new RecentEntries(3);
    for (const id of ['1-0', '2-0', '3-0']) recent.remember({ id, fields: { a: id } });
    recent.forgetIn('1-0', '2-0');
    expect([recent.size, recent.oldestId]).toEqual([2, '1-0']);
    // 2-0 comes back: it takes a new slot (the oldest, 1-0, makes room); its old slot is skipped.
    recent.remember({ id: '2-0', fields: { a: 'again' } });
    expect([recent.has('1-0'), recent.has('2-0'), recent.has('3-0'), recent.oldestId]).toEqual([false, true, true, '3-0']);
    // The ring passes 2-0's old slot without forgetting the 2-0 remembered since.
    recent.remember({ id: '4-0', fields: { a: '4' } });
    expect([recent.has('2-0'), recent.has('3-0'), recent.has('4-0'), recent.size]).toEqual([true, true, true, 3]);
    // Seen again with other fields: the latest fields count, its place stays.
    recent.remember({ id: '3-0', fields: { a: 'changed' } });
    expect(recent.matches({ id: '3-0', fields: { a: 'changed' } })).toBe(true);
    recent.remember({ id: '5-0', fields: { a: '5' } });
    expect([recent.has('3-0'), recent.oldestId, recent.size]).toEqual([false, '2-0', 3]);
  });
});

describe('previousStreamId', () => {
  it('is the id right before, so that a read after it includes the given id', () => {
    expect(previousStreamId('5-3')).toBe('5-2');
    expect(previousStreamId('5-0')).toBe('4-18446744073709551615');
    expect(previousStreamId('0-0')).toBe('0-0');
  });
});

describe('DivergedRanges', () => {
  it('contains ids in (after, upTo] only, and keeps the newest ranges', () => {
    const ranges = new DivergedRanges(1);
    ranges.add({ after: '10-0', upTo: '12-0' });
    expect([ranges.contains('10-0'), ranges.contains('11-5'), ranges.contains('12-0'), ranges.contains('12-1')]).toEqual([false, true, true, false]);
    ranges.add({ after: '20-0', upTo: '21-0' });
    expect(ranges.contains('11-5')).toBe(false);
    expect(ranges.contains('21-0')).toBe(true);
  });
});

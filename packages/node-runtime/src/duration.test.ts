import { describe, expect, it } from 'vitest';
import { formatDuration, parseGoDuration } from './duration.js';

describe('parseGoDuration', () => {
  it.each([
    ['500ms', 500],
    ['10s', 10_000],
    ['2m', 120_000],
    ['1h30m', 5_400_000],
    ['1.5s', 1500],
    ['.5s', 500],
    ['1m30.5s', 90_500],
    ['250us', 0.25],
    ['250µs', 0.25],
    ['1000000ns', 1],
    ['0', 0],
  ])('parses %s', (text, ms) => {
    expect(parseGoDuration(text)).toBeCloseTo(ms, 9);
  });

  it.each(['', '10', 's', '5 s', '-1s', '1d', '1h 30m', 'abc', '1.2.3s', '10S'])('refuses %j', (text) => {
    expect(parseGoDuration(text)).toBeUndefined();
  });

  it('formats back', () => {
    expect(formatDuration(15_000)).toBe('15s');
    expect(formatDuration(300_000)).toBe('5m');
    expect(formatDuration(250)).toBe('250ms');
  });
});

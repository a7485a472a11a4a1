import { describe, expect, it } from 'vitest';
import { base64DecodedLength, isStandardBase64 } from './base64.js';

describe('isStandardBase64 (linear, no allocation)', () => {
  it.each([
    ['', true],
    ['aGk=', true],
    ['aGkh', true],
    ['YQ==', true],
    ['+/+/', true],
    ['aGk', false],
    ['aGk= ', false],
    ['-_-_', false],
    ['====', false],
    ['A===', false],
    ['YQ=a', false],
    ['Y=Q=', false],
    ['%%%%', false],
    ['aGk=aGk=', false],
  ])('%j -> %s', (value, expected) => {
    expect(isStandardBase64(value)).toBe(expected);
  });

  it('accepts what Buffer encodes, for every padding length', () => {
    for (let n = 0; n < 40; n += 1) {
      const encoded = Buffer.from(Array.from({ length: n }, (_, i) => (i * 37) % 256)).toString('base64');
      expect(isStandardBase64(encoded)).toBe(true);
      expect(base64DecodedLength(encoded)).toBe(n);
    }
  });

  it('checks an 8 MiB payload without throwing (the regular expression overflowed the stack at ~3.2 MiB)', () => {
    const big = Buffer.alloc(8 * 1024 * 1024, 7).toString('base64');
    expect(isStandardBase64(big)).toBe(true);
    expect(base64DecodedLength(big)).toBe(8 * 1024 * 1024);
    expect(isStandardBase64(`${big.slice(0, -4)}!!!!`)).toBe(false);
  });
});

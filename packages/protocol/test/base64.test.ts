import { describe, expect, it } from 'vitest';
import { base64DecodedLength, fromBase64, isStandardBase64, toBase64 } from '@edge-gateway/protocol';

describe('fromBase64 (strict standard base64, as documented)', () => {
  it('decodes padded standard base64, the empty string included', () => {
    expect(fromBase64('')).toEqual(new Uint8Array());
    expect(fromBase64('AAEC/w==')).toEqual(new Uint8Array([0, 1, 2, 255]));
    const bytes = Uint8Array.from({ length: 300 }, (_, i) => (i * 7) % 256);
    expect(fromBase64(toBase64(bytes))).toEqual(bytes);
    expect(base64DecodedLength('AAEC/w==')).toBe(4);
  });

  // atob accepts every one of these (whitespace, missing padding) or misreads them.
  it.each([
    ['whitespace inside', 'AAEC /w=='],
    ['a trailing newline', 'AAEC/w==\n'],
    ['missing padding', 'AAEC/w'],
    ['the URL-safe alphabet', 'AAEC_w=='],
    ['padding in the middle', 'AA==AAAA'],
    ['three padding characters', 'A==='],
  ])('throws on %s', (_, text) => {
    expect(isStandardBase64(text)).toBe(false);
    expect(() => fromBase64(text)).toThrow(TypeError);
  });
});

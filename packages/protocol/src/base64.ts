/** Standard (padded) base64 of `bytes`. */
export function toBase64(bytes: Uint8Array): string {
  let binary = '';
  for (let i = 0; i < bytes.length; i += 0x8000) binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(binary);
}

/**
 * Bytes of standard, padded base64 `text` (RFC 4648 §4; the empty string included). Throws a
 * `TypeError` on anything else: whitespace, missing padding, the URL-safe alphabet (which
 * `atob` alone would accept or misread).
 */
export function fromBase64(text: string): Uint8Array {
  if (!isStandardBase64(text)) throw new TypeError('not standard base64 (A-Z a-z 0-9 + /, padded with =)');
  const binary = atob(text);
  const out = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i += 1) out[i] = binary.charCodeAt(i);
  return out;
}

/** Lowercase hex of `bytes`. */
export function toHex(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}

/*
 * Standard (RFC 4648 §4, padded) base64 checks that cost one pass over the string and no
 * allocation, whatever its size. A regular expression with a repeated group backtracks per
 * repetition and overflowed the stack at about 3 MiB (issue 12), taking the whole stream read
 * with it.
 */

const PAD = 0x3d; // '='

/** True for a character of the standard base64 alphabet (`A-Z a-z 0-9 + /`). */
function isAlphabet(code: number): boolean {
  return (
    (code >= 0x41 && code <= 0x5a) || // A-Z
    (code >= 0x61 && code <= 0x7a) || // a-z
    (code >= 0x30 && code <= 0x39) || // 0-9
    code === 0x2b || // +
    code === 0x2f // /
  );
}

/** Number of `=` at the end of a padded base64 string (0, 1 or 2; more is invalid anyway). */
function padding(value: string): number {
  const n = value.length;
  if (n === 0 || value.charCodeAt(n - 1) !== PAD) return 0;
  return value.charCodeAt(n - 2) === PAD ? 2 : 1;
}

/**
 * True for standard, padded base64 (the empty string included): a multiple of 4 characters
 * of `A-Za-z0-9+/`, with at most two `=` at the very end. Linear, no allocation.
 */
export function isStandardBase64(value: string): boolean {
  const n = value.length;
  if (n % 4 !== 0) return false;
  const end = n - padding(value);
  for (let i = 0; i < end; i += 1) {
    if (!isAlphabet(value.charCodeAt(i))) return false;
  }
  return true;
}

/** Bytes that a valid {@link isStandardBase64} string decodes to, computed without decoding. */
export function base64DecodedLength(value: string): number {
  return (value.length / 4) * 3 - padding(value);
}

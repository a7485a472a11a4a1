import { chmodSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { exposedKeyMode } from './signer-key-mode.js';

describe('exposedKeyMode', () => {
  const file = (mode: number): string => {
    const path = join(mkdtempSync(join(tmpdir(), 'eg-mode-')), 'signer.pem');
    writeFileSync(path, 'x');
    chmodSync(path, mode);
    return path;
  };

  it.each([
    [0o600, undefined],
    [0o400, undefined],
    [0o640, '0640'],
    [0o644, '0644'],
    [0o604, '0604'],
    [0o660, '0660'],
  ])('mode %o -> %s', async (mode, expected) => {
    expect(await exposedKeyMode(file(mode))).toBe(expected);
  });

  it('a missing file is left to the loader to report', async () => {
    expect(await exposedKeyMode('/nonexistent/signer.pem')).toBeUndefined();
  });
});

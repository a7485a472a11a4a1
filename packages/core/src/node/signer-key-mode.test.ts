import { chmodSync, mkdtempSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { exposedKeyMode, processGroups } from './signer-key-mode.js';

describe('exposedKeyMode', () => {
  const file = (mode: number): string => {
    const path = join(mkdtempSync(join(tmpdir(), 'eg-mode-')), 'signer.pem');
    writeFileSync(path, 'x');
    chmodSync(path, mode);
    return path;
  };

  it('knows the groups of this process, the file group of a file it made among them', () => {
    const path = file(0o600);
    expect(processGroups()).toContain(statSync(path).gid);
  });

  // The file's group is the gateway's own (the systemd layout 0640 root:edge-gateway, a
  // Kubernetes Secret 0440 with fsGroup): group-read is the intended layout.
  it.each([
    [0o600, undefined],
    [0o400, undefined],
    [0o640, undefined],
    [0o440, undefined],
    [0o644, '0644'],
    [0o604, '0604'],
    [0o660, '0660'],
    [0o620, '0620'],
  ])('own group: mode %o -> %s', async (mode, expected) => {
    expect(await exposedKeyMode(file(mode))).toBe(expected);
  });

  // The same modes when the file's group is not one of the gateway's: anyone in it reads the key.
  it.each([
    [0o600, undefined],
    [0o640, '0640'],
    [0o440, '0440'],
  ])('foreign group: mode %o -> %s', async (mode, expected) => {
    expect(await exposedKeyMode(file(mode), [])).toBe(expected);
  });

  it('a missing file is left to the loader to report', async () => {
    expect(await exposedKeyMode('/nonexistent/signer.pem')).toBeUndefined();
  });
});

import { generateKeyPairSync } from 'node:crypto';
import { chmodSync, mkdtempSync, renameSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CapturingLogger } from '../../test/helpers.js';
import { Ed25519ResponseSigner } from '../signing/signer.js';
import { SIGNER_KEY_VARIABLE, SignerKeyError, loadSignerKey } from './signer-key-file.js';
import { createSignerRotation } from './signer-rotation.js';

const dir = mkdtempSync(join(tmpdir(), 'eg-signer-'));
let n = 0;
/** A fresh PKCS#8 PEM Ed25519 key at a new path (mode 0600). */
function keyFile(): { path: string; pem: string } {
  n += 1;
  const path = join(dir, `signer-${n}.pem`);
  const pem = generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  writeFileSync(path, pem, { mode: 0o600 });
  return { path, pem };
}
const message = (promise: Promise<unknown>): Promise<string> => promise.then(() => 'resolved', (e: unknown) => (e instanceof SignerKeyError ? e.message : `unexpected ${String(e)}`));

describe('loadSignerKey', () => {
  it('loads a PKCS#8 PEM Ed25519 key (the same key id as the core computes from the PEM)', async () => {
    const { path, pem } = keyFile();
    expect((await loadSignerKey(path)).keyId).toBe(Ed25519ResponseSigner.fromPem(pem).keyId);
  });

  it('refuses what is not a key file, naming the variable (the binary\'s by default) and never the key', async () => {
    expect(await message(loadSignerKey(join(dir, 'missing.pem')))).toBe(`${SIGNER_KEY_VARIABLE}: cannot read signer key file ${join(dir, 'missing.pem')} (ENOENT)`);
    expect(await message(loadSignerKey(dir, 'MY_KEY'))).toBe(`MY_KEY: ${dir} is not a regular file (directory)`);
    const rsa = join(dir, 'rsa.pem');
    writeFileSync(rsa, generateKeyPairSync('rsa', { modulusLength: 1024 }).privateKey.export({ type: 'pkcs8', format: 'pem' }));
    expect(await message(loadSignerKey(rsa, 'MY_KEY'))).toBe('MY_KEY: signer key is rsa, expected ed25519');
    const error = (await loadSignerKey(rsa).catch((e: unknown) => e)) as SignerKeyError;
    expect(error.code).toBe('signer_key_invalid');
    expect(error.message).not.toContain('PRIVATE KEY');
  });
});

describe('createSignerRotation (SPEC §8.6)', () => {
  it('rotates to a new key in the file, says unchanged for the same key, and keeps the current key when the file does not load', async () => {
    const { path, pem } = keyFile();
    const logger = new CapturingLogger();
    const initial = Ed25519ResponseSigner.fromPem(pem);
    const rotation = createSignerRotation(initial, path, logger, { variable: 'MY_KEY' });
    expect(rotation.signer.keyId).toBe(initial.keyId);

    expect(await rotation.reload()).toBe('unchanged');
    const next = keyFile();
    renameSync(next.path, path);
    expect(await rotation.reload()).toBe('rotated');
    const nextId = Ed25519ResponseSigner.fromPem(next.pem).keyId;
    expect(rotation.signer.keyId).toBe(nextId);

    writeFileSync(path, 'not a key');
    expect(await rotation.reload()).toBe('failed');
    expect(rotation.signer.keyId).toBe(nextId);

    expect(logger.lines.map((line) => [line.level, line.message, line.fields])).toEqual([
      ['info', 'signer key unchanged', { component: 'signer', signer_key_id: initial.keyId }],
      ['info', 'signer key rotated', { component: 'signer', old_signer_key_id: initial.keyId, new_signer_key_id: nextId }],
      ['error', 'signer key reload failed: keeping the current key', { component: 'signer', signer_key_id: nextId, error: expect.stringMatching(/^MY_KEY: /) }],
    ]);
  });

  it('runs reloads one at a time, and warns when a rotated key file is readable by others', async () => {
    const { path, pem } = keyFile();
    const logger = new CapturingLogger();
    const rotation = createSignerRotation(Ed25519ResponseSigner.fromPem(pem), path, logger);
    const next = keyFile();
    chmodSync(next.path, 0o644);
    renameSync(next.path, path);
    expect(await Promise.all([rotation.reload(), rotation.reload()])).toEqual(['rotated', 'unchanged']);
    expect(logger.find('signer key file is readable by group or others').map((line) => line.fields)).toEqual([
      expect.objectContaining({ component: 'signer', path, mode: '0644' }),
    ]);
  });
});

import { chmodSync, existsSync, rmSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { CommandError } from './cli-io.js';

/**
 * Writes a private key as a 0600 file and returns its absolute path. Refuses to replace an
 * existing file unless `force` (a key that is overwritten by mistake cannot be recovered).
 */
export function writePrivateKeyFile(out: string, pem: string, force: boolean): string {
  const path = resolve(out);
  if (existsSync(path)) {
    if (!force) throw new CommandError(`${path} already exists; refusing to overwrite it (use --force to replace it)`);
    rmSync(path, { force: true });
  }
  try {
    // 'wx' with the mode set at creation: the key is never readable by others, not even briefly.
    writeFileSync(path, pem, { mode: 0o600, flag: 'wx' });
    chmodSync(path, 0o600);
  } catch (error) {
    throw new CommandError(`cannot write ${path} (${(error as NodeJS.ErrnoException).code ?? String(error)})`);
  }
  return path;
}

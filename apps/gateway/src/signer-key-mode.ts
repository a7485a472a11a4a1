import { stat } from 'node:fs/promises';
import type { Logger } from '@edge-gateway/core';

/**
 * Permission bits of the signer key file when group or others may read or write it, as an
 * octal string (`0644`); undefined when only the owner can (or the mode cannot be read). The
 * gateway warns and still loads such a key: mounted secrets are often 0644 (issue 12).
 */
export async function exposedKeyMode(path: string): Promise<string | undefined> {
  let mode: number;
  try {
    mode = (await stat(path)).mode & 0o777;
  } catch {
    return undefined;
  }
  return (mode & 0o077) === 0 ? undefined : `0${mode.toString(8).padStart(3, '0')}`;
}

/** Logs `signer key file is readable by group or others` (warn, path and mode) when it is. */
export async function warnIfKeyExposed(path: string, logger: Logger): Promise<void> {
  const mode = await exposedKeyMode(path);
  if (mode === undefined) return;
  logger.warn('signer key file is readable by group or others', {
    path,
    mode,
    hint: 'chmod 600 the file (or 0400), unless it is a mounted secret you trust',
  });
}

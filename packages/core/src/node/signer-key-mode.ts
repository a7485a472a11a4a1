import { stat } from 'node:fs/promises';
import type { Logger } from '../ports/logger.port.js';

/** The group ids of this process (primary and supplementary), where the platform has them. */
export function processGroups(): readonly number[] {
  const groups = new Set<number>(process.getgroups?.() ?? []);
  const gid = process.getgid?.();
  if (gid !== undefined) groups.add(gid);
  return [...groups];
}

/**
 * Permission bits of the signer key file when it is exposed beyond the gateway, as an octal
 * string (`0644`); undefined when it is not (or the mode cannot be read). Exposed means: others
 * may read or write it, its group may write it, or its group may read it and that group is not
 * one of the gateway's own. A group-readable key owned by root in the gateway's group is the
 * layout the deployment files use (systemd `0640 root:edge-gateway`, a Kubernetes Secret
 * `0440` with `fsGroup`), so it is not reported. The gateway warns and still loads an exposed
 * key: mounted secrets are often 0644 (issue 12).
 */
export async function exposedKeyMode(path: string, groups: readonly number[] = processGroups()): Promise<string | undefined> {
  let mode: number;
  let gid: number;
  try {
    const info = await stat(path);
    mode = info.mode & 0o777;
    gid = info.gid;
  } catch {
    return undefined;
  }
  const others = mode & 0o007;
  const groupWrite = mode & 0o030;
  const foreignGroupRead = (mode & 0o040) !== 0 && !groups.includes(gid);
  return others === 0 && groupWrite === 0 && !foreignGroupRead ? undefined : `0${mode.toString(8).padStart(3, '0')}`;
}

/** Logs `signer key file is readable by group or others` (warn, path and mode) when it is exposed. */
export async function warnIfKeyExposed(path: string, logger: Logger): Promise<void> {
  const mode = await exposedKeyMode(path);
  if (mode === undefined) return;
  logger.warn('signer key file is readable by group or others', {
    path,
    mode,
    hint: "chmod 600 the file (or 0400, or 0640/0440 with the gateway's own group), unless it is a mounted secret you trust",
  });
}

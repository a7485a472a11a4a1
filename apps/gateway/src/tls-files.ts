import { unwatchFile, watchFile } from 'node:fs';
import { X509Certificate } from 'node:crypto';
import { createSecureContext } from 'node:tls';
import type { Logger } from '@edge-gateway/core';
import type { TlsFiles } from './config/config.js';
import { readBoundedFile } from './bounded-file.js';

/** A certificate chain and its private key, PEM, as the listeners take them. */
export interface TlsKeyPair {
  readonly cert: Buffer;
  readonly key: Buffer;
}

/** A TLS file pair could not be used; `message` names the variable and never holds key material. */
export class TlsFilesError extends Error {
  override readonly name = 'TlsFilesError';
}

/** How often the certificate and key files are checked for changes. */
export const TLS_FILES_POLL_MS = 1000;

/** A regular file of at most 1 MiB, read within a time bound (see `readBoundedFile`); errors name `variable`. */
async function read(path: string, variable: string): Promise<Buffer> {
  try {
    return await readBoundedFile(path);
  } catch (error) {
    throw new TlsFilesError(`${variable}: ${error instanceof Error ? error.message : String(error)}`);
  }
}

/** What the logs say about a certificate (never the key). */
export function describeCertificate(pair: TlsKeyPair): Record<string, string> {
  const leaf = new X509Certificate(pair.cert);
  return { subject: leaf.subject.replace(/\n/g, ', '), fingerprint256: leaf.fingerprint256, valid_to: leaf.validTo };
}

/**
 * Reads a listener's certificate chain and key and checks that they form a usable pair (PEM,
 * key matches the certificate), the way the listener will load them.
 */
export async function loadTlsPair(files: TlsFiles): Promise<TlsKeyPair> {
  const [cert, key] = await Promise.all([read(files.certPath, files.certVariable), read(files.keyPath, files.keyVariable)]);
  try {
    new X509Certificate(cert);
  } catch {
    throw new TlsFilesError(`${files.certVariable}: ${files.certPath} is not a PEM certificate`);
  }
  try {
    createSecureContext({ cert, key });
  } catch (error) {
    // OpenSSL's reason ("key values mismatch", "bad decrypt", …) names no secret.
    const reason = error instanceof Error ? error.message : String(error);
    throw new TlsFilesError(`${files.keyVariable}: ${files.keyPath} is not the private key of ${files.certPath} (${reason})`);
  }
  return { cert, key };
}

/** A listener's certificate, re-read when its files change. */
export interface TlsReloader {
  /** Re-reads the files now; a pair that does not load keeps the current one. */
  reload(): Promise<'reloaded' | 'unchanged' | 'failed'>;
  /** Stops watching the files. */
  stop(): void;
}

/**
 * Watches a listener's certificate and key files (stat polling every {@link TLS_FILES_POLL_MS},
 * which follows symlinks, so Kubernetes Secret volumes and `mv` over the file both count) and
 * hands a changed, valid pair to `apply`. A pair that does not load (e.g. the certificate was
 * replaced before its key) keeps the current one and is tried again at the next change. The
 * watchers keep no process alive.
 */
export function watchTlsFiles(options: {
  readonly listener: string;
  readonly files: TlsFiles;
  readonly current: TlsKeyPair;
  readonly apply: (pair: TlsKeyPair) => void;
  readonly logger: Logger;
  readonly pollMs?: number;
}): TlsReloader {
  const { files, listener } = options;
  const log = options.logger.child({ component: 'tls', listener });
  let current = options.current;
  let queue: Promise<unknown> = Promise.resolve();

  const reloadOnce = async (): Promise<'reloaded' | 'unchanged' | 'failed'> => {
    let next: TlsKeyPair;
    try {
      next = await loadTlsPair(files);
    } catch (error) {
      log.error('tls certificate reload failed: keeping the current certificate', {
        ...describeCertificate(current),
        error: error instanceof Error ? error.message : String(error),
      });
      return 'failed';
    }
    if (next.cert.equals(current.cert) && next.key.equals(current.key)) return 'unchanged';
    const previous = describeCertificate(current);
    options.apply(next);
    current = next;
    log.info('tls certificate reloaded', { ...describeCertificate(next), previous_fingerprint256: previous['fingerprint256'] });
    return 'reloaded';
  };
  const reload = (): Promise<'reloaded' | 'unchanged' | 'failed'> => {
    const run = queue.then(reloadOnce);
    queue = run.catch(() => undefined);
    return run;
  };

  const onChange = (): void => void reload();
  const watchOptions = { persistent: false, interval: options.pollMs ?? TLS_FILES_POLL_MS };
  watchFile(files.certPath, watchOptions, onChange);
  watchFile(files.keyPath, watchOptions, onChange);
  return {
    reload,
    stop() {
      unwatchFile(files.certPath, onChange);
      unwatchFile(files.keyPath, onChange);
    },
  };
}

/**
 * `GATEWAY_DOWNSTREAM_TLS_CA_PATH`: the PEM roots `tls://` downstream routes are verified
 * against (read once at startup, bounded like every file the gateway reads); empty path:
 * Node's root certificates.
 */
export async function loadDownstreamCa(path: string): Promise<Buffer | undefined> {
  if (path === '') return undefined;
  const variable = 'GATEWAY_DOWNSTREAM_TLS_CA_PATH';
  const pem = await read(path, variable);
  try {
    new X509Certificate(pem);
  } catch {
    throw new TlsFilesError(`${variable}: ${path} is not a PEM certificate`);
  }
  return pem;
}

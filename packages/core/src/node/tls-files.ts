import { unwatchFile, watchFile } from 'node:fs';
import { X509Certificate } from 'node:crypto';
import { createSecureContext } from 'node:tls';
import type { Logger } from '../ports/logger.port.js';
import { readBoundedFile } from './bounded-file.js';

/** A certificate chain and its private key, PEM, as the listeners take them. */
export interface TlsKeyPair {
  readonly cert: Buffer;
  readonly key: Buffer;
}

/**
 * A listener's certificate that may change while it runs: what `listen` (adapters-http),
 * `startGrpcServer` (adapters-grpc) and `startWebSocketServer` (adapters-ws) accept as `tls` to
 * serve each new pair to the connections made from then on. {@link watchTlsFiles} makes one
 * from files; any other source (a secret store, a test) only has to implement these two.
 */
export interface TlsPairSource {
  /** The pair to serve now. */
  readonly current: TlsKeyPair;
  /** Calls `listener` with each new pair; returns the function that stops calling it. */
  onChange(listener: (pair: TlsKeyPair) => void): () => void;
}

/** Where a listener's certificate chain and key are, and the names errors give them. */
export interface TlsFiles {
  readonly certPath: string;
  readonly keyPath: string;
  /** The setting the certificate path came from (e.g. `GATEWAY_PUBLIC_HTTP_TLS_CERT_PATH`), for messages; default `TLS certificate`. */
  readonly certVariable?: string;
  /** The same for the key; default `TLS key`. */
  readonly keyVariable?: string;
}

/** A TLS file pair could not be used; `message` names the variable (or file) and never holds key material. */
export class TlsFilesError extends Error {
  override readonly name = 'TlsFilesError';
  readonly code = 'tls_files_invalid';
}

/** How often the certificate and key files are checked for changes (SPEC §8.6). */
export const TLS_FILES_POLL_MS = 1000;

/** A regular file of at most 1 MiB, read within a time bound (see `readBoundedFile`); errors name `variable`. */
async function read(path: string, variable: string): Promise<Buffer> {
  try {
    return await readBoundedFile(path);
  } catch (error) {
    throw new TlsFilesError(`${variable}: ${error instanceof Error ? error.message : String(error)}`);
  }
}

/**
 * What the logs say about a certificate (never the key), SPEC §8.6: `subject` (its parts joined
 * by `, `), `fingerprint256` (SHA-256 of the leaf's DER, uppercase hex pairs joined by colons, as
 * `openssl x509 -noout -fingerprint -sha256` prints it) and `valid_to` (OpenSSL's form).
 */
export function describeCertificate(pair: Pick<TlsKeyPair, 'cert'>): { subject: string; fingerprint256: string; valid_to: string } {
  const leaf = new X509Certificate(pair.cert);
  return { subject: leaf.subject.replace(/\n/g, ', '), fingerprint256: leaf.fingerprint256, valid_to: leaf.validTo };
}

/**
 * Reads a listener's certificate chain and key and checks that they form a usable pair (PEM,
 * key matches the certificate), the way the listener will load them.
 *
 * @throws TlsFilesError naming the variable and the reason (never key material).
 */
export async function loadTlsPair(files: TlsFiles): Promise<TlsKeyPair> {
  const certVariable = files.certVariable ?? 'TLS certificate';
  const keyVariable = files.keyVariable ?? 'TLS key';
  const [cert, key] = await Promise.all([read(files.certPath, certVariable), read(files.keyPath, keyVariable)]);
  try {
    new X509Certificate(cert);
  } catch {
    throw new TlsFilesError(`${certVariable}: ${files.certPath} is not a PEM certificate`);
  }
  try {
    createSecureContext({ cert, key });
  } catch (error) {
    // OpenSSL's reason ("key values mismatch", "bad decrypt", …) names no secret.
    const reason = error instanceof Error ? error.message : String(error);
    throw new TlsFilesError(`${keyVariable}: ${files.keyPath} is not the private key of ${files.certPath} (${reason})`);
  }
  return { cert, key };
}

/**
 * Reads a PEM bundle of CA certificates (e.g. the roots TLS downstreams are verified against),
 * bounded like every file read here.
 *
 * @throws TlsFilesError naming `variable` when the file cannot be read or is not PEM.
 */
export async function loadCaCertificates(path: string, variable = 'CA certificates'): Promise<Buffer> {
  const pem = await read(path, variable);
  try {
    new X509Certificate(pem);
  } catch {
    throw new TlsFilesError(`${variable}: ${path} is not a PEM certificate`);
  }
  return pem;
}

/** How one re-read of a listener's files ended. */
export type TlsReloadOutcome = 'reloaded' | 'unchanged' | 'failed';

/** A listener's certificate, re-read when its files change (a {@link TlsPairSource}). */
export interface TlsFileWatcher extends TlsPairSource {
  /** Re-reads the files now (e.g. on `SIGHUP`); a pair that does not load keeps the current one. Reloads run one at a time. */
  reload(): Promise<TlsReloadOutcome>;
  /** Stops watching the files (and the signal); `current` stays what it was. */
  close(): void;
  /** `using tls = watchTlsFiles(…)`: {@link TlsFileWatcher.close} at scope exit. */
  [Symbol.dispose](): void;
}

/** Options of {@link watchTlsFiles} and {@link openTlsFiles}. */
export interface WatchTlsFilesOptions {
  /** Names the listener in the log lines (`listener`, e.g. `public http`). */
  readonly listener: string;
  readonly files: TlsFiles;
  /** Gets `component: tls` lines: `tls certificate reloaded` (info), `tls certificate reload failed: keeping the current certificate` (error). */
  readonly logger: Logger;
  /** Stat interval of each file; default {@link TLS_FILES_POLL_MS}. */
  readonly pollMs?: number;
  /**
   * Also re-read the files when the process receives this signal (e.g. `'SIGHUP'`), until
   * `close()`. Default: none (the gateway binary calls `reload()` from its own handler).
   */
  readonly reloadSignal?: NodeJS.Signals;
}

/**
 * Watches a listener's certificate and key files (stat polling every {@link TLS_FILES_POLL_MS},
 * which follows symlinks, so Kubernetes Secret volumes and `mv` over the file both count) and
 * hands a changed, valid pair to the `onChange` listeners (the adapters subscribe when given the
 * watcher as `tls`). A pair whose bytes equal the current one changes nothing and logs nothing;
 * a pair that does not load (e.g. the certificate was replaced before its key) keeps the current
 * one and is tried again at the next change. The watchers keep no process alive. SPEC §8.6.
 *
 * @param current - the pair in use (loaded with {@link loadTlsPair}); see {@link openTlsFiles} for both steps.
 */
export function watchTlsFiles(options: WatchTlsFilesOptions & { readonly current: TlsKeyPair }): TlsFileWatcher {
  const { files } = options;
  const log = options.logger.child({ component: 'tls', listener: options.listener });
  let current = options.current;
  const listeners = new Set<(pair: TlsKeyPair) => void>();
  let queue: Promise<unknown> = Promise.resolve();
  let closed = false;

  const reloadOnce = async (): Promise<TlsReloadOutcome> => {
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
    current = next;
    for (const listener of [...listeners]) listener(next);
    log.info('tls certificate reloaded', { ...describeCertificate(next), previous_fingerprint256: previous.fingerprint256 });
    return 'reloaded';
  };
  const reload = (): Promise<TlsReloadOutcome> => {
    const run = queue.then(reloadOnce);
    queue = run.catch(() => undefined);
    return run;
  };

  const onChange = (): void => void reload();
  const watchOptions = { persistent: false, interval: options.pollMs ?? TLS_FILES_POLL_MS };
  watchFile(files.certPath, watchOptions, onChange);
  watchFile(files.keyPath, watchOptions, onChange);
  const signal = options.reloadSignal;
  if (signal !== undefined) process.on(signal, onChange);
  const close = (): void => {
    if (closed) return;
    closed = true;
    unwatchFile(files.certPath, onChange);
    unwatchFile(files.keyPath, onChange);
    if (signal !== undefined) process.off(signal, onChange);
  };
  return {
    get current() {
      return current;
    },
    onChange(listener) {
      listeners.add(listener);
      return () => void listeners.delete(listener);
    },
    reload,
    close,
    [Symbol.dispose]: close,
  };
}

/**
 * Loads a listener's certificate and key ({@link loadTlsPair}), logs `tls certificate loaded`
 * (`component: tls`, `listener`, `subject`, `fingerprint256`, `valid_to`) and watches the files
 * ({@link watchTlsFiles}). Pass the result as `tls` to `listen`, `startGrpcServer` or
 * `startWebSocketServer` and new connections get each reloaded certificate; `close()` it when
 * the listener closes.
 *
 * @throws TlsFilesError when the files do not form a usable pair (nothing is watched then).
 */
export async function openTlsFiles(options: WatchTlsFilesOptions): Promise<TlsFileWatcher> {
  const current = await loadTlsPair(options.files);
  options.logger.child({ component: 'tls', listener: options.listener }).info('tls certificate loaded', describeCertificate(current));
  return watchTlsFiles({ ...options, current });
}

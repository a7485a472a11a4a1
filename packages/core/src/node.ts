/**
 * `@edge-gateway/core/node`: what a Node process serving the core reads from disk, shared by
 * the transports and the gateway binary. The main entry does no file I/O; this one uses
 * `node:fs` and `node:tls` (the core's boundary test allows them under `src/node/` only).
 *
 * - TLS certificate files that reload themselves ({@link openTlsFiles}, SPEC §8.6): pass the
 *   watcher as `tls` to `listen` (adapters-http), `startGrpcServer` (adapters-grpc) or
 *   `startWebSocketServer` (adapters-ws).
 * - The response signer's key file: {@link loadSignerKey}, {@link createSignerRotation} (a
 *   `RotatingResponseSigner` re-read on demand, e.g. `SIGHUP`, SPEC §8.6) and the warning for a
 *   key file readable beyond the process ({@link warnIfKeyExposed}).
 * - Bounded reads of small secret files ({@link readBoundedFile}: regular files of at most
 *   1 MiB, read within 5 s).
 *
 * @packageDocumentation
 */
export { BoundedFileError, FILE_READ_TIMEOUT_MS, MAX_FILE_BYTES, readBoundedFile, type FileOpener } from './node/bounded-file.js';
export {
  describeCertificate,
  loadCaCertificates,
  loadTlsPair,
  openTlsFiles,
  TLS_FILES_POLL_MS,
  TlsFilesError,
  watchTlsFiles,
  type TlsFiles,
  type TlsFileWatcher,
  type TlsKeyPair,
  type TlsPairSource,
  type TlsReloadOutcome,
  type WatchTlsFilesOptions,
} from './node/tls-files.js';
export { loadSignerKey, SIGNER_KEY_VARIABLE, SignerKeyError } from './node/signer-key-file.js';
export { exposedKeyMode, processGroups, warnIfKeyExposed } from './node/signer-key-mode.js';
export { createSignerRotation, type SignerReloadOutcome, type SignerRotation } from './node/signer-rotation.js';

/**
 * `@edge-gateway/core/node`: what a Node process serving the core reads from disk, shared by
 * the transports and the gateway binary. The main entry does no file I/O; this one uses
 * `node:fs` and `node:tls` (the core's boundary test allows them under `src/node/` only).
 *
 * - TLS certificate files that reload themselves ({@link openTlsFiles}, SPEC §8.6): pass the
 *   watcher as `tls` to `listen` (adapters-http), `startGrpcServer` (adapters-grpc) or
 *   `startWebSocketServer` (adapters-ws).
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

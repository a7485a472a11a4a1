import { constants, type Stats } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';

/** `5000` -> `5s`, `1500` -> `1500ms` (as the binary's duration settings are written). */
function formatDuration(ms: number): string {
  return ms % 1000 === 0 ? `${ms / 1000}s` : `${ms}ms`;
}

/** Largest file the gateway reads (certificates, keys, the signer key, the CA bundle). */
export const MAX_FILE_BYTES = 1024 * 1024;
/** Bound on one read of such a file (open, stat, read, close). */
export const FILE_READ_TIMEOUT_MS = 5000;

/**
 * A file the gateway must not (or could not) read. `message` says why without the
 * variable (`/dev/zero is not a regular file (character device)`); callers prefix it.
 */
export class BoundedFileError extends Error {
  override readonly name = 'BoundedFileError';
  readonly code = 'file_refused';
}

/** How the file system is reached; a test passes a slow one. */
export interface FileOpener {
  open(path: string, flags: number): Promise<Pick<FileHandle, 'stat' | 'read' | 'close'>>;
}

const nodeFs: FileOpener = { open: (path, flags) => open(path, flags) };

// O_NONBLOCK: opening a FIFO for reading returns at once instead of waiting for a writer
// (which held a libuv threadpool thread for good and wedged every later reload). It changes
// nothing for regular files. Not defined on Windows, where FIFOs cannot be opened this way.
const OPEN_FLAGS = constants.O_RDONLY | (constants.O_NONBLOCK ?? 0);

/** Reads of a path still running after their time bound: a path gets one at a time. */
const stuck = new Map<string, Promise<unknown>>();

function kind(stats: Stats): string {
  if (stats.isDirectory()) return 'directory';
  if (stats.isFIFO()) return 'FIFO';
  if (stats.isCharacterDevice()) return 'character device';
  if (stats.isBlockDevice()) return 'block device';
  if (stats.isSocket()) return 'socket';
  return 'special file';
}

const formatLimit = (bytes: number): string => (bytes % (1024 * 1024) === 0 ? `${bytes / (1024 * 1024)} MiB` : `${bytes} bytes`);

async function readOpened(handle: Pick<FileHandle, 'stat' | 'read'>, path: string, maxBytes: number): Promise<Buffer> {
  const stats = await handle.stat();
  if (!stats.isFile()) throw new BoundedFileError(`${path} is not a regular file (${kind(stats)})`);
  if (stats.size > maxBytes) throw new BoundedFileError(`${path} is larger than ${formatLimit(maxBytes)} (${stats.size} bytes)`);
  // At most one byte past the bound, whatever the size said (the file may grow meanwhile).
  const buffer = Buffer.alloc(Math.min(maxBytes + 1, Math.max(stats.size + 1, 64 * 1024)));
  let length = 0;
  for (;;) {
    if (length === buffer.length) {
      if (length > maxBytes) throw new BoundedFileError(`${path} is larger than ${formatLimit(maxBytes)}`);
      break;
    }
    const { bytesRead } = await handle.read(buffer, length, buffer.length - length, length);
    if (bytesRead === 0) break;
    length += bytesRead;
  }
  if (length > maxBytes) throw new BoundedFileError(`${path} is larger than ${formatLimit(maxBytes)}`);
  return Buffer.from(buffer.subarray(0, length));
}

/**
 * Reads a small regular file: symlinks are followed (as Kubernetes mounts secrets), anything
 * that is not a regular file (FIFO, device such as `/dev/zero`, directory, socket) or is larger
 * than `maxBytes` is refused without reading it, and the whole read is bounded by `timeoutMs`.
 * A read that overran its bound keeps its path busy until it ends: the next read of that path
 * fails at once rather than taking another threadpool thread.
 *
 * @throws BoundedFileError naming the path and the reason; `cannot read <path> (<code>)` for
 *   an error of the file system (ENOENT, EACCES, …).
 */
export async function readBoundedFile(
  path: string,
  options: { readonly maxBytes?: number; readonly timeoutMs?: number; readonly fs?: FileOpener } = {},
): Promise<Buffer> {
  const maxBytes = options.maxBytes ?? MAX_FILE_BYTES;
  const timeoutMs = options.timeoutMs ?? FILE_READ_TIMEOUT_MS;
  if (stuck.has(path)) throw new BoundedFileError(`${path}: an earlier read has not finished after ${formatDuration(timeoutMs)} (a hung file system?)`);
  const read = (async () => {
    let handle: Pick<FileHandle, 'stat' | 'read' | 'close'>;
    try {
      handle = await (options.fs ?? nodeFs).open(path, OPEN_FLAGS);
    } catch (error) {
      throw new BoundedFileError(`cannot read ${path} (${(error as NodeJS.ErrnoException).code ?? 'error'})`);
    }
    try {
      return await readOpened(handle, path, maxBytes);
    } catch (error) {
      if (error instanceof BoundedFileError) throw error;
      throw new BoundedFileError(`cannot read ${path} (${(error as NodeJS.ErrnoException).code ?? 'error'})`);
    } finally {
      await handle.close().catch(() => undefined);
    }
  })();
  let finished = false;
  const done = read.then(
    () => void (finished = true),
    () => void (finished = true),
  );
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      // Still running (a hung file system): its handle is closed when it ends; until then
      // the path takes no second thread.
      if (!finished) {
        stuck.set(path, done);
        void done.then(() => stuck.delete(path));
      }
      reject(new BoundedFileError(`${path} was not read within ${formatDuration(timeoutMs)}`));
    }, timeoutMs);
  });
  try {
    return await Promise.race([read, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

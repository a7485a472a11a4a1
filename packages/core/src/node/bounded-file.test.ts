import { execFileSync } from 'node:child_process';
import { mkdtempSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { BoundedFileError, MAX_FILE_BYTES, readBoundedFile, type FileOpener } from './bounded-file.js';

const dir = mkdtempSync(join(tmpdir(), 'eg-bounded-'));
const file = (name: string, contents: Buffer | string): string => {
  const path = join(dir, name);
  writeFileSync(path, contents);
  return path;
};

const failure = (promise: Promise<unknown>): Promise<string> =>
  promise.then(
    () => 'resolved',
    (error: unknown) => (error instanceof BoundedFileError ? error.message : `unexpected ${String(error)}`),
  );

describe('readBoundedFile', () => {
  it('reads a regular file, and one behind a symlink (a Kubernetes secret mount), byte for byte', async () => {
    const contents = Buffer.from('-----BEGIN CERTIFICATE-----\nabc\n');
    const path = file('cert.pem', contents);
    const link = join(dir, 'linked.pem');
    symlinkSync(path, link);
    expect((await readBoundedFile(path)).equals(contents)).toBe(true);
    expect((await readBoundedFile(link)).equals(contents)).toBe(true);
  });

  it('reads a file of exactly 1 MiB and refuses one byte more', async () => {
    const exact = file('exact.pem', Buffer.alloc(MAX_FILE_BYTES, 0x41));
    expect((await readBoundedFile(exact)).length).toBe(MAX_FILE_BYTES);
    const over = file('over.pem', Buffer.alloc(MAX_FILE_BYTES + 1, 0x41));
    expect(await failure(readBoundedFile(over))).toBe(`${over} is larger than 1 MiB (${MAX_FILE_BYTES + 1} bytes)`);
  });

  it('refuses /dev/zero, a FIFO nobody writes to, a directory and a symlink to a device, without reading them', async () => {
    const fifo = join(dir, 'fifo.pem');
    execFileSync('mkfifo', [fifo]);
    const toZero = join(dir, 'zero.pem');
    symlinkSync('/dev/zero', toZero);
    const started = performance.now();
    expect(await failure(readBoundedFile('/dev/zero'))).toBe('/dev/zero is not a regular file (character device)');
    expect(await failure(readBoundedFile(fifo))).toBe(`${fifo} is not a regular file (FIFO)`);
    expect(await failure(readBoundedFile(dir))).toBe(`${dir} is not a regular file (directory)`);
    expect(await failure(readBoundedFile(toZero))).toBe(`${toZero} is not a regular file (character device)`);
    // None of them waited for anything (a FIFO opened without O_NONBLOCK waits for a writer).
    expect(performance.now() - started).toBeLessThan(2000);
  });

  it('names a file system error by its code', async () => {
    expect(await failure(readBoundedFile(join(dir, 'missing.pem')))).toBe(`cannot read ${join(dir, 'missing.pem')} (ENOENT)`);
  });

  it('bounds the read in time; while it hangs, the same path fails at once and other paths still read', async () => {
    let release: () => void = () => undefined;
    const hung = new Promise<void>((resolve) => (release = resolve));
    let closed = 0;
    const hanging: FileOpener = {
      open: async () => {
        await hung;
        return {
          stat: async () => ({ isFile: () => true, size: 1 }) as never,
          read: async () => ({ bytesRead: 0, buffer: Buffer.alloc(0) }) as never,
          close: async () => void (closed += 1),
        };
      },
    };
    const path = join(dir, 'on-a-hung-mount.pem');
    const started = performance.now();
    expect(await failure(readBoundedFile(path, { timeoutMs: 200, fs: hanging }))).toBe(`${path} was not read within 200ms`);
    expect(performance.now() - started).toBeGreaterThanOrEqual(190);
    // A second read does not take another thread while the first one hangs.
    expect(await failure(readBoundedFile(path, { timeoutMs: 200, fs: hanging }))).toBe(`${path}: an earlier read has not finished after 200ms (a hung file system?)`);
    expect((await readBoundedFile(file('other.pem', 'x'))).toString()).toBe('x');
    // Once the hung read ends, its handle is closed and the path reads again.
    release();
    await expect.poll(() => closed).toBe(1);
    await expect.poll(() => failure(readBoundedFile(path, { timeoutMs: 200, fs: hanging }))).toBe('resolved');
  });
});

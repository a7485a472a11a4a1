import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { CapturingLogger } from '../../test/helpers.js';
import { TlsFilesError, loadCaCertificates, loadTlsPair, openTlsFiles, type TlsFileWatcher, type TlsKeyPair } from './tls-files.js';

const dir = mkdtempSync(join(tmpdir(), 'eg-tls-files-'));

interface Made {
  readonly certPath: string;
  readonly keyPath: string;
  readonly cert: Buffer;
  readonly fingerprint256: string;
}

/** A self-signed P-256 certificate made by openssl, and what openssl says its fingerprint is. */
function make(name: string): Made {
  const certPath = join(dir, `${name}.crt`);
  const keyPath = join(dir, `${name}.key`);
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1', '-subj', `/CN=${name}/O=Edge`, '-keyout', keyPath, '-out', certPath], { stdio: 'ignore' });
  const printed = execFileSync('openssl', ['x509', '-noout', '-fingerprint', '-sha256', '-in', certPath], { encoding: 'utf8' });
  return { certPath, keyPath, cert: readFileSync(certPath), fingerprint256: printed.trim().replace(/^sha256 Fingerprint=/i, '') };
}

const first = make('first');
const second = make('second');
let n = 0;
/** A listener's live files, starting as a copy of `made`. */
function live(made: Made): { certPath: string; keyPath: string; certVariable: string; keyVariable: string } {
  n += 1;
  const certPath = join(dir, `live-${n}.crt`);
  const keyPath = join(dir, `live-${n}.key`);
  copyFileSync(made.certPath, certPath);
  copyFileSync(made.keyPath, keyPath);
  return { certPath, keyPath, certVariable: 'X_CERT_PATH', keyVariable: 'X_KEY_PATH' };
}
/** Replaces `path` by renaming a new file over it, as a renewal tool does. */
function replace(path: string, from: string): void {
  copyFileSync(from, `${path}.new`);
  renameSync(`${path}.new`, path);
}
const nextPair = (watcher: TlsFileWatcher): Promise<TlsKeyPair> =>
  new Promise((resolve) => {
    const stop = watcher.onChange((pair) => {
      stop();
      resolve(pair);
    });
  });

const open: TlsFileWatcher[] = [];
afterEach(() => {
  for (const watcher of open.splice(0)) watcher.close();
});

describe('openTlsFiles (SPEC §8.6)', () => {
  it('logs the loaded certificate with the fingerprint openssl prints, then follows a renamed-over pair by polling', async () => {
    const logger = new CapturingLogger();
    const files = live(first);
    const watcher = await openTlsFiles({ listener: 'public http', files, logger, pollMs: 20 });
    open.push(watcher);
    expect(watcher.current.cert.equals(first.cert)).toBe(true);
    const [loaded] = logger.find('tls certificate loaded');
    expect(loaded?.fields).toMatchObject({ component: 'tls', listener: 'public http', subject: 'CN=first, O=Edge', fingerprint256: first.fingerprint256 });
    expect(first.fingerprint256).toMatch(/^([0-9A-F]{2}:){31}[0-9A-F]{2}$/);

    const changed = nextPair(watcher);
    replace(files.keyPath, second.keyPath);
    replace(files.certPath, second.certPath);
    const pair = await changed;
    expect(pair.cert.equals(second.cert)).toBe(true);
    expect(watcher.current).toBe(pair);
    // The key may have been seen before its certificate: that check failed and kept the first.
    for (const failed of logger.find('tls certificate reload failed: keeping the current certificate')) {
      expect(failed.fields['fingerprint256']).toBe(first.fingerprint256);
    }
    const reloaded = logger.find('tls certificate reloaded');
    expect(reloaded.map((line) => line.fields)).toEqual([
      expect.objectContaining({ component: 'tls', listener: 'public http', fingerprint256: second.fingerprint256, previous_fingerprint256: first.fingerprint256 }),
    ]);
    expect(logger.lines.map((line) => line.level === 'info' || line.level === 'error')).not.toContain(false);
    expect(JSON.stringify(logger.lines)).not.toContain('PRIVATE KEY');
  });

  it('keeps the current pair when the key does not belong to the certificate, says so naming the variable, and logs nothing for unchanged bytes', async () => {
    const logger = new CapturingLogger();
    const files = live(first);
    const watcher = await openTlsFiles({ listener: 'authenticated grpc', files, logger, pollMs: 60_000 });
    open.push(watcher);
    expect(await watcher.reload()).toBe('unchanged');
    expect(logger.lines.map((line) => line.message)).toEqual(['tls certificate loaded']);

    replace(files.certPath, second.certPath);
    expect(await watcher.reload()).toBe('failed');
    expect(watcher.current.cert.equals(first.cert)).toBe(true);
    const [failed] = logger.find('tls certificate reload failed: keeping the current certificate');
    expect(failed?.level).toBe('error');
    expect(failed?.fields['fingerprint256']).toBe(first.fingerprint256);
    expect(String(failed?.fields['error'])).toMatch(/^X_KEY_PATH: .* is not the private key of /);

    replace(files.keyPath, second.keyPath);
    expect(await watcher.reload()).toBe('reloaded');
    expect(watcher.current.cert.equals(second.cert)).toBe(true);
  });

  it('reloads on the signal it was given until closed, and keeps no signal listener after close', async () => {
    const before = process.listenerCount('SIGHUP');
    const logger = new CapturingLogger();
    const files = live(first);
    const watcher = await openTlsFiles({ listener: 'websocket', files, logger, pollMs: 60_000, reloadSignal: 'SIGHUP' });
    expect(process.listenerCount('SIGHUP')).toBe(before + 1);
    writeFileSync(files.keyPath, readFileSync(second.keyPath));
    writeFileSync(files.certPath, readFileSync(second.certPath));
    const changed = nextPair(watcher);
    process.emit('SIGHUP', 'SIGHUP');
    expect((await changed).cert.equals(second.cert)).toBe(true);
    watcher.close();
    watcher.close();
    expect(process.listenerCount('SIGHUP')).toBe(before);
  });

  it('refuses files that do not form a pair, naming the variable (nothing is watched then)', async () => {
    const files = live(first);
    writeFileSync(files.certPath, 'not a certificate');
    const error = await openTlsFiles({ listener: 'x', files, logger: new CapturingLogger() }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(TlsFilesError);
    expect((error as TlsFilesError).message).toBe(`X_CERT_PATH: ${files.certPath} is not a PEM certificate`);
    expect((error as TlsFilesError).code).toBe('tls_files_invalid');
    const unnamed = await loadTlsPair({ certPath: join(dir, 'missing.crt'), keyPath: first.keyPath }).catch((e: unknown) => (e as Error).message);
    expect(unnamed).toBe(`TLS certificate: cannot read ${join(dir, 'missing.crt')} (ENOENT)`);
  });

  it('loadCaCertificates reads a PEM bundle and refuses anything else naming the variable', async () => {
    expect((await loadCaCertificates(first.certPath, 'GATEWAY_DOWNSTREAM_TLS_CA_PATH')).equals(first.cert)).toBe(true);
    await expect(loadCaCertificates(first.keyPath, 'GATEWAY_DOWNSTREAM_TLS_CA_PATH')).rejects.toThrow(`GATEWAY_DOWNSTREAM_TLS_CA_PATH: ${first.keyPath} is not a PEM certificate`);
  });
});

/**
 * Listener and connection bounds of issue 22 against the BUILT binary, one test per finding,
 * each with the figure it bounds: files the gateway reads (a device, a FIFO or an oversized
 * file at a certificate or key path).
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, renameSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as connectTls } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { keyId } from '@edge-gateway/core';
import { startRedisServer, type RedisServerHandle } from '@edge-gateway/test-utils';
import { GatewayProcess, gatewayEnv, writeSignerKey, type LogLine } from './gateway-process.js';
import { rssMiB } from './drill-support.js';
import { makeCertificate } from './tls-support.js';

const dir = mkdtempSync(join(tmpdir(), 'eg-edge-bounds-'));
const first = makeCertificate(dir, 'first');
const second = makeCertificate(dir, 'second');

let redis: RedisServerHandle;

beforeAll(async () => {
  redis = await startRedisServer();
});

afterAll(async () => {
  for (const gateway of GatewayProcess.all) await gateway.stop();
  await redis?.stop();
});

/** Puts `target` at `path` the way a deploy does: made aside, renamed over. */
function replace(path: string, target: { readonly contents: Buffer | string } | { readonly symlinkTo: string } | 'fifo'): void {
  const aside = `${path}.next`;
  if (target === 'fifo') execFileSync('mkfifo', [aside]);
  else if ('symlinkTo' in target) symlinkSync(target.symlinkTo, aside);
  else writeFileSync(aside, target.contents, { mode: 0o600 });
  renameSync(aside, path);
}

/** The fingerprint of the certificate a new TLS connection to `address` is served. */
function servedFingerprint(address: string, alpn: string): Promise<string> {
  const [host, port] = [address.slice(0, address.lastIndexOf(':')), Number(address.slice(address.lastIndexOf(':') + 1))];
  return new Promise((resolve, reject) => {
    const socket = connectTls({ host, port, rejectUnauthorized: false, ALPNProtocols: [alpn] }, () => {
      const fingerprint = socket.getPeerCertificate().fingerprint256;
      socket.end();
      resolve(fingerprint);
    });
    socket.once('error', reject);
  });
}

/** Runs the binary, expects exit 1 with one `startup failed` line, and returns its error. */
async function startupError(env: Record<string, string>): Promise<string> {
  const gateway = new GatewayProcess(env);
  const exit = await gateway.exited;
  await gateway.stop();
  expect(exit.code, gateway.raw).toBe(1);
  const failures = gateway.logs.filter((l) => l.message === 'startup failed');
  expect(failures, gateway.raw).toHaveLength(1);
  return String(failures[0]?.['error']);
}

describe('files the gateway reads: regular files of at most 1 MiB, read with a time bound', () => {
  const live = { certPath: join(dir, 'live.crt'), keyPath: join(dir, 'live.key'), signerPath: join(dir, 'live-signer.pem') };
  const firstSigner = writeSignerKey(mkdtempSync(join(dir, 'k1-')));
  const secondSigner = writeSignerKey(mkdtempSync(join(dir, 'k2-')));
  let gateway: GatewayProcess;
  let addresses: Awaited<ReturnType<GatewayProcess['started']>>;

  beforeAll(async () => {
    // Kubernetes mounts secrets as symlinks: the gateway follows them to the regular file.
    symlinkSync(first.certPath, live.certPath);
    symlinkSync(first.keyPath, live.keyPath);
    symlinkSync(firstSigner.path, live.signerPath);
    gateway = new GatewayProcess(
      gatewayEnv(redis, live.signerPath, {
        GATEWAY_ADMIN_HTTP_ADDR: '127.0.0.1:0',
        GATEWAY_PUBLIC_HTTP_TLS_CERT_PATH: live.certPath,
        GATEWAY_PUBLIC_HTTP_TLS_KEY_PATH: live.keyPath,
        GATEWAY_AUTHENTICATED_GRPC_TLS_CERT_PATH: live.certPath,
        GATEWAY_AUTHENTICATED_GRPC_TLS_KEY_PATH: live.keyPath,
      }),
    );
    addresses = await gateway.started();
  });

  /** Sends SIGHUP and waits for the three reload-failed lines (both listeners, the signer) logged after `since`. */
  async function reloadFails(since: number): Promise<Record<string, string>> {
    gateway.signal('SIGHUP');
    const after = (match: (l: LogLine) => boolean) => (l: LogLine) => gateway.logs.indexOf(l) >= since && match(l);
    const lines = await Promise.all([
      gateway.waitForLog(after((l) => l.message === 'tls certificate reload failed: keeping the current certificate' && l['listener'] === 'public http')),
      gateway.waitForLog(after((l) => l.message === 'tls certificate reload failed: keeping the current certificate' && l['listener'] === 'authenticated grpc')),
      gateway.waitForLog(after((l) => l.message === 'signer key reload failed: keeping the current key')),
    ]);
    expect(lines.map((l) => l.level)).toEqual(['error', 'error', 'error']);
    expect(lines[0]?.['fingerprint256']).toBe(first.fingerprint256);
    expect(lines[2]?.['signer_key_id']).toBe(keyId(firstSigner.publicKeyRaw));
    return { public: String(lines[0]?.['error']), grpc: String(lines[1]?.['error']), signer: String(lines[2]?.['error']) };
  }

  it('refuses /dev/zero, a FIFO and a 2 MiB file at every path (naming the variable), keeps serving the current material, memory flat; a later valid file is loaded', async () => {
    const rssBefore = rssMiB(gateway.pid);
    const cases = [
      ['/dev/zero', { symlinkTo: '/dev/zero' }, 'is not a regular file (character device)'],
      ['a FIFO', 'fifo', 'is not a regular file (FIFO)'],
      ['2 MiB', { contents: Buffer.alloc(2 * 1024 * 1024, 0x41) }, `is larger than 1 MiB (${2 * 1024 * 1024} bytes)`],
    ] as const;
    for (const [name, target, reason] of cases) {
      const since = gateway.logs.length;
      replace(live.certPath, target);
      replace(live.signerPath, target);
      const started = performance.now();
      const errors = await reloadFails(since);
      const ms = performance.now() - started;
      expect(errors, name).toEqual({
        public: `GATEWAY_PUBLIC_HTTP_TLS_CERT_PATH: ${live.certPath} ${reason}`,
        grpc: `GATEWAY_AUTHENTICATED_GRPC_TLS_CERT_PATH: ${live.certPath} ${reason}`,
        signer: `GATEWAY_RESPONSE_SIGNER_PRIVATE_KEY_PEM_PATH: ${live.signerPath} ${reason}`,
      });
      // Refused without reading: no time bound was needed.
      expect(ms, name).toBeLessThan(5000);
      expect(await servedFingerprint(addresses.grpc, 'h2'), name).toBe(first.fingerprint256);
      expect(await servedFingerprint(addresses.publicHttp, 'http/1.1'), name).toBe(first.fingerprint256);
    }
    const rssGrowth = rssMiB(gateway.pid) - rssBefore;
    console.info(`[edge] RSS growth after /dev/zero, FIFO and 2 MiB at the certificate and signer key paths: ${rssGrowth.toFixed(1)} MiB`);
    // Unbounded, /dev/zero grew RSS by ~250 MB/s and the FIFO wedged every later reload.
    expect(rssGrowth).toBeLessThan(20);

    // The FIFO wedged nothing: valid files are loaded on the next SIGHUP.
    const since = gateway.logs.length;
    replace(live.keyPath, { contents: second.key });
    replace(live.certPath, { contents: second.cert });
    replace(live.signerPath, { contents: secondSigner.pem });
    gateway.signal('SIGHUP');
    const after = (match: (l: LogLine) => boolean) => (l: LogLine) => gateway.logs.indexOf(l) >= since && match(l);
    await gateway.waitForLog(after((l) => l.message === 'tls certificate reloaded' && l['listener'] === 'public http' && l['fingerprint256'] === second.fingerprint256));
    await gateway.waitForLog(after((l) => l.message === 'tls certificate reloaded' && l['listener'] === 'authenticated grpc' && l['fingerprint256'] === second.fingerprint256));
    const rotated = await gateway.waitForLog(after((l) => l.message === 'signer key rotated'));
    expect(rotated['new_signer_key_id']).toBe(keyId(secondSigner.publicKeyRaw));
    expect(await servedFingerprint(addresses.grpc, 'h2')).toBe(second.fingerprint256);
    expect(await servedFingerprint(addresses.publicHttp, 'http/1.1')).toBe(second.fingerprint256);
    expect(gateway.raw).not.toContain('PRIVATE KEY');
  }, 60_000);

  it('at startup: /dev/zero, a FIFO or an oversized file fails startup naming the variable', async () => {
    const fifo = join(dir, 'startup.fifo');
    execFileSync('mkfifo', [fifo]);
    const big = join(dir, 'big.pem');
    writeFileSync(big, Buffer.alloc(1024 * 1024 + 1, 0x41));
    const signer = writeSignerKey(mkdtempSync(join(dir, 'k3-')));
    const env = (extra: Record<string, string>) => gatewayEnv(redis, signer.path, { GATEWAY_REDIS_PING_TIMEOUT: '1s', ...extra });
    expect(await startupError(env({ GATEWAY_RESPONSE_SIGNER_PRIVATE_KEY_PEM_PATH: '/dev/zero' }))).toBe(
      'GATEWAY_RESPONSE_SIGNER_PRIVATE_KEY_PEM_PATH: /dev/zero is not a regular file (character device)',
    );
    expect(await startupError(env({ GATEWAY_PUBLIC_HTTP_TLS_CERT_PATH: fifo, GATEWAY_PUBLIC_HTTP_TLS_KEY_PATH: first.keyPath }))).toBe(
      `GATEWAY_PUBLIC_HTTP_TLS_CERT_PATH: ${fifo} is not a regular file (FIFO)`,
    );
    expect(await startupError(env({ GATEWAY_AUTHENTICATED_GRPC_TLS_CERT_PATH: first.certPath, GATEWAY_AUTHENTICATED_GRPC_TLS_KEY_PATH: '/dev/zero' }))).toBe(
      'GATEWAY_AUTHENTICATED_GRPC_TLS_KEY_PATH: /dev/zero is not a regular file (character device)',
    );
    expect(await startupError(env({ GATEWAY_DOWNSTREAM_TLS_CA_PATH: big }))).toBe(`GATEWAY_DOWNSTREAM_TLS_CA_PATH: ${big} is larger than 1 MiB (${1024 * 1024 + 1} bytes)`);
  }, 60_000);
});

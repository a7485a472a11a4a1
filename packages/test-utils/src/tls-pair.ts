import { execFileSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as connectTls } from 'node:tls';

/** A certificate and its private key, PEM (the shape of `TlsKeyPair` of `@edge-gateway/core/node`). */
export interface TestTlsPair {
  readonly cert: Buffer;
  readonly key: Buffer;
}

let pairDir: string | undefined;

/** A self-signed P-256 certificate for `CN=<name>`, made by openssl in a temporary directory (no key is committed). */
export function makeTlsPair(name: string): TestTlsPair {
  pairDir ??= mkdtempSync(join(tmpdir(), 'eg-tls-pair-'));
  const [keyPath, certPath] = [join(pairDir, `${name}.key`), join(pairDir, `${name}.crt`)];
  execFileSync(
    'openssl',
    ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1', '-subj', `/CN=${name}`, '-keyout', keyPath, '-out', certPath],
    { stdio: 'ignore' },
  );
  return { cert: readFileSync(certPath), key: readFileSync(keyPath) };
}

/** The SHA-256 fingerprint (colon-separated hex, as Node and openssl print it) of a pair's certificate. */
export function tlsFingerprint(pair: TestTlsPair): string {
  return new X509Certificate(pair.cert).fingerprint256;
}

/**
 * A certificate source that changes when the test says so: the `TlsPairSource` shape
 * (`current`, `onChange`) that `openTlsFiles` of `@edge-gateway/core/node` returns, without files.
 */
export class ManualTlsSource<P extends TestTlsPair = TestTlsPair> {
  readonly listeners = new Set<(pair: P) => void>();
  constructor(public current: P) {}
  onChange(listener: (pair: P) => void): () => void {
    this.listeners.add(listener);
    return () => void this.listeners.delete(listener);
  }
  set(pair: P): void {
    this.current = pair;
    for (const listener of this.listeners) listener(pair);
  }
}

/** The SHA-256 fingerprint of the certificate a new TLS connection to `127.0.0.1:port` is served. */
export function servedTlsFingerprint(port: number, alpn?: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connectTls({ host: '127.0.0.1', port, rejectUnauthorized: false, ...(alpn === undefined ? {} : { ALPNProtocols: [alpn] }) }, () => {
      resolve(socket.getPeerCertificate().fingerprint256);
      socket.destroy();
    });
    socket.once('error', reject);
  });
}

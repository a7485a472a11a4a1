import { execFileSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

/** A certificate and its key on disk (made with `openssl`; no key is committed). */
export interface Certificate {
  readonly certPath: string;
  readonly keyPath: string;
  readonly cert: Buffer;
  readonly key: Buffer;
  readonly fingerprint256: string;
}

/** A self-signed P-256 certificate for 127.0.0.1 and localhost, valid one day, written to `dir`. */
export function makeCertificate(dir: string, name: string): Certificate {
  const certPath = join(dir, `${name}.crt`);
  const keyPath = join(dir, `${name}.key`);
  execFileSync('openssl', [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1',
    '-subj', `/CN=${name}`, '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost',
    '-keyout', keyPath, '-out', certPath,
  ], { stdio: 'ignore' });
  const cert = readFileSync(certPath);
  return { certPath, keyPath, cert, key: readFileSync(keyPath), fingerprint256: new X509Certificate(cert).fingerprint256 };
}

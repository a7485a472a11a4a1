import { execFileSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as connectTls } from 'node:tls';
import { describe, expect, it } from 'vitest';
import type { TlsKeyPair, TlsPairSource } from '@edge-gateway/core/node';
import express from 'express';
import { listen } from '../src/index.js';

const dir = mkdtempSync(join(tmpdir(), 'eg-tls-source-'));

/** A self-signed P-256 certificate made by openssl (no key is committed). */
function makePair(name: string): TlsKeyPair {
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1', '-subj', `/CN=${name}`, '-keyout', join(dir, `${name}.key`), '-out', join(dir, `${name}.crt`)], { stdio: 'ignore' });
  return { cert: readFileSync(join(dir, `${name}.crt`)), key: readFileSync(join(dir, `${name}.key`)) };
}

/** A certificate source that changes when the test says so (what `openTlsFiles` returns, without files). */
class ManualSource implements TlsPairSource {
  readonly listeners = new Set<(pair: TlsKeyPair) => void>();
  constructor(public current: TlsKeyPair) {}
  onChange(listener: (pair: TlsKeyPair) => void): () => void {
    this.listeners.add(listener);
    return () => void this.listeners.delete(listener);
  }
  set(pair: TlsKeyPair): void {
    this.current = pair;
    for (const listener of this.listeners) listener(pair);
  }
}

/** The SHA-256 fingerprint of the certificate a new TLS connection to `port` is served. */
function servedFingerprint(port: number, alpn?: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connectTls({ host: '127.0.0.1', port, rejectUnauthorized: false, ...(alpn === undefined ? {} : { ALPNProtocols: [alpn] }) }, () => {
      resolve(socket.getPeerCertificate().fingerprint256);
      socket.destroy();
    });
    socket.once('error', reject);
  });
}

const fingerprintOf = (pair: TlsKeyPair): string => new X509Certificate(pair.cert).fingerprint256;
const first = makePair('first');
const second = makePair('second');

describe('listen with a certificate source (TLS files reloaded by @edge-gateway/core/node)', () => {
  it('serves the current pair, each new one to new connections, and stops following it when closed', async () => {
    const source = new ManualSource(first);
    const listener = await listen(express(), '127.0.0.1:0', { tls: source });
    try {
      expect(await servedFingerprint(listener.port)).toBe(fingerprintOf(first));
      source.set(second);
      expect(await servedFingerprint(listener.port)).toBe(fingerprintOf(second));
      expect(source.listeners.size).toBe(1);
    } finally {
      await listener.close(1000);
    }
    expect(source.listeners.size).toBe(0);
  });

  it('a fixed pair still works, and setTls replaces it', async () => {
    const listener = await listen(express(), '127.0.0.1:0', { tls: first });
    try {
      expect(await servedFingerprint(listener.port)).toBe(fingerprintOf(first));
      listener.setTls?.(second);
      expect(await servedFingerprint(listener.port)).toBe(fingerprintOf(second));
    } finally {
      await listener.close(1000);
    }
  });
});

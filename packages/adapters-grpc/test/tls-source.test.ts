import { ManualTlsSource, makeTlsPair, servedTlsFingerprint, tlsFingerprint } from '@edge-gateway/test-utils';
import { describe, expect, it } from 'vitest';
import type { GatewayCore } from '@edge-gateway/core';
import { startGrpcServer } from '../src/index.js';

const first = makeTlsPair('first');
const second = makeTlsPair('second');

/** No call reaches it: the test only looks at the TLS handshake. */
const core = {
  execute: () => Promise.reject(new Error('not called')),
  openStream: () => Promise.reject(new Error('not called')),
} as unknown as Pick<GatewayCore, 'execute' | 'openStream'>;

describe('startGrpcServer with a certificate source (TLS files reloaded by @edge-gateway/core/node)', () => {
  it('serves the current pair, each new one to new connections, and stops following it when closed', async () => {
    const source = new ManualTlsSource(first);
    const grpc = await startGrpcServer({ address: '127.0.0.1:0', core, maxPayloadBytes: 1024, tls: source });
    try {
      expect(await servedTlsFingerprint(grpc.port, 'h2')).toBe(tlsFingerprint(first));
      source.set(second);
      expect(await servedTlsFingerprint(grpc.port, 'h2')).toBe(tlsFingerprint(second));
      expect(source.listeners.size).toBe(1);
    } finally {
      await grpc.close(1000);
    }
    expect(source.listeners.size).toBe(0);
  });
});

import { ManualTlsSource, makeTlsPair, servedTlsFingerprint, tlsFingerprint } from '@edge-gateway/test-utils';
import { describe, expect, it } from 'vitest';
import express from 'express';
import { listen } from '../src/index.js';

const first = makeTlsPair('first');
const second = makeTlsPair('second');

describe('listen with a certificate source (TLS files reloaded by @edge-gateway/core/node)', () => {
  it('serves the current pair, each new one to new connections, and stops following it when closed', async () => {
    const source = new ManualTlsSource(first);
    const listener = await listen(express(), '127.0.0.1:0', { tls: source });
    try {
      expect(await servedTlsFingerprint(listener.port)).toBe(tlsFingerprint(first));
      source.set(second);
      expect(await servedTlsFingerprint(listener.port)).toBe(tlsFingerprint(second));
      expect(source.listeners.size).toBe(1);
    } finally {
      await listener.close(1000);
    }
    expect(source.listeners.size).toBe(0);
  });

  it('a fixed pair still works, and setTls replaces it', async () => {
    const listener = await listen(express(), '127.0.0.1:0', { tls: first });
    try {
      expect(await servedTlsFingerprint(listener.port)).toBe(tlsFingerprint(first));
      listener.setTls?.(second);
      expect(await servedTlsFingerprint(listener.port)).toBe(tlsFingerprint(second));
    } finally {
      await listener.close(1000);
    }
  });
});

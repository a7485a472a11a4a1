import { ManualTlsSource, makeTlsPair, servedTlsFingerprint, tlsFingerprint } from '@edge-gateway/test-utils';
import { describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import type { GatewayCore } from '@edge-gateway/core';
import { WEBSOCKET_PATH, WEBSOCKET_SUBPROTOCOL } from '@edge-gateway/protocol';
import { startWebSocketServer } from '../src/index.js';

const first = makeTlsPair('first');
const second = makeTlsPair('second');

/** No call reaches it: the test only upgrades and looks at the TLS handshake. */
const core = {
  execute: () => Promise.reject(new Error('not called')),
  openStream: () => Promise.reject(new Error('not called')),
} as unknown as Pick<GatewayCore, 'execute' | 'openStream'>;

/** Opens a wss:// connection and answers the subprotocol the server chose. */
function upgrade(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`wss://127.0.0.1:${port}${WEBSOCKET_PATH}`, [WEBSOCKET_SUBPROTOCOL], { rejectUnauthorized: false });
    ws.once('open', () => {
      resolve(ws.protocol);
      ws.terminate();
    });
    ws.once('error', reject);
  });
}

describe('startWebSocketServer with tls (wss://)', () => {
  it('upgrades over TLS, serves each new pair of its source to new connections, and stops following it when closed', async () => {
    const source = new ManualTlsSource(first);
    const server = await startWebSocketServer({ core, listen: { host: '127.0.0.1', port: 0 }, maxPayloadBytes: 1024, tls: source });
    try {
      expect(await upgrade(server.port)).toBe(WEBSOCKET_SUBPROTOCOL);
      expect(await servedTlsFingerprint(server.port)).toBe(tlsFingerprint(first));
      source.set(second);
      expect(await servedTlsFingerprint(server.port)).toBe(tlsFingerprint(second));
      expect(await upgrade(server.port)).toBe(WEBSOCKET_SUBPROTOCOL);
      expect(source.listeners.size).toBe(1);
    } finally {
      await server.close(1000);
    }
    expect(source.listeners.size).toBe(0);
  });

  it('takes a fixed pair too', async () => {
    const server = await startWebSocketServer({ core, listen: { host: '127.0.0.1', port: 0 }, maxPayloadBytes: 1024, tls: second });
    try {
      expect(await servedTlsFingerprint(server.port)).toBe(tlsFingerprint(second));
      expect(await upgrade(server.port)).toBe(WEBSOCKET_SUBPROTOCOL);
    } finally {
      await server.close(1000);
    }
  });
});

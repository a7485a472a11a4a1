/**
 * TLS (issue 16) against the built binary: HTTPS on the public listener, TLS on the
 * authenticated gRPC listener, a `tls://` downstream route, and certificates replaced on disk
 * while the gateway serves. Certificates are made here with `openssl`; no key is committed.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, renameSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from 'node:tls';
import { Server, ServerCredentials, credentials } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { WebGatewayClient, importDevicePrivateKey, type WebSocketConstructor } from '@edge-gateway/client-web';
import { WEBSOCKET_PATH } from '@edge-gateway/protocol';
import { CommandHandlerService } from '@edge-gateway/adapters-grpc/generated';
import { GatewayClient } from '@edge-gateway/client';
import { startRedisServer, type RedisServerHandle } from '@edge-gateway/test-utils';
import { GatewayProcess, gatewayEnv, writeSignerKey } from '@edge-gateway/test-utils/gateway-process';
import { EventCollector, connectRedis, newDevice, publishEvent, writeSession, type RawRedis } from '@edge-gateway/test-utils/system-support';
import { makeCertificate } from './tls-support.js';

const dir = mkdtempSync(join(tmpdir(), 'eg-tls-'));

const first = makeCertificate(dir, 'gateway-first');
const second = makeCertificate(dir, 'gateway-second');
const downstreamCert = makeCertificate(dir, 'downstream');
/** The files the gateway is configured with; replaced in place during the test. */
const live = { certPath: join(dir, 'live.crt'), keyPath: join(dir, 'live.key') };

/**
 * The `fingerprint256` the logs carry (SPEC §8.6), computed without Node's X509Certificate: the
 * SHA-256 of the leaf certificate's DER, uppercase hex pairs joined by colons.
 */
function derFingerprint(pem: Buffer): string {
  const leaf = /-----BEGIN CERTIFICATE-----([^-]+)-----END CERTIFICATE-----/.exec(pem.toString('ascii'))?.[1] ?? '';
  const digest = createHash('sha256').update(Buffer.from(leaf.replace(/\s/g, ''), 'base64')).digest('hex').toUpperCase();
  return digest.match(/../g)?.join(':') ?? '';
}

/** What `openssl x509 -noout -fingerprint -sha256` prints after the `=`. */
function opensslFingerprint(certPath: string): string {
  return execFileSync('openssl', ['x509', '-noout', '-fingerprint', '-sha256', '-in', certPath], { encoding: 'utf8' }).trim().replace(/^sha256 Fingerprint=/i, '');
}

const FINGERPRINT_FORMAT = /^[0-9A-F]{2}(:[0-9A-F]{2}){31}$/;

/** Replaces a file the way an operator does: write aside, rename over. */
function install(path: string, contents: Buffer): void {
  writeFileSync(`${path}.next`, contents, { mode: 0o600 });
  renameSync(`${path}.next`, path);
}

let redis: RedisServerHandle;
let raw: RawRedis;
let downstream: Server;
let gateway: GatewayProcess;
let addresses: Awaited<ReturnType<GatewayProcess['started']>>;
const signer = writeSignerKey();

beforeAll(async () => {
  install(live.certPath, first.cert);
  install(live.keyPath, first.key);
  redis = await startRedisServer();
  raw = await connectRedis(redis);
  // A CommandHandler business service that only speaks TLS.
  downstream = new Server();
  downstream.addService(CommandHandlerService, {
    execute: (call: { request: { payload: Buffer } }, callback: (error: null, result: { resultCode: string; payload: Buffer }) => void) =>
      callback(null, { resultCode: 'tls-ok', payload: call.request.payload }),
  });
  const downstreamPort = await new Promise<number>((resolve, reject) =>
    downstream.bindAsync('127.0.0.1:0', ServerCredentials.createSsl(null, [{ cert_chain: downstreamCert.cert, private_key: downstreamCert.key }]), (error, port) =>
      error ? reject(error) : resolve(port),
    ),
  );
  gateway = new GatewayProcess(
    gatewayEnv(redis, signer.path, {
      GATEWAY_PUBLIC_HTTP_TLS_CERT_PATH: live.certPath,
      GATEWAY_PUBLIC_HTTP_TLS_KEY_PATH: live.keyPath,
      GATEWAY_AUTHENTICATED_GRPC_TLS_CERT_PATH: live.certPath,
      GATEWAY_AUTHENTICATED_GRPC_TLS_KEY_PATH: live.keyPath,
      GATEWAY_WEBSOCKET_ADDR: '127.0.0.1:0',
      GATEWAY_WEBSOCKET_TLS_CERT_PATH: live.certPath,
      GATEWAY_WEBSOCKET_TLS_KEY_PATH: live.keyPath,
      GATEWAY_DOWNSTREAM_ROUTES: `tls.=tls://127.0.0.1:${downstreamPort}`,
      GATEWAY_DOWNSTREAM_TLS_CA_PATH: downstreamCert.certPath,
    }),
  );
  addresses = await gateway.started();
});

afterAll(async () => {
  await gateway?.stop();
  downstream?.forceShutdown();
  await raw?.quit();
  await redis?.stop();
});

/** The fingerprint of the certificate a new TLS connection to `address` is served. */
function servedFingerprint(address: string, alpn: string): Promise<string> {
  const [host, port] = [address.slice(0, address.lastIndexOf(':')), Number(address.slice(address.lastIndexOf(':') + 1))];
  return new Promise((resolve, reject) => {
    const socket = connect({ host, port, rejectUnauthorized: false, ALPNProtocols: [alpn] }, () => {
      const fingerprint = socket.getPeerCertificate().fingerprint256;
      socket.end();
      resolve(fingerprint);
    });
    socket.once('error', reject);
  });
}

function httpsGet(address: string, path: string, ca: Buffer): Promise<{ status: number; body: string }> {
  const url = new URL(`https://${address}${path}`);
  return new Promise((resolve, reject) => {
    const req = request(url, { ca, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.once('error', reject);
    req.end();
  });
}

function clientTrusting(ca: Buffer, device: ReturnType<typeof newDevice>): GatewayClient {
  return new GatewayClient({
    address: addresses.grpc,
    deviceSessionId: device.deviceSessionId,
    userId: device.userId,
    privateKey: device.privateKey,
    gatewayPublicKeys: [signer.publicKeyRaw],
    credentials: credentials.createSsl(ca),
  });
}

/** A device on the WebSocket listener over TLS (`wss://`), trusting `ca` only. */
async function webClientTrusting(ca: Buffer, device: ReturnType<typeof newDevice>): Promise<WebGatewayClient> {
  class TrustingWebSocket extends WebSocket {
    constructor(url: string, protocols?: string | string[]) {
      super(url, protocols, { ca, perMessageDeflate: false });
    }
  }
  return WebGatewayClient.connect({
    url: `wss://${addresses.websocket ?? ''}${WEBSOCKET_PATH}`,
    deviceSessionId: device.deviceSessionId,
    userId: device.userId,
    privateKey: await importDevicePrivateKey(device.privateKey.export({ format: 'der', type: 'pkcs8' })),
    gatewayPublicKeys: [signer.publicKeyRaw],
    WebSocket: TrustingWebSocket as unknown as WebSocketConstructor,
  });
}

describe('TLS listeners and downstreams', () => {
  it('logs the certificate of each listener at startup', () => {
    const loaded = gateway.logs.filter((l) => l.message === 'tls certificate loaded');
    expect(loaded.map((l) => [l['listener'], l['fingerprint256']])).toEqual([
      ['public http', first.fingerprint256],
      ['authenticated grpc', first.fingerprint256],
      ['websocket', first.fingerprint256],
    ]);
    // SPEC §8.6: SHA-256 of the leaf's DER, 32 uppercase hex pairs joined by colons, as openssl prints it.
    expect(loaded[0]?.['fingerprint256']).toMatch(FINGERPRINT_FORMAT);
    expect(loaded[0]?.['fingerprint256']).toBe(derFingerprint(first.cert));
    expect(loaded[0]?.['fingerprint256']).toBe(opensslFingerprint(first.certPath));
    expect(gateway.raw).not.toContain('PRIVATE KEY');
  });

  it('serves HTTPS and gRPC over TLS, and reaches a tls:// downstream verified against GATEWAY_DOWNSTREAM_TLS_CA_PATH', async () => {
    expect(await httpsGet(addresses.publicHttp, '/healthz', first.cert)).toEqual({ status: 200, body: '{"status":"ok"}' });
    const device = newDevice('tls-user');
    await writeSession(raw, device, 'active');
    const client = clientTrusting(first.cert, device);
    try {
      const answer = await client.execute('tls.echo', Buffer.from('over tls'));
      expect(answer.resultCode).toBe('tls-ok');
      expect(Buffer.from(answer.payload).toString()).toBe('over tls');
    } finally {
      client.close();
    }
  });

  it('serves WebSocket over TLS (GATEWAY_WEBSOCKET_TLS_*): a device trusting the certificate runs a command and opens its stream; a plain ws:// connection is refused', async () => {
    expect(gateway.logs.find((l) => l.message === 'websocket listener started')?.['tls']).toBe(true);
    const device = newDevice('wss-user');
    await writeSession(raw, device, 'active');
    const client = await webClientTrusting(first.cert, device);
    try {
      const answer = await client.execute('tls.echo', new TextEncoder().encode('over wss'));
      expect(answer.resultCode).toBe('tls-ok');
      expect(Buffer.from(answer.payload).toString()).toBe('over wss');
      const events = client.subscribe()[Symbol.asyncIterator]();
      expect((await events.next()).value?.eventType).toBe('gateway.server_time');
      await events.return?.(undefined);
    } finally {
      client.close();
    }
    // The listener speaks only TLS: a plaintext upgrade never opens.
    const plain = new WebSocket(`ws://${addresses.websocket ?? ''}${WEBSOCKET_PATH}`);
    const outcome = await new Promise<string>((resolve) => {
      plain.once('open', () => resolve('open'));
      plain.once('error', () => resolve('error'));
      plain.once('close', () => resolve('closed'));
    });
    plain.terminate();
    expect(outcome).not.toBe('open');
  });

  it('serves new certificates to new connections when the files change, streams stay open, a bad pair keeps the current one', async () => {
    const device = newDevice('tls-reload-user');
    await writeSession(raw, device, 'active');
    const client = clientTrusting(first.cert, device);
    const stream = new EventCollector(client.subscribe());
    try {
      await stream.waitForCount(1);
      expect(await servedFingerprint(addresses.grpc, 'h2')).toBe(first.fingerprint256);

      install(live.keyPath, second.key);
      install(live.certPath, second.cert);
      const reloaded = (listener: string) => (l: { message: string; [k: string]: unknown }) =>
        l.message === 'tls certificate reloaded' && l['listener'] === listener && l['fingerprint256'] === second.fingerprint256;
      // No SIGHUP: the files are polled (SPEC §8.6).
      const line = await gateway.waitForLog(reloaded('public http'));
      await gateway.waitForLog(reloaded('authenticated grpc'));
      await gateway.waitForLog(reloaded('websocket'));
      expect([line['fingerprint256'], line['previous_fingerprint256']]).toEqual([derFingerprint(second.cert), derFingerprint(first.cert)]);
      expect(line['previous_fingerprint256']).toMatch(FINGERPRINT_FORMAT);

      expect(await servedFingerprint(addresses.grpc, 'h2')).toBe(second.fingerprint256);
      expect(await servedFingerprint(addresses.publicHttp, 'http/1.1')).toBe(second.fingerprint256);
      expect(await servedFingerprint(addresses.websocket ?? '', 'http/1.1')).toBe(second.fingerprint256);
      expect(await httpsGet(addresses.publicHttp, '/readyz', second.cert)).toEqual({ status: 200, body: '{"status":"ready"}' });

      // The stream opened on the old certificate keeps delivering.
      await publishEvent(raw, { userId: device.userId, eventType: 'tls.after_reload', payload: Buffer.from('x') });
      await stream.waitForCount(2);
      expect(stream.ended).toBe(false);

      // A key that does not match the certificate: logged, the current pair stays.
      install(live.keyPath, first.key);
      const failed = await gateway.waitForLog((l) => l.message === 'tls certificate reload failed: keeping the current certificate' && l['listener'] === 'public http');
      expect(String(failed['error'])).toMatch(/^GATEWAY_PUBLIC_HTTP_TLS_KEY_PATH: .* is not the private key of /);
      expect(failed['fingerprint256']).toBe(second.fingerprint256);
      expect(await servedFingerprint(addresses.publicHttp, 'http/1.1')).toBe(second.fingerprint256);
      expect(gateway.raw).not.toContain('PRIVATE KEY');
    } finally {
      install(live.keyPath, second.key);
      client.close();
    }
  });
});

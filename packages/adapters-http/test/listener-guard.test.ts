import { afterEach, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as connectTls, createServer as createTlsServer } from 'node:tls';
import express from 'express';
import { MetricNames, type LogFields, type Logger } from '@edge-gateway/core';
import { MetricsHarness } from '@edge-gateway/core/testing/metrics';
import { ListenerGuard, listen } from '../src/index.js';

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()?.();
});

interface Line {
  readonly level: string;
  readonly message: string;
  readonly fields: LogFields;
}

function recordingLogger(lines: Line[] = [], base: LogFields = {}): Logger & { lines: Line[] } {
  const at = (level: string) => (message: string, fields: LogFields = {}) => void lines.push({ level, message, fields: { ...base, ...fields } });
  return { lines, error: at('error'), warn: at('warn'), info: at('info'), debug: at('debug'), child: (fields) => recordingLogger(lines, { ...base, ...fields }) };
}

async function netServer(onSocket: (socket: Socket) => void = () => undefined): Promise<{ server: Server; port: number }> {
  const server = createServer(onSocket);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  cleanups.push(() => new Promise((resolve) => server.close(resolve)));
  return { server, port: (server.address() as AddressInfo).port };
}

/** A client connection: resolves `closed` with what it received, once the server closed it. */
function client(port: number): { socket: Socket; connected: Promise<void>; closed: Promise<string> } {
  const socket = connect({ host: '127.0.0.1', port });
  cleanups.push(() => socket.destroy());
  let received = '';
  socket.setEncoding('utf8').on('data', (chunk: string) => (received += chunk));
  socket.on('error', () => undefined);
  return {
    socket,
    connected: new Promise((resolve) => socket.once('connect', () => resolve())),
    closed: new Promise((resolve) => socket.once('close', () => resolve(received))),
  };
}

describe('ListenerGuard', () => {
  it('caps open connections across listeners: one more is closed at accept on any of them and counted; an uncapped listener still accepts; below the cap again, accepted', async () => {
    const harness = new MetricsHarness();
    const logger = recordingLogger();
    const guard = new ListenerGuard({ maxConnections: 4, metrics: harness.metrics, logger });
    const held: Socket[] = [];
    const a = await netServer((socket) => held.push(socket));
    const b = await netServer((socket) => held.push(socket));
    const admin = await netServer((socket) => socket.end('admin'));
    guard.attach(a.server, { listener: 'a' });
    guard.attach(b.server, { listener: 'b' });
    guard.attach(admin.server, { listener: 'admin', capped: false });

    const open = [client(a.port), client(a.port), client(b.port), client(b.port)];
    await expect.poll(() => guard.open).toBe(4);
    expect([guard.openOn('a'), guard.openOn('b')]).toEqual([2, 2]);
    expect(await harness.value(MetricNames.connectionsOpen, { listener: 'a' })).toBe(2);

    // At the cap: closed without a byte, on either listener.
    expect(await client(a.port).closed).toBe('');
    expect(await client(b.port).closed).toBe('');
    expect(await harness.value(MetricNames.connectionsRefused, { listener: 'a' })).toBe(1);
    expect(await harness.value(MetricNames.connectionsRefused, { listener: 'b' })).toBe(1);
    expect(held).toHaveLength(4);
    // The admin listener is not capped.
    expect(await client(admin.port).closed).toBe('admin');
    const refusedLines = logger.lines.filter((l) => l.message === 'connections refused: GATEWAY_MAX_CONNECTIONS reached');
    expect(refusedLines.map((l) => [l.level, l.fields['listener'], l.fields['refused'], l.fields['max_connections']])).toEqual([
      ['warn', 'a', 1, 4],
      ['warn', 'b', 1, 4],
    ]);

    // One closes: the next connection is accepted, on the other listener too.
    open[0]?.socket.destroy();
    await expect.poll(() => guard.open).toBe(3);
    const next = client(b.port);
    await expect.poll(() => guard.openOn('b')).toBe(3);
    expect(held).toHaveLength(5);
    next.socket.destroy();
    await expect.poll(() => guard.open).toBe(3);
  });

  it('with plain HTTP: at the cap a request cannot connect; answered again once below it', async () => {
    const guard = new ListenerGuard({ maxConnections: 2 });
    const app = express();
    app.get('/healthz', (_req, res) => void res.json({ status: 'ok' }));
    const listener = await listen(app, '127.0.0.1:0', { guard: { guard, listener: 'public' } });
    cleanups.push(() => listener.close(1000));
    const holders = [client(listener.port), client(listener.port)];
    await expect.poll(() => guard.open).toBe(2);
    const healthz = (): Promise<string> => {
      const c = client(listener.port);
      c.socket.write('GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
      return c.closed.then((received) => received.split('\r\n')[0] ?? '');
    };
    // Closed before a byte was read: no answer at all.
    expect(await healthz()).toBe('');
    holders[0]?.socket.destroy();
    await expect.poll(() => guard.open).toBe(1);
    expect(await healthz()).toBe('HTTP/1.1 200 OK');
  });

  it('counts accept errors by code and logs "accept failed" at once, then at most once per interval with the count; other errors are logged; nothing crashes', async () => {
    const harness = new MetricsHarness();
    const logger = recordingLogger();
    const guard = new ListenerGuard({ metrics: harness.metrics, logger, logIntervalMs: 300 });
    const { server } = await netServer();
    guard.attach(server, { listener: 'grpc' });
    // What Node emits when libuv reports a failed accept (e.g. EMFILE once its spare descriptor is gone).
    const acceptError = (code: string) => Object.assign(new Error(`accept ${code}`), { code, errno: -24, syscall: 'accept' });
    for (let i = 0; i < 1000; i += 1) server.emit('error', acceptError('EMFILE'));
    server.emit('error', acceptError('ENFILE'));
    server.emit('error', Object.assign(new Error('something else'), { code: 'EINVAL', syscall: 'listen' }));
    expect(await harness.value(MetricNames.acceptErrors, { listener: 'grpc', code: 'EMFILE' })).toBe(1000);
    expect(await harness.value(MetricNames.acceptErrors, { listener: 'grpc', code: 'ENFILE' })).toBe(1);
    const accept = () => logger.lines.filter((l) => l.message === 'accept failed');
    expect(accept().map((l) => l.fields)).toEqual([{ component: 'listener', listener: 'grpc', code: 'EMFILE', count: 1 }]);
    // The rest in one line when the interval ends.
    await expect.poll(() => accept().length).toBe(2);
    expect(accept()[1]?.fields).toEqual({ component: 'listener', listener: 'grpc', code: 'EMFILE,ENFILE', count: 1000 });
    expect(logger.lines.filter((l) => l.message === 'listener error').map((l) => l.fields['error'])).toEqual(['something else']);
    expect(server.listening).toBe(true);
  });

  it('bounds a TLS handshake from the connection: a client dripping ClientHello bytes (which restarts Node\'s own handshakeTimeout) is cut at the bound; a prompt handshake is not', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'eg-guard-'));
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1', '-subj', '/CN=localhost', '-keyout', join(dir, 'k.pem'), '-out', join(dir, 'c.pem')], { stdio: 'ignore' });
    // Node's idle handshake timer alone (700 ms) never fires for a client sending a byte every 200 ms.
    const server = createTlsServer({ cert: readFileSync(join(dir, 'c.pem')), key: readFileSync(join(dir, 'k.pem')), handshakeTimeout: 700 }, (socket) => socket.end('hello'));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    cleanups.push(() => new Promise((resolve) => server.close(resolve)));
    const { port } = server.address() as AddressInfo;
    new ListenerGuard().attach(server, { listener: 'public', tlsHandshakeTimeoutMs: 1000 });

    const drip = client(port);
    await drip.connected;
    const started = performance.now();
    // A TLS record header announcing a 16 KiB ClientHello, then its body one byte at a time.
    drip.socket.write(Buffer.from([0x16, 0x03, 0x01, 0x40, 0x00, 0x01]));
    const timer = setInterval(() => drip.socket.write(Buffer.from([0x00])), 200);
    cleanups.push(() => clearInterval(timer));
    await drip.closed;
    const ms = performance.now() - started;
    expect(ms).toBeGreaterThanOrEqual(900);
    expect(ms).toBeLessThan(3000);

    const greeting = await new Promise<string>((resolve, reject) => {
      const socket = connectTls({ host: '127.0.0.1', port, rejectUnauthorized: false }, () => undefined);
      let text = '';
      socket.setEncoding('utf8').on('data', (chunk: string) => (text += chunk));
      socket.on('end', () => resolve(text));
      socket.on('error', reject);
    });
    expect(greeting).toBe('hello');
  });
});

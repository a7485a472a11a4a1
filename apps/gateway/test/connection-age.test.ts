import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { connect as http2Connect, constants as http2Constants } from 'node:http2';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { credentials, status } from '@grpc/grpc-js';
import { GatewayClient, GatewayStatusError } from '@edge-gateway/client';
import { startRedisServer, waitFor, type RedisServerHandle } from '@edge-gateway/test-utils';
import { GatewayProcess, gatewayEnv, writeSignerKey } from '@edge-gateway/test-utils/gateway-process';
import { TEST_BACKOFF, fastReconnectClient, targetedIdsAfter } from './push-resume-support.js';
import { EchoDownstream, EventCollector, activeDeviceOn, connectRedis, publishEvent, type RawRedis } from '@edge-gateway/test-utils/system-support';

/**
 * SPEC §7 `GATEWAY_GRPC_MAX_CONNECTION_AGE`: the built binary with a 1s age and a 2s grace,
 * reached through a TCP proxy that tells each client connection apart and reads the HTTP/2
 * frames the gateway sends on it, so the GOAWAY and the close are observed as events.
 */

const AGE = '1s';
const GRACE = '2s';
const HTTP2_GOAWAY = 0x7;

/** One client connection through the proxy. */
class ProxiedConnection {
  goaway = false;
  closed = false;
  /** Bytes from the gateway not yet parsed into whole frames. */
  private pending = Buffer.alloc(0);

  constructor(readonly index: number) {}

  /** Follows the gateway's frames (h2c: from the first byte on, 9-byte header + payload). */
  fromGateway(chunk: Buffer): void {
    this.pending = Buffer.concat([this.pending, chunk]);
    while (this.pending.length >= 9) {
      const length = this.pending.readUIntBE(0, 3);
      if (this.pending.length < 9 + length) return;
      if (this.pending[3] === HTTP2_GOAWAY) this.goaway = true;
      this.pending = this.pending.subarray(9 + length);
    }
  }
}

/** A TCP proxy in front of the gateway's gRPC listener. */
class FrameWatchProxy {
  readonly connections: ProxiedConnection[] = [];
  private readonly sockets = new Set<Socket>();
  private readonly server: Server;
  address = '';

  constructor(private readonly target: { host: string; port: number }) {
    this.server = createServer((client) => {
      const conn = new ProxiedConnection(this.connections.length);
      this.connections.push(conn);
      const upstream = connect(this.target.port, this.target.host);
      for (const s of [client, upstream]) {
        this.sockets.add(s);
        s.on('error', () => s.destroy());
        s.on('close', () => {
          this.sockets.delete(s);
          conn.closed = true;
          client.destroy();
          upstream.destroy();
        });
      }
      client.pipe(upstream);
      upstream.on('data', (chunk: Buffer) => {
        conn.fromGateway(chunk);
        client.write(chunk);
      });
    });
  }

  async start(): Promise<this> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    const bound = this.server.address();
    if (bound === null || typeof bound === 'string') throw new Error('proxy has no port');
    this.address = `127.0.0.1:${bound.port}`;
    return this;
  }

  async stop(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  /** Waits (bounded) until connection `index` has seen `what`. */
  async waitFor(index: number, what: 'goaway' | 'closed', timeoutMs = 10_000): Promise<ProxiedConnection> {
    await waitFor(() => this.connections[index]?.[what] === true, {
      timeoutMs,
      intervalMs: 5,
      message: `connection ${index} to see ${what} (connections: ${this.connections.length})`,
    });
    return this.connections[index] as ProxiedConnection;
  }
}

let redis: RedisServerHandle;
let raw: RawRedis;
let signer: ReturnType<typeof writeSignerKey>;
let downstream: EchoDownstream;
let gateway: GatewayProcess;
let proxy: FrameWatchProxy;
const clientEvents = 'test:client-events:connection-age';
const clients: GatewayClient[] = [];

beforeAll(async () => {
  redis = await startRedisServer();
  raw = await connectRedis(redis);
  signer = writeSignerKey();
  downstream = await new EchoDownstream().start();
  gateway = new GatewayProcess(
    gatewayEnv(redis, signer.path, {
      GATEWAY_CLIENT_EVENTS_REDIS_STREAM: clientEvents,
      GATEWAY_DOWNSTREAM_ROUTES: `echo.=127.0.0.1:${downstream.port}`,
      GATEWAY_GRPC_MAX_CONNECTION_AGE: AGE,
      GATEWAY_GRPC_MAX_CONNECTION_AGE_GRACE: GRACE,
      GATEWAY_SHUTDOWN_TIMEOUT: '5s',
    }),
  );
  const { grpc } = await gateway.started();
  const [host, port] = [grpc.slice(0, grpc.lastIndexOf(':')), Number(grpc.slice(grpc.lastIndexOf(':') + 1))];
  proxy = await new FrameWatchProxy({ host, port }).start();
});

afterAll(async () => {
  for (const client of clients) client.close();
  await gateway?.stop();
  await proxy?.stop();
  downstream?.stop();
  await raw?.quit();
  await redis?.stop();
});

/** A client through the proxy, on a channel of its own. */
async function newClient(label: string): Promise<{ client: GatewayClient; device: Awaited<ReturnType<typeof activeDeviceOn>> }> {
  const device = await activeDeviceOn(raw, `user-age-${label}`, label);
  const client = fastReconnectClient(device, proxy.address, signer.publicKeyRaw);
  clients.push(client);
  return { client, device };
}

describe('GATEWAY_GRPC_MAX_CONNECTION_AGE on the built binary', () => {
  it('logs the setting at startup', () => {
    expect(gateway.logs.find((l) => l.message === 'starting gateway')).toMatchObject({ grpc_max_connection_age_ms: 1000, grpc_max_connection_age_grace_ms: 2000 });
  });

  it('sends GOAWAY after the age and closes the idle connection; the next call arrives on a new connection', async () => {
    const { client } = await newClient('goaway');
    const first = proxy.connections.length;
    expect((await client.execute('echo.one', Buffer.from('1'))).resultCode).toBe('ok');
    expect(proxy.connections.length).toBe(first + 1);
    await proxy.waitFor(first, 'goaway');
    await proxy.waitFor(first, 'closed');
    const second = await client.execute('echo.two', Buffer.from('2'));
    expect(Buffer.from(second.payload).toString()).toBe('2');
    expect(proxy.connections.length).toBe(first + 2);
    expect(proxy.connections[first + 1]?.closed).toBe(false);
  });

  it('lets a command in progress across the GOAWAY complete', async () => {
    const { client } = await newClient('inflight');
    const index = proxy.connections.length;
    const call = client.execute('echo.slow.hold', Buffer.from('held'));
    await downstream.holding();
    const conn = await proxy.waitFor(index, 'goaway');
    expect(conn.closed).toBe(false);
    downstream.release();
    const result = await call;
    expect(result.resultCode).toBe('ok');
    expect(Buffer.from(result.payload).toString()).toBe('held');
    await proxy.waitFor(index, 'closed');
  });

  it('ends an open push stream UNAVAILABLE after the grace; a resume gets the events published meanwhile', async () => {
    const { client, device } = await newClient('push');
    const index = proxy.connections.length;
    const stream = new EventCollector(client.subscribe());
    await stream.waitForCount(1);
    const before = await publishEvent(raw, { userId: device.userId, eventType: 'chat.message', payload: Buffer.from('before') }, clientEvents);
    await stream.waitForCount(2);
    await proxy.waitFor(index, 'goaway');
    // During the grace the stream still delivers.
    const duringGrace = await publishEvent(raw, { userId: device.userId, eventType: 'chat.message', payload: Buffer.from('grace') }, clientEvents);
    await stream.waitForCount(3);
    expect(stream.clientEventIds).toEqual([before, duringGrace]);

    const error = await stream.waitForEnd(15_000);
    expect(error).toBeInstanceOf(GatewayStatusError);
    expect((error as GatewayStatusError).code).toBe(status.UNAVAILABLE);
    expect((error as GatewayStatusError).details).toBe('Connection dropped');
    expect(proxy.connections[index]?.closed).toBe(true);
    expect(client.lastEventId).toBe(duringGrace);

    const missed = [
      await publishEvent(raw, { userId: device.userId, eventType: 'chat.message', payload: Buffer.from('missed-1') }, clientEvents),
      await publishEvent(raw, { userId: device.userId, deviceSessionId: device.deviceSessionId, eventType: 'device.only', payload: Buffer.from('missed-2') }, clientEvents),
    ];
    const abort = new AbortController();
    const resumed = new EventCollector(client.subscribe({ resumeAfterEventId: client.lastEventId, signal: abort.signal }));
    await resumed.waitForCount(1 + missed.length);
    expect(resumed.clientEventIds).toEqual(missed);
    abort.abort();
    await resumed.finished;
  });

  it('an autoReconnect subscriber crosses several connection ages without losing or repeating an event', async () => {
    const { client, device } = await newClient('auto');
    const index = proxy.connections.length;
    const abort = new AbortController();
    const stream = new EventCollector(client.subscribe({ autoReconnect: true, backoff: TEST_BACKOFF, signal: abort.signal }));
    await stream.waitForCount(1);
    const start = await publishEvent(raw, { userId: device.userId, eventType: 'chat.message', payload: Buffer.from('start') }, clientEvents);
    await stream.waitForCount(2);
    // One event at a time, each awaited, until the stream has been cut twice and runs on a third connection.
    for (let i = 0; proxy.connections.length < index + 3; i += 1) {
      const id = await publishEvent(raw, { userId: device.userId, eventType: 'feed.tick', payload: Buffer.from(`tick-${i}`) }, clientEvents);
      await waitFor(() => stream.clientEventIds.includes(id), { timeoutMs: 15_000, intervalMs: 5, message: `event ${i} to arrive` });
    }
    const last = await publishEvent(raw, { userId: device.userId, eventType: 'chat.message', payload: Buffer.from('last') }, clientEvents);
    await waitFor(() => stream.clientEventIds.includes(last), { timeoutMs: 15_000, intervalMs: 5, message: 'the last event' });
    const expected = [start, ...(await targetedIdsAfter(raw, clientEvents, start, device))];
    expect(stream.clientEventIds).toEqual(expected);
    expect(stream.count('gateway.server_time')).toBeGreaterThanOrEqual(3);
    expect(stream.error).toBeUndefined();
    abort.abort();
    await stream.finished;
  }, 60_000);
});

describe('GATEWAY_GRPC_MAX_CONNECTION_AGE on the TLS gRPC listener', () => {
  const dir = mkdtempSync(join(tmpdir(), 'eg-age-tls-'));
  const certPath = join(dir, 'gateway.crt');
  const keyPath = join(dir, 'gateway.key');
  let tlsGateway: GatewayProcess;
  let address = '';
  let ca: Buffer;

  beforeAll(async () => {
    execFileSync('openssl', [
      'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1',
      '-subj', '/CN=gateway-age', '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost',
      '-keyout', keyPath, '-out', certPath,
    ], { stdio: 'ignore' });
    ca = readFileSync(certPath);
    tlsGateway = new GatewayProcess(
      gatewayEnv(redis, signer.path, {
        GATEWAY_CLIENT_EVENTS_REDIS_STREAM: clientEvents,
        GATEWAY_AUTHENTICATED_GRPC_TLS_CERT_PATH: certPath,
        GATEWAY_AUTHENTICATED_GRPC_TLS_KEY_PATH: keyPath,
        GATEWAY_GRPC_MAX_CONNECTION_AGE: AGE,
        GATEWAY_GRPC_MAX_CONNECTION_AGE_GRACE: GRACE,
        GATEWAY_SHUTDOWN_TIMEOUT: '5s',
      }),
    );
    address = (await tlsGateway.started()).grpc;
  });

  afterAll(async () => {
    await tlsGateway?.stop();
  });

  it('sends an HTTP/2 connection GOAWAY (NO_ERROR) after the age and closes the idle connection', async () => {
    const session = http2Connect(`https://${address}`, { ca });
    const goaway = new Promise<number>((resolve) => session.once('goaway', (code: number) => resolve(code)));
    const closed = new Promise<void>((resolve) => session.once('close', () => resolve()));
    session.on('error', () => undefined);
    await new Promise<void>((resolve, reject) => {
      session.once('connect', () => resolve());
      session.once('error', reject);
    });
    expect(await goaway).toBe(http2Constants.NGHTTP2_NO_ERROR);
    await closed;
    expect(session.destroyed).toBe(true);
  });

  it('ends a push stream UNAVAILABLE after the grace, as on plaintext', async () => {
    const device = await activeDeviceOn(raw, 'user-age-tls', 'tls');
    const client = new GatewayClient({
      address,
      deviceSessionId: device.deviceSessionId,
      userId: device.userId,
      privateKey: device.privateKey,
      gatewayPublicKeys: [signer.publicKeyRaw],
      credentials: credentials.createSsl(ca),
    });
    clients.push(client);
    const stream = new EventCollector(client.subscribe());
    await stream.waitForCount(1);
    const id = await publishEvent(raw, { userId: device.userId, eventType: 'chat.message', payload: Buffer.from('tls') }, clientEvents);
    await stream.waitForCount(2);
    const error = await stream.waitForEnd(15_000);
    expect(error).toBeInstanceOf(GatewayStatusError);
    expect((error as GatewayStatusError).code).toBe(status.UNAVAILABLE);
    expect((error as GatewayStatusError).details).toBe('Connection dropped');
    expect(stream.clientEventIds).toEqual([id]);
  });
});

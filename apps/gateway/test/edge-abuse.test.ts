/**
 * Abuse cases of issue 12 against the BUILT binary, one test per finding: each asserts the
 * exact status, that other streams and entries lose nothing, and the bound (log bytes per
 * request, queued bytes, open streams, connection time).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect } from 'node:http2';
import { chmodSync } from 'node:fs';
import { connect as connectTcp, type Socket } from 'node:net';
import { randomUUID, sign } from 'node:crypto';
import { Client, credentials, Metadata, status, type ServiceError } from '@grpc/grpc-js';
import { ExecuteCommandRequest, type EdgeGatewayClient } from '@edge-gateway/adapters-grpc/generated';
import { commandRequestBytes } from '@edge-gateway/client';
import { startRedisServer, waitFor, type RedisServerHandle } from '@edge-gateway/test-utils';
import { GatewayProcess, gatewayEnv, writeSignerKey } from '@edge-gateway/test-utils/gateway-process';
import { drillEnv, metricValue, rawClient, rawSubscribe, rssMiB, StreamWatcher, type RawStream } from './drill-support.js';
import { activeDeviceOn, clientFor, connectRedis, EchoDownstream, newDevice, writeSession, type Device, type RawRedis } from '@edge-gateway/test-utils/system-support';
import { clientEventFields } from '@edge-gateway/protocol';

const MiB = 1024 * 1024;
/** The gateway's GATEWAY_PUSH_MAX_EVENT_BYTES in this file: large enough for the 3.5 MiB case. */
const MAX_EVENT_BYTES = 4 * MiB;

let redis: RedisServerHandle;
let raw: RawRedis;
let signer: ReturnType<typeof writeSignerKey>;
let downstream: EchoDownstream;
let gateway: GatewayProcess;
let addresses: Awaited<ReturnType<GatewayProcess['started']>>;

beforeAll(async () => {
  redis = await startRedisServer();
  raw = await connectRedis(redis);
  signer = writeSignerKey();
  // A mounted-secret style mode: loaded, with a warning.
  chmodSync(signer.path, 0o644);
  downstream = await new EchoDownstream().start();
  gateway = new GatewayProcess(
    drillEnv(redis, signer.path, {
      GATEWAY_PUSH_MAX_EVENT_BYTES: String(MAX_EVENT_BYTES),
      GATEWAY_DOWNSTREAM_ROUTES: `echo.=127.0.0.1:${downstream.port}`,
      GATEWAY_WEBSOCKET_ADDR: '127.0.0.1:0',
      GATEWAY_HTTP_HEADERS_TIMEOUT: '1s',
      GATEWAY_HTTP_REQUEST_TIMEOUT: '2s',
      GATEWAY_HTTP_KEEPALIVE_TIMEOUT: '1s',
    }),
  );
  addresses = await gateway.started();
});

const rawClients: EdgeGatewayClient[] = [];
afterAll(async () => {
  for (const c of rawClients) c.close();
  await gateway?.stop();
  downstream?.stop();
  await raw?.quit();
  await redis?.stop();
});

const activeDevice = (userId: string, label?: string): Promise<Device> => activeDeviceOn(raw, userId, label);

/** How much the series `name{labels}` grew between two scrapes. */
const grew = (before: string, after: string, name: string, labels: Record<string, string> = {}): number => metricValue(after, name, labels) - metricValue(before, name, labels);

/** A push stream of `device` that accepts events of any size. */
function watch(device: Device, options: { resumeAfterEventId?: string } = {}): StreamWatcher {
  return new StreamWatcher(clientFor(device, addresses.grpc, signer.publicKeyRaw, { 'grpc.max_receive_message_length': 64 * MiB, 'grpc.use_local_subchannel_pool': 1 }), options);
}

function newRawClient(): EdgeGatewayClient {
  const c = rawClient(addresses.grpc);
  rawClients.push(c);
  return c;
}

async function metrics(): Promise<string> {
  return (await fetch(`http://${addresses.adminHttp as string}/metrics`)).text();
}

const entry = (userId: string, payload: Buffer | string, deviceSessionId?: string) =>
  clientEventFields({ userId, eventType: 'abuse.event', payload: Buffer.from(payload), ...(deviceSessionId === undefined ? {} : { deviceSessionId }) });

/** XADDs the entries atomically, so the gateway reads them in one XREAD. */
async function addTogether(stream: string, entries: ReadonlyArray<Record<string, string>>): Promise<string[]> {
  const multi = raw.multi();
  for (const fields of entries) multi.xAdd(stream, '*', fields);
  return (await multi.exec()) as unknown as string[];
}

describe('data loss: one entry never takes other entries with it', () => {
  it('a 3.5 MiB client event (the base64 check overflowed the stack) is delivered and so is every other entry of its read; a resume across it is complete', async () => {
    const alice = await activeDevice('u-big-alice');
    const bob = await activeDevice('u-big-bob');
    const aliceStream = watch(alice);
    const bobStream = watch(bob);
    await Promise.all([aliceStream.waitForCount(1), bobStream.waitForCount(1)]);
    const before = await metrics();
    const big = Buffer.alloc(3.5 * MiB, 0x5a);
    const ids = await addTogether('gateway:client-events', [
      entry(bob.userId, 'bob 1'),
      entry(alice.userId, big),
      entry(bob.userId, 'bob 2'),
      entry(alice.userId, 'alice after'),
    ]);
    await Promise.all([aliceStream.waitForCount(3), bobStream.waitForCount(3)]);
    expect(bobStream.clientEventIds).toEqual([ids[0], ids[2]]);
    expect(aliceStream.clientEventIds).toEqual([ids[1], ids[3]]);
    expect(Buffer.from(aliceStream.clientEvents[0]?.payload ?? []).equals(big)).toBe(true);
    const after = await metrics();
    const delta = (name: string) => grew(before, after, name, { stream: 'client_events' });
    expect(delta('gateway_stream_entries_consumed_total')).toBe(4);
    expect(delta('gateway_stream_entries_malformed_total')).toBe(0);
    expect(gateway.logs.filter((l) => l.message === 'stream entry handler failed')).toEqual([]);

    // A device that missed all four resumes across the big entry without a resync notice.
    const resumed = watch(alice, { resumeAfterEventId: `${Number(ids[0]?.split('-')[0]) - 1}-0` });
    await resumed.waitForCount(3);
    expect(resumed.events.map((e) => e.eventType)).toEqual(['gateway.server_time', 'abuse.event', 'abuse.event']);
    expect(resumed.clientEventIds).toEqual([ids[1], ids[3]]);
    for (const w of [aliceStream, bobStream, resumed]) {
      expect(w.ended).toBe(false);
      w.cancel();
    }
  });

  it('an event over GATEWAY_PUSH_MAX_EVENT_BYTES is dropped alone: counted, logged with id and reason (never the payload), the rest delivered in order', async () => {
    const alice = await activeDevice('u-max-alice');
    const bob = await activeDevice('u-max-bob');
    const aliceStream = watch(alice);
    const bobStream = watch(bob);
    await Promise.all([aliceStream.waitForCount(1), bobStream.waitForCount(1)]);
    const before = await metrics();
    const ids = await addTogether('gateway:client-events', [
      entry(bob.userId, 'bob 1'),
      entry(alice.userId, Buffer.alloc(MAX_EVENT_BYTES + 1, 0x41)),
      entry(bob.userId, 'bob 2'),
      entry(alice.userId, Buffer.alloc(MAX_EVENT_BYTES, 0x42)),
    ]);
    await Promise.all([aliceStream.waitForCount(2), bobStream.waitForCount(3)]);
    expect(bobStream.clientEventIds).toEqual([ids[0], ids[2]]);
    expect(aliceStream.clientEventIds).toEqual([ids[3]]);
    const dropped = await gateway.waitForLog((l) => l.message === 'malformed stream entry dropped' && l['entry_id'] === ids[1]);
    expect(dropped).toMatchObject({ level: 'warn', stream: 'client_events', reason: 'payload exceeds GATEWAY_PUSH_MAX_EVENT_BYTES' });
    expect(JSON.stringify(dropped).length).toBeLessThan(1024);
    const after = await metrics();
    expect(
      grew(before, after, 'gateway_stream_entries_malformed_total', { stream: 'client_events' }),
    ).toBe(1);
    aliceStream.cancel();
    bobStream.cancel();
  });
});

describe('fail closed', () => {
  it('a revoked snapshot whose client_public_key is missing still revokes: streams close FAILED_PRECONDITION, commands are refused, the entry is counted', async () => {
    const victim = await activeDevice('u-revoke', 'revoke');
    const sibling = await activeDevice('u-revoke', 'sibling');
    const victimStream = watch(victim);
    const siblingStream = watch(sibling);
    await Promise.all([victimStream.waitForCount(1), siblingStream.waitForCount(1)]);
    const before = await metrics();
    const entryId = await raw.xAdd('gateway:session-events', '*', { device_session_id: victim.deviceSessionId, user_id: victim.userId, status: 'revoked' });
    const error = (await victimStream.waitForEnd()) as { code?: number; details?: string };
    expect({ code: error.code, details: error.details }).toEqual({ code: 9, details: 'device session is revoked' });
    const command = await clientFor(victim, addresses.grpc, signer.publicKeyRaw)
      .execute('echo.ping', Buffer.from('x'))
      .then(
        () => undefined,
        (e: { code?: number; details?: string }) => ({ code: e.code, details: e.details }),
      );
    expect(command).toEqual({ code: 9, details: 'device session is revoked' });
    expect(siblingStream.ended).toBe(false);
    const logged = await gateway.waitForLog((l) => l.message === 'incomplete revoked snapshot applied' && l['entry_id'] === entryId);
    expect(logged).toMatchObject({ level: 'warn', device_session_id: victim.deviceSessionId, reason: 'client_public_key is missing' });
    const after = await metrics();
    expect(
      grew(before, after, 'gateway_stream_entries_malformed_total', { stream: 'session_events' }),
    ).toBe(1);
    expect(grew(before, after, 'gateway_push_streams_closed_total', { reason: 'revoked' })).toBe(1);
    siblingStream.cancel();
  });
});

describe('cost bounds', () => {
  it('GATEWAY_PUSH_MAX_STREAMS_PER_SESSION: 100 streams of one session on one connection keep 4 open; the oldest are replaced with RESOURCE_EXHAUSTED; other sessions lose nothing', async () => {
    const storm = await activeDevice('u-storm', 'storm');
    const bystander = await activeDevice('u-storm', 'bystander');
    const bystanderStream = watch(bystander);
    await bystanderStream.waitForCount(1);
    const before = await metrics();
    const connection = newRawClient();
    const streams: RawStream[] = [];
    for (let i = 0; i < 100; i += 1) {
      streams.push(rawSubscribe(connection, storm));
      // Each one registered before the next is sent, so "oldest" is well defined.
      await streams[i]?.first;
    }
    const replaced = await Promise.all(streams.slice(0, 96).map((s) => s.status));
    expect(new Set(replaced.map((s) => `${status[s.code]} ${s.details}`))).toEqual(new Set(['RESOURCE_EXHAUSTED push stream replaced by a newer stream']));
    const after = await metrics();
    expect(grew(before, after, 'gateway_push_streams_closed_total', { reason: 'replaced' })).toBe(96);
    // The bound: 4 streams of the storm session (plus the bystander) are open.
    expect(grew(before, after, 'gateway_push_streams_active')).toBe(4);
    // The 4 newest and the bystander all receive the next event for the user.
    const newest = streams.slice(96);
    const received = newest.map((s) => new Promise<string>((resolve) => s.call.on('data', (e: { eventId: string }) => resolve(e.eventId))));
    const id = await raw.xAdd('gateway:client-events', '*', entry('u-storm', 'after the storm'));
    expect(await Promise.all(received)).toEqual([id, id, id, id]);
    await bystanderStream.waitForCount(2);
    expect(bystanderStream.clientEventIds).toEqual([id]);
    expect(bystanderStream.ended).toBe(false);
    for (const s of newest) s.call.cancel();
    bystanderStream.cancel();
  });

  it('GATEWAY_PUSH_STREAM_BUFFER_BYTES: non-reading streams overflow on queued bytes (not only count), RSS stays bounded, readers lose nothing', async () => {
    const userId = 'u-bytes';
    const reader = watch(await activeDevice(userId, 'reader'));
    await reader.waitForCount(1);
    const stalled: RawStream[] = [];
    for (let i = 0; i < 20; i += 1) {
      const s = rawSubscribe(newRawClient(), await activeDevice(userId, 'stalled'));
      await s.first;
      s.call.pause();
      stalled.push(s);
    }
    const before = await metrics();
    const rssBefore = rssMiB(gateway.pid);
    // 40 events of 1 MiB: far below GATEWAY_PUSH_STREAM_BUFFER (256) by count, 10x the 4 MiB byte bound.
    const payload = Buffer.alloc(MiB, 0x33);
    const ids: string[] = [];
    for (let i = 0; i < 40; i += 1) {
      ids.push(await raw.xAdd('gateway:client-events', '*', entry(userId, payload)));
      if (i % 4 === 3) await reader.waitForCount(1 + ids.length, 30_000);
    }
    await reader.waitForCount(1 + ids.length, 30_000);
    const overflowed = () => gateway.logs.filter((l) => l.message === 'push stream overflowed' && String(l['device_session_id']).startsWith('stalled-')).length;
    await waitFor(() => overflowed() === 20, { timeoutMs: 15_000, message: 'every stalled stream to overflow' });
    const rssGrowth = rssMiB(gateway.pid) - rssBefore;
    expect(reader.clientEventIds).toEqual(ids);
    expect(reader.ended).toBe(false);
    for (const s of stalled) {
      s.call.resume();
      s.call.on('data', () => undefined);
    }
    const statuses = await Promise.all(stalled.map((s) => s.status));
    expect(new Set(statuses.map((s) => `${status[s.code]} ${s.details}`))).toEqual(new Set(['RESOURCE_EXHAUSTED push stream overflowed']));
    const after = await metrics();
    expect(grew(before, after, 'gateway_push_streams_closed_total', { reason: 'overflow' })).toBe(20);
    console.info(`[abuse] RSS growth with 20 stalled streams and 40 x 1 MiB events: ${rssGrowth.toFixed(1)} MiB`);
    // Unbounded, each stalled stream held all 40 MiB of events plus their wire copies.
    expect(rssGrowth).toBeLessThan(300);
    reader.cancel();
  }, 90_000);
});

/** A signed ExecuteCommandRequest of `device` (fields as given, the rest valid). */
function signedCommand(device: Device, overrides: Partial<ExecuteCommandRequest> = {}): ExecuteCommandRequest {
  const fields = { deviceSessionId: device.deviceSessionId, messageType: 'echo.ping', requestId: randomUUID(), timestampMs: Date.now(), payload: Buffer.from('ping'), ...overrides };
  return { ...fields, signature: sign(null, commandRequestBytes(fields), device.privateKey) };
}

/** The status of a unary ExecuteCommand through the generated client. */
function execute(connection: EdgeGatewayClient, request: ExecuteCommandRequest): Promise<string> {
  return new Promise((resolve) => {
    connection.executeCommand(request, (error: ServiceError | null) => resolve(error === null ? 'OK' : `${status[error.code]} ${error.details}`));
  });
}

/** One gRPC call over a bare HTTP/2 client, with the `grpc-timeout` header set by hand. */
function bareGrpcCall(address: string, path: string, message: Buffer, timeout: string): Promise<{ code: number; message: string }> {
  return new Promise((resolve, reject) => {
    const session = connect(`http://${address}`);
    session.on('error', reject);
    const stream = session.request({ ':method': 'POST', ':path': path, 'content-type': 'application/grpc', te: 'trailers', 'grpc-timeout': timeout });
    const frame = Buffer.alloc(5 + message.length);
    frame.writeUInt32BE(message.length, 1);
    message.copy(frame, 5);
    let statusHeaders: Record<string, unknown> = {};
    stream.on('response', (headers) => (statusHeaders = { ...headers }));
    stream.on('trailers', (trailers) => (statusHeaders = { ...statusHeaders, ...trailers }));
    stream.on('data', () => undefined);
    stream.on('close', () => {
      session.close();
      resolve({ code: Number(statusHeaders['grpc-status']), message: decodeURIComponent(String(statusHeaders['grpc-message'] ?? '')) });
    });
    stream.end(frame);
  });
}

describe('cost bounds: logs', () => {
  it('invalid 1 MB device_session_id / request_id / message_type: INVALID_ARGUMENT, logged as 64 characters plus length, no line over 4 KiB', async () => {
    const device = await activeDevice('u-logs');
    const connection = newRawClient();
    const huge = (c: string) => c.repeat(1_000_000);
    const cases = [
      ['device_session_id', { deviceSessionId: huge('d') }, 'device_session_id: must be 1-128 characters of [A-Za-z0-9._:-]'],
      ['request_id', { requestId: huge('r') }, 'request_id: must be 1-128 characters of [A-Za-z0-9._:-]'],
      ['message_type', { messageType: huge('m') }, 'message_type: must be 1-128 characters of [a-z0-9._-] starting with a letter'],
    ] as const;
    // 9 failures with one code on one transport: each is logged even when they straddle a
    // second (10 lines per second per transport and code, SPEC §8.5).
    const perCase = 3;
    const commandLinesBefore = gateway.logs.filter((l) => l.message === 'command').length;
    const bytesBefore = gateway.raw.length;
    for (const [, overrides, expected] of cases) {
      const outcomes = await Promise.all(Array.from({ length: perCase }, () => execute(connection, signedCommand(device, overrides))));
      expect(new Set(outcomes)).toEqual(new Set([`INVALID_ARGUMENT ${expected}`]));
    }
    const requests = cases.length * perCase;
    await waitFor(() => gateway.logs.filter((l) => l.message === 'command').length >= commandLinesBefore + requests, { timeoutMs: 10_000, message: 'one command line per request' });
    const written = gateway.raw.length - bytesBefore;
    console.info(`[abuse] ${requests} requests with a 1 MB invalid field wrote ${written} bytes of log (${Math.round(written / requests)} per request)`);
    expect(written / requests).toBeLessThan(4096);
    const lines = gateway.logs.filter((l) => l.message === 'command').slice(commandLinesBefore);
    for (const [field] of cases) {
      const line = lines.find((l) => l[`${field}_length`] === 1_000_000);
      expect(line, field).toBeDefined();
      expect(String(line?.[field])).toHaveLength(64);
    }
    for (const line of gateway.raw.split('\n')) expect(line.length).toBeLessThanOrEqual(4096);
    // The device itself still works.
    expect(await execute(connection, signedCommand(device))).toBe('OK');
  });
});

describe('fail closed: replay keys and deadlines', () => {
  it('replay keys are unambiguous: session X + request "a:b" and session "X:a" + request "b" both run; a real replay is still refused', async () => {
    const base = `col-${process.pid}-${randomUUID().slice(0, 8)}`;
    const first = { ...newDevice('u-col'), deviceSessionId: base };
    const second = { ...newDevice('u-col'), deviceSessionId: `${base}:a` };
    await writeSession(raw, first, 'active');
    await writeSession(raw, second, 'active');
    const connection = newRawClient();
    const one = signedCommand(first, { requestId: 'a:b' });
    expect(await execute(connection, one)).toBe('OK');
    expect(await execute(connection, signedCommand(second, { requestId: 'b' }))).toBe('OK');
    expect(await execute(connection, one)).toBe('ALREADY_EXISTS request_id was already used');
    expect(await raw.exists([`gateway:replay:${base}/a:b`, `gateway:replay:${base}:a/b`])).toBe(2);
  });

  it('a command whose deadline already passed does not consume its reservation: DEADLINE_EXCEEDED, logged and counted as such; the same request then runs', async () => {
    const device = await activeDevice('u-deadline');
    const connection = newRawClient();
    // Warm the session cache so the request reaches the reservation step at once.
    expect(await execute(connection, signedCommand(device))).toBe('OK');
    const before = await metrics();
    const request = signedCommand(device);
    const bare = await bareGrpcCall(addresses.grpc, '/edgegateway.v1.EdgeGateway/ExecuteCommand', Buffer.from(ExecuteCommandRequest.encode(request).finish()), '1n');
    expect(bare.code).toBe(status.DEADLINE_EXCEEDED);
    const line = await gateway.waitForLog((l) => l.message === 'command' && l['request_id'] === request.requestId);
    expect(line['status']).toBe('deadline_exceeded');
    expect(await raw.exists(`gateway:replay:${device.deviceSessionId}/${request.requestId}`)).toBe(0);
    expect(downstream.calls.some((c) => c.command.requestId === request.requestId)).toBe(false);
    await waitFor(async () => metricValue(await metrics(), 'gateway_grpc_requests_total', { method: 'ExecuteCommand', code: 'DEADLINE_EXCEEDED' }) > metricValue(before, 'gateway_grpc_requests_total', { method: 'ExecuteCommand', code: 'DEADLINE_EXCEEDED' }), {
      timeoutMs: 5000,
      message: 'the call counted as DEADLINE_EXCEEDED',
    });
    const after = await metrics();
    expect(grew(before, after, 'gateway_grpc_requests_total', { method: 'ExecuteCommand', code: 'DEADLINE_EXCEEDED' })).toBe(1);
    expect(grew(before, after, 'gateway_grpc_requests_total', { method: 'ExecuteCommand', code: 'CANCELLED' })).toBe(0);
    expect(gateway.logs.filter((l) => l.message === 'downstream command failed' && l['request_id'] === request.requestId)).toEqual([]);
    // Not consumed: the very same signed request runs when it arrives in time.
    expect(await execute(connection, request)).toBe('OK');
  });
});

describe('honest statuses for malformed requests', () => {
  it('undecodable protobuf on both methods: INVALID_ARGUMENT "malformed request message", counted per method; open streams lose nothing', async () => {
    const watcher = watch(await activeDevice('u-proto'));
    await watcher.waitForCount(1);
    const before = await metrics();
    const client = new Client(addresses.grpc, credentials.createInsecure());
    const identity = (b: Buffer) => b;
    const bodies = [
      Buffer.from([0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f]), // a length far past the end
      Buffer.from([0x0a, 0x05, 0x61]), // truncated string
      Buffer.from([0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]), // varint over 10 bytes
    ];
    const int64 = (tag: number) => Buffer.from([tag, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x40]); // timestamp_ms beyond 2^53
    const unary = (body: Buffer) =>
      new Promise<string>((resolve) =>
        client.makeUnaryRequest('/edgegateway.v1.EdgeGateway/ExecuteCommand', identity, identity, body, new Metadata(), (error: ServiceError | null) =>
          resolve(error === null ? 'OK' : `${status[error.code]} ${error.details}`),
        ),
      );
    const streamed = (body: Buffer) =>
      new Promise<string>((resolve) => {
        const call = client.makeServerStreamRequest('/edgegateway.v1.EdgeGateway/SubscribeEvents', identity, identity, body, new Metadata());
        call.on('data', () => undefined);
        call.on('error', (error: ServiceError) => resolve(`${status[error.code]} ${error.details}`));
        call.on('status', (s: { code: number }) => {
          if (s.code === status.OK) resolve('OK');
        });
      });
    const unaryOutcomes = await Promise.all([...bodies, int64(0x20)].map(unary));
    const streamOutcomes = await Promise.all([...bodies, int64(0x18)].map(streamed));
    client.close();
    expect(new Set([...unaryOutcomes, ...streamOutcomes])).toEqual(new Set(['INVALID_ARGUMENT malformed request message']));
    const after = await metrics();
    for (const method of ['ExecuteCommand', 'SubscribeEvents']) {
      const delta = (code: string) => grew(before, after, 'gateway_grpc_requests_total', { method, code });
      expect({ method, invalid: delta('INVALID_ARGUMENT'), internal: delta('INTERNAL') }).toEqual({ method, invalid: 4, internal: 0 });
    }
    const id = await raw.xAdd('gateway:client-events', '*', entry('u-proto', 'still here'));
    await watcher.waitForCount(2);
    expect(watcher.clientEventIds).toEqual([id]);
    watcher.cancel();
  });
});

describe('cost bounds: HTTP connections', () => {
  /** A raw TCP connection to `address`: what it received, and when the server closed it. */
  function connection(address: string): { socket: Socket; received: () => string; closedAfterMs: Promise<number> } {
    const [host, port] = [address.slice(0, address.lastIndexOf(':')), Number(address.slice(address.lastIndexOf(':') + 1))];
    const socket = connectTcp({ host, port });
    let text = '';
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => (text += chunk));
    socket.on('error', () => undefined);
    const opened = performance.now();
    return { socket, received: () => text, closedAfterMs: new Promise((resolve) => socket.once('close', () => resolve(performance.now() - opened))) };
  }
  function drip(socket: Socket, chunk: string, everyMs: number): void {
    const timer = setInterval(() => (socket.destroyed ? clearInterval(timer) : socket.write(chunk)), everyMs);
    socket.once('close', () => clearInterval(timer));
  }

  it('on every listener (public, admin, WebSocket): dripped headers (a WebSocket upgrade\'s too) get 408 and a dripped body loses its connection at their bounds, idle keep-alive is closed; other requests are served meanwhile', async () => {
    const listeners = { public: addresses.publicHttp, admin: addresses.adminHttp as string, websocket: addresses.websocket as string };
    const results: Record<string, { status: string; ms: number }> = {};
    await Promise.all(
      Object.entries(listeners).flatMap(([name, address]) => {
        const headers = connection(address);
        headers.socket.write(
          name === 'websocket'
            ? 'GET /v1/ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n'
            : 'GET /healthz HTTP/1.1\r\nHost: x\r\n',
        );
        drip(headers.socket, 'X-Drip: 1\r\n', 200);
        const body = connection(address);
        body.socket.write('POST /api/v1/public/auth/send-email-code HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 60000\r\n\r\n{');
        drip(body.socket, ' ', 200);
        const idle = connection(address);
        idle.socket.write(`GET ${name === 'admin' ? '/metrics' : '/healthz'} HTTP/1.1\r\nHost: x\r\n\r\n`);
        // (on the WebSocket listener a plain request is answered 426 Upgrade Required)
        return [
          ['headers', headers],
          ['body', body],
          ['idle', idle],
        ].map(async ([kind, c]) => {
          const conn = c as ReturnType<typeof connection>;
          const ms = await conn.closedAfterMs;
          results[`${name} ${kind as string}`] = { status: conn.received().slice(0, 12), ms };
        });
      }),
    );
    // Served while the slow clients were held.
    expect((await fetch(`http://${addresses.publicHttp}/healthz`)).status).toBe(200);
    console.info(`[abuse] HTTP connection bounds: ${JSON.stringify(results)}`);
    for (const name of Object.keys(listeners)) {
      expect(results[`${name} headers`]?.status).toBe('HTTP/1.1 408');
      // The app answers these before reading the body (no auth upstream here: 503; no such
      // admin route: 404; not an upgrade: 426); the dripping connection is still cut at the request bound.
      expect(results[`${name} body`]?.status).toBe({ public: 'HTTP/1.1 503', admin: 'HTTP/1.1 404', websocket: 'HTTP/1.1 426' }[name]);
      expect(results[`${name} idle`]?.status).toBe(name === 'websocket' ? 'HTTP/1.1 426' : 'HTTP/1.1 200');
      // The configured bounds (1 s headers, 2 s request, 1 s keep-alive) plus Node's check
      // interval; unbounded, a 5-minute drip held the connection ~315 s.
      for (const kind of ['headers', 'body', 'idle']) expect(results[`${name} ${kind}`]?.ms).toBeLessThan(10_000);
    }
  });
});

describe('smaller findings', () => {
  it('a group/world-readable signer key file is loaded with a warn naming the path and mode', async () => {
    const warning = gateway.logs.find((l) => l.message === 'signer key file is readable by group or others');
    expect(warning).toMatchObject({ level: 'warn', path: signer.path, mode: '0644' });
    expect(gateway.logs.some((l) => l.message === 'gateway started')).toBe(true);
  });

  it('a Redis address carrying credentials is never echoed in "startup failed": the line names the variable and what is wrong', async () => {
    const secret = 'pa55-in-the-url';
    const failing = new GatewayProcess(gatewayEnv(redis, signer.path, { GATEWAY_REDIS_MASTER_ADDR: `redis://user:${secret}@host:6379`, GATEWAY_AUTH_UPSTREAM_URL: `https://u:${secret}@[bad` }));
    const exit = await failing.exited;
    expect(exit.code).toBe(1);
    const failed = failing.logs.filter((l) => l.message === 'startup failed');
    expect(failed).toHaveLength(1);
    expect(String(failed[0]?.['error'])).toMatch(/GATEWAY_REDIS_MASTER_ADDR: .*not shown.* is not host:port/);
    expect(String(failed[0]?.['error'])).toMatch(/GATEWAY_AUTH_UPSTREAM_URL: .*not shown/);
    expect(failing.raw).not.toContain(secret);
    await failing.stop();
  });
});

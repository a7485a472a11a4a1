import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { StatusCodes } from '@edge-gateway/protocol';
import { startRedisServer, waitFor, type RedisServerHandle } from '@edge-gateway/test-utils';
import { GatewayProcess, SHUTDOWN_ORDER, gatewayEnv, writeSignerKey } from '@edge-gateway/test-utils/gateway-process';
import { scrape } from './drill-support.js';
import { EchoDownstream, connectRedis, endError, newDevice, publishEvent, take, writeSession, type Device, type RawRedis } from '@edge-gateway/test-utils/system-support';
import { TRANSPORTS, type GatewayAddresses } from './transport-drivers.js';

// One scenario suite, run over every transport of the built binary: gRPC and WebSocket must
// give the same statuses and messages for the same situations (SPEC §2.2, §4).

let redis: RedisServerHandle;
let raw: RawRedis;
let downstream: EchoDownstream;
let signer: ReturnType<typeof writeSignerKey>;
let gateway: GatewayProcess;
let addresses: GatewayAddresses;
let adminHttp: string;

function envFor(): Record<string, string> {
  return gatewayEnv(redis, signer.path, {
    GATEWAY_PUSH_STREAM_BUFFER: '64',
    GATEWAY_SHUTDOWN_TIMEOUT: '5s',
    GATEWAY_WEBSOCKET_ADDR: '127.0.0.1:0',
    GATEWAY_ADMIN_HTTP_ADDR: '127.0.0.1:0',
    GATEWAY_DOWNSTREAM_ROUTES: `echo.=127.0.0.1:${downstream.port}`,
  });
}

beforeAll(async () => {
  redis = await startRedisServer();
  raw = await connectRedis(redis);
  downstream = await new EchoDownstream().start();
  signer = writeSignerKey();
  gateway = new GatewayProcess(envFor());
  const started = await gateway.started();
  addresses = started;
  adminHttp = started.adminHttp ?? '';
});

afterAll(async () => {
  await gateway?.stop();
  downstream?.stop();
  await raw?.quit();
  await redis?.stop();
});

async function activeDevice(userId: string): Promise<Device> {
  const device = newDevice(userId);
  await writeSession(raw, device, 'active');
  return device;
}

const bytes = (text: string): Uint8Array => new TextEncoder().encode(text);

describe.each(TRANSPORTS)('$name transport against the built binary', (transport) => {
  const user = (label: string) => `${transport.name}-${label}`;

  it('runs a signed command and refuses its replay ALREADY_EXISTS; each call shows in gateway_<transport>_request_duration_seconds on /metrics', async () => {
    const device = await activeDevice(user('cmd'));
    const client = await transport.client(device, addresses, signer.publicKeyRaw);
    const calls = async (code: string) => [
      await scrape(adminHttp, `gateway_${transport.name}_requests_total`, { method: 'ExecuteCommand', code }),
      await scrape(adminHttp, `gateway_${transport.name}_request_duration_seconds_count`, { method: 'ExecuteCommand', code }),
    ];
    const before = { ok: await calls('OK'), replay: await calls('ALREADY_EXISTS'), unrouted: await calls('UNIMPLEMENTED') };
    try {
      const requestId = `req-${transport.name}-1`;
      const result = await client.execute('echo.ping', bytes('{"ping":1}'), { requestId });
      expect(result).toMatchObject({ requestId, resultCode: 'ok' });
      expect(new TextDecoder().decode(result.payload)).toBe('{"ping":1}');
      expect(downstream.calls.find((c) => c.command.requestId === requestId)?.command).toMatchObject({ userId: user('cmd'), deviceSessionId: device.deviceSessionId });
      const replay = await client.execute('echo.ping', bytes('{"ping":1}'), { requestId }).catch((e: unknown) => e);
      expect(replay).toMatchObject({ code: StatusCodes.ALREADY_EXISTS, details: 'request_id was already used' });
      const unrouted = await client.execute('billing.charge', bytes('x')).catch((e: unknown) => e);
      expect(unrouted).toMatchObject({ code: StatusCodes.UNIMPLEMENTED, details: 'no route for message type billing.charge' });
      // Both transports record a call before they send its answer.
      const grew = (from: number[]) => from.map((n) => n + 1);
      expect(await calls('OK')).toEqual(grew(before.ok));
      expect(await calls('ALREADY_EXISTS')).toEqual(grew(before.replay));
      expect(await calls('UNIMPLEMENTED')).toEqual(grew(before.unrouted));
      const text = await (await fetch(`http://${adminHttp}/metrics`)).text();
      expect(text).toContain(`# TYPE gateway_${transport.name}_request_duration_seconds histogram`);
    } finally {
      client.close();
    }
  });

  it('a revoke ends the stream FAILED_PRECONDITION and refuses the next command; the sibling session goes on', async () => {
    const device = await activeDevice(user('revoke'));
    const sibling = await activeDevice(user('revoke'));
    const client = await transport.client(device, addresses, signer.publicKeyRaw);
    const siblingClient = await transport.client(sibling, addresses, signer.publicKeyRaw);
    const abort = new AbortController();
    try {
      const events = client.subscribe();
      const siblingEvents = siblingClient.subscribe({ signal: abort.signal });
      expect((await take(events, 1))[0]?.eventType).toBe('gateway.server_time');
      await take(siblingEvents, 1);
      // Warm the cache so the revoke must come through the session-events stream.
      await client.execute('echo.ping', bytes('1'));
      await writeSession(raw, device, 'revoked');
      expect(await endError(events)).toMatchObject({ code: StatusCodes.FAILED_PRECONDITION, details: 'device session is revoked' });
      const refused = await client.execute('echo.ping', bytes('2')).catch((e: unknown) => e);
      expect(refused).toMatchObject({ code: StatusCodes.FAILED_PRECONDITION, details: 'device session is revoked' });
      const id = await publishEvent(raw, { userId: user('revoke'), eventType: 'still.alive', payload: bytes('') });
      expect((await take(siblingEvents, 1))[0]?.eventId).toBe(id);
    } finally {
      abort.abort();
      client.close();
      siblingClient.close();
    }
  });

  it('overflows only the stalled stream RESOURCE_EXHAUSTED', async () => {
    const stalledDevice = await activeDevice(user('overflow'));
    const reader = await activeDevice(user('overflow'));
    const readerClient = await transport.client(reader, addresses, signer.publicKeyRaw);
    const abort = new AbortController();
    const stalled = await transport.stalled(stalledDevice, addresses);
    try {
      expect(stalled.bootstrapType).toBe('gateway.server_time');
      const readerEvents = readerClient.subscribe({ signal: abort.signal });
      await take(readerEvents, 1);
      const payload = new Uint8Array(32 * 1024).fill(7);
      const overflowed = () => gateway.logs.some((l) => l.message === 'push stream overflowed' && l['device_session_id'] === stalledDevice.deviceSessionId);
      let published = 0;
      // A live feed pace: each event is read by the healthy client before the next is published.
      for (; published < 1500 && !overflowed(); published += 1) {
        const id = await publishEvent(raw, { userId: user('overflow'), eventType: 'bulk.item', payload });
        expect((await take(readerEvents, 1))[0]?.eventId).toBe(id);
      }
      await waitFor(overflowed, { timeoutMs: 10_000 });
      // Bounded by the transport's buffers and GATEWAY_PUSH_STREAM_BUFFER (64).
      expect(published).toBeLessThan(1500);
      const after = await publishEvent(raw, { userId: user('overflow'), eventType: 'bulk.item', payload: bytes('after') });
      expect((await take(readerEvents, 1))[0]?.eventId).toBe(after);
      expect(await stalled.resumeAndWaitForStatus()).toEqual({ code: StatusCodes.RESOURCE_EXHAUSTED, details: 'push stream overflowed' });
    } finally {
      abort.abort();
      stalled.close();
      readerClient.close();
    }
  });

  it('resumes after an event id: the bootstrap, then the missed events in order', async () => {
    const device = await activeDevice(user('resume'));
    const client = await transport.client(device, addresses, signer.publicKeyRaw);
    const abort = new AbortController();
    try {
      const first = await publishEvent(raw, { userId: user('resume'), eventType: 'a', payload: bytes('1') });
      const second = await publishEvent(raw, { userId: user('resume'), eventType: 'b', payload: bytes('2') });
      const third = await publishEvent(raw, { userId: user('resume'), eventType: 'c', payload: bytes('3'), deviceSessionId: device.deviceSessionId });
      const events = client.subscribe({ resumeAfterEventId: first, signal: abort.signal });
      const got = await take(events, 3);
      expect(got.map((e) => [e.eventType, e.eventId])).toEqual([
        ['gateway.server_time', ''],
        ['b', second],
        ['c', third],
      ]);
      // Live delivery continues after the replay.
      const live = await publishEvent(raw, { userId: user('resume'), eventType: 'd', payload: bytes('4') });
      expect((await take(events, 1))[0]?.eventId).toBe(live);
    } finally {
      abort.abort();
      client.close();
    }
  });

  it('a command whose deadline passes while the downstream is slow ends DEADLINE_EXCEEDED "Deadline exceeded", logged deadline_exceeded; the downstream got the deadline', async () => {
    const device = await activeDevice(user('deadline'));
    const client = await transport.client(device, addresses, signer.publicKeyRaw);
    try {
      const requestId = `req-${transport.name}-deadline`;
      const sentAt = Date.now();
      const error = await client.execute('echo.hold', bytes('slow'), { requestId, timeoutMs: 400 }).catch((e: unknown) => e);
      expect(error).toMatchObject({ code: StatusCodes.DEADLINE_EXCEEDED });
      // grpc-js clients answer from their own timer and add timings ("Deadline exceeded after 0.400s,…").
      expect((error as { details: string }).details).toMatch(/^Deadline exceeded/);
      const line = await gateway.waitForLog((l) => l.message === 'command' && l['request_id'] === requestId);
      expect(line['status']).toBe('deadline_exceeded');
      // The client's deadline, not GATEWAY_DOWNSTREAM_TIMEOUT (10 s), reached the business service.
      const seen = downstream.calls.find((c) => c.command.requestId === requestId);
      expect(seen?.deadline).toBeGreaterThan(sentAt);
      expect(seen?.deadline).toBeLessThan(sentAt + 10_000);

      // What the gateway itself answers, without a client library in between: DEADLINE_EXCEEDED
      // from its transport's own timer ("Deadline exceeded", as grpc-js servers say) or, when the
      // timer of the downstream call (same propagated deadline) fires first, the core's "deadline
      // exceeded" (SPEC §4); never the downstream client library's diagnostics.
      const bareId = `req-${transport.name}-deadline-bare`;
      const bare = await transport.bareExecute(device, addresses, 'echo.hold', bareId, 300);
      expect(bare.code).toBe(StatusCodes.DEADLINE_EXCEEDED);
      expect(['Deadline exceeded', 'deadline exceeded']).toContain(bare.details);
      await gateway.waitForLog((l) => l.message === 'command' && l['request_id'] === bareId && l['status'] === 'deadline_exceeded');
      // The connection and session go on.
      await expect(client.execute('echo.ping', bytes('after'), { timeoutMs: 5000 })).resolves.toMatchObject({ resultCode: 'ok' });
    } finally {
      downstream.release();
      client.close();
    }
  });

  it('on SIGTERM: streams end UNAVAILABLE, an in-flight command finishes, each component stops in order, exit 0', async () => {
    const own = new GatewayProcess(envFor());
    try {
      const addr = await own.started();
      const device = await activeDevice(user('sigterm'));
      const client = await transport.client(device, addr, signer.publicKeyRaw);
      const events = client.subscribe();
      await take(events, 1);
      const inflight = client.execute('echo.hold', bytes('slow'), { timeoutMs: 10_000 });
      await downstream.holding();

      own.signal('SIGTERM');
      expect(await endError(events)).toMatchObject({ code: StatusCodes.UNAVAILABLE, details: 'gateway is shutting down' });
      await own.waitForLog((l) => l.message === 'component stopped' && l.component === 'push hub');
      downstream.release();
      await expect(inflight).resolves.toMatchObject({ resultCode: 'ok' });
      expect((await own.exited).code).toBe(0);
      const stopped = own.logs.filter((l) => l.message === 'component stopped').map((l) => l.component);
      expect(stopped).toEqual([...SHUTDOWN_ORDER.slice(0, 4), 'websocket server', ...SHUTDOWN_ORDER.slice(4)]);
      client.close();
    } finally {
      await own.stop();
    }
  });
});

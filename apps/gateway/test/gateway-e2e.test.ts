import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { credentials, status, Metadata, type ClientReadableStream } from '@grpc/grpc-js';
import { EdgeGatewayClient, type GatewayEvent } from '@edge-gateway/adapters-grpc/generated';
import { GatewayStatusError, subscribeRequestBytes, type VerifiedEvent } from '@edge-gateway/client';
import { startRedisServer, waitFor, type RedisServerHandle } from '@edge-gateway/test-utils';
import { sign, randomUUID } from 'node:crypto';
import { GatewayProcess, SHUTDOWN_ORDER, gatewayEnv, writeSignerKey } from '@edge-gateway/test-utils/gateway-process';
import {
  EchoDownstream,
  clientFor,
  connectRedis,
  endError,
  newDevice,
  publishEvent,
  take,
  writeSession,
  type Device,
  type RawRedis,
} from '@edge-gateway/test-utils/system-support';

let redis: RedisServerHandle;
let raw: RawRedis;
let downstream: EchoDownstream;
let signer: ReturnType<typeof writeSignerKey>;
let gateway: GatewayProcess;
let addresses: Awaited<ReturnType<GatewayProcess['started']>>;
const secrets: string[] = [];

function envFor(extra: Record<string, string> = {}): Record<string, string> {
  return gatewayEnv(redis, signer.path, {
    GATEWAY_ADMIN_HTTP_ADDR: '127.0.0.1:0',
    GATEWAY_PUSH_STREAM_BUFFER: '64',
    GATEWAY_SHUTDOWN_TIMEOUT: '5s',
    ...extra,
  });
}

beforeAll(async () => {
  redis = await startRedisServer();
  raw = await connectRedis(redis);
  downstream = await new EchoDownstream().start();
  signer = writeSignerKey();
  secrets.push(redis.password, signer.pem.split('\n')[1] as string);
  gateway = new GatewayProcess(envFor({ GATEWAY_DOWNSTREAM_ROUTES: `echo.=127.0.0.1:${downstream.port}` }));
  addresses = await gateway.started();
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

describe('healthy start', () => {
  it('logs each listener with its address, then gateway started', () => {
    const order = gateway.logs.map((l) => l.message);
    const at = (m: string) => order.indexOf(m);
    expect(at('public http listener started')).toBeGreaterThan(-1);
    expect(at('authenticated grpc listener started')).toBeGreaterThan(at('public http listener started'));
    expect(at('admin http listener started')).toBeGreaterThan(at('authenticated grpc listener started'));
    expect(at('gateway started')).toBeGreaterThan(at('admin http listener started'));
    for (const line of gateway.logs) {
      expect(typeof line.timestamp).toBe('string');
      expect(['error', 'warn', 'info', 'debug']).toContain(line.level);
    }
    expect(addresses.adminHttp).toMatch(/^127\.0\.0\.1:\d+$/);
  });

  it('answers the probes', async () => {
    const health = await fetch(`http://${addresses.publicHttp}/healthz`);
    expect(health.status).toBe(200);
    expect(await health.json()).toEqual({ status: 'ok' });
    const ready = await fetch(`http://${addresses.publicHttp}/readyz`);
    expect(ready.status).toBe(200);
    expect(await ready.json()).toEqual({ status: 'ready' });
  });

  it('serves /metrics on the admin listener only', async () => {
    const admin = await fetch(`http://${addresses.adminHttp}/metrics`);
    expect(admin.status).toBe(200);
    const text = await admin.text();
    expect(text).toContain('gateway_http_requests_total');
    const onPublic = await fetch(`http://${addresses.publicHttp}/metrics`);
    expect(onPublic.status).toBe(404);
    expect(await onPublic.json()).toMatchObject({ error: { code: 'not_found' } });
  });

  it('answers the auth routes 503 service_unavailable without an upstream', async () => {
    for (const path of ['send-email-code', 'confirm-email-code']) {
      const res = await fetch(`http://${addresses.publicHttp}/api/v1/public/auth/${path}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ email: 'a@example.com' }),
      });
      expect(res.status).toBe(503);
      expect(((await res.json()) as { error: { code: string } }).error.code).toBe('service_unavailable');
    }
  });

  it('answers UNIMPLEMENTED for a message type without a route', async () => {
    const device = await activeDevice('user-unrouted');
    const client = clientFor(device, addresses.grpc, signer.publicKeyRaw);
    try {
      const error = await client.execute('billing.charge', Buffer.from('x')).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(GatewayStatusError);
      expect(error).toMatchObject({ code: status.UNIMPLEMENTED, details: 'no route for message type billing.charge' });
    } finally {
      client.close();
    }
  });
});

describe('end to end', () => {
  it('round-trips a signed command through a real downstream', async () => {
    const device = await activeDevice('user-cmd');
    const client = clientFor(device, addresses.grpc, signer.publicKeyRaw);
    try {
      const payload = Buffer.from('{"ping":1}');
      secrets.push(payload.toString('base64'));
      const result = await client.execute('echo.ping', payload, { requestId: 'req-e2e-1', timeoutMs: 5000 });
      expect(result).toMatchObject({ requestId: 'req-e2e-1', resultCode: 'ok' });
      expect(Buffer.from(result.payload).toString()).toBe('{"ping":1}');
      const seen = downstream.calls.find((c) => c.command.requestId === 'req-e2e-1');
      expect(seen?.command).toMatchObject({ messageType: 'echo.ping', userId: 'user-cmd', deviceSessionId: device.deviceSessionId });
      expect(seen?.deadline).toBeDefined();
      // The same request replayed is refused.
      const replay = await client.execute('echo.ping', payload, { requestId: 'req-e2e-1' }).catch((e: unknown) => e);
      expect(replay).toMatchObject({ code: status.ALREADY_EXISTS, details: 'request_id was already used' });
    } finally {
      client.close();
    }
  });

  it('delivers a client event after the bootstrap event, and only to its user', async () => {
    const device = await activeDevice('user-push');
    const other = await activeDevice('user-other');
    const client = clientFor(device, addresses.grpc, signer.publicKeyRaw);
    const otherClient = clientFor(other, addresses.grpc, signer.publicKeyRaw);
    const abort = new AbortController();
    try {
      const events = client.subscribe({ signal: abort.signal })[Symbol.asyncIterator]();
      const otherEvents = otherClient.subscribe({ signal: abort.signal })[Symbol.asyncIterator]();
      const [bootstrap] = await take(events, 1);
      await take(otherEvents, 1);
      expect(bootstrap).toMatchObject({ eventType: 'gateway.server_time', eventId: '', userId: 'user-push' });
      const id = await publishEvent(raw, { userId: 'user-push', eventType: 'chat.message', payload: Buffer.from('hello') });
      const [event] = await take(events, 1);
      expect(event).toMatchObject({ eventId: id, eventType: 'chat.message', userId: 'user-push', deviceSessionId: '' });
      expect(Buffer.from((event as VerifiedEvent).payload).toString()).toBe('hello');
      // The other user's stream got nothing: its next event is one addressed to it.
      const mine = await publishEvent(raw, { userId: 'user-other', eventType: 'chat.message', payload: Buffer.from('x') });
      const [next] = await take(otherEvents, 1);
      expect(next?.eventId).toBe(mine);
    } finally {
      abort.abort();
      client.close();
      otherClient.close();
    }
  });

  it('revoke snapshot closes the streams of that session and refuses its calls', async () => {
    const device = await activeDevice('user-revoke');
    const sibling = await activeDevice('user-revoke');
    const client = clientFor(device, addresses.grpc, signer.publicKeyRaw);
    const siblingClient = clientFor(sibling, addresses.grpc, signer.publicKeyRaw);
    const abort = new AbortController();
    try {
      const events = client.subscribe()[Symbol.asyncIterator]();
      const siblingEvents = siblingClient.subscribe({ signal: abort.signal })[Symbol.asyncIterator]();
      await take(events, 1);
      await take(siblingEvents, 1);
      // Warm the cache so the revoke must come through the session-events stream.
      await client.execute('echo.ping', Buffer.from('1'));
      await writeSession(raw, device, 'revoked');
      const error = await endError(events);
      expect(error).toMatchObject({ code: status.FAILED_PRECONDITION, details: 'device session is revoked' });
      const refused = await client.execute('echo.ping', Buffer.from('2')).catch((e: unknown) => e);
      expect(refused).toMatchObject({ code: status.FAILED_PRECONDITION, details: 'device session is revoked' });
      // The sibling session of the same user is untouched.
      const id = await publishEvent(raw, { userId: 'user-revoke', eventType: 'still.alive', payload: Buffer.alloc(0) });
      const [event] = await take(siblingEvents, 1);
      expect(event?.eventId).toBe(id);
    } finally {
      abort.abort();
      client.close();
      siblingClient.close();
    }
  });

  it('overflows only the stalled stream', async () => {
    const device = await activeDevice('user-overflow');
    const reader = await activeDevice('user-overflow');
    const readerClient = clientFor(reader, addresses.grpc, signer.publicKeyRaw);
    const abort = new AbortController();
    // The stalled device uses the raw generated client so nothing reads for it, on its own
    // connection as a real device would have (a shared HTTP/2 connection would stall both).
    const rawClient = new EdgeGatewayClient(addresses.grpc, credentials.createInsecure(), { 'grpc.use_local_subchannel_pool': 1 });
    try {
      const request = {
        deviceSessionId: device.deviceSessionId,
        requestId: randomUUID(),
        timestampMs: Date.now(),
        resumeAfterEventId: '',
      };
      const call: ClientReadableStream<GatewayEvent> = rawClient.subscribeEvents(
        { ...request, signature: sign(null, subscribeRequestBytes(request), device.privateKey) },
        new Metadata(),
      );
      const statusSeen = new Promise<{ code: number; details: string }>((resolve) => {
        call.on('error', (e: { code: number; details: string }) => resolve(e));
        call.on('status', (s: { code: number; details: string }) => {
          if (s.code !== status.OK) resolve(s);
        });
      });
      const first = await new Promise<GatewayEvent>((resolve) => call.once('data', resolve));
      expect(first.eventType).toBe('gateway.server_time');
      call.pause();

      const readerEvents = readerClient.subscribe({ signal: abort.signal })[Symbol.asyncIterator]();
      await take(readerEvents, 1);
      const payload = Buffer.alloc(32 * 1024, 7);
      const ids: string[] = [];
      const overflowed = () =>
        gateway.logs.some((l) => l.message === 'push stream overflowed' && l['device_session_id'] === device.deviceSessionId);
      // A live feed pace: each event is read by the healthy client before the next is published.
      for (let i = 0; i < 400 && !overflowed(); i += 1) {
        ids.push(await publishEvent(raw, { userId: 'user-overflow', eventType: 'bulk.item', payload }));
        const [event] = await take(readerEvents, 1);
        expect(event?.eventId).toBe(ids.at(-1));
      }
      await waitFor(overflowed, { timeoutMs: 10_000 });
      // Bounded by the HTTP/2 windows, the grpc-js buffer and GATEWAY_PUSH_STREAM_BUFFER (64).
      expect(ids.length).toBeLessThan(400);
      // The healthy stream goes on after the overflow.
      const after = await publishEvent(raw, { userId: 'user-overflow', eventType: 'bulk.item', payload: Buffer.from('after') });
      expect((await take(readerEvents, 1))[0]?.eventId).toBe(after);
      call.resume();
      call.on('data', () => undefined);
      expect(await statusSeen).toMatchObject({ code: status.RESOURCE_EXHAUSTED, details: 'push stream overflowed' });
    } finally {
      abort.abort();
      rawClient.close();
      readerClient.close();
    }
  });

  it('exposes every metric of SPEC §8.4 on the admin /metrics, with its type', async () => {
    // Make sure a malformed entry and a replay were seen, whatever ran before.
    await raw.xAdd('gateway:client-events', '*', { user_id: 'u', event_type: 'gateway.reserved', payload_base64: '' });
    await waitFor(() => gateway.logs.some((l) => l.message === 'malformed stream entry dropped'));
    const text = await (await fetch(`http://${addresses.adminHttp}/metrics`)).text();
    const expected: Record<string, string> = {
      gateway_grpc_requests_total: 'counter',
      gateway_grpc_request_duration_seconds: 'histogram',
      gateway_push_streams_active: 'gauge',
      gateway_push_events_delivered_total: 'counter',
      gateway_push_streams_closed_total: 'counter',
      gateway_stream_entries_consumed_total: 'counter',
      gateway_stream_entries_malformed_total: 'counter',
      gateway_stream_subscriber_reconnects_total: 'counter',
      gateway_replay_rejections_total: 'counter',
      gateway_replay_reservations_total: 'counter',
      gateway_redis_command_duration_seconds: 'histogram',
      gateway_http_requests_total: 'counter',
    };
    for (const [name, type] of Object.entries(expected)) {
      expect(text, name).toContain(`# TYPE ${name} ${type}`);
    }
    expect(text).toMatch(/gateway_grpc_requests_total\{[^}]*method="ExecuteCommand"[^}]*code="OK"[^}]*\} [1-9]/);
    expect(text).toMatch(/gateway_push_streams_closed_total\{[^}]*reason="revoked"[^}]*\} [1-9]/);
    expect(text).toMatch(/gateway_push_streams_closed_total\{[^}]*reason="overflow"[^}]*\} [1-9]/);
    expect(text).toMatch(/gateway_stream_entries_malformed_total\{[^}]*stream="client_events"[^}]*\} [1-9]/);
    expect(text).toMatch(/gateway_replay_rejections_total(\{[^}]*\})? [1-9]/);
    expect(text).toMatch(/gateway_replay_reservations_total\{[^}]*outcome="replay"[^}]*\} [1-9]/);
    expect(text).toMatch(/gateway_replay_reservations_total\{[^}]*outcome="ok"[^}]*\} [1-9]/);
    // A lone master: nothing to wait for, nothing ever not replicated.
    expect(text).toMatch(/gateway_replay_reservations_total\{[^}]*outcome="not_replicated"[^}]*\} 0/);
    expect(text).toMatch(/gateway_stream_subscriber_reconnects_total\{[^}]*stream="session_events"[^}]*\} 0/);
  });

  it('never logs the password, keys, signatures or payloads', () => {
    for (const secret of secrets) expect(gateway.raw).not.toContain(secret);
    expect(gateway.raw).not.toContain('PRIVATE KEY');
  });
});

describe('SIGTERM', () => {
  it('ends streams UNAVAILABLE, lets an in-flight command finish, logs each component, exits 0', async () => {
    const own = new GatewayProcess(envFor({ GATEWAY_DOWNSTREAM_ROUTES: `echo.=127.0.0.1:${downstream.port}` }));
    try {
      const addr = await own.started();
      const device = await activeDevice('user-sigterm');
      const client = clientFor(device, addr.grpc, signer.publicKeyRaw);
      const events = client.subscribe()[Symbol.asyncIterator]();
      await take(events, 1);
      const inflight = client.execute('echo.hold', Buffer.from('slow'), { timeoutMs: 10_000 });
      await downstream.holding();

      own.signal('SIGTERM');
      const ended = await endError(events);
      expect(ended).toMatchObject({ code: status.UNAVAILABLE, details: 'gateway is shutting down' });
      await own.waitForLog((l) => l.message === 'component stopped' && l.component === 'push hub');
      downstream.release();
      await expect(inflight).resolves.toMatchObject({ resultCode: 'ok' });
      const exit = await own.exited;
      expect(exit.code).toBe(0);
      const stopped = own.logs.filter((l) => l.message === 'component stopped').map((l) => l.component);
      expect(stopped).toEqual(SHUTDOWN_ORDER);
      for (const line of own.logs.filter((l) => l.message === 'component stopped')) {
        expect(typeof line['duration_ms']).toBe('number');
      }
      client.close();
    } finally {
      await own.stop();
    }
  });
});

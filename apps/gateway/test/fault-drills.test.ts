/**
 * Fault drills (issue 8): the BUILT binary against a real redis-server that is killed,
 * frozen and shared, under fan-out and shutdown load. Loopback only; every loop is bounded.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Metadata, status } from '@grpc/grpc-js';
import { sign, randomUUID } from 'node:crypto';
import type { ExecuteCommandResponse } from '@edge-gateway/adapters-grpc/generated';
import { GatewayStatusError, commandRequestBytes, type GatewayClient } from '@edge-gateway/client';
import { startRedisServer, waitFor, type RedisServerHandle } from '@edge-gateway/test-utils';
import { GatewayProcess, SHUTDOWN_ORDER, writeSignerKey, type LogLine } from '@edge-gateway/test-utils/gateway-process';
import { EchoDownstream, connectRedis, newDevice, publishEvent, writeSession, type Device, type RawRedis } from '@edge-gateway/test-utils/system-support';
import {
  StreamWatcher,
  drillEnv,
  isolatedClient,
  rawClient,
  rawSubscribe,
  reconnectRaw,
  scrape,
  timed,
} from './drill-support.js';
import { sessionRecordFields } from '@edge-gateway/protocol';

let redis: RedisServerHandle;
let raw: RawRedis;
let downstream: EchoDownstream;
let signer: ReturnType<typeof writeSignerKey>;
const clients: Array<{ close(): void }> = [];
const gateways: GatewayProcess[] = [];

beforeAll(async () => {
  redis = await startRedisServer();
  raw = await connectRedis(redis);
  downstream = await new EchoDownstream().start();
  signer = writeSignerKey();
});

afterAll(async () => {
  for (const client of clients.splice(0)) client.close();
  await Promise.all(gateways.map((g) => g.stop()));
  downstream?.stop();
  await raw?.quit().catch(() => undefined);
  await redis?.stop();
});

// A failed drill must not leave Redis down or frozen for the next one.
afterEach(async () => {
  redis.resume();
  if (!redis.running) await redis.restart();
  if (!raw.isReady) raw = await reconnectRaw(redis);
});

/** Starts a gateway process routed to the echo downstream and returns it with its addresses. */
async function startGateway(extra: Record<string, string> = {}) {
  const gateway = new GatewayProcess(
    drillEnv(redis, signer.path, { GATEWAY_DOWNSTREAM_ROUTES: `echo.=127.0.0.1:${downstream.port}`, ...extra }),
  );
  gateways.push(gateway);
  const addresses = await gateway.started();
  return { gateway, addresses };
}

async function activeDevice(userId: string, label = 'drill'): Promise<Device> {
  const device = newDevice(userId, label);
  await writeSession(raw, device, 'active');
  return device;
}

/** A session record without a snapshot: the gateway has not cached it, its lookup goes to Redis. */
async function uncachedDevice(userId: string): Promise<Device> {
  const device = newDevice(userId, 'uncached');
  await raw.hSet(`gateway:session:${device.deviceSessionId}`, sessionRecordFields({ ...device, status: 'active', clientPublicKey: Buffer.from(device.publicKeyBase64, 'base64') }));
  return device;
}

function client(device: Device, grpc: string): GatewayClient {
  const c = isolatedClient(device, grpc, signer.publicKeyRaw);
  clients.push(c);
  return c;
}

async function publishMany(userId: string, count: number, label: string, deviceSessionId?: string): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 0; i < count; i += 1) {
    ids.push(
      await publishEvent(raw, {
        userId,
        ...(deviceSessionId === undefined ? {} : { deviceSessionId }),
        eventType: 'drill.event',
        payload: Buffer.from(`${label}-${i}`),
      }),
    );
  }
  return ids;
}

/** Runs a command until it stops failing UNAVAILABLE (Redis recovering), bounded by `timeoutMs`. */
async function executeWhenAvailable(c: GatewayClient, timeoutMs = 15_000) {
  return waitFor(
    async () => {
      try {
        return await c.execute('echo.ping', Buffer.from('recovered'), { timeoutMs: 3000 });
      } catch (error) {
        if (error instanceof GatewayStatusError && error.code === status.UNAVAILABLE) return undefined;
        throw error;
      }
    },
    { timeoutMs, intervalMs: 100, message: 'a command to succeed after recovery' },
  );
}

const subscriberLog = (stream: string, message: string) => (l: LogLine) => l.message === message && l['stream'] === stream;

describe('drill: redis killed and restarted mid-stream (data kept)', () => {
  it('keeps streams open, delivers post-recovery events once in order, fails commands UNAVAILABLE then recovers', async () => {
    const { gateway, addresses } = await startGateway({ GATEWAY_REDIS_COMMAND_TIMEOUT: '500ms' });
    const userId = 'user-drill-restart';
    const cached = await activeDevice(userId);
    const uncached = await uncachedDevice(userId);
    const stale = await activeDevice(userId);
    const cachedClient = client(cached, addresses.grpc);
    const uncachedClient = client(uncached, addresses.grpc);
    const staleClient = client(stale, addresses.grpc);

    const watcher = new StreamWatcher(cachedClient);
    await watcher.waitForCount(1);
    // Warm the session cache for `cached` and `stale`.
    await expect(cachedClient.execute('echo.ping', Buffer.from('warm'))).resolves.toMatchObject({ resultCode: 'ok' });
    await expect(staleClient.execute('echo.ping', Buffer.from('warm'))).resolves.toMatchObject({ resultCode: 'ok' });
    const before = await publishMany(userId, 3, 'before');
    await watcher.waitForCount(1 + 3);

    await raw.quit();
    await redis.shutdownSave();
    const downAt = Date.now();
    // Both subscribers noticed the outage.
    await gateway.waitForLog(subscriberLog('client_events', 'stream subscriber error; reconnecting'), 10_000);
    await gateway.waitForLog(subscriberLog('session_events', 'stream subscriber error; reconnecting'), 10_000);

    // Cached session: the lookup is served from memory, the replay reservation fails closed.
    const replayDown = await timed(() => cachedClient.execute('echo.ping', Buffer.from('down')));
    expect(replayDown.error).toMatchObject({ code: status.UNAVAILABLE, details: 'replay store unavailable' });
    // Uncached session: the lookup itself fails.
    const sessionDown = await timed(() => uncachedClient.execute('echo.ping', Buffer.from('down')));
    expect(sessionDown.error).toMatchObject({ code: status.UNAVAILABLE, details: 'session store unavailable' });
    expect(replayDown.ms).toBeLessThan(2000);
    expect(sessionDown.ms).toBeLessThan(2000);
    const downstreamCallsDuringOutage = downstream.calls.filter(
      (c) => c.command.deviceSessionId === cached.deviceSessionId && Buffer.from(c.command.payload).toString() === 'down',
    );
    expect(downstreamCallsDuringOutage).toHaveLength(0);
    // Let the outage last through several reconnect attempts of the subscribers.
    await waitFor(
      async () => (await scrape(addresses.adminHttp as string, 'gateway_stream_subscriber_reconnects_total', { stream: 'client_events' })) >= 3,
      { timeoutMs: 10_000, intervalMs: 100, message: 'three failed reconnect attempts' },
    );
    // The push stream stays open while Redis is down.
    expect(watcher.ended).toBe(false);

    await redis.restart();
    const outageMs = Date.now() - downAt;
    raw = await reconnectRaw(redis);
    // The session-events subscriber reconnected and cleared the session cache (SPEC §5.5).
    await gateway.waitForLog(subscriberLog('session_events', 'session cache cleared after session-events reconnect'), 15_000);
    await gateway.waitForLog(subscriberLog('client_events', 'stream subscriber reconnected'), 15_000);

    const after = await publishMany(userId, 20, 'after');
    await watcher.waitForCount(1 + 3 + 20);
    // A marker proves nothing else is still on its way (no duplicate behind the last event).
    const [marker] = await publishMany(userId, 1, 'marker');
    await watcher.waitForCount(1 + 3 + 20 + 1);
    expect(watcher.clientEvents.map((e) => e.eventId)).toEqual([...before, ...after, marker]);
    expect(watcher.clientEvents.map((e) => Buffer.from(e.payload).toString())).toEqual([
      'before-0', 'before-1', 'before-2',
      ...Array.from({ length: 20 }, (_, i) => `after-${i}`),
      'marker-0',
    ]);
    expect(watcher.ended).toBe(false);

    // Commands recover (the shared client reconnects by itself).
    const recovered = await timed(() => executeWhenAvailable(cachedClient));
    expect(recovered.value).toMatchObject({ resultCode: 'ok' });
    await expect(executeWhenAvailable(uncachedClient)).resolves.toMatchObject({ resultCode: 'ok' });

    // The cache was cleared: a record changed behind the gateway's back (no snapshot) is read again.
    await raw.hSet(`gateway:session:${stale.deviceSessionId}`, { status: 'revoked', revoked_at_ms: String(Date.now()) });
    await expect(staleClient.execute('echo.ping', Buffer.from('stale'))).rejects.toMatchObject({
      code: status.FAILED_PRECONDITION,
      details: 'device session is revoked',
    });

    expect(await scrape(addresses.adminHttp as string, 'gateway_stream_subscriber_reconnects_total', { stream: 'client_events' })).toBeGreaterThanOrEqual(1);
    expect(await scrape(addresses.adminHttp as string, 'gateway_stream_subscriber_reconnects_total', { stream: 'session_events' })).toBeGreaterThanOrEqual(1);
    console.info(`[drill restart] outage ${outageMs} ms; commands while down failed in ${Math.round(replayDown.ms)} / ${Math.round(sessionDown.ms)} ms; first command after restart took ${Math.round(recovered.ms)} ms to succeed`);
    watcher.cancel();
    await watcher.finished;
    expect(gateway.running).toBe(true);
    await gateway.stop();
  }, 60_000);
});

describe('drill: redis paused (SIGSTOP) then resumed (SIGCONT)', () => {
  it('loses and reorders nothing, and commands fail within the command timeout while frozen', async () => {
    const { gateway, addresses } = await startGateway({ GATEWAY_REDIS_COMMAND_TIMEOUT: '500ms' });
    const userId = 'user-drill-pause';
    const cached = await activeDevice(userId);
    const uncached = await uncachedDevice(userId);
    const cachedClient = client(cached, addresses.grpc);
    const uncachedClient = client(uncached, addresses.grpc);
    const watcher = new StreamWatcher(cachedClient);
    const revokedWhileFrozen = await activeDevice(userId);
    const doomed = new StreamWatcher(client(revokedWhileFrozen, addresses.grpc));
    await watcher.waitForCount(1);
    await doomed.waitForCount(1);
    await expect(cachedClient.execute('echo.ping', Buffer.from('warm'))).resolves.toMatchObject({ resultCode: 'ok' });

    // Batch A is published and the freeze starts at once, before the gateway may have read it.
    const batchA = await publishMany(userId, 10, 'a');
    redis.pause();
    const pausedAt = Date.now();
    try {
      // Batch B is written while Redis is frozen: the pipelined XADDs sit in its socket until
      // SIGCONT. So does the revoke of a second session with an open stream.
      const batchBPromise = Promise.all(
        Array.from({ length: 10 }, (_, i) => publishEvent(raw, { userId, eventType: 'drill.event', payload: Buffer.from(`b-${i}`) })),
      );
      const revokePromise = writeSession(raw, revokedWhileFrozen, 'revoked');

      const replayFrozen = await timed(() => cachedClient.execute('echo.ping', Buffer.from('frozen')));
      expect(replayFrozen.error).toMatchObject({ code: status.UNAVAILABLE, details: 'replay store unavailable' });
      const sessionFrozen = await timed(() => uncachedClient.execute('echo.ping', Buffer.from('frozen')));
      expect(sessionFrozen.error).toMatchObject({ code: status.UNAVAILABLE, details: 'session store unavailable' });
      // GATEWAY_REDIS_COMMAND_TIMEOUT=500ms bounds each: not instant, not hanging.
      for (const attempt of [replayFrozen, sessionFrozen]) {
        expect(attempt.ms).toBeGreaterThanOrEqual(450);
        expect(attempt.ms).toBeLessThan(2000);
      }
      // Frozen longer than the blocking read plus its timeout (5 s + 500 ms): the client-events
      // subscriber gives up on the frozen connection and starts reconnecting.
      await gateway.waitForLog(subscriberLog('client_events', 'stream subscriber error; reconnecting'), 10_000);
      expect(watcher.ended).toBe(false);
      expect(doomed.ended).toBe(false);
      redis.resume();
      const frozenMs = Date.now() - pausedAt;
      const batchB = await batchBPromise;
      await revokePromise;
      expect(await doomed.waitForEnd()).toMatchObject({ code: status.FAILED_PRECONDITION, details: 'device session is revoked' });
      // The revoked session's own events (batch A/B went to the user) stopped with its stream.
      expect(doomed.clientEvents.map((e) => e.eventId)).toEqual([...batchA, ...batchB].slice(0, doomed.clientEvents.length));
      const batchC = await publishMany(userId, 10, 'c');
      await watcher.waitForCount(1 + 30, 15_000);
      const [marker] = await publishMany(userId, 1, 'marker');
      await watcher.waitForCount(1 + 31, 10_000);
      expect(watcher.clientEvents.map((e) => e.eventId)).toEqual([...batchA, ...batchB, ...batchC, marker]);
      expect(watcher.clientEvents.map((e) => Buffer.from(e.payload).toString())).toEqual([
        ...['a', 'b', 'c'].flatMap((label) => Array.from({ length: 10 }, (_, i) => `${label}-${i}`)),
        'marker-0',
      ]);
      expect(watcher.ended).toBe(false);

      await expect(executeWhenAvailable(cachedClient)).resolves.toMatchObject({ resultCode: 'ok' });
      await expect(executeWhenAvailable(uncachedClient)).resolves.toMatchObject({ resultCode: 'ok' });
      console.info(`[drill pause] frozen ${frozenMs} ms; commands failed in ${Math.round(replayFrozen.ms)} / ${Math.round(sessionFrozen.ms)} ms (timeout 500 ms)`);
    } finally {
      redis.resume();
    }
    watcher.cancel();
    await watcher.finished;
    expect(gateway.running).toBe(true);
    await gateway.stop();
  }, 60_000);
});

describe('drill: two gateway processes on one redis', () => {
  it('fans an event out on both, refuses a request replayed to the other, closes streams on both on revoke', async () => {
    const [one, two] = await Promise.all([startGateway(), startGateway()]);
    const userId = 'user-drill-two';
    const device = await activeDevice(userId);
    const onOne = new StreamWatcher(client(device, one.addresses.grpc));
    const onTwo = new StreamWatcher(client(device, two.addresses.grpc));
    await onOne.waitForCount(1);
    await onTwo.waitForCount(1);

    const [id] = await publishMany(userId, 1, 'both');
    await onOne.waitForCount(2);
    await onTwo.waitForCount(2);
    expect(onOne.clientEvents.map((e) => e.eventId)).toEqual([id]);
    expect(onTwo.clientEvents.map((e) => e.eventId)).toEqual([id]);

    // The very same signed request, sent to process one and then replayed to process two.
    const fields = {
      deviceSessionId: device.deviceSessionId,
      messageType: 'echo.ping',
      requestId: `replay-${randomUUID()}`,
      timestampMs: Date.now(),
      payload: Buffer.from('once'),
    };
    const request = { ...fields, signature: sign(null, commandRequestBytes(fields), device.privateKey) };
    const send = (address: string) => {
      const c = rawClient(address);
      clients.push(c);
      return new Promise<ExecuteCommandResponse>((resolve, reject) =>
        c.executeCommand(request, new Metadata(), { deadline: Date.now() + 5000 }, (error, response) => (error ? reject(error) : resolve(response))),
      );
    };
    await expect(send(one.addresses.grpc)).resolves.toMatchObject({ requestId: fields.requestId, resultCode: 'ok' });
    await expect(send(two.addresses.grpc)).rejects.toMatchObject({ code: status.ALREADY_EXISTS, details: 'request_id was already used' });
    await expect(send(one.addresses.grpc)).rejects.toMatchObject({ code: status.ALREADY_EXISTS, details: 'request_id was already used' });
    expect(downstream.calls.filter((c) => c.command.requestId === fields.requestId)).toHaveLength(1);
    expect(await scrape(two.addresses.adminHttp as string, 'gateway_replay_rejections_total')).toBe(1);

    await writeSession(raw, device, 'revoked');
    expect(await onOne.waitForEnd()).toMatchObject({ code: status.FAILED_PRECONDITION, details: 'device session is revoked' });
    expect(await onTwo.waitForEnd()).toMatchObject({ code: status.FAILED_PRECONDITION, details: 'device session is revoked' });
    for (const { addresses } of [one, two]) {
      const c = client(device, addresses.grpc);
      await expect(c.execute('echo.ping', Buffer.from('after revoke'))).rejects.toMatchObject({
        code: status.FAILED_PRECONDITION,
        details: 'device session is revoked',
      });
      expect(await scrape(addresses.adminHttp as string, 'gateway_push_streams_closed_total', { reason: 'revoked' })).toBe(1);
    }
    await Promise.all([one.gateway.stop(), two.gateway.stop()]);
  }, 60_000);
});

describe('drill: one stalled stream under full fan-out load', () => {
  it('overflows the stalled stream alone; 20 healthy streams lose nothing', async () => {
    const { gateway, addresses } = await startGateway({ GATEWAY_PUSH_STREAM_BUFFER: '64' });
    const userId = 'user-drill-fanout';
    const healthy: StreamWatcher[] = [];
    for (let i = 0; i < 20; i += 1) healthy.push(new StreamWatcher(client(await activeDevice(userId), addresses.grpc)));
    await Promise.all(healthy.map((w) => w.waitForCount(1)));
    const stalledDevice = await activeDevice(userId);
    const stalledClient = rawClient(addresses.grpc);
    clients.push(stalledClient);
    const stalled = rawSubscribe(stalledClient, stalledDevice);
    expect((await stalled.first).eventType).toBe('gateway.server_time');
    stalled.call.pause();

    const payload = Buffer.alloc(32 * 1024, 7);
    const ids: string[] = [];
    const overflowed = () =>
      gateway.logs.some((l) => l.message === 'push stream overflowed' && l['device_session_id'] === stalledDevice.deviceSessionId);
    const started = performance.now();
    // Paced in small batches: each batch is read by every healthy stream before the next one.
    for (let batch = 0; batch < 100 && !overflowed(); batch += 1) {
      for (let i = 0; i < 4; i += 1) ids.push(await publishEvent(raw, { userId, eventType: 'bulk.item', payload }));
      await Promise.all(healthy.map((w) => w.waitForCount(1 + ids.length)));
    }
    await waitFor(overflowed, { timeoutMs: 10_000, message: 'the stalled stream to overflow' });
    const overflowAfter = ids.length;
    expect(overflowAfter).toBeLessThan(400);
    for (let i = 0; i < 10; i += 1) ids.push(await publishEvent(raw, { userId, eventType: 'bulk.item', payload: Buffer.from(`after-${i}`) }));
    await Promise.all(healthy.map((w) => w.waitForCount(1 + ids.length)));
    const elapsed = performance.now() - started;
    for (const watcher of healthy) {
      expect(watcher.clientEvents.map((e) => e.eventId)).toEqual(ids);
      expect(watcher.ended).toBe(false);
    }
    stalled.call.resume();
    stalled.call.on('data', () => undefined);
    expect(await stalled.status).toEqual({ code: status.RESOURCE_EXHAUSTED, details: 'push stream overflowed' });
    expect(await scrape(addresses.adminHttp as string, 'gateway_push_streams_closed_total', { reason: 'overflow' })).toBe(1);
    expect(await scrape(addresses.adminHttp as string, 'gateway_push_streams_active')).toBe(20);
    console.info(`[drill fan-out] stalled stream overflowed after ${overflowAfter} events of 32 KiB; ${ids.length} events x 20 healthy streams delivered in ${Math.round(elapsed)} ms`);
    for (const watcher of healthy) watcher.cancel();
    await Promise.all(healthy.map((w) => w.finished));
    await gateway.stop();
  }, 90_000);
});

describe('drill: SIGTERM under load', () => {
  it('ends 1k streams UNAVAILABLE, finishes in-flight commands, exits 0 within the budget', async () => {
    const { gateway, addresses } = await startGateway({ GATEWAY_SHUTDOWN_TIMEOUT: '5s', GATEWAY_PUSH_MAX_STREAMS_PER_SESSION: '100' });
    const userId = 'user-drill-sigterm';
    // 50 streams per connection: a gRPC connection carries at most 100 calls at once (SPEC §2.2),
    // and the two held commands of each connection must get through beside its streams.
    const connections = 20;
    const streamsPerConnection = 50;
    const devices: Device[] = [];
    const gatewayClients: GatewayClient[] = [];
    for (let i = 0; i < connections; i += 1) {
      const device = await activeDevice(userId, 'sigterm');
      devices.push(device);
      gatewayClients.push(client(device, addresses.grpc));
    }
    const openStarted = performance.now();
    const watchers: StreamWatcher[] = [];
    for (const c of gatewayClients) for (let i = 0; i < streamsPerConnection; i += 1) watchers.push(new StreamWatcher(c));
    await waitFor(() => watchers.every((w) => w.events.length >= 1 || w.ended), { timeoutMs: 30_000, intervalMs: 20, message: '1k bootstrap events' });
    const openMs = performance.now() - openStarted;
    expect(watchers.filter((w) => w.ended)).toHaveLength(0);
    expect(await scrape(addresses.adminHttp as string, 'gateway_push_streams_active')).toBe(1000);

    // One event fanned out to all 1k streams.
    const [fanned] = await publishMany(userId, 1, 'fan');
    await waitFor(() => watchers.every((w) => w.events.length >= 2), { timeoutMs: 15_000, intervalMs: 20, message: 'the event on all 1k streams' });
    expect(new Set(watchers.map((w) => w.events[1]?.eventId))).toEqual(new Set([fanned]));

    // Commands in flight: held by the downstream until released.
    const held = gatewayClients.flatMap((c) => [0, 1].map(() => c.execute('echo.hold', Buffer.from('in flight'), { timeoutMs: 20_000 })));
    // Awaited below; a failed wait before that must not leave them as unhandled rejections.
    for (const call of held) call.catch(() => undefined);
    const heldSessions = new Set(devices.map((d) => d.deviceSessionId));
    const heldCalls = () => downstream.calls.filter((c) => c.command.messageType === 'echo.hold' && heldSessions.has(c.command.deviceSessionId));
    await waitFor(() => heldCalls().length === held.length, { timeoutMs: 10_000, message: 'the held commands to reach the downstream' });

    // Events keep coming while the process stops.
    let publishing = true;
    const publisher = (async () => {
      for (let i = 0; i < 500 && publishing; i += 1) {
        await publishEvent(raw, { userId, eventType: 'drill.load', payload: Buffer.from(String(i)) });
        await new Promise((r) => setTimeout(r, 5));
      }
    })();

    const signalledAt = performance.now();
    gateway.signal('SIGTERM');
    await waitFor(() => watchers.every((w) => w.ended), { timeoutMs: 10_000, intervalMs: 10, message: 'all 1k streams to end' });
    const streamsEndedMs = performance.now() - signalledAt;
    publishing = false;
    await publisher;
    const endings = new Map<string, number>();
    for (const w of watchers) {
      const e = w.error as GatewayStatusError | undefined;
      const key = `${e?.codeName ?? 'none'}: ${e?.details ?? String(w.error)}`;
      endings.set(key, (endings.get(key) ?? 0) + 1);
    }
    expect(Object.fromEntries(endings)).toEqual({ 'UNAVAILABLE: gateway is shutting down': 1000 });
    // The gRPC graceful stop waits for the held commands; they complete OK once released.
    expect(gateway.running).toBe(true);
    // Meanwhile the public listener is still up and says so.
    const ready = await fetch(`http://${addresses.publicHttp}/readyz`);
    expect(ready.status).toBe(503);
    expect(await ready.json()).toEqual({ status: 'shutting_down' });
    downstream.release();
    const results = await Promise.all(held);
    expect(results.map((r) => r.resultCode)).toEqual(held.map(() => 'ok'));
    const exit = await gateway.exited;
    const exitMs = performance.now() - signalledAt;
    expect(exit).toEqual({ code: 0, signal: null });
    const stopped = gateway.logs.filter((l) => l.message === 'component stopped');
    expect(stopped.map((l) => l.component)).toEqual(SHUTDOWN_ORDER);
    // Every step stayed within its budget; the whole run well under the sum of budgets (8 x 5 s).
    for (const line of stopped) expect(line['duration_ms'] as number).toBeLessThan(5000);
    expect(exitMs).toBeLessThan(5000);
    console.info(
      `[drill sigterm] 1k streams bootstrapped in ${Math.round(openMs)} ms; after SIGTERM all streams ended in ${Math.round(streamsEndedMs)} ms, ` +
        `exit 0 after ${Math.round(exitMs)} ms; steps: ${stopped.map((l) => `${String(l.component)}=${String(l['duration_ms'])}ms`).join(', ')}`,
    );
    for (const w of watchers) w.cancel();
  }, 90_000);
});

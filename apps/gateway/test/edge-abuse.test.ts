/**
 * Abuse cases of issue 12 against the BUILT binary, one test per finding: each asserts the
 * exact status, that other streams and entries lose nothing, and the bound (log bytes per
 * request, queued bytes, open streams, connection time).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { status } from '@grpc/grpc-js';
import type { EdgeGatewayClient } from '@edge-gateway/adapters-grpc/generated';
import { startRedisServer, waitFor, type RedisServerHandle } from '@edge-gateway/test-utils';
import { GatewayProcess, writeSignerKey } from './gateway-process.js';
import { drillEnv, metricValue, rawClient, rawSubscribe, rssMiB, StreamWatcher, type RawStream } from './drill-support.js';
import { clientFor, connectRedis, EchoDownstream, newDevice, writeSession, type Device, type RawRedis } from './system-support.js';

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
  downstream = await new EchoDownstream().start();
  gateway = new GatewayProcess(
    drillEnv(redis, signer.path, {
      GATEWAY_PUSH_MAX_EVENT_BYTES: String(MAX_EVENT_BYTES),
      GATEWAY_DOWNSTREAM_ROUTES: `echo.=127.0.0.1:${downstream.port}`,
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

async function activeDevice(userId: string, label = 'ds'): Promise<Device> {
  const device = newDevice(userId, label);
  await writeSession(raw, device, 'active');
  return device;
}

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

const entry = (userId: string, payload: Buffer | string, deviceSessionId?: string) => ({
  user_id: userId,
  ...(deviceSessionId === undefined ? {} : { device_session_id: deviceSessionId }),
  event_type: 'abuse.event',
  payload_base64: Buffer.from(payload).toString('base64'),
});

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
    const delta = (name: string) => metricValue(after, name, { stream: 'client_events' }) - metricValue(before, name, { stream: 'client_events' });
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
      metricValue(after, 'gateway_stream_entries_malformed_total', { stream: 'client_events' }) -
        metricValue(before, 'gateway_stream_entries_malformed_total', { stream: 'client_events' }),
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
      metricValue(after, 'gateway_stream_entries_malformed_total', { stream: 'session_events' }) -
        metricValue(before, 'gateway_stream_entries_malformed_total', { stream: 'session_events' }),
    ).toBe(1);
    expect(metricValue(after, 'gateway_push_streams_closed_total', { reason: 'revoked' }) - metricValue(before, 'gateway_push_streams_closed_total', { reason: 'revoked' })).toBe(1);
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
    expect(metricValue(after, 'gateway_push_streams_closed_total', { reason: 'replaced' }) - metricValue(before, 'gateway_push_streams_closed_total', { reason: 'replaced' })).toBe(96);
    // The bound: 4 streams of the storm session (plus the bystander) are open.
    expect(metricValue(after, 'gateway_push_streams_active') - metricValue(before, 'gateway_push_streams_active')).toBe(4);
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
    expect(metricValue(after, 'gateway_push_streams_closed_total', { reason: 'overflow' }) - metricValue(before, 'gateway_push_streams_closed_total', { reason: 'overflow' })).toBe(20);
    console.info(`[abuse] RSS growth with 20 stalled streams and 40 x 1 MiB events: ${rssGrowth.toFixed(1)} MiB`);
    // Unbounded, each stalled stream held all 40 MiB of events plus their wire copies.
    expect(rssGrowth).toBeLessThan(300);
    reader.cancel();
  }, 90_000);
});

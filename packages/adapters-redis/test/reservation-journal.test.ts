import { startRedisServer, type RedisServerHandle } from '@edge-gateway/test-utils';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectAndPing, RedisRateLimiter, RedisReplayStore, type RedisClient } from '../src/index.js';
import { clientFor, MetricsHarness, recordingLogger, unique } from './helpers.js';

let server: RedisServerHandle;
let client: RedisClient;
let admin: RedisClient;
const keyPrefix = 'journal:';

beforeAll(async () => {
  server = await startRedisServer();
  client = clientFor(server, { commandTimeoutMs: 1000 });
  admin = clientFor(server, { commandTimeoutMs: 2000 });
  await connectAndPing(client, 5000);
  await connectAndPing(admin, 5000);
});

afterAll(async () => {
  client?.destroy();
  admin?.destroy();
  await server?.stop();
});

const replayKey = (ds: string, req: string) => `${keyPrefix}replay:${ds}/${req}`;

describe('the journal of confirmed reservations (SPEC §5.2): a failover that loses them does not make a replay run', () => {
  it('a reservation the master lost is still a replay here, and reassertRecent writes it back with the time it had left, for every gateway', async () => {
    const metrics = new MetricsHarness();
    const logger = recordingLogger();
    const store = new RedisReplayStore(client, { keyPrefix, metrics: metrics.metrics, logger });
    const other = new RedisReplayStore(client, { keyPrefix, journal: { maxEntries: 0 } });
    const ds = unique('ds');
    const ids = ['r1', 'r2', 'r3'];
    for (const id of ids) expect(await store.reserve(ds, id, 60_000)).toBe('reserved');
    expect(store.journalSize).toBe(3);
    // An earlier reservation that is still on the master is left alone.
    const kept = replayKey(ds, 'r1');
    // The failover loses the newest two (a master that never had them).
    await admin.command(['DEL', replayKey(ds, 'r2'), replayKey(ds, 'r3')]);
    // Without a journal a replay now runs: the control.
    expect(await other.reserve(ds, 'r2', 60_000)).toBe('reserved');
    await admin.command(['DEL', replayKey(ds, 'r2')]);
    // With it, this process answers the replay without asking Redis.
    expect(await store.reserve(ds, 'r2', 60_000)).toBe('duplicate');
    expect(await admin.command(['EXISTS', replayKey(ds, 'r2')])).toBe(0);

    await store.reassertRecent('redis master changed');
    for (const id of ids) expect(await admin.command(['EXISTS', replayKey(ds, id)])).toBe(1);
    const ttl = Number(await admin.command(['PTTL', replayKey(ds, 'r3')]));
    expect(ttl).toBeGreaterThan(50_000);
    expect(ttl).toBeLessThanOrEqual(60_000);
    expect(Number(await admin.command(['PTTL', kept]))).toBeLessThanOrEqual(60_000);
    // Every other gateway now refuses the replays too.
    for (const id of ids) expect(await other.reserve(ds, id, 60_000)).toBe('duplicate');
    expect(await metrics.value('gateway_replay_reservations_reasserted_total')).toBe(2);
    expect(logger.lines.filter((l) => l.message === 'replay reservations re-asserted: the master lacked them (lost in a failover)')).toEqual([
      expect.objectContaining({ level: 'warn', fields: expect.objectContaining({ reason: 'redis master changed', checked: 3, count: 2 }) }),
    ]);

    // A master that lost nothing: nothing written, one info line.
    await store.reassertRecent('redis master changed');
    expect(await metrics.value('gateway_replay_reservations_reasserted_total')).toBe(2);
    expect(logger.lines.at(-1)).toMatchObject({ level: 'info', message: 'replay reservations checked on the new master: none lost' });
  });

  it('a released reservation (its command never ran) leaves the journal: the request id may be used again, and is not re-asserted', async () => {
    const store = new RedisReplayStore(client, { keyPrefix });
    const ds = unique('ds');
    expect(await store.reserve(ds, 'r1', 60_000)).toBe('reserved');
    await store.release(ds, 'r1');
    expect(await store.reserve(ds, 'r1', 60_000)).toBe('reserved');
    await store.release(ds, 'r1');
    await store.reassertRecent('test');
    expect(await admin.command(['EXISTS', replayKey(ds, 'r1')])).toBe(0);
  });

  it('retries the writes while the master does not answer, and finishes once it does', async () => {
    const metrics = new MetricsHarness();
    const store = new RedisReplayStore(client, { keyPrefix, metrics: metrics.metrics });
    const ds = unique('ds');
    expect(await store.reserve(ds, 'r1', 60_000)).toBe('reserved');
    await admin.command(['DEL', replayKey(ds, 'r1')]);
    // Writes refused (as on a master that is not ready): the round keeps trying.
    await admin.command(['CONFIG', 'SET', 'maxmemory', '1']);
    const done = store.reassertRecent('redis master changed');
    let finished = false;
    void done.then(() => (finished = true));
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(finished).toBe(false);
    await admin.command(['CONFIG', 'SET', 'maxmemory', '0']);
    await done;
    expect(await admin.command(['EXISTS', replayKey(ds, 'r1')])).toBe(1);
    expect(await metrics.value('gateway_replay_reservations_reasserted_total')).toBe(1);
  });

  it('the rate limiter\'s reservations (GATEWAY_RATE_LIMIT_STORE=redis) are journaled and re-asserted the same way', async () => {
    const store = new RedisReplayStore(client, { keyPrefix });
    const limiter = new RedisRateLimiter(client, { keyPrefix, reservations: store });
    const subject = { deviceSessionId: unique('ds'), userId: 'u-journal' };
    const buckets = [{ rule: 'session=100/s:100', subject: subject.deviceSessionId, intervalMs: 10, burst: 100 }];
    expect(await limiter.acquireAndReserve(buckets, subject, 'r1', 60_000)).toEqual({ admitted: true, reservation: 'reserved' });
    const key = limiter.reservationKey(subject, 'r1');
    await admin.command(['DEL', key]);
    expect(await limiter.acquireAndReserve(buckets, subject, 'r1', 60_000)).toEqual({ admitted: true, reservation: 'duplicate' });
    await store.reassertRecent('redis master changed');
    expect(await admin.command(['EXISTS', key])).toBe(1);
    // A released one is forgotten.
    await limiter.releaseReservation(subject, 'r1');
    expect(await limiter.acquireAndReserve(buckets, subject, 'r1', 60_000)).toEqual({ admitted: true, reservation: 'reserved' });
  });
});

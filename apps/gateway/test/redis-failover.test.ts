/**
 * Redis high availability (issue 13, SPEC §5.6): the BUILT binary on a master, a replica and
 * three Sentinels (all with passwords) on loopback. The tests run in order on one topology;
 * each leaves it with a master and a linked replica. Every loop is bounded, every process is
 * stopped by its own handle.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { redisCommand, startSentinelTopology, waitFor, type SentinelTopology } from '@edge-gateway/test-utils';
import type { GatewayClient } from '@edge-gateway/client';
import { runCli } from '@edge-gateway/test-utils/entry-process';
import { GatewayProcess, gatewayEnv, writeSignerKey } from '@edge-gateway/test-utils/gateway-process';
import { CommandLoad, connectMaster, sentinelEnv, watchSwitchMaster } from './failover-support.js';
import { StreamWatcher, isolatedClient, scrape } from './drill-support.js';
import { EchoDownstream, newDevice, publishEvent, writeSession, type Device } from '@edge-gateway/test-utils/system-support';

let topo: SentinelTopology;
let downstream: EchoDownstream;
let signer: ReturnType<typeof writeSignerKey>;
let gateway: GatewayProcess;
let addresses: Awaited<ReturnType<GatewayProcess['started']>>;
const clients: GatewayClient[] = [];
const watchers: StreamWatcher[] = [];

const COMMAND_TIMEOUT_MS = 500;
const env = () =>
  gatewayEnv({ port: 0, password: topo.password }, signer.path, {
    ...sentinelEnv(topo),
    GATEWAY_ADMIN_HTTP_ADDR: '127.0.0.1:0',
    GATEWAY_REDIS_COMMAND_TIMEOUT: `${COMMAND_TIMEOUT_MS}ms`,
    // One replica: reservations are not waited for, as before issue 21 (after a SIGKILL the
    // promoted master has no replica until the old one rejoins). The default (a replica must
    // acknowledge) is proven on two replicas in replay-durability.test.ts.
    GATEWAY_REDIS_REPLAY_MIN_REPLICAS: '0',
    // The client-events reader on the replica (the default is the master): the replica
    // watchdog, the fallback and divergence after a replica cut off are what this file watches.
    GATEWAY_REDIS_CLIENT_EVENTS_READS: 'replica',
    GATEWAY_SHUTDOWN_TIMEOUT: '5s',
    GATEWAY_DOWNSTREAM_ROUTES: `echo.=127.0.0.1:${downstream.port}`,
  });

beforeAll(async () => {
  topo = await startSentinelTopology({ sentinelPassword: 'sentinel-pw' });
  downstream = await new EchoDownstream().start();
  signer = writeSignerKey();
  gateway = new GatewayProcess(env());
  addresses = await gateway.started();
});

afterAll(async () => {
  for (const watcher of watchers) watcher.cancel();
  for (const client of clients) client.close();
  await gateway?.stop();
  downstream?.stop();
  await topo?.stop();
});

/**
 * An active device and its client: record + snapshot written to the current master and
 * acknowledged by a replica (SPEC §5.1), so a failover right after cannot lose the session.
 */
async function device(userId: string): Promise<{ device: Device; client: GatewayClient }> {
  const d = newDevice(userId, 'ha');
  const master = await connectMaster(topo);
  try {
    await writeSession(master, d, 'active', { durable: true });
  } finally {
    await master.quit();
  }
  const client = isolatedClient(d, addresses.grpc, signer.publicKeyRaw);
  clients.push(client);
  return { device: d, client };
}

function watch(client: GatewayClient, options: { resumeAfterEventId?: string } = {}): StreamWatcher {
  const watcher = new StreamWatcher(client, options);
  watchers.push(watcher);
  return watcher;
}

/** Publishes `count` events for `userId` on the current master; returns their ids. */
async function publish(userId: string, count: number, label: string): Promise<string[]> {
  const master = await connectMaster(topo);
  try {
    const ids: string[] = [];
    for (let i = 0; i < count; i++) ids.push(await publishEvent(master, { userId, eventType: 'ha.test', payload: Buffer.from(`${label}-${i}`) }));
    return ids;
  } finally {
    await master.quit();
  }
}

const replicaReaderOn = async (port: number): Promise<boolean> =>
  String(await redisCommand('127.0.0.1', port, topo.password, ['CLIENT', 'LIST'])).includes('name=edge-gateway:replica:stream');

describe('Redis Sentinel topology (SPEC §5.6)', () => {
  it('starts on the master the Sentinels name, reads client events on the replica, and doctor shows the topology', async () => {
    const master = await topo.master();
    const connected = await gateway.waitForLog('redis connected');
    expect(connected).toMatchObject({ address: `127.0.0.1:${master.port}`, topology: 'sentinel' });
    const replica = (await topo.replicaNodes())[0];
    if (replica === undefined) throw new Error('no replica');
    await waitFor(() => replicaReaderOn(replica.port), { message: 'client-events reader on the replica', timeoutMs: 10_000 });

    const { device: d, client } = await device('u-doctor');
    const watcher = watch(client);
    await watcher.waitForCount(1);
    const ids = await publish(d.userId, 2, 'replica');
    await watcher.waitForCount(3);
    expect(watcher.clientEventIds).toEqual(ids);

    const result = await runCli(['doctor'], env());
    const out = result.stdout.split('\n');
    expect(out).toContain(`✓ redis: master 127.0.0.1:${master.port}: PONG (master "${topo.masterName}")`);
    expect(out.some((l) => l.startsWith(`✓ redis: replica 127.0.0.1:${replica.port}: replica of 127.0.0.1:${master.port}`))).toBe(true);
    for (const sentinel of topo.sentinels) {
      expect(out).toContain(`✓ redis: sentinel 127.0.0.1:${sentinel.port}: reports master 127.0.0.1:${master.port}`);
    }
    expect(result.stdout).not.toContain(topo.password);
    expect(result.stdout).not.toContain('sentinel-pw');
  });

  it('GATEWAY_REDIS_SESSION_READS=replica: lookups on the replica, retried on the master when the replica lacks the record', async () => {
    const replicaReads = new GatewayProcess({ ...env(), GATEWAY_REDIS_SESSION_READS: 'replica' });
    try {
      const started = await replicaReads.started();
      const replica = (await topo.replicaNodes())[0];
      if (replica === undefined) throw new Error('no replica');
      await waitFor(() => replicaReaderOn(replica.port), { message: 'second gateway sees the replica', timeoutMs: 10_000 });
      const hgetalls = async (): Promise<number> =>
        Number(/cmdstat_hgetall:calls=(\d+)/.exec(String(await redisCommand('127.0.0.1', replica.port, topo.password, ['INFO', 'commandstats'])))?.[1] ?? 0);
      /** A session record on the master only (no snapshot, so nothing is cached). */
      const recordOnly = async (userId: string): Promise<Device> => {
        const d = newDevice(userId, 'reads');
        const master = await connectMaster(topo);
        try {
          await master.hSet(`gateway:session:${d.deviceSessionId}`, { device_session_id: d.deviceSessionId, user_id: d.userId, status: 'active', client_public_key: d.publicKeyBase64 });
        } finally {
          await master.quit();
        }
        return d;
      };
      const run = (d: Device) => {
        const c = isolatedClient(d, started.grpc, signer.publicKeyRaw);
        clients.push(c);
        return c.execute('echo.ping', Buffer.from('reads'), { timeoutMs: 5000 });
      };

      const replicated = await recordOnly('u-reads-1');
      await waitFor(async () => String(await redisCommand('127.0.0.1', replica.port, topo.password, ['EXISTS', `gateway:session:${replicated.deviceSessionId}`])) === '1', {
        message: 'record replicated',
      });
      const before = await hgetalls();
      await expect(run(replicated)).resolves.toMatchObject({ resultCode: 'ok' });
      expect(await hgetalls()).toBeGreaterThan(before);

      // Cut the replica off, so a new record is on the master only: found there after the miss.
      await redisCommand('127.0.0.1', replica.port, topo.password, ['CONFIG', 'SET', 'masterauth', 'wrong-password']);
      await redisCommand('127.0.0.1', replica.port, topo.password, ['CLIENT', 'KILL', 'TYPE', 'master']);
      try {
        const fresh = await recordOnly('u-reads-2');
        expect(String(await redisCommand('127.0.0.1', replica.port, topo.password, ['EXISTS', `gateway:session:${fresh.deviceSessionId}`]))).toBe('0');
        const missesBefore = await hgetalls();
        await expect(run(fresh)).resolves.toMatchObject({ resultCode: 'ok' });
        expect(await hgetalls()).toBeGreaterThan(missesBefore);
      } finally {
        await redisCommand('127.0.0.1', replica.port, topo.password, ['CONFIG', 'SET', 'masterauth', topo.password]);
        await topo.waitForReplicaLink(replica);
      }
    } finally {
      await replicaReads.stop();
    }
  }, 60_000);

  it('GATEWAY_REDIS_CLIENT_EVENTS_READS=master, the default: the reader stays on the master, so an event the master acknowledged while its replica is frozen reaches the stream at once', async () => {
    const { GATEWAY_REDIS_CLIENT_EVENTS_READS: _replica, ...defaults } = env();
    const second = new GatewayProcess(defaults);
    try {
      const secondAddresses = await second.started();
      const reader = await second.waitForLog((l) => l.message === 'stream subscriber started' && l['stream_key'] === 'gateway:client-events');
      expect(reader['read_from']).toBe('master');
      const { device: d } = await device('u-master-reads');
      const client = isolatedClient(d, secondAddresses.grpc, signer.publicKeyRaw);
      clients.push(client);
      const watcher = watch(client);
      await watcher.waitForCount(1);
      const replica = (await topo.replicaNodes())[0];
      if (replica === undefined) throw new Error('no replica');
      // Frozen: a replica-side reader would see nothing until its watchdog gave up on it (2 s
      // rounds); a master that died now would take the event with it, never seen, never told.
      replica.pause();
      try {
        const published = performance.now();
        const ids = await publish(d.userId, 3, 'master-reads');
        await watcher.waitForCount(1 + ids.length, 1500);
        expect(watcher.clientEventIds).toEqual(ids);
        expect(performance.now() - published).toBeLessThan(1500);
      } finally {
        replica.resume();
      }
      await topo.waitForReplicaLink(replica);
    } finally {
      await second.stop();
    }
  }, 60_000);

  it('replica down: client-events reads fall back to the master and never stop', async () => {
    const { device: d, client } = await device('u-replica-down');
    const watcher = watch(client);
    await watcher.waitForCount(1);
    const replica = (await topo.replicaNodes())[0];
    if (replica === undefined) throw new Error('no replica');
    await replica.stop();
    const ids = await publish(d.userId, 5, 'fallback');
    await watcher.waitForCount(1 + ids.length, 15_000);
    expect(watcher.clientEventIds).toEqual(ids);
    await replica.restart();
    await topo.waitForReplicaLink(replica);
    await waitFor(() => replicaReaderOn(replica.port), { message: 'reader back on the replica', timeoutMs: 30_000 });
    expect(watcher.ended).toBe(false);
  }, 60_000);

  it('events publish --durable: acknowledged by the replica; exit 3 (published, not replicated) while the replica is cut off', async () => {
    const { client } = await device('u-durable');
    const watcher = watch(client);
    await watcher.waitForCount(1);
    const replica = (await topo.replicaNodes())[0];
    if (replica === undefined) throw new Error('no replica');
    const publish = (label: string, extra: string[] = []) =>
      runCli(['events', 'publish', '--user', 'u-durable', '--type', 'ha.test', '--payload', label, '--durable', ...extra], env());
    const acknowledged = await publish('replicated');
    expect(acknowledged.stderr).toBe('');
    expect(acknowledged.code).toBe(0);
    const ackedId = /as (\d+-\d+):/.exec(acknowledged.stdout)?.[1] ?? '';
    expect(acknowledged.stdout).toContain(`✓ replicated: 1 replica(s) acknowledged event ${ackedId} (WAIT 1 1000)`);
    // Acknowledged means there: the replica holds it.
    expect(String(await redisCommand('127.0.0.1', replica.port, topo.password, ['XRANGE', 'gateway:client-events', ackedId, ackedId]))).toContain(ackedId);

    await redisCommand('127.0.0.1', replica.port, topo.password, ['CONFIG', 'SET', 'masterauth', 'wrong-password']);
    await redisCommand('127.0.0.1', replica.port, topo.password, ['CLIENT', 'KILL', 'TYPE', 'master']);
    try {
      const alone = await publish('master-only', ['--wait', '300ms']);
      expect(alone.code).toBe(3);
      const aloneId = /as (\d+-\d+):/.exec(alone.stdout)?.[1] ?? '';
      expect(alone.stdout).toContain(
        `! not replicated: no replica acknowledged event ${aloneId} within 300ms; it is on the master only: a failover now would lose it; publishing it again adds it twice`,
      );
      // Published all the same: the open stream gets both.
      await watcher.waitForCount(3, 20_000);
      expect(watcher.clientEventIds).toEqual([ackedId, aloneId]);
    } finally {
      await redisCommand('127.0.0.1', replica.port, topo.password, ['CONFIG', 'SET', 'masterauth', topo.password]);
      await topo.waitForReplicaLink(replica);
    }
  }, 60_000);

  it('SENTINEL FAILOVER under command load with open streams: UNAVAILABLE only, success after the announcement, every later event once and in order', async () => {
    const { device: d, client } = await device('u-failover');
    const watcher = watch(client);
    await watcher.waitForCount(1);
    const before = await publish(d.userId, 3, 'before');
    await watcher.waitForCount(1 + before.length);
    const load = new CommandLoad(client);
    try {
      await waitFor(() => load.outcomes.some((o) => o.code === 'OK'), { message: 'load running' });
      const switches = await watchSwitchMaster(topo);
      let announced: number;
      try {
        const promoted = await topo.failover();
        announced = await switches.announced(promoted.port);
        await gateway.waitForLog((l) => l.message === 'redis master changed' && l['to'] === `127.0.0.1:${promoted.port}`);
      } finally {
        await switches.close();
      }
      const success = await waitFor(() => load.firstSuccessAfter(announced), { message: 'a command succeeds after the announcement', timeoutMs: 10_000 });
      // SPEC §5.6: within 2 s of +switch-master.
      expect((success?.endedAt ?? Infinity) - announced).toBeLessThanOrEqual(2000);
      const after = await publish(d.userId, 20, 'after');
      await watcher.waitForCount(1 + before.length + after.length, 15_000);
      // Whatever arrived in between (old-master writes are the test's own: none here), the
      // events written after the announcement are each there once, in order, at the end.
      expect(watcher.clientEventIds.slice(-after.length)).toEqual(after);
      expect(new Set(watcher.clientEventIds).size).toBe(watcher.clientEventIds.length);
      expect(watcher.ended).toBe(false);
    } finally {
      await load.stop();
    }
    const failures = load.outcomes.filter((o) => o.code !== 'OK');
    expect(failures.filter((o) => o.code !== 'UNAVAILABLE')).toEqual([]);
    expect(load.outcomes.filter((o) => o.code === 'OK').length).toBeGreaterThan(0);
    // The old master is demoted by Sentinel: wait for its link so the next test has a replica.
    for (const replica of await topo.replicaNodes()) await topo.waitForReplicaLink(replica);
  }, 60_000);

  it('SIGKILL of the master: commands fail UNAVAILABLE within the command timeout, streams stay open, delivery resumes on the new master', async () => {
    const { device: d, client } = await device('u-kill');
    const watcher = watch(client);
    await watcher.waitForCount(1);
    const old = await topo.masterNode();
    await old.kill();
    const failed = await waitFor(
      async () => {
        const started = performance.now();
        try {
          await client.execute('echo.ping', Buffer.from('down'), { timeoutMs: 5000 });
          return undefined;
        } catch (error) {
          return { error: error as { codeName?: string; details?: string }, ms: performance.now() - started };
        }
      },
      { message: 'a command fails while the master is down', timeoutMs: 5000 },
    );
    expect(failed?.error.codeName).toBe('UNAVAILABLE');
    expect(failed?.ms).toBeLessThan(COMMAND_TIMEOUT_MS + 2000);
    const promoted = await topo.waitForNewMaster(old.port);
    await gateway.waitForLog((l) => l.message === 'redis master changed' && l['to'] === `127.0.0.1:${promoted.port}`);
    await waitFor(async () => (await client.execute('echo.ping', Buffer.from('up'), { timeoutMs: 3000 })).resultCode === 'ok', {
      message: 'commands succeed on the new master',
      timeoutMs: 10_000,
    });
    const ids = await publish(d.userId, 5, 'killed');
    await watcher.waitForCount(1 + ids.length, 15_000);
    expect(watcher.clientEventIds).toEqual(ids);
    expect(watcher.ended).toBe(false);
    await topo.rejoinAsReplica(old, 30_000);
  }, 60_000);

  it('divergence: events the old master acknowledged but lost are counted and logged, new lower ids are delivered, a resume after a lost id is incomplete', async () => {
    const { device: d, client } = await device('u-diverge');
    const watcher = watch(client);
    // A user with a lost entry for another of its sessions, and a user with none.
    const other = watch((await device('u-diverge-other')).client);
    const untouched = watch((await device('u-diverge-untouched')).client);
    for (const w of [watcher, other, untouched]) await w.waitForCount(1);
    const stream = 'gateway:client-events';
    const old = await topo.masterNode();
    const replica = (await topo.replicaNodes())[0];
    if (replica === undefined) throw new Error('no replica');
    await waitFor(() => replicaReaderOn(replica.port), { message: 'client-events reader on the replica', timeoutMs: 20_000 });
    const master = await connectMaster(topo);
    const base = Date.now() + 60_000;
    const id = (seq: number) => `${base}-${seq}`;
    const add = (redis: typeof master, seq: number, label: string, userId = d.userId, deviceSessionId?: string) =>
      redis.xAdd(stream, id(seq), {
        user_id: userId,
        event_type: 'ha.test',
        payload_base64: Buffer.from(label).toString('base64'),
        ...(deviceSessionId === undefined ? {} : { device_session_id: deviceSessionId }),
      });
    for (const seq of [1, 2]) await add(master, seq, `common-${seq}`);
    await watcher.waitForCount(3);
    await waitFor(async () => String(await redisCommand('127.0.0.1', replica.port, topo.password, ['XRANGE', stream, id(2), id(2)])).includes(id(2)), {
      message: 'common entries replicated',
    });
    // Cut the replica off: it can no longer authenticate to the master.
    await redisCommand('127.0.0.1', replica.port, topo.password, ['CONFIG', 'SET', 'masterauth', 'wrong-password']);
    await redisCommand('127.0.0.1', replica.port, topo.password, ['CLIENT', 'KILL', 'TYPE', 'master']);
    const reconnects = await scrape(addresses.adminHttp ?? '', 'gateway_stream_subscriber_reconnects_total', { stream: 'client_events' });
    for (const seq of [3, 4, 5]) await add(master, seq, `ghost-${seq}`);
    await add(master, 6, 'ghost-other', 'u-diverge-other', 'ds-elsewhere');
    await master.quit();
    // The replica reports its link down: the watchdog moves the reader to the master at its next
    // round (not after two rounds of the master being ahead), so the replica is promoted below:
    // Sentinel skips a replica cut off for more than 10 × down-after-milliseconds (here 10 s).
    await gateway.waitForLog((l) => l.message === 'stream subscriber moved; reconnecting' && String(l['reason']).includes('lost its link to the master'));
    await watcher.waitForCount(6, 20_000);
    expect(await scrape(addresses.adminHttp ?? '', 'gateway_stream_subscriber_reconnects_total', { stream: 'client_events' })).toBeGreaterThan(reconnects);

    await old.kill();
    const promoted = await topo.waitForNewMaster(old.port);
    await redisCommand('127.0.0.1', promoted.port, topo.password, ['CONFIG', 'SET', 'masterauth', topo.password]);
    await gateway.waitForLog((l) => l.message === 'redis master changed' && l['to'] === `127.0.0.1:${promoted.port}`);
    const fresh = await connectMaster(topo);
    try {
      for (const seq of [3, 4]) await add(fresh, seq, `new-${seq}`);
      await add(fresh, 5, 'new-untouched', 'u-diverge-untouched');
    } finally {
      await fresh.quit();
    }
    // The open stream was sent lost events: it is told (signed, before the new events).
    await watcher.waitForCount(9, 15_000);
    expect(watcher.events.map((e) => (e.eventType === 'ha.test' ? Buffer.from(e.payload).toString() : e.eventType))).toEqual([
      'gateway.server_time',
      'common-1',
      'common-2',
      'ghost-3',
      'ghost-4',
      'ghost-5',
      'gateway.resume_incomplete',
      'new-3',
      'new-4',
    ]);
    // The other user's stream was never sent its lost entry, but is told; the untouched user's is not.
    await other.waitForCount(2);
    await untouched.waitForCount(2);
    expect(other.events.map((e) => e.eventType)).toEqual(['gateway.server_time', 'gateway.resume_incomplete']);
    expect(untouched.events.map((e) => (e.eventType === 'ha.test' ? Buffer.from(e.payload).toString() : e.eventType))).toEqual(['gateway.server_time', 'new-untouched']);
    expect(await scrape(addresses.adminHttp ?? '', 'gateway_stream_history_diverged_total', { stream: 'client_events' })).toBe(1);
    expect(await scrape(addresses.adminHttp ?? '', 'gateway_push_loss_notices_total', { reason: 'history_diverged' })).toBe(2);
    const diverged = await gateway.waitForLog((l) => l.message.startsWith('stream history diverged'));
    expect(diverged).toMatchObject({ level: 'error', last_consumed: id(6), resume_after: id(2), lost_after: id(2), lost_up_to: id(6), users_with_lost_entries: 2, stream_key: stream });
    expect(await gateway.waitForLog((l) => l.message === 'push streams told of lost events')).toMatchObject({ level: 'warn', sessions_told: 2 });

    // Resumes after lost ids: one reused by the new master, one it never wrote.
    for (const lost of [id(4), id(5)]) {
      const resumed = watch(client, { resumeAfterEventId: lost });
      await resumed.waitForCount(2);
      expect(resumed.events.map((e) => e.eventType).slice(0, 2)).toEqual(['gateway.server_time', 'gateway.resume_incomplete']);
      resumed.cancel();
    }
    expect(await scrape(addresses.adminHttp ?? '', 'gateway_push_resumes_incomplete_total', { reason: 'diverged' })).toBe(2);
    expect(watcher.ended).toBe(false);
    await topo.rejoinAsReplica(old, 30_000);
  }, 90_000);
});

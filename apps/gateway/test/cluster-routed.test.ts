import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  RedisRoutedPublisher,
  connectAndPing,
  createRedisClusterClient,
  keySlot,
  routedUserKeys,
  type RedisClusterClient,
} from '@edge-gateway/adapters-redis';
import { compareStreamIds } from '@edge-gateway/core';
import { cutReplica, killMasterAndPromote, startRedisCluster, waitFor, waitForReplication, type RedisClusterHandle } from '@edge-gateway/test-utils';
import { GatewayProcess, REPO_ROOT, writeSignerKey } from '@edge-gateway/test-utils/gateway-process';
import { fastReconnectClient } from './push-resume-support.js';
import { EventCollector, newDevice, type Device } from '@edge-gateway/test-utils/system-support';

/**
 * Routed fan-out against the built binary on a 3-master Redis Cluster with one replica per
 * master (SPEC §9): delivery by user and session across partitions on every master and
 * across gateway processes, resume from a user's history, the CLI and the migration relay,
 * and master failover (CLUSTER FAILOVER, then SIGKILL) with no event lost that history kept.
 */

const INCOMPLETE = 'gateway.resume_incomplete';
let cluster: RedisClusterHandle;
let redis: RedisClusterClient;
let publisher: RedisRoutedPublisher;
let signer: ReturnType<typeof writeSignerKey>;
let gatewayA: GatewayProcess;
let gatewayB: GatewayProcess;
let grpcA = '';
let grpcB = '';
const collectors: Array<{ abort: AbortController; collector: EventCollector }> = [];
let seq = 0;

function routedEnv(extra: Record<string, string> = {}): Record<string, string> {
  return {
    GATEWAY_REDIS_CLUSTER_NODES: cluster.seeds,
    GATEWAY_REDIS_PASSWORD: cluster.password,
    GATEWAY_PUSH_FANOUT: 'routed',
    GATEWAY_RESPONSE_SIGNER_PRIVATE_KEY_PEM_PATH: signer.path,
    GATEWAY_PUBLIC_HTTP_ADDR: '127.0.0.1:0',
    GATEWAY_AUTHENTICATED_GRPC_ADDR: '127.0.0.1:0',
    GATEWAY_SHUTDOWN_TIMEOUT: '5s',
    ...extra,
  };
}

async function activeDevice(userId: string): Promise<Device> {
  const device = newDevice(userId);
  const fields = { device_session_id: device.deviceSessionId, user_id: userId, status: 'active', client_public_key: device.publicKeyBase64 };
  await redis.command(['HSET', `gateway:session:${device.deviceSessionId}`, ...Object.entries(fields).flat()]);
  return device;
}

/** A user id whose partition is served by the master on `port`. */
async function userOnMaster(port: number): Promise<string> {
  for (;;) {
    const user = `user-${process.pid}-${(seq += 1)}`;
    if ((await cluster.masterOf(keySlot(routedUserKeys('gateway:', user).channel))).port === port) return user;
  }
}

/**
 * Opens a stream and waits for its bootstrap (after which the gateway follows the user). An open
 * refused `UNAVAILABLE` `replay store not durable` (its reservation's WAIT got no replica
 * acknowledgement within GATEWAY_REDIS_REPLAY_WAIT_TIMEOUT, 50 ms: a replica starved of CPU on
 * a loaded host, or a master just rejoined) nothing ran and is opened again, as a device does;
 * at most 5 times.
 */
async function open(device: Device, grpc: string, resumeAfterEventId = ''): Promise<EventCollector> {
  for (let attempt = 1; ; attempt += 1) {
    const abort = new AbortController();
    const client = fastReconnectClient(device, grpc, signer.publicKeyRaw);
    const collector = new EventCollector(client.subscribe({ signal: abort.signal, ...(resumeAfterEventId === '' ? {} : { resumeAfterEventId }) }));
    collectors.push({ abort, collector });
    await waitFor(() => collector.events.length > 0 || collector.ended, { message: 'stream bootstrap or end' });
    if (collector.events.length > 0) return collector;
    abort.abort();
    const refusedNotDurable = collector.error instanceof Error && /UNAVAILABLE: replay store not durable/.test(String(collector.error));
    if (!refusedNotDurable || attempt === 5) await collector.waitForCount(1);
    await new Promise((resolve) => setTimeout(resolve, 100 * attempt));
  }
}

function close(collector: EventCollector): void {
  collectors.find((c) => c.collector === collector)?.abort.abort();
}

const publish = (userId: string, eventType: string, deviceSessionId?: string) =>
  publisher.publish({ userId, eventType, payload: Buffer.from(`${eventType} for ${userId}`), ...(deviceSessionId === undefined ? {} : { deviceSessionId }) });

beforeAll(async () => {
  cluster = await startRedisCluster({ replicasPerMaster: 1 });
  redis = createRedisClusterClient({ nodes: [{ host: cluster.host, port: cluster.nodes[0]!.port }], password: cluster.password, commandTimeoutMs: 2000 });
  await connectAndPing(redis, 5000);
  publisher = new RedisRoutedPublisher(redis);
  signer = writeSignerKey();
  gatewayA = new GatewayProcess(routedEnv());
  gatewayB = new GatewayProcess(routedEnv({ GATEWAY_PUSH_ROUTED_RELAY: 'true' }));
  [grpcA, grpcB] = (await Promise.all([gatewayA.started(), gatewayB.started()])).map((a) => a.grpc) as [string, string];
});

afterAll(async () => {
  for (const { abort } of collectors) abort.abort();
  await Promise.all([gatewayA?.stop(), gatewayB?.stop()]);
  redis?.destroy();
  await cluster?.stop();
});

describe('routed fan-out on a Redis Cluster (built binary)', () => {
  it('logs the topology and the fan-out mode at startup', () => {
    const connected = gatewayA.logs.find((l) => l.message === 'redis connected');
    expect(connected).toMatchObject({ cluster_nodes: cluster.seeds, push_fanout: 'routed' });
  });

  it('delivers to the right user and session only, for users on every master and on two gateway processes', async () => {
    const masters = (await cluster.topology()).filter((n) => n.role === 'master');
    const users = await Promise.all(masters.map((m) => userOnMaster(m.port)));
    // Each user: one session on gateway A, one on gateway B.
    const streams = [];
    for (const user of users) {
      const [onA, onB] = [await activeDevice(user), await activeDevice(user)];
      streams.push({ user, onA, onB, a: await open(onA, grpcA), b: await open(onB, grpcB) });
    }
    for (const s of streams) {
      await publish(s.user, 'chat.everyone');
      await publish(s.user, 'chat.only_b', s.onB.deviceSessionId);
    }
    for (const s of streams) {
      await s.a.waitForCount(2);
      await s.b.waitForCount(3);
    }
    // Let any stray delivery arrive before checking nothing else came.
    await publish(streams[0]!.user, 'chat.fence');
    await streams[0]!.a.waitForCount(3);
    for (const s of streams) {
      const types = (c: EventCollector) => c.clientEvents.map((e) => `${e.eventType}:${e.userId}:${e.deviceSessionId}`);
      const fence = s === streams[0] ? [`chat.fence:${s.user}:`] : [];
      expect(types(s.a)).toEqual([`chat.everyone:${s.user}:`, ...fence]);
      expect(types(s.b).slice(0, 2)).toEqual([`chat.everyone:${s.user}:`, `chat.only_b:${s.user}:${s.onB.deviceSessionId}`]);
    }
    for (const s of streams) {
      close(s.a);
      close(s.b);
    }
  });

  it('resumes from the user history: events published while away arrive first, without gaps or duplicates', async () => {
    const device = await activeDevice(`resumer-${process.pid}`);
    const first = await open(device, grpcA);
    const seen = await publish(device.userId, 'e.seen');
    await first.waitForCount(2);
    close(first);
    await first.waitForEnd();
    const missed = [await publish(device.userId, 'e.missed1'), await publish(device.userId, 'e.missed2')];
    const again = await open(device, grpcB, seen.id);
    await again.waitForCount(3);
    const live = await publish(device.userId, 'e.live');
    await again.waitForCount(4);
    expect(again.clientEventIds).toEqual([...missed.map((m) => m.id), live.id]);
    expect(again.count(INCOMPLETE)).toBe(0);
    close(again);
  });

  /** Runs the built CLI with the routed environment; its exit code and output. */
  async function cli(...args: string[]): Promise<{ code: number | null; out: string }> {
    const child = spawn(process.execPath, [join(REPO_ROOT, 'apps/cli/dist/cli.js'), ...args], {
      env: { PATH: process.env['PATH'] ?? '', ...routedEnv() },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
    return { code, out };
  }

  it('doctor finds the cluster masters and the fan-out mode', async () => {
    const { out } = await cli('doctor');
    expect(out).toMatch(/redis: PING.*PONG from the cluster/);
    expect(out).toMatch(/redis: topology.*cluster: 3 masters .*push fan-out routed/);
  });

  it('publishes with the CLI (events publish in routed mode)', async () => {
    const device = await activeDevice(`cli-user-${process.pid}`);
    const stream = await open(device, grpcA);
    const { code, out } = await cli('events', 'publish', '--user', device.userId, '--type', 'cli.hello', '--payload', 'hi');
    expect(code, out).toBe(0);
    expect(out).toMatch(/published \(routed\) to gateway:push:\{e\d+\.\d+\}:h:cli-user-\d+ as \d+-\d+ \(offset 1, epoch \d+-\d+\)/);
    await stream.waitForCount(2);
    expect(stream.clientEvents.map((e) => [e.eventType, Buffer.from(e.payload).toString()])).toEqual([['cli.hello', 'hi']]);
    // --durable: WAIT on the connection of the FCALL, the master of the user's partition.
    const durable = await cli('events', 'publish', '--user', device.userId, '--type', 'cli.hello', '--payload', 'again', '--durable');
    expect(durable.code, durable.out).toBe(0);
    const id = /as (\d+-\d+) \(offset 2/.exec(durable.out)?.[1];
    expect(durable.out).toContain(`✓ replicated: 1 replica(s) acknowledged event ${id} (WAIT 1 1000)`);
    await stream.waitForCount(3);
    close(stream);
  });

  it('sessions revoke on the cluster waits for the replicas of the record\'s and the stream\'s masters (SPEC §5.1)', async () => {
    const device = await activeDevice(`cli-revoke-${process.pid}`);
    const { code, out } = await cli('sessions', 'revoke', device.deviceSessionId);
    expect(code, out).toBe(0);
    expect(out).toContain(`✓ revoked snapshot appended to gateway:session-events`);
    expect(out).toContain('✓ replicated: 1 replica(s) acknowledged the revoked record and snapshot (WAIT 1 1000)');

    // The record's master waits for its own replica: with that one frozen, nothing acknowledges.
    const other = await activeDevice(`cli-revoke-frozen-${process.pid}`);
    const master = await cluster.masterOf(keySlot(`gateway:session:${other.deviceSessionId}`));
    const replica = (await cluster.topology()).find((n) => n.role === 'replica' && n.masterId === master.id);
    if (replica === undefined) throw new Error(`no replica of ${master.address}`);
    cluster.node(replica.port).pause();
    try {
      const frozen = await cli('sessions', 'revoke', other.deviceSessionId, '--wait', '300ms');
      expect(frozen.code, frozen.out).toBe(3);
      expect(frozen.out).toContain('! not replicated: no replica acknowledged the revoked record and snapshot within 300ms');
    } finally {
      cluster.node(replica.port).resume();
    }
    await cluster.waitUntilStable(30_000);
  });

  it('relays entries XADDed to the legacy client-events stream into the routed path, once', async () => {
    const device = await activeDevice(`legacy-${process.pid}`);
    const onA = await open(device, grpcA);
    const legacy = (type: string) =>
      redis.command(['XADD', 'gateway:client-events', '*', 'user_id', device.userId, 'event_type', type, 'payload_base64', Buffer.from('x').toString('base64')]);
    await legacy('legacy.one');
    await redis.command(['XADD', 'gateway:client-events', '*', 'user_id', device.userId, 'event_type', 'gateway.forged', 'payload_base64', '']);
    await legacy('legacy.two');
    await onA.waitForCount(3);
    await publish(device.userId, 'routed.fence');
    await onA.waitForCount(4);
    expect(onA.clientEvents.map((e) => e.eventType)).toEqual(['legacy.one', 'legacy.two', 'routed.fence']);
    const historyLength = Number(await redis.command(['XLEN', routedUserKeys('gateway:', device.userId).history]));
    expect(historyLength).toBe(3);
    close(onA);
  });

  describe('relay: no entry dropped (SPEC §9.5)', () => {
    /** A user whose partition master is not the one holding `streamKey`, and that master's port. */
    async function userAwayFrom(streamKey: string): Promise<{ user: string; port: number }> {
      const streamMaster = (await cluster.masterOf(keySlot(streamKey))).port;
      const port = (await cluster.topology()).find((n) => n.role === 'master' && n.port !== streamMaster)!.port;
      return { user: await userOnMaster(port), port };
    }

    it('retries an entry while the partition master refuses writes (maxmemory 1) and delivers it within 20 s of recovery', async () => {
      const { user, port } = await userAwayFrom('gateway:client-events');
      const device = await activeDevice(user);
      const stream = await open(device, grpcA);
      const logsBefore = gatewayB.logs.length;
      await cluster.command(port, ['CONFIG', 'SET', 'maxmemory', '1']);
      let recoveredAt = 0;
      try {
        for (const n of [1, 2]) {
          await redis.command(['XADD', 'gateway:client-events', '*', 'user_id', user, 'event_type', `legacy.held${n}`, 'payload_base64', '']);
        }
        await gatewayB.waitForLog((l) => l.message === 'routed relay publish failed; entry kept for retry' && gatewayB.logs.indexOf(l) >= logsBefore);
      } finally {
        await cluster.command(port, ['CONFIG', 'SET', 'maxmemory', '0']);
        recoveredAt = Date.now();
      }
      await stream.waitForCount(3, 20_000);
      const deliveredAfterMs = Date.now() - recoveredAt;
      expect(deliveredAfterMs).toBeLessThan(20_000);
      expect(stream.clientEvents.map((e) => e.eventType)).toEqual(['legacy.held1', 'legacy.held2']);
      // Logged once the partition's held entries are all published (the stream may see them first).
      await gatewayB.waitForLog((l) => l.message === 'routed relay publishing again' && gatewayB.logs.indexOf(l) >= logsBefore);
      const since = gatewayB.logs.slice(logsBefore);
      expect(since.filter((l) => l.message === 'routed relay publishing again')).toHaveLength(1);
      expect(since.filter((l) => /gave an entry up|refused; dropped/.test(String(l.message)))).toEqual([]);
      close(stream);
    });

    it('a relaying process killed while it holds an entry: another claims it after GATEWAY_PUSH_ROUTED_RELAY_CLAIM_IDLE and delivers it once', async () => {
      const legacy = `test:relay-claim:${process.pid}`;
      const { user, port } = await userAwayFrom(legacy);
      const device = await activeDevice(user);
      const stream = await open(device, grpcA);
      const relayEnv = routedEnv({
        GATEWAY_PUSH_ROUTED_RELAY: 'true',
        GATEWAY_CLIENT_EVENTS_REDIS_STREAM: legacy,
        GATEWAY_PUSH_ROUTED_RELAY_CLAIM_IDLE: '3s',
        GATEWAY_REDIS_COMMAND_TIMEOUT: '1s',
      });
      const doomed = new GatewayProcess(relayEnv);
      let heir: GatewayProcess | undefined;
      try {
        await doomed.started();
        await cluster.command(port, ['CONFIG', 'SET', 'maxmemory', '1']);
        try {
          await redis.command(['XADD', legacy, '*', 'user_id', user, 'event_type', 'legacy.orphan', 'payload_base64', '']);
          await doomed.waitForLog('routed relay publish failed; entry kept for retry');
          doomed.signal('SIGKILL');
          await doomed.exited;
        } finally {
          await cluster.command(port, ['CONFIG', 'SET', 'maxmemory', '0']);
        }
        const killedAt = Date.now();
        heir = new GatewayProcess(relayEnv);
        await heir.started();
        const claimed = await heir.waitForLog('routed relay claimed entries another consumer left pending', 20_000);
        expect(claimed).toMatchObject({ entries: 1, claim_idle_ms: 3000 });
        // Not before the entry was idle for the claim time (it was last refreshed before the kill).
        expect(Date.now() - killedAt).toBeGreaterThanOrEqual(3000 - 1000);
        await stream.waitForCount(2, 10_000);
        expect(stream.clientEvents.map((e) => e.eventType)).toEqual(['legacy.orphan']);
        await waitFor(async () => Number(((await redis.command(['XPENDING', legacy, 'gateway:routed-relay'])) as unknown[])[0]) === 0, {
          message: 'the claimed entry acknowledged',
        });
      } finally {
        await heir?.stop();
        if (doomed.running) await doomed.stop();
        close(stream);
      }
    });
  });

  it('the publish function the gateway loaded refuses bad calls and writes nothing; the mis-keyed publish reaches no stream', async () => {
    const [alice, bob] = [await activeDevice(`alice-${process.pid}`), await activeDevice(`bob-${process.pid}`)];
    const [onAlice, onBob] = [await open(alice, grpcA), await open(bob, grpcB)];
    const first = await publish(alice.userId, 'chat.first');
    await onAlice.waitForCount(2);
    const keys = routedUserKeys('gateway:', alice.userId);
    const state = async () => [
      await redis.command(['HGETALL', keys.meta]),
      await redis.command(['XRANGE', keys.history, '-', '+']),
      await redis.command(['EXISTS', routedUserKeys('gateway:', bob.userId).history]),
    ];
    const before = await state();
    const dropped = () => [gatewayA, gatewayB].map((g) => g.logs.filter((l) => l.message === 'malformed stream entry dropped').length);
    const droppedBefore = dropped();
    const payload = Buffer.from('x').toString('base64');
    // [argument named, the arguments after the three keys]
    const refusals: Array<[string, string[]]> = [
      ['keys', ['10', '60000', '1048576', bob.userId, '', 'chat.forged', payload]],
      ['maxlen', ['1e400', '60000', '1048576', alice.userId, '', 'chat.x', payload]],
      ['ttl_ms', ['10', 'nan', '1048576', alice.userId, '', 'chat.x', payload]],
      ['user_id', ['10', '60000', '1048576', `${alice.userId}\n`, '', 'chat.x', payload]],
      ['event_type', ['10', '60000', '1048576', alice.userId, '', 'gateway.resume_incomplete', '']],
      ['payload_base64', ['10', '60000', '1048576', alice.userId, '', 'chat.x', 'not base64!']],
      ['payload_base64', ['10', '60000', '1048576', alice.userId, '', 'chat.x', Buffer.alloc(3_000_000).toString('base64')]],
    ];
    for (const [argument, args] of refusals) {
      await expect(redis.command(['FCALL', 'edgegateway_publish_v2', '3', keys.history, keys.meta, keys.channel, ...args])).rejects.toThrow(
        new RegExp(`ERR invalid ${argument}: `),
      );
    }
    expect(await state()).toEqual(before);
    const fences = [await publish(bob.userId, 'chat.fence'), await publish(alice.userId, 'chat.fence')];
    await onBob.waitForCount(2);
    await onAlice.waitForCount(3);
    expect(onAlice.clientEvents.map((e) => [e.eventId, e.eventType, e.userId])).toEqual([
      [first.id, 'chat.first', alice.userId],
      [fences[1]!.id, 'chat.fence', alice.userId],
    ]);
    expect(onBob.clientEvents.map((e) => [e.eventId, e.eventType, e.userId])).toEqual([[fences[0]!.id, 'chat.fence', bob.userId]]);
    // Nothing reached a gateway to be dropped either.
    expect(dropped()).toEqual(droppedBefore);
    close(onAlice);
    close(onBob);
  });

  it('a revoked snapshot on the cluster\'s session-events stream closes the routed stream with FAILED_PRECONDITION', async () => {
    const device = await activeDevice(`revokee-${process.pid}`);
    const stream = await open(device, grpcB);
    const fields = { device_session_id: device.deviceSessionId, user_id: device.userId, status: 'revoked', client_public_key: device.publicKeyBase64, revoked_at_ms: String(Date.now()) };
    await redis.command(['HSET', `gateway:session:${device.deviceSessionId}`, ...Object.entries(fields).flat()]);
    await redis.command(['XADD', 'gateway:session-events', '*', ...Object.entries(fields).flat()]);
    const error = await stream.waitForEnd();
    expect(error).toMatchObject({ code: 9, details: 'device session is revoked' });
    // The user's channel is released once its last stream is gone.
    const { channel } = routedUserKeys('gateway:', device.userId);
    const master = await cluster.masterOf(keySlot(channel));
    await waitFor(async () => Number(((await cluster.command(master.port, ['PUBSUB', 'SHARDNUMSUB', channel])) as unknown[])[1]) === 0, {
      message: 'channel unsubscribed after the revoke',
    });
  });

  describe('stream fan-out on the cluster (GATEWAY_PUSH_FANOUT=stream)', () => {
    let gatewayC: GatewayProcess;
    let grpcC = '';
    const clientEvents = `test:cluster-client-events:${process.pid}`;
    beforeAll(async () => {
      gatewayC = new GatewayProcess({ ...routedEnv({ GATEWAY_PUSH_FANOUT: 'stream', GATEWAY_CLIENT_EVENTS_REDIS_STREAM: clientEvents }) });
      grpcC = (await gatewayC.started()).grpc;
    });
    afterAll(async () => {
      await gatewayC?.stop();
    });

    it('delivers entries XADDed to the client-events stream, to the right session only', async () => {
      const user = `streamer-${process.pid}`;
      const [one, two] = [await activeDevice(user), await activeDevice(user)];
      const [a, b] = [await open(one, grpcC), await open(two, grpcC)];
      const id1 = String(await redis.command(['XADD', clientEvents, '*', 'user_id', user, 'event_type', 'stream.all', 'payload_base64', '']));
      const id2 = String(await redis.command(['XADD', clientEvents, '*', 'user_id', user, 'device_session_id', two.deviceSessionId, 'event_type', 'stream.two', 'payload_base64', '']));
      await b.waitForCount(3);
      await a.waitForCount(2);
      expect(a.clientEventIds).toEqual([id1]);
      expect(b.clientEventIds).toEqual([id1, id2]);
      expect(gatewayC.logs.find((l) => l.message === 'redis connected')).toMatchObject({ topology: 'cluster', push_fanout: 'stream' });
      close(a);
      close(b);
    });
  });

  describe('master failover inside the cluster', () => {
    /** Publishes one event every few ms until stopped; remembers the ids Redis confirmed. */
    function continuousPublisher(userId: string) {
      const confirmed: string[] = [];
      let running = true;
      const done = (async () => {
        for (let n = 0; running; n++) {
          try {
            confirmed.push((await publish(userId, `tick.n${n}`)).id);
          } catch {
            // The partition's master is changing: the event was not confirmed; try the next.
          }
          await new Promise((resolve) => setTimeout(resolve, 10));
        }
      })();
      return {
        confirmed,
        stop: async () => {
          running = false;
          await done;
        },
      };
    }

    /** The confirmed events the history still holds (failover may lose unreplicated writes; they are gone for everyone). */
    async function keptIds(userId: string): Promise<string[]> {
      const reply = (await redis.command(['XRANGE', routedUserKeys('gateway:', userId).history, '-', '+'])) as unknown[];
      return reply.map((entry) => String((entry as unknown[])[0]));
    }

    for (const mode of ['CLUSTER FAILOVER', 'SIGKILL', 'SIGKILL after replica lag'] as const) {
      it(`${mode} of the user's master: every event the history kept is delivered, in order, to both gateways; events lost after delivery are told`, async () => {
        // The previous failover demoted a master: wait until it is linked as a replica again, and
        // has caught up (a replica still in its full resync acknowledges no WAIT, so opening a
        // stream, whose reservation waits for one, would fail 'replay store not durable').
        await cluster.waitUntilStable(30_000);
        const nodes = await cluster.topology();
        for (const m of nodes.filter((n) => n.role === 'master' && n.slots.length > 0)) {
          for (const r of nodes.filter((n) => n.role === 'replica' && n.masterId === m.id)) await waitForReplication(cluster, m.port, r.port, 30_000);
        }
        const user = `failover-${mode.replace(/\W+/g, '-').toLowerCase()}-${process.pid}`;
        const [dA, dB] = [await activeDevice(user), await activeDevice(user)];
        const [a, b] = [await open(dA, grpcA), await open(dB, grpcB)];
        const ticker = continuousPublisher(user);
        await waitFor(() => ticker.confirmed.length >= 5, { message: 'events before the failover' });
        const slot = keySlot(routedUserKeys('gateway:', user).channel);
        const master = await cluster.masterOf(slot);
        const replica = await waitFor(async () => (await cluster.topology()).find((n) => n.role === 'replica' && n.masterId === master.id && !n.failing), {
          timeoutMs: 10_000,
          message: `a replica of ${master.address}`,
        });
        if (replica === undefined) throw new Error(`no replica of ${master.address}`);
        if (mode === 'CLUSTER FAILOVER') {
          await cluster.command(replica.port, ['CLUSTER', 'FAILOVER']);
        } else if (mode === 'SIGKILL') {
          await cluster.node(master.port).kill();
        } else {
          // Events confirmed and delivered from now on never reach the replica.
          await cutReplica(cluster, master.port, replica.port);
          const cutAt = ticker.confirmed.length;
          await waitFor(() => ticker.confirmed.length >= cutAt + 3, { message: 'events confirmed after the replica was cut' });
          const lastLost = ticker.confirmed[ticker.confirmed.length - 1]!;
          for (const c of [a, b]) await waitFor(() => c.clientEventIds.includes(lastLost), { timeoutMs: 10_000, message: 'unreplicated events delivered live' });
          await killMasterAndPromote(cluster, master.port, replica.port, slot);
        }
        await waitFor(async () => (await cluster.masterOf(slot)).port === replica.port, {
          timeoutMs: 20_000,
          intervalMs: 100,
          message: 'replica promoted',
        });
        const promotedAt = ticker.confirmed.length;
        await waitFor(() => ticker.confirmed.length >= promotedAt + 5, { timeoutMs: 15_000, message: 'events after the failover' });
        await ticker.stop();
        const kept = await keptIds(user);
        const last = kept[kept.length - 1]!;
        for (const c of [a, b]) {
          await waitFor(() => c.clientEventIds.includes(last), { timeoutMs: 15_000, message: 'last kept event delivered' });
          const delivered = c.clientEventIds;
          // Nothing the history kept is missing, nothing is duplicated, order is the history's.
          expect(kept.filter((id) => !delivered.includes(id))).toEqual([]);
          expect(new Set(delivered).size).toBe(delivered.length);
          expect([...delivered].sort(compareStreamIds)).toEqual(delivered);
          if (mode === 'CLUSTER FAILOVER') expect(delivered).toEqual(kept);
          // A SIGKILLed master may have delivered writes its replica never got: the stream is
          // told once (SPEC §9.3), and only then.
          const lost = delivered.filter((id) => !kept.includes(id));
          if (mode === 'SIGKILL after replica lag') expect(lost.length).toBeGreaterThanOrEqual(3);
          await waitFor(() => c.count(INCOMPLETE) === (lost.length > 0 ? 1 : 0), { timeoutMs: 10_000, message: 'gateway.resume_incomplete exactly when delivered events were lost' });
          expect(c.count(INCOMPLETE)).toBe(lost.length > 0 ? 1 : 0);
        }
        close(a);
        close(b);
        if (mode !== 'CLUSTER FAILOVER') {
          await cluster.node(master.port).restart();
          await cluster.waitUntilStable(30_000);
        }
      });
    }

    it('a revocation whose record was lost with its master (the snapshot survived elsewhere) is written back by the gateways (SPEC §5.3, §9.4)', async () => {
      await cluster.waitUntilStable(30_000);
      const streamMaster = (await cluster.masterOf(keySlot('gateway:session-events'))).port;
      let device: Device;
      for (;;) {
        device = newDevice(`reassert-${process.pid}`);
        if ((await cluster.masterOf(keySlot(`gateway:session:${device.deviceSessionId}`))).port !== streamMaster) break;
      }
      const key = `gateway:session:${device.deviceSessionId}`;
      const slot = keySlot(key);
      const master = await cluster.masterOf(slot);
      const replica = (await cluster.topology()).find((n) => n.role === 'replica' && n.masterId === master.id && !n.failing);
      if (replica === undefined) throw new Error(`no replica of ${master.address}`);
      const fields = { device_session_id: device.deviceSessionId, user_id: device.userId, status: 'active', client_public_key: device.publicKeyBase64 };
      await redis.command(['HSET', key, ...Object.entries(fields).flat()]);
      await waitForReplication(cluster, master.port, replica.port);

      await cutReplica(cluster, master.port, replica.port);
      const revokedAt = String(Date.now());
      await redis.command(['HSET', key, 'status', 'revoked', 'revoked_at_ms', revokedAt]);
      await redis.command(['XADD', 'gateway:session-events', '*', ...Object.entries({ ...fields, status: 'revoked', revoked_at_ms: revokedAt }).flat()]);
      for (const g of [gatewayA, gatewayB]) await g.waitForLog((l) => l.message === 'device session revoked' && l['device_session_id'] === device.deviceSessionId);

      // Only lines logged from here on count (earlier failovers of this file logged their own).
      const gateways = [gatewayA, gatewayB];
      const seen = gateways.map((g) => g.logs.length);
      const since = () => gateways.flatMap((g, i) => g.logs.slice(seen[i]));
      await killMasterAndPromote(cluster, master.port, replica.port, slot);
      const line = await waitFor(() => since().find((l) => l.message === 'revocations re-asserted: the master lacked them (lost in a failover)'), {
        timeoutMs: 15_000,
        message: 'a gateway re-asserted the revocation',
      });
      expect(line).toMatchObject({ reason: 'cluster master changed', device_session_ids: [device.deviceSessionId] });
      const record = (await cluster.command(replica.port, ['HGETALL', key])) as string[];
      expect(Object.fromEntries(record.flatMap((v, i) => (i % 2 === 0 ? [[v, record[i + 1]]] : [])))).toMatchObject({ status: 'revoked', revoked_at_ms: revokedAt });
      // Both gateways saw this master change and checked after it; one wrote. A check can still be
      // running from an earlier change (the previous test's failover, seen late by a gateway whose
      // view refreshes on its own schedule): only a check logged after this change's line counts.
      const promoted = (to: unknown) => typeof to === 'string' && to.split(',').some((a) => a.endsWith(`:${replica.port}`)) && !to.split(',').some((a) => a.endsWith(`:${master.port}`));
      for (const [i, g] of gateways.entries()) {
        const changed = await waitFor(
          () => {
            const at = g.logs.findIndex((l, n) => n >= seen[i]! && l.message === 'redis cluster masters changed' && promoted(l['to']));
            return at >= 0 ? at : undefined;
          },
          { timeoutMs: 15_000, message: `gateway ${i} saw ${replica.port} replace ${master.port}` },
        );
        await waitFor(() => g.logs.slice(changed).some((l) => l.message === 'revocations checked against the master' && l['reason'] === 'cluster master changed'), {
          timeoutMs: 15_000,
          message: 'both gateways checked the revocations after the change',
        });
      }
      expect(since().filter((l) => l.message.startsWith('revocations re-asserted'))).toHaveLength(1);
      await cluster.node(master.port).restart();
      await cluster.waitUntilStable(30_000);
    });
  });
});

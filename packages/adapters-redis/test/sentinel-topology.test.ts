import { redisCommand, startSentinelTopology, waitFor, type SentinelTopology } from '@edge-gateway/test-utils';
import { createServer, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RedisEventHistory, RedisStreamSubscriber, SentinelRedisTopology, StreamContinuity, type RedisClient } from '../src/index.js';
import { MetricsHarness, RecordingHandler, recordingLogger, unique } from './helpers.js';

// One master, one replica and three Sentinels (with a password) for the whole file; the tests
// run in order and each leaves the topology with a master and a linked replica.
let topo: SentinelTopology;
let gateway: SentinelRedisTopology;
const harness = new MetricsHarness();
const logs = recordingLogger();

function newTopology(): SentinelRedisTopology {
  return new SentinelRedisTopology({
    // The first address is unreachable: discovery must go on to the next Sentinel.
    sentinels: [{ host: '127.0.0.1', port: 1 }, ...topo.sentinels.map((s) => ({ host: s.host, port: s.port }))],
    masterName: topo.masterName,
    sentinelPassword: topo.sentinelPassword,
    pollIntervalMs: 500,
    master: {
      password: topo.password,
      clientName: 'gw-test',
      commandTimeoutMs: 400,
      reconnect: { minDelayMs: 20, maxDelayMs: 200 },
      metrics: harness.metrics,
      logger: logs,
    },
  });
}

/** XADD with an explicit id (or `*`) on whatever the gateway's topology calls the master. */
const xadd = (client: RedisClient, stream: string, id: string, label: string, userId?: string): Promise<unknown> =>
  client.command(['XADD', stream, id, 'label', label, ...(userId === undefined ? [] : ['user_id', userId])]);

beforeAll(async () => {
  topo = await startSentinelTopology({ sentinelPassword: 'sentinel-secret' });
  gateway = newTopology();
  await gateway.connect(5000);
});

afterAll(async () => {
  await gateway?.close();
  await topo?.stop();
});

/** Waits until a client-events reader has its blocking read on the (first) replica; `onReplica` asks again. */
async function readerOnReplica() {
  const replica = (await topo.replicaNodes())[0];
  if (replica === undefined) throw new Error('no replica');
  const onReplica = async () => String(await redisCommand('127.0.0.1', replica.port, topo.password, ['CLIENT', 'LIST'])).includes('name=gw-test:replica:stream');
  await waitFor(onReplica, { message: 'blocking read on the replica' });
  return { replica, onReplica };
}

describe('SentinelRedisTopology (SPEC §5.6)', () => {
  it('discovers the master through the Sentinels (skipping an unreachable one) and the replica', async () => {
    const master = await topo.master();
    expect(gateway.master.address).toBe(`${master.host}:${master.port}`);
    await expect(gateway.master.command(['SET', unique('k'), '1'])).resolves.toBe('OK');
    const replica = (await topo.replicaNodes())[0];
    await waitFor(() => gateway.replicas().some((r) => r.port === replica?.port), { message: 'replica discovered' });
    const nodes = await gateway.describe();
    expect(nodes.filter((n) => n.role === 'sentinel' && n.reachable)).toHaveLength(3);
    expect(nodes.find((n) => n.role === 'sentinel' && !n.reachable)?.address).toBe('127.0.0.1:1');
    expect(nodes.find((n) => n.role === 'master')).toMatchObject({ address: `${master.host}:${master.port}`, reachable: true });
    expect(nodes.find((n) => n.role === 'replica')).toMatchObject({ address: `127.0.0.1:${replica?.port}`, reachable: true });
    expect(nodes.find((n) => n.role === 'replica')?.detail).toContain(`replica of 127.0.0.1:${master.port}, link connected`);
  });

  it('a Sentinel that accepts TCP and never answers (a stopped process) costs its own bound, not the startup budget', async () => {
    const held = new Set<Socket>();
    const silent = createServer((socket) => {
      held.add(socket);
      socket.resume();
      socket.on('error', () => {});
      socket.on('close', () => held.delete(socket));
    });
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const topology = new SentinelRedisTopology({
      sentinels: [{ host: '127.0.0.1', port: (silent.address() as { port: number }).port }, ...topo.sentinels.map((s) => ({ host: s.host, port: s.port }))],
      masterName: topo.masterName,
      sentinelPassword: topo.sentinelPassword,
      master: { password: topo.password, commandTimeoutMs: 400 },
    });
    try {
      // 5 s in all: the silent Sentinel would have held all of it before.
      await topology.connect(5000);
      expect(held.size).toBeGreaterThan(0);
      const master = await topo.master();
      expect(topology.master.address).toBe(`${master.host}:${master.port}`);
    } finally {
      await topology.close();
      silent.close();
    }
    await waitFor(() => held.size === 0, { timeoutMs: 5000, message: 'the silent Sentinel connection closed' });
  });

  it('fails startup naming the master when no Sentinel knows it', async () => {
    const other = new SentinelRedisTopology({
      sentinels: topo.sentinels.map((s) => ({ host: s.host, port: s.port })),
      masterName: 'no-such-master',
      sentinelPassword: topo.sentinelPassword,
      master: { password: topo.password, commandTimeoutMs: 400 },
    });
    await expect(other.connect(3000)).rejects.toThrow(/no Sentinel named the master "no-such-master".*does not know master "no-such-master"/);
    const wrong = new SentinelRedisTopology({
      sentinels: topo.sentinels.slice(0, 1).map((s) => ({ host: s.host, port: s.port })),
      masterName: topo.masterName,
      sentinelPassword: 'wrong',
      master: { password: topo.password, commandTimeoutMs: 400 },
    });
    await expect(wrong.connect(2000)).rejects.toMatchObject({ kind: 'auth' });
  });

  it('reads a stream on the replica, and on the master while the replica is down', async () => {
    const stream = unique('client-events');
    const handler = new RecordingHandler();
    const subscriber = new RedisStreamSubscriber({ topology: gateway, readFrom: 'replica', streamKey: stream, handler, blockMs: 500, metrics: harness.metrics });
    await subscriber.start();
    try {
      const { replica } = await readerOnReplica();
      const first = String(await xadd(gateway.master, stream, '*', 'a'));
      await waitFor(() => handler.ids.includes(first), { message: 'entry read from the replica' });

      const reconnects = await harness.value('gateway_stream_subscriber_reconnects_total', { stream: 'client_events' });
      await replica.stop();
      // Never stops: entries written while the replica is down arrive through the master.
      const during = [String(await xadd(gateway.master, stream, '*', 'b')), String(await xadd(gateway.master, stream, '*', 'c'))];
      await waitFor(() => during.every((id) => handler.ids.includes(id)), { message: 'entries read from the master', timeoutMs: 10_000 });
      expect(await harness.value('gateway_stream_subscriber_reconnects_total', { stream: 'client_events' })).toBeGreaterThan(reconnects);
      expect(handler.ids).toEqual([first, ...during]);

      await replica.restart();
      await topo.waitForReplicaLink(replica);
    } finally {
      await subscriber.stop();
    }
  });

  it('a reader on a replica the topology no longer lists (promoted, or gone) moves, though its connection still answers', async () => {
    const stream = unique('client-events');
    const handler = new RecordingHandler();
    // The topology as the gateway sees it, except that its replica list can be emptied at will
    // (as when a failover promotes the replica and the next poll drops it from the set).
    let hidden = false;
    const view = Object.create(gateway) as SentinelRedisTopology;
    view.replicas = () => (hidden ? [] : gateway.replicas());
    const subscriber = new RedisStreamSubscriber({ topology: view, readFrom: 'replica', streamKey: stream, handler, blockMs: 500, watchdogMs: 100, logger: recordingLogger() });
    await subscriber.start();
    try {
      const { onReplica } = await readerOnReplica();
      hidden = true;
      // Its link is up and it is not behind: only the topology's list tells the reader to go.
      await waitFor(async () => !(await onReplica()), { message: 'the reader left the replica', timeoutMs: 5000 });
      const next = String(await xadd(gateway.master, stream, '*', 'after'));
      await waitFor(() => handler.ids.includes(next), { message: 'entry read from the master' });
    } finally {
      await subscriber.stop();
    }
  });

  it('SENTINEL FAILOVER with a frozen master: timed-out commands never run later, streams follow the new master', async () => {
    const stream = unique('session-events');
    const handler = new RecordingHandler('session_events');
    const subscriber = new RedisStreamSubscriber({ topology: gateway, streamKey: stream, handler, blockMs: 500, metrics: harness.metrics });
    await subscriber.start();
    try {
      const before = String(await xadd(gateway.master, stream, '*', 'before'));
      await waitFor(() => handler.ids.includes(before), { message: 'entry before the failover' });
      const old = await topo.masterNode();
      // Frozen: commands are written to the socket and never answered, so each times out.
      old.pause();
      const keys = Array.from({ length: 20 }, (_, i) => unique(`reservation-${i}`));
      const outcomes = await Promise.allSettled(keys.map((key) => gateway.master.command(['SET', key, '1', 'NX', 'PX', '60000'])));
      expect(outcomes.every((o) => o.status === 'rejected')).toBe(true);
      const promoted = await topo.waitForNewMaster(old.port);
      // Unfrozen after the switch: the old master now reads the buffered SETs.
      old.resume();
      await waitFor(() => gateway.master.port === promoted.port, { message: 'client re-pointed at the new master', timeoutMs: 5000 });
      await waitFor(async () => (await gateway.master.command(['PING'])) === 'PONG', { message: 'commands succeed on the new master', timeoutMs: 5000 });
      await topo.waitForReplicaLink(old);
      for (const key of keys) expect(await gateway.master.command(['EXISTS', key])).toBe(0);

      const after: string[] = [];
      for (let i = 0; i < 5; i++) after.push(String(await xadd(gateway.master, stream, '*', `after-${i}`)));
      await waitFor(() => after.every((id) => handler.ids.includes(id)), { message: 'entries after the failover', timeoutMs: 10_000 });
      expect(handler.ids).toEqual([before, ...after]);
      // The reader reconnected (onReconnect: the session cache is cleared on it), told of the master change.
      expect(handler.reconnects).toBeGreaterThan(0);
      expect(handler.reconnectInfo).toContainEqual({ historyDiverged: false, masterChanged: true });
      expect(logs.lines.some((l) => l.message === 'redis master changed' && l.fields['to'] === `127.0.0.1:${promoted.port}`)).toBe(true);
    } finally {
      await subscriber.stop();
    }
  });

  it('detects a history that diverged in a failover, delivers the new entries below the old cursor, tells whose entries were lost, and marks resumes', async () => {
    const stream = unique('client-events');
    const continuity = new StreamContinuity();
    const handler = new RecordingHandler();
    const subscriber = new RedisStreamSubscriber({ topology: gateway, streamKey: stream, handler, blockMs: 500, metrics: harness.metrics, continuity, logger: logs });
    const base = Date.now();
    const id = (seq: number) => `${base}-${seq}`;
    await xadd(gateway.master, stream, id(0), 'start');
    await subscriber.start();
    try {
      for (const seq of [1, 2, 3]) await xadd(gateway.master, stream, id(seq), `common-${seq}`, 'u-common');
      await waitFor(() => handler.ids.includes(id(3)), { message: 'common entries' });
      const old = await topo.masterNode();
      const replica = (await topo.replicaNodes())[0];
      if (replica === undefined) throw new Error('no replica');
      await topo.waitForReplicaLink(replica);
      // "Link up" is not "replicated": after a full sync the master holds its writes back until
      // the replica's first ACK, and cutting the link then drops them. WAIT says they arrived.
      expect(await gateway.master.command(['WAIT', '1', '10000'], { timeoutMs: 11_000 })).toBe(1);
      // Cut the replica off: it cannot authenticate again after its link is killed, while the
      // connections already open (the gateway's, the Sentinels') keep working.
      await redisCommand('127.0.0.1', old.port, topo.password, ['CONFIG', 'SET', 'requirepass', 'changed-to-cut-off-the-replica']);
      await redisCommand('127.0.0.1', old.port, 'changed-to-cut-off-the-replica', ['CLIENT', 'KILL', 'TYPE', 'replica']);
      for (const seq of [4, 5, 6]) await xadd(gateway.master, stream, id(seq), `ghost-${seq}`, seq === 5 ? 'u-ghost-b' : 'u-ghost-a');
      await waitFor(() => handler.ids.includes(id(6)), { message: 'ghost entries consumed' });

      const diverged = await harness.value('gateway_stream_history_diverged_total', { stream: 'client_events' });
      await old.kill();
      const promoted = await topo.waitForNewMaster(old.port);
      await waitFor(() => gateway.master.port === promoted.port, { message: 'client re-pointed', timeoutMs: 5000 });
      await waitFor(async () => (await gateway.master.command(['PING'])) === 'PONG', { message: 'new master answers', timeoutMs: 5000 });
      // The new master's ids reuse the lost ones (a clock behind the old master's).
      for (const seq of [4, 5]) await xadd(gateway.master, stream, id(seq), `new-${seq}`);
      await waitFor(() => handler.entries.some((e) => e.fields['label'] === 'new-5'), { message: 'new entries delivered', timeoutMs: 10_000 });
      expect(handler.entries.map((e) => e.fields['label'])).toEqual(['common-1', 'common-2', 'common-3', 'ghost-4', 'ghost-5', 'ghost-6', 'new-4', 'new-5']);
      expect(await harness.value('gateway_stream_history_diverged_total', { stream: 'client_events' })).toBe(diverged + 1);
      // The handler is told (session events: remembered revocations are re-asserted on it).
      expect(handler.reconnectInfo.filter((r) => r?.historyDiverged === true)).toEqual([{ historyDiverged: true, masterChanged: true }]);
      const line = logs.lines.find((l) => l.message.startsWith('stream history diverged'));
      expect(line?.fields).toMatchObject({ last_consumed: id(6), resume_after: id(3), lost_after: id(3), lost_up_to: id(6), users_with_lost_entries: 2, stream_key: stream });
      // The handler hears whose entries were lost (the ghosts' users, not the common entries' user).
      expect(handler.losses).toEqual([{ after: id(3), upTo: id(6), userIds: ['u-ghost-a', 'u-ghost-b'] }]);

      // Resumes after a lost id: incomplete, whether the id was reused or never written here.
      const history = new RedisEventHistory(gateway.master, { streamKey: stream, continuity });
      await expect(history.readAfter(id(5), 10)).resolves.toMatchObject({ truncated: false, diverged: true });
      await expect(history.readAfter(id(6), 10)).resolves.toMatchObject({ truncated: true, diverged: true });
      await expect(history.readAfter(id(3), 10)).resolves.toMatchObject({ truncated: false });
      const fresh = new RedisEventHistory(gateway.master, { streamKey: stream });
      await expect(fresh.readAfter(id(6), 10)).resolves.toMatchObject({ truncated: true });
    } finally {
      await subscriber.stop();
    }
  });
});

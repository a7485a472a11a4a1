import { startRedisCluster, waitFor, type RedisClusterHandle } from '@edge-gateway/test-utils';
import { createServer, type Server, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import {
  RedisReplayStore,
  RedisStartupError,
  RedisSessionStore,
  RedisStreamSubscriber,
  connectAndPing,
  createRedisClusterClient,
  keySlot,
  type RedisClusterClient,
} from '../src/index.js';
import { RecordingHandler, unique } from './helpers.js';

let cluster: RedisClusterHandle;
let client: RedisClusterClient;
const keyPrefix = 'test:';

beforeAll(async () => {
  cluster = await startRedisCluster({ replicasPerMaster: 1 });
  client = createRedisClusterClient({
    nodes: [{ host: cluster.host, port: cluster.nodes[0]!.port }],
    password: cluster.password,
    commandTimeoutMs: 1000,
    reconnect: { minDelayMs: 20, maxDelayMs: 200 },
  });
  await connectAndPing(client, 5000);
});

afterAll(async () => {
  client?.destroy();
  await cluster?.stop();
});

describe('RedisClusterClient (GATEWAY_REDIS_CLUSTER_NODES)', () => {
  it('computes the slot of a key as the cluster does, hash tags included', async () => {
    for (const key of ['a', 'gateway:session:ds-1', 'x{tag}y', '{}empty', 'emoji-ü-key', '{user1000}.following']) {
      expect(keySlot(key)).toBe(Number(await cluster.command(cluster.nodes[0]!.port, ['CLUSTER', 'KEYSLOT', key])));
    }
  });

  it('session records and replay reservations work unchanged, with keys on every master', async () => {
    const sessions = new RedisSessionStore(client, { keyPrefix });
    const replays = new RedisReplayStore(client, { keyPrefix });
    const owners = new Set<number>();
    for (let i = 0; i < 24; i++) {
      const ds = unique(`ds-${i}`);
      const key = `${keyPrefix}session:${ds}`;
      owners.add((await cluster.masterOf(keySlot(key))).port);
      await client.command(['HSET', key, 'user_id', `u-${i}`]);
      await expect(sessions.getRecord(ds)).resolves.toEqual({ user_id: `u-${i}` });
      await expect(replays.reserve(ds, 'req-1', 60_000)).resolves.toBe('reserved');
      await expect(replays.reserve(ds, 'req-1', 60_000)).resolves.toBe('duplicate');
    }
    expect(owners.size).toBe(3);
  });

  it('a stream subscriber reads on its own connection to the stream\'s master; other commands to that master are not stalled', async () => {
    const streamKey = unique('cluster-stream');
    const handler = new RecordingHandler();
    const subscriber = new RedisStreamSubscriber({ client, streamKey, handler, blockMs: 5000, reconnect: { minDelayMs: 20, maxDelayMs: 200 } });
    await subscriber.start();
    try {
      const id1 = String(await client.command(['XADD', streamKey, '*', 'n', '1']));
      await waitFor(() => handler.ids.includes(id1), { message: 'first entry read' });
      // The subscriber is inside XREAD BLOCK 5000 now: a command for a key on the same master answers at once.
      const sameSlotKey = `{${streamKey}}:other`;
      expect(keySlot(sameSlotKey)).toBe(keySlot(streamKey));
      const started = performance.now();
      await client.command(['SET', sameSlotKey, 'v']);
      expect(performance.now() - started).toBeLessThan(1000);
      const id2 = String(await client.command(['XADD', streamKey, '*', 'n', '2']));
      await waitFor(() => handler.ids.includes(id2), { message: 'second entry read' });
      expect(handler.ids).toEqual([id1, id2]);
    } finally {
      await subscriber.stop();
    }
  });

  it('after CLUSTER FAILOVER of the stream\'s master the subscriber resumes on the new master without losing entries', async () => {
    const streamKey = unique('failover-stream');
    const handler = new RecordingHandler();
    const subscriber = new RedisStreamSubscriber({ client, streamKey, handler, blockMs: 1000, reconnect: { minDelayMs: 20, maxDelayMs: 200 } });
    await subscriber.start();
    try {
      const before = String(await client.command(['XADD', streamKey, '*', 'n', 'before']));
      await waitFor(() => handler.ids.includes(before), { message: 'entry before failover read' });
      const master = await cluster.masterOf(keySlot(streamKey));
      const replica = (await cluster.topology()).find((n) => n.role === 'replica' && n.masterId === master.id)!;
      await cluster.failover(replica.port);
      const after = await waitFor(async () => String(await client.command(['XADD', streamKey, '*', 'n', 'after'])), { timeoutMs: 10_000, message: 'XADD on the new master' });
      await waitFor(() => handler.ids.includes(after), { timeoutMs: 15_000, message: 'entry after failover read' });
      expect(handler.ids).toEqual([before, after]);
      expect((await cluster.masterOf(keySlot(streamKey))).port).toBe(replica.port);
    } finally {
      await subscriber.stop();
    }
  });
});

describe('seeds that do not answer (GATEWAY_REDIS_CLUSTER_NODES)', () => {
  /** A host that accepts TCP and never answers (a stopped process, a black-holed address). */
  async function silentServer(): Promise<{ server: Server; port: number; open: Set<Socket> }> {
    const open = new Set<Socket>();
    const server = createServer((socket) => {
      open.add(socket);
      // Reads (and drops) what it is sent, so it sees the client close; never answers.
      socket.resume();
      socket.on('close', () => open.delete(socket));
      socket.on('error', () => {});
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return { server, port: (server.address() as { port: number }).port, open };
  }
  /** A port nobody listens on. */
  async function deadPort(): Promise<number> {
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as { port: number };
    await new Promise<void>((resolve) => server.close(() => resolve()));
    return port;
  }
  const live = () => ({ host: cluster.host, port: cluster.nodes[0]!.port });

  it('a silent seed and a refusing seed tried first: discovery gives up on each and connects through the next', async () => {
    const silent = await silentServer();
    const dead = await deadPort();
    // node-redis starts discovery at a random seed; 0 makes it start at the first, the silent one.
    const random = vi.spyOn(Math, 'random').mockReturnValue(0);
    const seeded = createRedisClusterClient({
      nodes: [{ host: '127.0.0.1', port: silent.port }, { host: '127.0.0.1', port: dead }, live()],
      password: cluster.password,
      commandTimeoutMs: 500,
    });
    try {
      await connectAndPing(seeded, 10_000);
      random.mockRestore();
      expect(await seeded.command(['SET', `${keyPrefix}seeded`, 'ok'])).toBe('OK');
      // The silent seed was asked (and its connection dropped after the bound, not kept).
      await waitFor(() => silent.open.size === 0, { timeoutMs: 5000, message: 'the silent seed connection closed' });
    } finally {
      random.mockRestore();
      await seeded.close();
      silent.server.close();
    }
  });

  it('only silent seeds: the startup fails as a timeout within its bound and leaves no connection open', async () => {
    const silent = await silentServer();
    const seeded = createRedisClusterClient({ nodes: [{ host: '127.0.0.1', port: silent.port }], password: cluster.password, commandTimeoutMs: 500 });
    try {
      const error = await connectAndPing(seeded, 3000).then(() => undefined, (err: unknown) => err);
      expect(error).toBeInstanceOf(RedisStartupError);
      expect((error as RedisStartupError).kind).toBe('timeout');
      // A finished CLI run exits: nothing of the client still holds the silent host's socket.
      await waitFor(() => silent.open.size === 0, { timeoutMs: 5000, message: 'the silent seed connection closed' });
    } finally {
      seeded.destroy();
      silent.server.close();
    }
  });

  it('only refusing seeds: the startup fails as unreachable, naming the refusal', async () => {
    const seeded = createRedisClusterClient({ nodes: [{ host: '127.0.0.1', port: await deadPort() }], password: cluster.password, commandTimeoutMs: 500 });
    const error = await connectAndPing(seeded, 3000).then(() => undefined, (err: unknown) => err);
    expect(error).toBeInstanceOf(RedisStartupError);
    expect((error as RedisStartupError).kind).toBe('unreachable');
    expect((error as Error).message).toContain('ECONNREFUSED');
  });
});

describe('replicated reservations on a cluster (SPEC §5.2, §9.1)', () => {
  const waitCalls = async (port: number): Promise<number> =>
    Number(/cmdstat_wait:calls=(\d+)/.exec(String(await cluster.command(port, ['INFO', 'commandstats'])))?.[1] ?? 0);

  const rejectedSets = async (port: number): Promise<number> =>
    Number(/cmdstat_set:[^\r\n]*rejected_calls=(\d+)/.exec(String(await cluster.command(port, ['INFO', 'commandstats'])))?.[1] ?? 0);

  /** `count` device session ids whose reservation of `requestId` lands on each master (by port). */
  async function idsPerMaster(requestId: string, count: number): Promise<Map<number, string[]>> {
    const byMaster = new Map<number, string[]>();
    const masters = (await cluster.topology()).filter((n) => n.role === 'master' && n.slots.length > 0);
    for (let i = 0; masters.some((m) => (byMaster.get(m.port)?.length ?? 0) < count); i++) {
      const ds = unique(`ds-${i}`);
      const slot = keySlot(`${keyPrefix}replay:${ds}/${requestId}`);
      const owner = masters.find((m) => m.slots.some(([a, b]) => slot >= a && slot <= b));
      if (owner === undefined) continue;
      const list = byMaster.get(owner.port) ?? [];
      if (list.length < count) list.push(ds);
      byMaster.set(owner.port, list);
    }
    return byMaster;
  }

  it('each reservation waits on the master of its slot; a master whose replica is frozen fails only its own reservations', async () => {
    await cluster.waitUntilStable();
    // A healthy replica must acknowledge within the timeout even on a loaded machine (100 ms
    // was missed at load 13); the frozen one never does, whatever the timeout.
    const store = new RedisReplayStore(client, { keyPrefix, minReplicas: 1, waitTimeoutMs: 1000 });
    try {
      const ids = await idsPerMaster('r', 3);
      expect(ids.size).toBe(3);
      const before = new Map<number, number>();
      for (const port of ids.keys()) before.set(port, await waitCalls(port));
      const outcomes = await Promise.all([...ids.values()].flat().map((ds) => store.reserve(ds, 'r', 60_000)));
      expect(outcomes).toEqual(Array.from({ length: 9 }, () => 'reserved'));
      for (const port of ids.keys()) expect(await waitCalls(port)).toBeGreaterThan(before.get(port) as number);

      const [frozenMaster] = ids.keys() as unknown as [number];
      const topology = await cluster.topology();
      const masterId = topology.find((n) => n.port === frozenMaster)?.id;
      const replica = topology.find((n) => n.role === 'replica' && n.masterId === masterId);
      if (replica === undefined) throw new Error('no replica of the frozen master');
      const next = await idsPerMaster('s', 2);
      cluster.node(replica.port).pause();
      let results: Array<[number, string, string]>;
      try {
        results = await Promise.all(
          [...next].flatMap(([port, list]) => list.map(async (ds): Promise<[number, string, string]> => [port, ds, await store.reserve(ds, 's', 60_000)])),
        );
      } finally {
        cluster.node(replica.port).resume();
      }
      for (const [port, ds, outcome] of results) {
        expect(outcome, `master ${port}`).toBe(port === frozenMaster ? 'not_replicated' : 'reserved');
        expect(Number(await client.command(['EXISTS', `${keyPrefix}replay:${ds}/s`]))).toBe(port === frozenMaster ? 0 : 1);
      }
    } finally {
      store.close();
    }
  }, 30_000);

  it('after CLUSTER FAILOVER a reservation follows its slot to the new master (MOVED) and is confirmed by the old one, now its replica', async () => {
    await cluster.waitUntilStable();
    const store = new RedisReplayStore(client, { keyPrefix, minReplicas: 1, waitTimeoutMs: 500 });
    try {
      const ids = await idsPerMaster('f', 2);
      const [port, [first, second]] = [...ids][0] as [number, [string, string]];
      // A lane to the master exists: the next write for its slots goes there first.
      await expect(store.reserve(first, 'f', 60_000)).resolves.toBe('reserved');
      const topology = await cluster.topology();
      const masterId = topology.find((n) => n.port === port)?.id;
      const replica = topology.find((n) => n.role === 'replica' && n.masterId === masterId);
      if (replica === undefined) throw new Error('no replica');
      await cluster.failover(replica.port);
      expect((await cluster.masterOf(keySlot(`${keyPrefix}replay:${second}/f`))).port).toBe(replica.port);
      const movedBefore = await rejectedSets(port);
      await expect(store.reserve(second, 'f', 60_000)).resolves.toBe('reserved');
      // The client's view was stale: the SET went to the old master first and was refused there.
      expect(await rejectedSets(port)).toBe(movedBefore + 1);
      expect(Number(await cluster.command(replica.port, ['EXISTS', `${keyPrefix}replay:${second}/f`]))).toBe(1);
      await expect(store.reserve(first, 'f', 60_000)).resolves.toBe('duplicate');
    } finally {
      store.close();
    }
  }, 60_000);
});

/**
 * `createRedisBackend` (issue 24): every topology builds and connects, a command's replay
 * reservation works through it, the event sources feed the handlers they are given (session
 * events read on the master), and `close()` releases every connection it opened (CLIENT LIST of
 * every node, and of the Sentinels).
 */
import { type StreamEntry, type StreamEntryHandler, type StreamHistoryLoss } from '@edge-gateway/core';
import {
  redisCommand,
  startRedisCluster,
  startRedisServer,
  startSentinelTopology,
  waitFor,
  type RedisClusterHandle,
  type RedisServerHandle,
  type SentinelTopology,
} from '@edge-gateway/test-utils';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RedisBackendError, createRedisBackend, type RedisBackendHandlers, type RedisBackendOptions } from '../src/index.js';
import { MetricsHarness, recordingLogger, unique } from './helpers.js';

const reconnect = { minDelayMs: 20, maxDelayMs: 200 };

/** Records what the event sources hand over, as the core's handlers would take it. */
class Handlers implements RedisBackendHandlers {
  readonly sessionEntries: StreamEntry[] = [];
  readonly clientEntries: StreamEntry[] = [];
  readonly reasserts: string[] = [];
  readonly sessionEvents: StreamEntryHandler & { reassertRevocations(reason: string): void } = {
    stream: 'session_events',
    handle: (entry) => this.sessionEntries.push(entry),
    reassertRevocations: (reason) => this.reasserts.push(reason),
  };
  readonly clientEvents: RedisBackendHandlers['clientEvents'] = {
    stream: 'client_events',
    handle: (entry) => this.clientEntries.push(entry),
    handleBatch: async (entries) => {
      this.clientEntries.push(...entries);
    },
    discontinuity: () => 0,
    onHistoryLost: (_loss: StreamHistoryLoss) => undefined,
  };
}

/** `host:port` of every connection to `host:port` whose name starts with `name`, from CLIENT LIST. */
async function connectionsNamed(host: string, port: number, password: string | undefined, name: string): Promise<string[]> {
  const list = String(await redisCommand(host, port, password, ['CLIENT', 'LIST']));
  return list
    .split('\n')
    .filter((line) => line.includes(` name=${name}`))
    .map((line) => /addr=(\S+)/.exec(line)?.[1] ?? line);
}

/** Unnamed client connections of a Sentinel other than the one asking (the gateway's Sentinel clients set no name). */
async function unnamedSentinelClients(port: number, password: string | undefined): Promise<number> {
  const list = String(await redisCommand('127.0.0.1', port, password, ['CLIENT', 'LIST']));
  return list.split('\n').filter((line) => / name= /.test(line) && !line.includes('cmd=client|list')).length;
}

describe('createRedisBackend: bad options are refused with a RedisBackendError', () => {
  const single = { kind: 'single' as const, master: { host: '127.0.0.1', port: 1 } };
  it.each<[string, RedisBackendOptions, string]>([
    ['routed fan-out without a cluster', { topology: single, fanout: 'routed' }, 'invalid_options'],
    ['more replicas asked than listed', { topology: { ...single, replicas: [{ host: '127.0.0.1', port: 2 }] }, replay: { minReplicas: 2 } }, 'too_few_replicas'],
    ['a lone master asked for a replica', { topology: single, replay: { minReplicas: 1 } }, 'too_few_replicas'],
    ['no Sentinel', { topology: { kind: 'sentinel', sentinels: [], masterName: 'm' } }, 'invalid_options'],
    ['no cluster node', { topology: { kind: 'cluster', nodes: [] } }, 'invalid_options'],
    ['the same stream twice', { topology: single, sessionEventsStream: 's', clientEventsStream: 's' }, 'invalid_options'],
  ])('%s', (_what, options, code) => {
    let caught: unknown;
    try {
      createRedisBackend(options);
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(RedisBackendError);
    expect(caught).toMatchObject({ name: 'RedisBackendError', code });
  });
});

describe('createRedisBackend on one redis-server', () => {
  let server: RedisServerHandle;
  beforeAll(async () => {
    server = await startRedisServer();
  });
  afterAll(async () => {
    await server?.stop();
  });

  it('builds, reserves, feeds session events read on the master to the handler, and close() releases every connection', async () => {
    const name = unique('rb-single').replaceAll(':', '-');
    const harness = new MetricsHarness();
    const sessionEventsStream = unique('session-events');
    const redis = createRedisBackend({
      topology: { kind: 'single', master: { host: server.host, port: server.port } },
      password: server.password,
      clientName: name,
      reconnect,
      sessionEventsStream,
      clientEventsStream: unique('client-events'),
      metrics: harness.metrics,
      logger: recordingLogger(),
    });
    expect(redis.kind).toBe('single');
    expect(redis.settings).toMatchObject({ keyPrefix: 'gateway:', minReplicas: 0, sessionReads: 'master', clientEventsReads: 'master', pingTimeoutMs: 5000 });
    await redis.connect();
    const ds = unique('ds');
    await expect(redis.ports.replay.reserve(ds, 'req-1', 60_000)).resolves.toBe('reserved');
    await expect(redis.ports.replay.reserve(ds, 'req-1', 60_000)).resolves.toBe('duplicate');
    expect(await redisCommand(server.host, server.port, server.password, ['PTTL', `gateway:replay:${ds}/req-1`])).toBeGreaterThan(0);
    expect(redis.ports.replay.journalSize).toBe(1);

    const handlers = new Handlers();
    const sources = redis.eventSources(handlers);
    expect(redis.eventSources(handlers)).toBe(sources);
    expect(() => redis.eventSources(new Handlers())).toThrow(/already called/);
    await sources.sessionEvents.start();
    await sources.clientEvents.start();
    await redisCommand(server.host, server.port, server.password, ['XADD', sessionEventsStream, '*', 'type', 'session.revoked', 'device_session_id', ds]);
    await waitFor(() => handlers.sessionEntries.length === 1, { message: 'the session-events entry handed to the handler' });
    expect(handlers.sessionEntries[0]?.fields).toMatchObject({ type: 'session.revoked', device_session_id: ds });
    // The metrics option reaches the clients: the reservation's SET was measured.
    expect(await harness.value('gateway_redis_command_duration_seconds', { command: 'SET', outcome: 'ok' })).toBeGreaterThanOrEqual(1);

    expect((await connectionsNamed(server.host, server.port, server.password, name)).length).toBeGreaterThanOrEqual(3);
    await redis.close();
    await redis.close();
    await waitFor(async () => (await connectionsNamed(server.host, server.port, server.password, name)).length === 0, {
      timeoutMs: 5000,
      message: 'every connection of the backend gone from CLIENT LIST',
    });
  });

  it('await using closes it at scope exit; a failed connect leaves nothing running', async () => {
    const name = unique('rb-using').replaceAll(':', '-');
    {
      await using redis = createRedisBackend({ topology: { kind: 'single', master: { host: server.host, port: server.port } }, password: server.password, clientName: name, reconnect });
      await redis.connect();
      expect(await connectionsNamed(server.host, server.port, server.password, name)).toHaveLength(1);
    }
    await waitFor(async () => (await connectionsNamed(server.host, server.port, server.password, name)).length === 0, { timeoutMs: 5000, message: 'disposed' });

    const wrong = createRedisBackend({ topology: { kind: 'single', master: { host: server.host, port: server.port } }, password: 'wrong', clientName: name, reconnect, pingTimeoutMs: 2000 });
    await expect(wrong.connect()).rejects.toMatchObject({ name: 'RedisStartupError', kind: 'auth' });
    expect(await connectionsNamed(server.host, server.port, server.password, name)).toHaveLength(0);
  });
});

describe('createRedisBackend with Sentinel', () => {
  let topo: SentinelTopology;
  beforeAll(async () => {
    topo = await startSentinelTopology({ sentinelPassword: 'sentinel-secret' });
  });
  afterAll(async () => {
    await topo?.stop();
  });

  const options = (name: string, extra: Partial<RedisBackendOptions> = {}): RedisBackendOptions => ({
    topology: {
      kind: 'sentinel',
      sentinels: topo.sentinels.map((s) => ({ host: s.host, port: s.port })),
      masterName: topo.masterName,
      sentinelPassword: 'sentinel-secret',
      pollIntervalMs: 500,
    },
    password: topo.password,
    clientName: name,
    reconnect,
    sessionEventsStream: unique('session-events'),
    clientEventsStream: unique('client-events'),
    ...extra,
  });

  it('discovers the master, confirms a reservation on its replica (WAIT), reads session events on the master, and close() releases every connection', async () => {
    const name = unique('rb-sentinel').replaceAll(':', '-');
    const redis = createRedisBackend(options(name, { clientEventsReads: 'replica', sessionReads: 'replica' }));
    expect(redis.settings.minReplicas).toBe(1);
    await redis.connect();
    const master = await topo.masterNode();
    expect(redis.topology?.kind).toBe('sentinel');
    expect(redis.topology?.master.address).toBe(`${master.host}:${master.port}`);
    const ds = unique('ds');
    await expect(redis.ports.replay.reserve(ds, 'req-1', 60_000)).resolves.toBe('reserved');
    await expect(redis.ports.replay.reserve(ds, 'req-1', 60_000)).resolves.toBe('duplicate');
    const [replica] = await topo.replicaNodes();
    expect(replica).toBeDefined();
    // Confirmed by the replica before `reserved`: the key is there.
    expect(await redisCommand(replica!.host, replica!.port, topo.password, ['EXISTS', `gateway:replay:${ds}/req-1`])).toBe(1);

    const handlers = new Handlers();
    const sources = redis.eventSources(handlers);
    await sources.sessionEvents.start();
    await sources.clientEvents.start();
    await redisCommand(master.host, master.port, topo.password, ['XADD', redis.settings.sessionEventsStream, '*', 'type', 'session.revoked', 'device_session_id', ds]);
    await waitFor(() => handlers.sessionEntries.length === 1, { message: 'the session-events entry handed to the handler' });
    // The session-events reader blocks on the master (`:stream` connection there).
    await waitFor(async () => (await connectionsNamed(master.host, master.port, topo.password, `${name}:stream`)).length >= 1, { message: 'a reader on the master' });

    const sentinelsBefore = await Promise.all(topo.sentinels.map((s) => unnamedSentinelClients(s.port, 'sentinel-secret')));
    expect(sentinelsBefore.reduce((a, b) => a + b, 0)).toBeGreaterThan(0);
    await redis.close();
    for (const node of topo.nodes) {
      await waitFor(async () => (await connectionsNamed(node.host, node.port, topo.password, name)).length === 0, {
        timeoutMs: 5000,
        message: `every connection gone from CLIENT LIST of ${node.port}`,
      });
    }
    for (const sentinel of topo.sentinels) {
      await waitFor(async () => (await unnamedSentinelClients(sentinel.port, 'sentinel-secret')) === 0, {
        timeoutMs: 5000,
        message: `every gateway connection gone from Sentinel ${sentinel.port}`,
      });
    }
  });

  it('refuses at connect when replay.minReplicas asks for more replicas than the Sentinels list, and closes what it opened', async () => {
    const name = unique('rb-sentinel-few').replaceAll(':', '-');
    const redis = createRedisBackend(options(name, { replay: { minReplicas: 2 } }));
    await expect(redis.connect()).rejects.toMatchObject({ name: 'RedisBackendError', code: 'too_few_replicas', message: expect.stringContaining(`master "${topo.masterName}"`) as unknown });
    for (const node of topo.nodes) {
      await waitFor(async () => (await connectionsNamed(node.host, node.port, topo.password, name)).length === 0, { timeoutMs: 5000, message: `nothing left on ${node.port}` });
    }
    // A hook of the caller decides instead (the binary throws its ConfigError there).
    const seen: unknown[] = [];
    const hooked = createRedisBackend(options(name, { replay: { minReplicas: 2 }, checkReplicas: (found) => seen.push(found) }));
    await hooked.connect();
    expect(seen).toEqual([{ replicas: 1, minReplicas: 2, where: `master "${topo.masterName}" (as its Sentinels list its replicas)` }]);
    await hooked.close();
  });

  // Last in this block: it moves the master.
  it('after a Sentinel failover the reservations it confirmed lately are written again on the new master (onMasterChange -> reassertRecent)', async () => {
    const name = unique('rb-sentinel-failover').replaceAll(':', '-');
    const harness = new MetricsHarness();
    await using redis = createRedisBackend(options(name, { metrics: harness.metrics }));
    await redis.connect();
    const ds = unique('ds');
    const key = `gateway:replay:${ds}/req-1`;
    await expect(redis.ports.replay.reserve(ds, 'req-1', 120_000)).resolves.toBe('reserved');
    // The failover "loses" it: gone from the master and (replicated DEL) from its replica.
    const old = await topo.masterNode();
    expect(await redisCommand(old.host, old.port, topo.password, ['DEL', key])).toBe(1);
    const promoted = await topo.failover();
    expect(promoted.port).not.toBe(old.port);
    await waitFor(() => redis.topology?.master.address === `${promoted.host}:${promoted.port}`, { timeoutMs: 10_000, message: 'the backend follows the new master' });
    // Counted when the re-assert round ends, after its writes.
    await waitFor(async () => (await harness.value('gateway_replay_reservations_reasserted_total')) === 1, {
      timeoutMs: 10_000,
      message: 'the journaled reservation written again on the new master',
    });
    expect(await redisCommand(promoted.host, promoted.port, topo.password, ['EXISTS', key])).toBe(1);
    // Another gateway (no journal) sees a replay there.
    await using other = createRedisBackend(options(unique('rb-other').replaceAll(':', '-')));
    await other.connect();
    await expect(other.ports.replay.reserve(ds, 'req-1', 120_000)).resolves.toBe('duplicate');
  });
});

describe('createRedisBackend on a Redis Cluster', () => {
  let cluster: RedisClusterHandle;
  beforeAll(async () => {
    cluster = await startRedisCluster({ replicasPerMaster: 1 });
  });
  afterAll(async () => {
    await cluster?.stop();
  });

  const options = (name: string, extra: Partial<RedisBackendOptions> = {}): RedisBackendOptions => ({
    topology: { kind: 'cluster', nodes: [{ host: cluster.host, port: cluster.nodes[0]!.port }] },
    password: cluster.password,
    clientName: name,
    reconnect,
    commandTimeoutMs: 1000,
    // The wiring is under test, not WAIT's latency: a replica starved of CPU on a loaded host
    // misses the default 50 ms (a full run saw 'not_replicated' on a cluster just started).
    replay: { waitTimeoutMs: 1000 },
    sessionEventsStream: unique('session-events'),
    clientEventsStream: unique('client-events'),
    ...extra,
  });

  async function expectReleased(name: string): Promise<void> {
    for (const node of cluster.nodes) {
      await waitFor(async () => (await connectionsNamed(node.host, node.port, cluster.password, name)).length === 0, {
        timeoutMs: 5000,
        message: `every connection gone from CLIENT LIST of ${node.port}`,
      });
    }
  }

  it.each(['stream', 'routed'] as const)('fan-out %s: builds, reserves with WAIT on every master, starts its sources, and close() releases every connection', async (fanout) => {
    const name = unique(`rb-cluster-${fanout}`).replaceAll(':', '-');
    const redis = createRedisBackend(options(name, { fanout, routed: { relay: fanout === 'routed' } }));
    expect(redis.kind).toBe('cluster');
    expect(redis.ports.feed === undefined).toBe(fanout === 'stream');
    await redis.connect();
    for (let i = 0; i < 6; i++) {
      const ds = unique(`ds${i}`);
      await expect(redis.ports.replay.reserve(ds, 'req', 60_000)).resolves.toBe('reserved');
      await expect(redis.ports.replay.reserve(ds, 'req', 60_000)).resolves.toBe('duplicate');
    }
    if (fanout === 'routed') {
      for (const node of cluster.nodes) {
        const role = String(await cluster.command(node.port, ['ROLE']));
        if (!role.startsWith('master')) continue;
        expect(JSON.stringify(await cluster.command(node.port, ['FUNCTION', 'LIST', 'LIBRARYNAME', 'edgegateway']))).toContain('edgegateway');
      }
    }
    const handlers = new Handlers();
    const sources = redis.eventSources(handlers);
    await sources.sessionEvents.start();
    await sources.clientEvents.start();
    const streamMaster = await redis.cluster!.command(['XADD', redis.settings.sessionEventsStream, '*', 'type', 'session.revoked', 'device_session_id', 'ds-x']);
    expect(typeof streamMaster).toBe('string');
    await waitFor(() => handlers.sessionEntries.length === 1, { message: 'the session-events entry handed to the handler' });
    await redis.close();
    await expectReleased(name);
  });
});

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createClient } from 'redis';
import { keySlot } from '@edge-gateway/adapters-redis';
import {
  redisCommand,
  startRedisCluster,
  startSentinelTopology,
  waitFor,
  type RedisClusterHandle,
  type SentinelTopology,
} from '@edge-gateway/test-utils';
import { runCli } from '@edge-gateway/test-utils/entry-process';

/**
 * `edge-gateway redis failover` (the built CLI as a child process) against the real Sentinel
 * (1 master, 2 replicas, 3 Sentinels) and Cluster (3 masters, 1 replica each) harnesses, with
 * a writer appending to the old master until it refuses: every write the old master
 * acknowledged is on the new master afterwards.
 */

/**
 * Writes to one node, one command after the other, until stopped: a key and a stream entry
 * per round. Records each write the node acknowledged and the first refusal. It never follows
 * a failover: what it wrote must survive on whichever node is master afterwards.
 */
class AckedWriter {
  readonly keys: string[] = [];
  readonly entries: Array<{ stream: string; id: string }> = [];
  refusal: string | undefined;
  private running = true;
  private readonly done: Promise<void>;

  constructor(port: number, password: string, tag: string) {
    const client = createClient({ socket: { host: '127.0.0.1', port, reconnectStrategy: false }, password, commandOptions: { timeout: 0 } });
    client.on('error', () => undefined);
    this.done = (async () => {
      await client.connect();
      for (let n = 0; this.running && this.refusal === undefined && n < 1_000_000; n += 1) {
        try {
          const key = `{${tag}}:key:${n}`;
          await client.set(key, String(n));
          this.keys.push(key);
          const stream = `{${tag}}:stream`;
          this.entries.push({ stream, id: await client.xAdd(stream, '*', { n: String(n) }) });
        } catch (error) {
          this.refusal = error instanceof Error ? error.message : String(error);
        }
      }
      client.destroy();
    })();
  }

  /** Resolves once `count` writes were acknowledged (the writer is running). */
  async acknowledged(count: number): Promise<void> {
    await waitFor(() => this.keys.length >= count || this.refusal !== undefined, { timeoutMs: 10_000, message: `${count} acknowledged writes` });
    if (this.refusal !== undefined) throw new Error(`the writer was refused before the failover: ${this.refusal}`);
  }

  async stop(): Promise<void> {
    this.running = false;
    await this.done;
  }

  /** The acknowledged writes the node at `port` does not hold. */
  async missingOn(port: number, password: string): Promise<string[]> {
    const missing: string[] = [];
    for (const key of this.keys) if (Number(await redisCommand('127.0.0.1', port, password, ['EXISTS', key])) !== 1) missing.push(key);
    for (const { stream, id } of this.entries) {
      const found = await redisCommand('127.0.0.1', port, password, ['XRANGE', stream, id, id]);
      if (!Array.isArray(found) || found.length !== 1) missing.push(`${stream} ${id}`);
    }
    return missing;
  }
}

const role = async (port: number, password: string): Promise<string> => /role:(\w+)/.exec(String(await redisCommand('127.0.0.1', port, password, ['INFO', 'replication'])))?.[1] ?? '';
const lastLine = (stdout: string): string => stdout.trim().split('\n').at(-1) ?? '';

describe('edge-gateway redis failover: usage and refusals', () => {
  it('needs the failover subcommand, checks its durations, and refuses a lone master', async () => {
    const none = await runCli(['redis'], {});
    expect(none.code).toBe(2);
    expect(none.stderr).toContain('missing subcommand (failover)');
    const help = await runCli(['redis', 'failover', '--help'], {});
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/^Usage: edge-gateway redis failover/);
    const shortPause = await runCli(['redis', 'failover', '--pause', '10ms'], { GATEWAY_REDIS_MASTER_ADDR: '127.0.0.1:1', GATEWAY_REDIS_PASSWORD: 'x' });
    expect(shortPause.code).toBe(2);
    expect(shortPause.stderr).toContain('--pause "10ms" is not a duration between 1s and 60s');
    const lone = await runCli(['redis', 'failover'], { GATEWAY_REDIS_MASTER_ADDR: '127.0.0.1:1', GATEWAY_REDIS_PASSWORD: 'x' });
    expect(lone.code).toBe(1);
    expect(lone.stderr).toContain('no failover without Sentinel or a Cluster: with GATEWAY_REDIS_MASTER_ADDR the gateway cannot follow a new master');
  });
});

describe('edge-gateway redis failover on Sentinel (1 master, 2 replicas, 3 Sentinels)', () => {
  let topo: SentinelTopology;
  let env: Record<string, string | undefined>;

  beforeAll(async () => {
    topo = await startSentinelTopology({ replicas: 2, sentinelPassword: 'cli-failover-sentinel' });
    env = {
      GATEWAY_REDIS_SENTINEL_ADDRS: topo.sentinelAddrs,
      GATEWAY_REDIS_SENTINEL_MASTER_NAME: topo.masterName,
      GATEWAY_REDIS_SENTINEL_PASSWORD: 'cli-failover-sentinel',
      GATEWAY_REDIS_PASSWORD: topo.password,
      GATEWAY_REDIS_PING_TIMEOUT: '1s',
    };
  });

  afterAll(async () => {
    for (const node of topo?.nodes ?? []) if (node.running) node.resume();
    await topo?.stop();
  });

  it('refuses, within its bounds and changing nothing, when no replica answers', async () => {
    const master = await topo.masterNode();
    const replicas = await topo.replicaNodes();
    for (const replica of replicas) replica.pause();
    try {
      const started = Date.now();
      const result = await runCli(['redis', 'failover', '--timeout', '10s'], env, 30_000);
      expect(result.code, result.stdout + result.stderr).toBe(1);
      expect(result.stderr).toMatch(/(cannot reach replica|can be promoted).*; nothing changed/);
      expect(Date.now() - started).toBeLessThan(15_000);
    } finally {
      for (const replica of replicas) replica.resume();
    }
    // Nothing changed: same master, writes accepted at once (no pause left behind).
    expect((await topo.master()).port).toBe(master.port);
    expect(await redisCommand('127.0.0.1', master.port, topo.password, ['SET', 'after-refusal', '1'], 1000)).toBe('OK');
    for (const replica of replicas) await topo.waitForReplicaLink(replica, 30_000);
  });

  it('fails over under writes, reports the new master, and the new master holds every write the old one acknowledged', async () => {
    const old = await topo.masterNode();
    const writer = new AckedWriter(old.port, topo.password, 'sentinel');
    await writer.acknowledged(50);
    const result = await runCli(['redis', 'failover'], env, 60_000);
    await writer.stop();
    expect(result.code, result.stdout + result.stderr).toBe(0);
    const now = await topo.master();
    expect(now.port).not.toBe(old.port);
    expect(lastLine(result.stdout)).toBe(`new master: 127.0.0.1:${now.port}`);
    expect(result.stdout).toMatch(/✓ replicas caught up: 127\.0\.0\.1:\d+ at (\d+), 127\.0\.0\.1:\d+ at \1\n/);
    expect(result.stdout).toContain('holding all of the');
    // The old master answered the writer's last, paused write with a refusal, not a success.
    expect(writer.refusal).toMatch(/READONLY/);
    expect(await role(old.port, topo.password)).toBe('slave');
    expect(await writer.missingOn(now.port, topo.password)).toEqual([]);
    expect(writer.keys.length).toBeGreaterThanOrEqual(50);
    await topo.waitForReplicaLink(old, 30_000);
  });
});

describe('edge-gateway redis failover on a Redis Cluster (3 masters, 1 replica each)', () => {
  let cluster: RedisClusterHandle;
  let env: Record<string, string | undefined>;

  beforeAll(async () => {
    cluster = await startRedisCluster({ replicasPerMaster: 1 });
    env = { GATEWAY_REDIS_CLUSTER_NODES: cluster.seeds, GATEWAY_REDIS_PASSWORD: cluster.password, GATEWAY_REDIS_PING_TIMEOUT: '2s' };
  });

  afterAll(async () => {
    await cluster?.stop();
  });

  it('needs --node naming a master, and lists the masters when it does not', async () => {
    const topology = await cluster.topology();
    const masters = topology.filter((n) => n.role === 'master');
    const replica = topology.find((n) => n.role === 'replica');
    const missing = await runCli(['redis', 'failover'], env);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain('name the master to fail over with --node');
    for (const master of masters) expect(missing.stderr).toContain(`${master.address} (slots `);
    const ofReplica = await runCli(['redis', 'failover', '--node', replica?.address ?? ''], env);
    expect(ofReplica.code).toBe(1);
    const itsMaster = masters.find((m) => m.id === replica?.masterId);
    expect(ofReplica.stderr).toContain(`--node ${replica?.address} is a replica of ${itsMaster?.address}: name the master to fail over; nothing changed`);
  });

  it('fails a master over to its replica under writes; the new master holds every write the old one acknowledged', async () => {
    const master = (await cluster.topology()).find((n) => n.role === 'master');
    if (master === undefined) throw new Error('no master');
    const replica = (await cluster.topology()).find((n) => n.masterId === master.id);
    // A hash tag whose slot this master serves: the writer talks to it directly.
    let tag = '';
    for (let i = 0; tag === ''; i += 1) {
      const slot = keySlot(`t${i}`);
      if (master.slots.some(([a, b]) => slot >= a && slot <= b)) tag = `t${i}`;
    }
    const writer = new AckedWriter(master.port, cluster.password, tag);
    await writer.acknowledged(50);
    const result = await runCli(['redis', 'failover', '--node', master.address], env, 60_000);
    await writer.stop();
    expect(result.code, result.stdout + result.stderr).toBe(0);
    expect(lastLine(result.stdout)).toBe(`new master: ${replica?.address}`);
    expect(await role(replica?.port ?? 0, cluster.password)).toBe('master');
    expect(await role(master.port, cluster.password)).toBe('slave');
    // The paused write was redirected to the new master, not applied on the old one.
    expect(writer.refusal).toMatch(/MOVED/);
    expect(await writer.missingOn(replica?.port ?? 0, cluster.password)).toEqual([]);
    await cluster.waitUntilStable(30_000);
  });
});

import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { freePort } from './free-port.js';
import { startRedisServer, spawnRedisProcess, tempDir, type RedisServerHandle, type Spawned } from './redis-server.js';
import { redisCommand, type RespReply } from './resp-command.js';
import { waitFor } from './wait-for.js';

/** Options of {@link startSentinelTopology}. */
export interface SentinelTopologyOptions {
  /** Password of the data nodes (`requirepass`, `masterauth`); random by default. */
  password?: string;
  /** `requirepass` of the Sentinels; none by default. */
  sentinelPassword?: string;
  /** Number of replicas (default 1). */
  replicas?: number;
  /** Number of Sentinels (default 3; quorum is a majority). */
  sentinels?: number;
  /** Name of the monitored master (default `gwmaster`). */
  masterName?: string;
  /** `down-after-milliseconds` (default 1000). */
  downAfterMs?: number;
  /** `failover-timeout` (default 4000). */
  failoverTimeoutMs?: number;
}

/** One running Sentinel process. */
export interface SentinelHandle {
  readonly host: string;
  readonly port: number;
  readonly running: boolean;
  /** SIGTERM and wait for exit. */
  stop(): Promise<void>;
}

/** A master, its replicas and the Sentinels watching them, all on 127.0.0.1. */
export interface SentinelTopology {
  readonly masterName: string;
  readonly password: string;
  readonly sentinelPassword: string | undefined;
  /** Every data node, initially `[master, ...replicas]`; roles change on failover. */
  readonly nodes: readonly RedisServerHandle[];
  readonly sentinels: readonly SentinelHandle[];
  /** `host:port,host:port,…` of the Sentinels (for `GATEWAY_REDIS_SENTINEL_ADDRS`). */
  readonly sentinelAddrs: string;
  /** The master address the first answering Sentinel reports. */
  master(): Promise<{ host: string; port: number }>;
  /** The node handle of the current master (as a Sentinel reports it). */
  masterNode(): Promise<RedisServerHandle>;
  /** The data nodes that are not the current master. */
  replicaNodes(): Promise<RedisServerHandle[]>;
  /**
   * Waits until the Sentinels agree on a master other than `previousPort` and know it has
   * `replicas` replicas that report a working link (bounded by `timeoutMs`, default 20000).
   */
  waitForNewMaster(previousPort: number, timeoutMs?: number): Promise<RedisServerHandle>;
  /** Waits until `node` is a replica whose link to the master is up. */
  waitForReplicaLink(node: RedisServerHandle, timeoutMs?: number): Promise<void>;
  /**
   * Restarts a killed former master and points it at the current master at once (Sentinel
   * converts a returning old master only after it has been up ~8 s and then again, which under
   * load can exceed a test's budget), then waits for its link. Leaves the topology as the next
   * test expects: every node but the master a linked replica.
   */
  rejoinAsReplica(node: RedisServerHandle, timeoutMs?: number): Promise<void>;
  /** `SENTINEL FAILOVER` on the first running Sentinel; resolves once a new master is announced. */
  failover(timeoutMs?: number): Promise<RedisServerHandle>;
  /** Stops every Sentinel and data node (each by its own handle). */
  stop(): Promise<void>;
}

const HOST = '127.0.0.1';

function flatToMap(reply: RespReply): Map<string, string> {
  const map = new Map<string, string>();
  if (!Array.isArray(reply)) return map;
  for (let i = 0; i + 1 < reply.length; i += 2) map.set(String(reply[i]), String(reply[i + 1]));
  return map;
}

async function startSentinel(
  masterPort: number,
  options: Required<Omit<SentinelTopologyOptions, 'sentinelPassword' | 'replicas' | 'sentinels'>> & { sentinelPassword: string | undefined },
): Promise<SentinelHandle> {
  const dir = tempDir('edge-gateway-sentinel-');
  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    const name = options.masterName;
    const lines = [
      `port ${port}`,
      `bind ${HOST}`,
      `dir ${dir}`,
      'daemonize no',
      'logfile ""',
      `sentinel monitor ${name} ${HOST} ${masterPort} 2`,
      `sentinel auth-pass ${name} ${options.password}`,
      `sentinel down-after-milliseconds ${name} ${options.downAfterMs}`,
      `sentinel failover-timeout ${name} ${options.failoverTimeoutMs}`,
      `sentinel parallel-syncs ${name} 1`,
      ...(options.sentinelPassword === undefined ? [] : [`requirepass ${options.sentinelPassword}`, `sentinel sentinel-pass ${options.sentinelPassword}`]),
    ];
    // Sentinel rewrites its config file, so it must be a writable file of its own.
    const file = join(dir, `sentinel-${port}.conf`);
    writeFileSync(file, `${lines.join('\n')}\n`);
    let spawned: Spawned;
    try {
      spawned = await spawnRedisProcess([file, '--sentinel'], '+monitor master', port, 10_000);
    } catch (err) {
      if (attempt >= 5 || !/address already in use/i.test(String(err))) throw err;
      continue;
    }
    const running = (): boolean => spawned.child.exitCode === null && spawned.child.signalCode === null;
    return {
      host: HOST,
      port,
      get running() {
        return running();
      },
      async stop() {
        if (!running()) return;
        spawned.child.kill('SIGTERM');
        await spawned.exited;
      },
    };
  }
}

/**
 * Starts a password-protected master, `replicas` replicas and `sentinels` Sentinels on free
 * loopback ports and resolves once every Sentinel sees every replica and the other Sentinels
 * (so a failover can be authorised). Every process is stopped by {@link SentinelTopology.stop}
 * and killed when the test process exits.
 */
export async function startSentinelTopology(options: SentinelTopologyOptions = {}): Promise<SentinelTopology> {
  const password = options.password ?? randomBytes(12).toString('hex');
  const settings = {
    password,
    sentinelPassword: options.sentinelPassword,
    masterName: options.masterName ?? 'gwmaster',
    downAfterMs: options.downAfterMs ?? 1000,
    failoverTimeoutMs: options.failoverTimeoutMs ?? 4000,
  };
  const nodes: RedisServerHandle[] = [];
  const sentinels: SentinelHandle[] = [];
  const stop = async (): Promise<void> => {
    await Promise.all(sentinels.map((s) => s.stop()));
    await Promise.all(nodes.map((n) => n.stop()));
  };
  try {
    // A replica that must resynchronise in full after a failover (it got writes the promoted
    // replica missed) starts at once instead of after the default 5 s diskless-sync delay, as
    // in the cluster harness (and as the runbook recommends for replicated reservations).
    const sync = ['--repl-diskless-sync-delay', '0'];
    const master = await startRedisServer({ password, extraArgs: ['--masterauth', password, ...sync] });
    nodes.push(master);
    for (let i = 0; i < (options.replicas ?? 1); i++) {
      nodes.push(await startRedisServer({ password, extraArgs: ['--masterauth', password, ...sync, '--replicaof', HOST, String(master.port)] }));
    }
    for (let i = 0; i < (options.sentinels ?? 3); i++) sentinels.push(await startSentinel(master.port, settings));
  } catch (err) {
    await stop();
    throw err;
  }

  const sentinelCommand = async (args: readonly string[]): Promise<RespReply> => {
    let lastError: unknown;
    for (const sentinel of sentinels) {
      if (!sentinel.running) continue;
      try {
        return await redisCommand(HOST, sentinel.port, settings.sentinelPassword, args, 2000);
      } catch (err) {
        lastError = err;
      }
    }
    throw lastError ?? new Error('no Sentinel is running');
  };
  const nodeByPort = (port: number): RedisServerHandle => {
    const node = nodes.find((n) => n.port === port);
    if (node === undefined) throw new Error(`Sentinel reports an unknown master port ${port}`);
    return node;
  };
  const masterAddr = async (): Promise<{ host: string; port: number }> => {
    const reply = await sentinelCommand(['SENTINEL', 'GET-MASTER-ADDR-BY-NAME', settings.masterName]);
    if (!Array.isArray(reply) || reply.length < 2) throw new Error('Sentinel does not know the master');
    return { host: String(reply[0]), port: Number(reply[1]) };
  };
  const isLinkedReplica = async (node: RedisServerHandle): Promise<boolean> => {
    const info = String(await redisCommand(HOST, node.port, password, ['INFO', 'replication'], 2000));
    return /role:slave/.test(info) && /master_link_status:up/.test(info);
  };
  const settled = async (masterPort: number, timeoutMs: number): Promise<void> => {
    // Every running Sentinel agrees on the master and sees the replicas and the other Sentinels.
    const running = sentinels.filter((s) => s.running);
    const replicas = nodes.filter((n) => n.port !== masterPort && n.running);
    await waitFor(
      async () => {
        for (const sentinel of running) {
          const info = flatToMap(await redisCommand(HOST, sentinel.port, settings.sentinelPassword, ['SENTINEL', 'MASTER', settings.masterName], 2000));
          if (Number(info.get('port')) !== masterPort) return false;
          if (Number(info.get('num-slaves')) < replicas.length) return false;
          if (Number(info.get('num-other-sentinels')) < running.length - 1) return false;
          if ((info.get('flags') ?? '') !== 'master') return false;
        }
        for (const replica of replicas) if (!(await isLinkedReplica(replica))) return false;
        return true;
      },
      { timeoutMs, intervalMs: 100, message: `Sentinel topology settled on master port ${masterPort}` },
    );
  };
  try {
    await settled(nodes[0]?.port ?? 0, 20_000);
  } catch (err) {
    await stop();
    throw err;
  }

  const topology: SentinelTopology = {
    masterName: settings.masterName,
    password,
    sentinelPassword: settings.sentinelPassword,
    nodes,
    sentinels,
    sentinelAddrs: sentinels.map((s) => `${s.host}:${s.port}`).join(','),
    master: masterAddr,
    async masterNode() {
      return nodeByPort((await masterAddr()).port);
    },
    async replicaNodes() {
      const { port } = await masterAddr();
      return nodes.filter((n) => n.port !== port);
    },
    async waitForNewMaster(previousPort, timeoutMs = 20_000) {
      const port = await waitFor(
        async () => {
          const addr = await masterAddr();
          return addr.port !== previousPort ? addr.port : 0;
        },
        { timeoutMs, intervalMs: 50, message: `a master other than port ${previousPort}` },
      );
      return nodeByPort(port);
    },
    async waitForReplicaLink(node, timeoutMs = 20_000) {
      await waitFor(() => isLinkedReplica(node), { timeoutMs, intervalMs: 100, message: `port ${node.port} replicating` });
    },
    async rejoinAsReplica(node, timeoutMs = 20_000) {
      if (!node.running) await node.restart();
      const { host, port } = await masterAddr();
      await redisCommand(HOST, node.port, password, ['REPLICAOF', host, String(port)], 2000);
      await topology.waitForReplicaLink(node, timeoutMs);
    },
    async failover(timeoutMs = 20_000) {
      const { port } = await masterAddr();
      await sentinelCommand(['SENTINEL', 'FAILOVER', settings.masterName]);
      return topology.waitForNewMaster(port, timeoutMs);
    },
    stop,
  };
  return topology;
}

import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { freePort } from './free-port.js';
import { startRedisServer, type RedisServerHandle } from './redis-server.js';
import { redisCommand, type RespReply } from './resp-command.js';
import { waitFor } from './wait-for.js';

/** Options of {@link startRedisCluster}. */
export interface RedisClusterOptions {
  /** Masters (default 3, the minimum `redis-cli --cluster create` accepts). */
  masters?: number;
  /** Replicas per master (default 0). */
  replicasPerMaster?: number;
  /** `requirepass` and `masterauth` of every node; a random one by default. */
  password?: string;
  /**
   * `cluster-node-timeout` in milliseconds (default 2000): how long a master may be
   * unreachable before its replica is promoted. Low so failover tests stay short.
   */
  nodeTimeoutMs?: number;
  /** Bound on the whole start, including `cluster_state:ok` on every node (default 30000). */
  startTimeoutMs?: number;
}

/** One node as `CLUSTER NODES` reports it. */
export interface ClusterNodeInfo {
  readonly id: string;
  /** `host:port` (client port). */
  readonly address: string;
  readonly port: number;
  readonly role: 'master' | 'replica';
  /** The master's node id for a replica, `-` for a master. */
  readonly masterId: string;
  /** Slot ranges `[first, last]` a master serves. */
  readonly slots: ReadonlyArray<readonly [number, number]>;
  /** `fail`, `fail?` or `handshake` flags present. */
  readonly failing: boolean;
}

/** A running Redis Cluster of `redis-server` child processes owned by the test process. */
export interface RedisClusterHandle {
  readonly host: string;
  readonly password: string;
  /** Every node, in creation order (the first `masters` were created as masters). */
  readonly nodes: readonly RedisServerHandle[];
  /** `host:port` of every node, comma-separated (the form of `GATEWAY_REDIS_CLUSTER_NODES`). */
  readonly seeds: string;
  /** The node process listening on `port`. */
  node(port: number): RedisServerHandle;
  /** One command on the node at `port` (with AUTH), parsed. */
  command(port: number, args: readonly string[]): Promise<RespReply>;
  /** The topology as seen by the first running node (or `viaPort`). */
  topology(viaPort?: number): Promise<ClusterNodeInfo[]>;
  /** The current master serving `slot`. */
  masterOf(slot: number): Promise<ClusterNodeInfo>;
  /**
   * Waits (bounded by `timeoutMs`, default 20000) until every running node reports
   * `cluster_state:ok`, agrees on every node's role, health and slots, and is either a master serving
   * slots or a replica whose link to its master is up.
   */
  waitUntilStable(timeoutMs?: number): Promise<void>;
  /**
   * `CLUSTER FAILOVER` (planned, without `FORCE`) on the replica at `replicaPort`; resolves once
   * every running node sees it as a master and the cluster is stable again (bounded by
   * `timeoutMs`, default 20000). The command answers `OK` before the failover starts, so
   * {@link RedisClusterHandle.waitUntilStable} alone can return on the old layout, still stable.
   */
  failover(replicaPort: number, timeoutMs?: number): Promise<void>;
  /** Stops every node (SIGTERM, each by its own handle) and waits for them to exit. */
  stop(): Promise<void>;
}

const HOST = '127.0.0.1';

/** Parses `CLUSTER NODES` text. */
export function parseClusterNodes(text: string): ClusterNodeInfo[] {
  const nodes: ClusterNodeInfo[] = [];
  for (const line of text.split('\n')) {
    const parts = line.trim().split(' ');
    if (parts.length < 8) continue;
    const [id, addr, flags, master] = parts as [string, string, string, string];
    const address = addr.split('@')[0] ?? addr;
    const flagSet = new Set(flags.split(','));
    const slots: Array<readonly [number, number]> = [];
    for (const range of parts.slice(8)) {
      if (range.startsWith('[')) continue; // a slot being migrated
      const [a, b] = range.split('-');
      slots.push([Number(a), Number(b ?? a)]);
    }
    nodes.push({
      id,
      address,
      port: Number(address.slice(address.lastIndexOf(':') + 1)),
      role: flagSet.has('master') ? 'master' : 'replica',
      masterId: master,
      slots,
      failing: flagSet.has('fail') || flagSet.has('fail?') || flagSet.has('handshake') || flagSet.has('noaddr'),
    });
  }
  return nodes;
}

function runRedisCli(args: readonly string[], timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn('redis-cli', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    const onData = (chunk: Buffer): void => {
      output = (output + chunk.toString('utf8')).slice(-8000);
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`redis-cli ${args.slice(2, 4).join(' ')} timed out after ${timeoutMs}ms:\n${output}`));
    }, timeoutMs);
    child.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      if (code === 0) resolve(output);
      else reject(new Error(`redis-cli exited with code ${code}:\n${output}`));
    });
  });
}

/**
 * Starts a password-protected Redis Cluster on 127.0.0.1: `masters × (1 + replicasPerMaster)`
 * `redis-server --cluster-enabled yes` processes on free ports (client and bus port both
 * chosen free), joined with `redis-cli --cluster create … --cluster-yes`, and resolves once
 * every node reports `cluster_state:ok` and every replica is linked. Each node keeps its own
 * `nodes.conf` in its own dir, so a node restarted with `restart()` rejoins the cluster.
 */
export async function startRedisCluster(options: RedisClusterOptions = {}): Promise<RedisClusterHandle> {
  const masters = options.masters ?? 3;
  const replicas = options.replicasPerMaster ?? 0;
  const password = options.password ?? randomBytes(12).toString('hex');
  const nodeTimeoutMs = options.nodeTimeoutMs ?? 2000;
  const startTimeoutMs = options.startTimeoutMs ?? 30_000;
  const deadline = Date.now() + startTimeoutMs;
  const nodes: RedisServerHandle[] = [];
  const stopAll = async (): Promise<void> => {
    await Promise.all(nodes.map((n) => n.stop()));
  };
  try {
    for (let i = 0; i < masters * (1 + replicas); i++) {
      const busPort = await freePort();
      nodes.push(
        await startRedisServer({
          password,
          extraArgs: [
            '--cluster-enabled', 'yes',
            '--cluster-config-file', 'nodes.conf',
            '--cluster-node-timeout', String(nodeTimeoutMs),
            '--cluster-port', String(busPort),
            '--masterauth', password,
            // Writes acknowledged by a master reach its replica within this test's waits.
            '--repl-diskless-sync', 'yes',
            '--repl-diskless-sync-delay', '0',
          ],
        }),
      );
    }
    await runRedisCli(
      [
        '-a', password, '--no-auth-warning',
        '--cluster', 'create',
        ...nodes.map((n) => `${HOST}:${n.port}`),
        '--cluster-replicas', String(replicas),
        '--cluster-yes',
      ],
      Math.max(1000, deadline - Date.now()),
    );
  } catch (err) {
    await stopAll();
    throw err;
  }

  const handle: RedisClusterHandle = {
    host: HOST,
    password,
    nodes,
    seeds: nodes.map((n) => `${HOST}:${n.port}`).join(','),
    node(port: number): RedisServerHandle {
      const found = nodes.find((n) => n.port === port);
      if (found === undefined) throw new Error(`no cluster node on port ${port}`);
      return found;
    },
    command: (port, args) => redisCommand(HOST, port, password, args),
    async topology(viaPort?: number): Promise<ClusterNodeInfo[]> {
      const via = viaPort ?? nodes.find((n) => n.running)?.port;
      if (via === undefined) throw new Error('no cluster node is running');
      return parseClusterNodes(String(await handle.command(via, ['CLUSTER', 'NODES'])));
    },
    async masterOf(slot: number): Promise<ClusterNodeInfo> {
      const found = (await handle.topology()).find((n) => n.role === 'master' && !n.failing && n.slots.some(([a, b]) => slot >= a && slot <= b));
      if (found === undefined) throw new Error(`no healthy master serves slot ${slot}`);
      return found;
    },
    async failover(replicaPort: number, timeoutMs = 20_000): Promise<void> {
      const reply = await handle.command(replicaPort, ['CLUSTER', 'FAILOVER']);
      if (reply !== 'OK') throw new Error(`CLUSTER FAILOVER on ${replicaPort}: ${String(reply)}`);
      const deadline = Date.now() + timeoutMs;
      await waitFor(
        async () => {
          for (const node of nodes.filter((n) => n.running)) {
            if ((await handle.topology(node.port)).find((n) => n.port === replicaPort)?.role !== 'master') return false;
          }
          return true;
        },
        { timeoutMs, intervalMs: 50, message: `replica ${replicaPort} promoted on every node` },
      );
      await handle.waitUntilStable(Math.max(1000, deadline - Date.now()));
    },
    async waitUntilStable(timeoutMs = 20_000): Promise<void> {
      await waitFor(
        async () => {
          const running = nodes.filter((n) => n.running);
          const views: string[] = [];
          for (const n of running) {
            const info = String(await handle.command(n.port, ['CLUSTER', 'INFO']));
            if (!info.includes('cluster_state:ok')) return false;
            const topo = parseClusterNodes(String(await handle.command(n.port, ['CLUSTER', 'NODES'])));
            const self = topo.find((t) => t.port === n.port);
            // A node is settled as a master that serves slots or as a replica linked to its
            // master (right after `--cluster create` replicas are still empty masters).
            if (self === undefined) return false;
            if (self.role === 'master' && self.slots.length === 0) return false;
            if (self.role === 'master') {
              // Every replica acknowledged at least once: after a full resync the master streams
              // it nothing, and a WAIT counts it for nothing, until its first ACK (up to 1 s).
              const repl = String(await handle.command(n.port, ['INFO', 'replication']));
              for (const line of repl.split('\n').filter((l) => /^slave\d+:/.test(l))) {
                if (!/state=online,offset=[1-9]/.test(line)) return false;
              }
            }
            if (self.role === 'replica') {
              const repl = String(await handle.command(n.port, ['INFO', 'replication']));
              if (!repl.includes('master_link_status:up')) return false;
            }
            views.push(
              topo
                .map((t) => `${t.address}=${t.failing ? 'failing' : t.role}:${t.slots.map((s) => s.join('-')).join(',')}`)
                .sort()
                .join(' '),
            );
          }
          return views.length > 0 && views.every((v) => v === views[0]);
        },
        { timeoutMs, intervalMs: 100, message: 'redis cluster stable (cluster_state:ok, one view of the masters, replicas linked and acknowledging)' },
      );
    },
    stop: stopAll,
  };
  try {
    await handle.waitUntilStable(Math.max(1000, deadline - Date.now()));
  } catch (err) {
    await stopAll();
    throw err;
  }
  return handle;
}

/** `<name>:<integer>` of an `INFO` text; undefined when absent. */
function infoNumber(info: string, name: string): number | undefined {
  const match = new RegExp(`^${name}:(\\d+)`, 'm').exec(info);
  return match === null ? undefined : Number(match[1]);
}

/**
 * Waits (bounded) until the master on `masterPort` knows that the replica on `replicaPort` has
 * everything it had written when this was called: the master's own view (`INFO replication`,
 * the replica online with an acknowledged offset at least the master's), which is what a `WAIT`
 * counts. The replica's own offset is not enough: after a full resync the replica holds the
 * master's offset at once, but the master streams it no write (and a `WAIT` counts it for none)
 * until the replica's first acknowledgement, up to a second later.
 */
export async function waitForReplication(cluster: RedisClusterHandle, masterPort: number, replicaPort: number, timeoutMs = 10_000): Promise<void> {
  const target = infoNumber(String(await cluster.command(masterPort, ['INFO', 'replication'])), 'master_repl_offset') ?? 0;
  const line = new RegExp(`^slave\\d+:.*\\bport=${replicaPort},state=(\\w+),offset=(\\d+)`, 'm');
  await waitFor(
    async () => {
      const seen = line.exec(String(await cluster.command(masterPort, ['INFO', 'replication'])));
      return seen !== null && seen[1] === 'online' && Number(seen[2]) >= target;
    },
    { timeoutMs, intervalMs: 20, message: `master ${masterPort} saw replica ${replicaPort} acknowledge offset ${target}` },
  );
}

/**
 * Replica lag on demand: the replica's process is stopped (SIGSTOP) and the master drops its
 * replication link (`CLIENT KILL TYPE replica`), so every write the master acknowledges from now
 * on reaches no replica. {@link killMasterAndPromote} then loses exactly those writes.
 */
export async function cutReplica(cluster: RedisClusterHandle, masterPort: number, replicaPort: number): Promise<void> {
  cluster.node(replicaPort).pause();
  await cluster.command(masterPort, ['CLIENT', 'KILL', 'TYPE', 'replica']);
}

/**
 * The failover that loses unreplicated writes: SIGKILL of the master, the replica resumed and
 * promoted at once (`CLUSTER FAILOVER TAKEOVER`, no vote needed); resolves once every running
 * node sees the replica as the master of the slot, bounded by `timeoutMs`.
 */
export async function killMasterAndPromote(cluster: RedisClusterHandle, masterPort: number, replicaPort: number, slot: number, timeoutMs = 20_000): Promise<void> {
  await cluster.node(masterPort).kill();
  cluster.node(replicaPort).resume();
  await cluster.command(replicaPort, ['CLUSTER', 'FAILOVER', 'TAKEOVER']);
  await waitFor(
    async () => {
      for (const node of cluster.nodes.filter((n) => n.running)) {
        const master = (await cluster.topology(node.port)).find((n) => n.role === 'master' && !n.failing && n.slots.some(([a, b]) => slot >= a && slot <= b));
        if (master?.port !== replicaPort) return false;
      }
      return true;
    },
    { timeoutMs, intervalMs: 100, message: `replica ${replicaPort} promoted for slot ${slot} on every node` },
  );
}

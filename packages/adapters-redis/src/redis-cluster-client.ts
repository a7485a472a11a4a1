import { GatewayMetrics, noopLogger, type Logger } from '@edge-gateway/core';
import { createRequire } from 'node:module';
import type { createClient as CreateClient, createCluster as CreateCluster } from '@redis/client';
import { backoffDelay, type ReconnectOptions } from './backoff.js';
import { RedisCommandError } from './redis-command-error.js';
import { keySlot } from './cluster-slot.js';
import {
  SOCKET_WRITE_HIGH_WATER_MARK,
  boundedCommand,
  closeOrDestroy,
  describeRedisError,
  type NodeRedisClient,
  type RawReply,
  type RedisCommandOptions,
} from './redis-client.js';
import type { RedisCommands } from './redis-commands.js';
import { WaitLane, redirectOf, type ReplicatedReply, type ReplicatedWriter, type ReplicatedWriterOptions } from './replicated-writes.js';

// CommonJS core package, `require`d for the same reasons as in redis-client.ts.
const { createClient, createCluster } = createRequire(import.meta.url)('@redis/client') as {
  createClient: typeof CreateClient;
  createCluster: typeof CreateCluster;
};

type ClusterOptions = NonNullable<Parameters<typeof CreateCluster>[0]>;

function createResp2Cluster(options: Omit<ClusterOptions, 'RESP'>) {
  return createCluster({ ...options, RESP: 2 });
}

/** The node-redis cluster client type this package wraps (RESP2, no modules). */
export type NodeRedisCluster = ReturnType<typeof createResp2Cluster>;

/** Options of {@link RedisClusterClient}. */
export interface RedisClusterClientOptions {
  /** Seed nodes (`GATEWAY_REDIS_CLUSTER_NODES`); the rest of the topology is discovered. */
  nodes: ReadonlyArray<{ host: string; port: number }>;
  /** `requirepass` of every node; never logged. */
  password: string;
  /** `CLIENT SETNAME` of every connection (blocking connections get a `:stream` suffix). */
  clientName?: string;
  /** Bound on each command (`GATEWAY_REDIS_COMMAND_TIMEOUT`, default 2000). */
  commandTimeoutMs?: number;
  reconnect?: ReconnectOptions;
  metrics?: GatewayMetrics;
  logger?: Logger;
}

/** Commands whose key is not `args[1]`; `undefined`: no key (any master answers). */
function routingKey(args: readonly string[]): string | undefined {
  const name = (args[0] ?? '').toUpperCase();
  switch (name) {
    case 'PING':
    case 'FUNCTION':
    case 'SCRIPT':
    case 'CLUSTER':
    case 'INFO':
      return undefined;
    case 'XINFO':
    case 'XGROUP':
      return args[2];
    case 'FCALL':
    case 'FCALL_RO':
    case 'EVAL':
    case 'EVALSHA':
      return Number(args[2]) > 0 ? args[3] : undefined;
    case 'XREAD':
    case 'XREADGROUP': {
      const at = args.findIndex((a) => a.toUpperCase() === 'STREAMS');
      return at < 0 ? undefined : args[at + 1];
    }
    default:
      return args[1];
  }
}

/**
 * The shared client of a gateway process on a Redis Cluster (`GATEWAY_REDIS_CLUSTER_NODES`):
 * node-redis `createCluster`, which discovers the topology from the seeds, keeps one
 * connection per master, routes each command to the master of its key's slot and follows
 * `MOVED`/`ASK` after a failover or resharding. Same contract as {@link RedisClient}: commands
 * never wait in an offline queue, each is bounded by `commandTimeoutMs` and measured.
 * Reads go to masters only (`useReplicas: false`): replicas lag, and a session lookup or a
 * replay reservation must see the latest write.
 */
export class RedisClusterClient implements RedisCommands {
  readonly raw: NodeRedisCluster;
  readonly commandTimeoutMs: number;
  readonly metrics: GatewayMetrics;
  readonly logger: Logger;

  constructor(private readonly options: RedisClusterClientOptions) {
    if (options.nodes.length === 0) throw new RangeError('RedisClusterClient needs at least one seed node');
    this.commandTimeoutMs = options.commandTimeoutMs ?? 2000;
    this.metrics = options.metrics ?? new GatewayMetrics();
    this.logger = (options.logger ?? noopLogger).child({ component: 'redis-cluster' });
    const reconnect = options.reconnect ?? {};
    const bound = Math.max(this.commandTimeoutMs, 1000);
    this.raw = createResp2Cluster({
      // A seed is only asked for the topology, on a short-lived connection. node-redis starts at a
      // random seed and bounds the connect but not the handshake (AUTH, CLIENT SETNAME) nor the
      // reply: a seed that accepts TCP and never answers (a stopped process, a black-holed host)
      // held discovery forever, and its socket kept a finished CLI process alive. The idle timeout
      // (for these connections only: the masters' clients are made from the discovered shards)
      // gives up on such a seed and tries the next.
      rootNodes: options.nodes.map((n) => ({ socket: { host: n.host, port: n.port, socketTimeout: bound } })),
      defaults: {
        password: options.password,
        ...(options.clientName !== undefined ? { name: options.clientName } : {}),
        disableOfflineQueue: true,
        socket: {
          connectTimeout: bound,
          reconnectStrategy: (retries: number) => backoffDelay(retries, reconnect),
        },
      },
      useReplicas: false,
      maxCommandRedirections: 16,
      // A master that went away (failover) is only replaced in the slot map by a topology refresh;
      // node-redis waits 5 s of reconnect attempts before the first one. 1 s keeps a promoted
      // replica unused for about a second, not five to ten.
      topologyRefreshOnReconnectionAttemptStrategy: 1000,
    });
    this.raw.on('error', (err: unknown) => {
      this.logger.warn('redis cluster error', { error: describeRedisError(err) });
    });
  }

  /** Discovery goes from seed to seed: one seed's error does not fail `connectAndPing`. */
  readonly triesSeveralSeeds = true;

  /** The seed nodes, for messages. */
  get address(): string {
    return this.options.nodes.map((n) => `${n.host}:${n.port}`).join(',');
  }

  /** Discovers the topology and connects to every master. */
  async connect(): Promise<void> {
    if (!this.raw.isOpen) await this.raw.connect();
  }

  /** `PING` on one node. */
  async ping(options: RedisCommandOptions = {}): Promise<void> {
    await this.command(['PING'], options);
  }

  /** Closes every connection after pending commands finish (and every replicated writer at once). */
  close(): Promise<void> {
    clearInterval(this.masterWatch);
    this.masterWatch = undefined;
    for (const writer of [...this.writers]) writer.close();
    return closeOrDestroy(this.raw);
  }

  /** `await using x = new RedisClusterClient(…)`: {@link RedisClusterClient.close} at scope exit. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  /** Closes every connection at once, rejecting pending commands (the abort; {@link RedisClusterClient.close} is the graceful stop). */
  destroy(): void {
    clearInterval(this.masterWatch);
    this.masterWatch = undefined;
    for (const writer of [...this.writers]) writer.close();
    if (this.raw.isOpen) this.raw.destroy();
  }

  private readonly writers = new Set<ClusterReplicatedWriter>();

  /**
   * Writes confirmed by `WAIT` (SPEC §5.2, §9.1): each goes to dedicated connections of the
   * master that holds its key's slot (in the client's current view), where its `WAIT` runs too.
   * A `MOVED` reply (the slot moved: failover, resharding) refreshes the view and sends the write
   * to the master named; an `ASK` reply (a slot being migrated) sends it with `ASKING` to the
   * target. Both are safe: a redirected write did not run.
   */
  replicatedWriter(options: ReplicatedWriterOptions): ReplicatedWriter {
    const writer = new ClusterReplicatedWriter(this, options, () => this.writers.delete(writer));
    this.writers.add(writer);
    return writer;
  }

  /** A dedicated connection to `host:port` that reconnects by itself (for {@link ClusterReplicatedWriter}). */
  dedicatedConnection(host: string, port: number, suffix: string): NodeRedisClient {
    const reconnect = this.options.reconnect ?? {};
    const connection = createClient({
      RESP: 2,
      password: this.options.password,
      ...(this.options.clientName !== undefined ? { name: `${this.options.clientName}${suffix}` } : {}),
      disableOfflineQueue: true,
      commandOptions: { timeout: 0 },
      socket: {
        host,
        port,
        connectTimeout: Math.max(this.commandTimeoutMs, 1000),
        writableHighWaterMark: SOCKET_WRITE_HIGH_WATER_MARK,
        reconnectStrategy: (retries: number) => backoffDelay(retries, reconnect),
      } as { host: string; port: number; connectTimeout: number; reconnectStrategy: (retries: number) => number },
    });
    connection.on('error', (err: unknown) => {
      this.logger.warn('redis connection error', { connection: suffix.replace(/^:/, ''), address: `${host}:${port}`, error: describeRedisError(err) });
    });
    return connection as unknown as NodeRedisClient;
  }

  /**
   * Every master serving slots with the number of replicas the cluster lists for it, failing
   * ones included (`CLUSTER NODES`): the most a `WAIT` on that master could count (SPEC §5.2).
   */
  async replicasPerMaster(): Promise<Array<{ address: string; replicas: number }>> {
    const lines = String(await this.command(['CLUSTER', 'NODES'])).split('\n');
    const masters = new Map<string, { address: string; replicas: number }>();
    const replicaOf: string[] = [];
    for (const line of lines) {
      const [id, addr, flags, masterId, , , , , ...slots] = line.trim().split(' ');
      if (id === undefined || addr === undefined || flags === undefined || masterId === undefined) continue;
      const roles = flags.split(',');
      if (roles.includes('master') && slots.length > 0) masters.set(id, { address: addr.split('@')[0] ?? addr, replicas: 0 });
      else if (roles.includes('slave') || roles.includes('replica')) replicaOf.push(masterId);
    }
    for (const id of replicaOf) {
      const master = masters.get(id);
      if (master !== undefined) master.replicas += 1;
    }
    return [...masters.values()];
  }

  /** `host:port` of every master in the client's current view. */
  masterAddresses(): Set<string> {
    return new Set(this.raw.masters.map((m) => `${m.host}:${m.port}`));
  }

  command(args: readonly string[], options: RedisCommandOptions = {}): Promise<RawReply> {
    const name = (args[0] ?? '').toUpperCase();
    const timeoutMs = options.timeoutMs ?? this.commandTimeoutMs;
    const connection = options.connection;
    // node-redis does not modify the arguments it is given (no copy per command).
    const mutable = args as string[];
    return boundedCommand(name, timeoutMs, this.metrics, (abortSignal) => {
      const opts = abortSignal === undefined ? undefined : { abortSignal };
      if (connection !== undefined) return connection.sendCommand(mutable, opts) as Promise<RawReply>;
      return this.raw.sendCommand(options.key ?? routingKey(args), false, mutable, opts) as Promise<RawReply>;
    });
  }

  /** Runs `args` on every master (e.g. `FUNCTION LOAD`); resolves with their replies. */
  async onEveryMaster(args: readonly string[]): Promise<RawReply[]> {
    const name = (args[0] ?? '').toUpperCase();
    return Promise.all(
      this.raw.masters.map(async (master) => {
        const client = await this.raw.nodeClient(master);
        return boundedCommand(name, this.commandTimeoutMs, this.metrics, (abortSignal) =>
          client.sendCommand([...args], abortSignal === undefined ? {} : { abortSignal }) as Promise<RawReply>,
        );
      }),
    );
  }

  private readonly masterListeners = new Set<(masters: readonly string[]) => void>();
  private masterWatch: NodeJS.Timeout | undefined;
  private knownMasters: string | undefined;

  /**
   * Calls `listener` when the set of masters in the client's view changed (a failover promoted a
   * replica, a master was added or removed), checked every `intervalMs` (default 1000). The
   * view follows node-redis's rediscovery: at once on a `MOVED` reply, and within about 5 s of a
   * master that stopped answering (its reconnection attempts trigger one). Returns a function
   * that removes the listener; the watch stops with the last one.
   */
  onMasterChange(listener: (masters: readonly string[]) => void, intervalMs = 1000): () => void {
    this.masterListeners.add(listener);
    if (this.masterWatch === undefined) {
      this.knownMasters = this.mastersKey();
      this.masterWatch = setInterval(() => this.checkMasters(), intervalMs);
      this.masterWatch.unref();
    }
    return () => {
      this.masterListeners.delete(listener);
      if (this.masterListeners.size === 0) {
        clearInterval(this.masterWatch);
        this.masterWatch = undefined;
      }
    };
  }

  private mastersKey(): string {
    return this.raw.masters
      .map((m) => m.address)
      .sort()
      .join(',');
  }

  private checkMasters(): void {
    const now = this.mastersKey();
    // An empty view (closed, or in the middle of a rediscovery) is no new master.
    if (now === '' || now === this.knownMasters) return;
    const before = this.knownMasters;
    this.knownMasters = now;
    this.logger.warn('redis cluster masters changed', { from: before, to: now });
    const masters = now.split(',');
    for (const listener of this.masterListeners) {
      try {
        listener(masters);
      } catch (err) {
        this.logger.error('redis master-change listener failed', { error: describeRedisError(err) });
      }
    }
  }

  /** `host:port` of the master serving `slot` in the client's current view. */
  masterOf(slot: number): { host: string; port: number } {
    const master = this.raw.getSlotMaster(slot);
    return { host: master.host, port: master.port };
  }

  /**
   * A dedicated connection to the master holding `key` now. One keyed command runs first
   * through the cluster client, so a stale view (after a failover) is refreshed by its
   * `MOVED` before the address is picked.
   */
  async blockingConnection(key: string): Promise<NodeRedisClient> {
    await this.command(['EXISTS', key]);
    const { host, port } = this.masterOf(keySlot(key));
    const connection = createClient({
      RESP: 2,
      password: this.options.password,
      ...(this.options.clientName !== undefined ? { name: `${this.options.clientName}:stream` } : {}),
      disableOfflineQueue: true,
      socket: {
        host,
        port,
        connectTimeout: Math.max(this.commandTimeoutMs, 1000),
        writableHighWaterMark: SOCKET_WRITE_HIGH_WATER_MARK,
        reconnectStrategy: false,
      } as { host: string; port: number; connectTimeout: number; reconnectStrategy: false },
    });
    connection.on('error', (err: unknown) => {
      this.logger.warn('redis connection error', { connection: 'stream', address: `${host}:${port}`, error: describeRedisError(err) });
    });
    return connection as unknown as NodeRedisClient;
  }
}

/** Redirects followed per write at most (a slot moving twice during one write is already rare). */
const MAX_WRITE_REDIRECTS = 3;

/** {@link RedisClusterClient.replicatedWriter}: one {@link WaitLane} per master, created on first use. */
class ClusterReplicatedWriter implements ReplicatedWriter {
  private readonly lanes = new Map<string, WaitLane>();
  private closed = false;
  readonly minReplicas: number;

  constructor(
    private readonly client: RedisClusterClient,
    private readonly options: ReplicatedWriterOptions,
    private readonly onClose: () => void,
  ) {
    this.minReplicas = options.minReplicas;
  }

  async write(key: string, args: readonly string[], needsWait?: (reply: RawReply) => boolean): Promise<ReplicatedReply> {
    let target = this.client.masterOf(keySlot(key));
    let asking = false;
    for (let redirects = 0; ; redirects += 1) {
      try {
        return await this.lane(target.host, target.port).write(args, needsWait, asking);
      } catch (err) {
        const redirect = redirectOf(err);
        if (redirect === undefined || redirects >= MAX_WRITE_REDIRECTS) throw err;
        const at = redirect.address.lastIndexOf(':');
        target = { host: redirect.address.slice(0, at), port: Number(redirect.address.slice(at + 1)) };
        asking = redirect.kind === 'ASK';
        // The shared client's view is stale too: one keyed command through it follows the MOVED
        // and rediscovers the slots (in the background; the write goes on to the named master).
        if (redirect.kind === 'MOVED') this.client.command(['EXISTS', key]).catch(() => undefined);
      }
    }
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const lane of this.lanes.values()) lane.close();
    this.lanes.clear();
    this.onClose();
  }

  private lane(host: string, port: number): WaitLane {
    const address = `${host}:${port}`;
    let lane = this.lanes.get(address);
    if (lane !== undefined) return lane;
    if (this.closed) throw new RedisCommandError('SET', 'the client is closed');
    // A new master (failover, resharding): lanes of nodes that are no longer masters go.
    const masters = this.client.masterAddresses();
    for (const [old, oldLane] of this.lanes) {
      if (!masters.has(old)) {
        oldLane.close();
        this.lanes.delete(old);
      }
    }
    lane = new WaitLane(() => this.client.dedicatedConnection(host, port, ':replay'), {
      ...this.options,
      address,
      commandTimeoutMs: this.client.commandTimeoutMs,
      metrics: this.client.metrics,
      logger: this.client.logger,
    });
    this.lanes.set(address, lane);
    return lane;
  }
}

/** Creates the shared cluster client (not connected yet; see `connectAndPing`). */
export function createRedisClusterClient(options: RedisClusterClientOptions): RedisClusterClient {
  return new RedisClusterClient(options);
}

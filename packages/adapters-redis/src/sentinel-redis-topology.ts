import { noopLogger, type Logger } from '@edge-gateway/core';
import { RedisClient, describeRedisError, destroyConnection, type NodeRedisClient, type RawReply, type RedisClientOptions } from './redis-client.js';
import { RedisStartupError, connectAndPing } from './redis-startup.js';
import { ReplicaSet } from './replica-set.js';
import { formatAddress, type RedisAddress, type RedisTopology, type RedisTopologyNode } from './redis-topology.js';

/** Options of {@link SentinelRedisTopology}. */
export interface SentinelRedisTopologyOptions {
  /** `GATEWAY_REDIS_SENTINEL_ADDRS`. */
  sentinels: readonly RedisAddress[];
  /** `GATEWAY_REDIS_SENTINEL_MASTER_NAME`. */
  masterName: string;
  /** `GATEWAY_REDIS_SENTINEL_PASSWORD` (empty or absent: Sentinels without `requirepass`). */
  sentinelPassword?: string;
  /** Settings of the data-node clients (password, db, timeouts, metrics, logger); the address is discovered. */
  master: Omit<RedisClientOptions, 'host' | 'port'>;
  /** How often the Sentinels are asked for the master and the replicas (default 1000 ms). */
  pollIntervalMs?: number;
}

/** One replica as a Sentinel lists it. */
interface SentinelReplica {
  readonly address: RedisAddress;
  readonly healthy: boolean;
  readonly detail: string;
}

const SWITCH_CHANNEL = '+switch-master';

/**
 * A master and replicas discovered through Redis Sentinel, on plain node-redis clients.
 *
 * node-redis's own Sentinel client (`createSentinel`) was not used: measured with 6.3.1, a
 * command that timed out may still run later through its internal rediscovery retries (a
 * replay reservation written after the caller was told it failed), its topology scan is off by
 * default, and a burst from idle can hang with a pool. Here the gateway owns discovery:
 *
 * - startup asks the Sentinels in order for `SENTINEL GET-MASTER-ADDR-BY-NAME` and PINGs the
 *   answer (SPEC §8.1 step 3);
 * - every Sentinel is subscribed to `+switch-master`, and every `pollIntervalMs` one Sentinel is
 *   asked again for the master (`SENTINEL MASTER`) and `SENTINEL REPLICAS` (a missed message
 *   costs at most one interval); an answer whose `config-epoch` is older than one already
 *   accepted (a Sentinel that has not heard of the last failover yet) is ignored, so the client
 *   never switches back to a demoted master;
 * - on a new master the one master {@link RedisClient} is re-pointed (`retarget`): commands
 *   never queue or retry across the switch (each fails or succeeds within the command timeout
 *   on the connection it was sent on), and master-change listeners run at once;
 * - replicas whose Sentinel flags show them down or whose master link is not `ok` are not used
 *   for reads.
 */
export class SentinelRedisTopology implements RedisTopology {
  readonly kind = 'sentinel';
  readonly master: RedisClient;
  private readonly options: SentinelRedisTopologyOptions;
  private readonly sentinelClients: RedisClient[];
  private readonly subscribers: NodeRedisClient[] = [];
  private readonly replicaSet: ReplicaSet;
  private readonly listeners = new Set<(master: RedisAddress) => void>();
  private readonly logger: Logger;
  private replicaList: SentinelReplica[] = [];
  private timer: NodeJS.Timeout | undefined;
  private polling = false;
  /** Highest Sentinel `config-epoch` accepted: an answer from a Sentinel that lags is ignored. */
  private epoch = -1;
  /** The Sentinel that announced the last switch: asked first by the next poll. */
  private announcer: RedisClient | undefined;
  private closed = false;

  constructor(options: SentinelRedisTopologyOptions) {
    this.options = options;
    // The address is unknown until a Sentinel answers; `connect` re-points the client first.
    const master = new RedisClient({ ...options.master, host: '0.0.0.0', port: 0 });
    this.master = master;
    this.logger = (options.master.logger ?? noopLogger).child({ component: 'redis-sentinel' });
    this.replicaSet = new ReplicaSet((address) => master.sibling(address, ':replica'));
    this.sentinelClients = options.sentinels.map(
      (address) =>
        new RedisClient({
          host: address.host,
          port: address.port,
          password: options.sentinelPassword ?? '',
          commandTimeoutMs: options.master.commandTimeoutMs,
          ...(options.master.reconnect !== undefined ? { reconnect: options.master.reconnect } : {}),
          ...(options.master.metrics !== undefined ? { metrics: options.master.metrics } : {}),
          logger: this.logger,
        }),
    );
  }

  replicas(): readonly RedisClient[] {
    return this.replicaSet.ready();
  }

  knownReplicas(): number {
    return this.replicaList.length;
  }

  async connect(timeoutMs: number): Promise<void> {
    const started = performance.now();
    try {
      const address = await this.discoverMaster(timeoutMs);
      await this.master.retarget(address.host, address.port);
      await connectAndPing(this.master, Math.max(1, timeoutMs - (performance.now() - started)));
    } catch (err) {
      await this.close();
      throw err;
    }
    for (const client of this.sentinelClients) client.connect().catch(() => undefined);
    this.logger.info('redis master discovered', { master_name: this.options.masterName, address: this.master.address });
    for (const client of this.sentinelClients) this.subscribe(client);
    await this.poll();
    this.timer = setInterval(() => void this.poll(), this.options.pollIntervalMs ?? 1000);
    this.timer.unref();
  }

  onMasterChange(listener: (master: RedisAddress) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  async describe(timeoutMs = this.master.commandTimeoutMs): Promise<RedisTopologyNode[]> {
    const sentinels = await Promise.all(
      this.sentinelClients.map(async (client): Promise<RedisTopologyNode> => {
        try {
          // Started by connect(); may still be connecting.
          client.connect().catch(() => undefined);
          await client.whenReady(timeoutMs);
          const reply = await client.command(['SENTINEL', 'GET-MASTER-ADDR-BY-NAME', this.options.masterName], { timeoutMs });
          const detail = Array.isArray(reply) ? `reports master ${String(reply[0])}:${String(reply[1])}` : `does not know master "${this.options.masterName}"`;
          return { role: 'sentinel', address: client.address, reachable: true, detail };
        } catch (err) {
          return { role: 'sentinel', address: client.address, reachable: false, detail: describeRedisError(err) };
        }
      }),
    );
    let master: RedisTopologyNode;
    try {
      await this.master.ping({ timeoutMs });
      master = { role: 'master', address: this.master.address, reachable: true, detail: `PONG (master "${this.options.masterName}")` };
    } catch (err) {
      master = { role: 'master', address: this.master.address, reachable: false, detail: describeRedisError(err) };
    }
    const connected = await this.replicaSet.describe(timeoutMs);
    const unused = this.replicaList
      .filter((r) => !r.healthy)
      .map((r): RedisTopologyNode => ({ role: 'replica', address: formatAddress(r.address), reachable: false, detail: `not used: ${r.detail}` }));
    return [master, ...connected, ...unused, ...sentinels];
  }

  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.timer);
    for (const subscriber of this.subscribers) destroyConnection(subscriber);
    this.subscribers.length = 0;
    for (const client of this.sentinelClients) client.destroy();
    this.replicaSet.close();
    await this.master.close().catch(() => this.master.destroy());
  }

  /** `await using x = new SentinelRedisTopology(…)`: {@link SentinelRedisTopology.close} at scope exit. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  /**
   * Asks the Sentinels in order until one names the master; bounded by `timeoutMs` in total. Each
   * Sentinel but the last gets at most its command timeout (at least 1 s) of that: a Sentinel
   * that accepts TCP and never answers (a stopped process) no longer spends the whole budget
   * before the next one is asked.
   */
  private async discoverMaster(timeoutMs: number): Promise<RedisAddress> {
    const deadline = performance.now() + timeoutMs;
    const problems: string[] = [];
    for (const [index, client] of this.sentinelClients.entries()) {
      const left = deadline - performance.now();
      if (left <= 0) break;
      const last = index === this.sentinelClients.length - 1;
      const until = performance.now() + (last ? left : Math.min(left, Math.max(client.commandTimeoutMs, 1000)));
      try {
        await connectBounded(client, until - performance.now());
        const reply = await client.command(['SENTINEL', 'GET-MASTER-ADDR-BY-NAME', this.options.masterName], {
          timeoutMs: Math.max(1, until - performance.now()),
        });
        const address = parseAddressReply(reply);
        if (address !== undefined) return address;
        problems.push(`${client.address}: does not know master "${this.options.masterName}"`);
      } catch (err) {
        problems.push(`${client.address}: ${describeRedisError(err)}`);
      }
    }
    const auth = problems.some((p) => /WRONGPASS|NOAUTH|invalid password|without any password/i.test(p));
    throw new RedisStartupError(
      auth ? 'auth' : 'unreachable',
      `redis sentinel discovery failed: no Sentinel named the master "${this.options.masterName}" (${problems.join('; ') || `no answer within ${timeoutMs}ms`})`,
    );
  }

  private subscribe(client: RedisClient): void {
    if (this.closed) return;
    const subscriber = client.newConnection({ reconnect: true });
    this.subscribers.push(subscriber);
    subscriber
      .connect()
      .then(() => {
        // Closed while connecting: this connection was not open yet when close() ran.
        if (this.closed) {
          destroyConnection(subscriber);
          return undefined;
        }
        return subscriber.subscribe(SWITCH_CHANNEL, (message: string) => {
          // `<master name> <old ip> <old port> <new ip> <new port>`
          const [name, , , host, port] = message.split(' ');
          if (name === this.options.masterName && host !== undefined && port !== undefined) {
            const changed = this.switchTo({ host, port: Number(port) }, `${SWITCH_CHANNEL} from ${client.address}`);
            // A switch is a new configuration: answers of the old epoch (Sentinels that have not
            // heard of it yet) must not switch back. The announcer tells the exact epoch next.
            if (changed) this.epoch += 1;
            this.announcer = client;
            void this.poll();
          }
        });
      })
      .catch(() => undefined);
  }

  /** One round of discovery: the master and the replica list from the first Sentinel that answers. */
  private async poll(): Promise<void> {
    if (this.polling || this.closed) return;
    this.polling = true;
    try {
      const announcer = this.announcer;
      const order = announcer === undefined ? this.sentinelClients : [announcer, ...this.sentinelClients.filter((c) => c !== announcer)];
      for (const client of order) {
        if (this.closed) return;
        if (!client.isReady) {
          client.connect().catch(() => undefined);
          continue;
        }
        try {
          const master = parseMasterReply(await client.command(['SENTINEL', 'MASTER', this.options.masterName]));
          const replicas = parseReplicas(await client.command(['SENTINEL', 'REPLICAS', this.options.masterName]));
          if (master === undefined || this.closed) continue;
          // A Sentinel that has not caught up with the last failover yet: ask the next one.
          if (master.epoch < this.epoch) continue;
          this.epoch = master.epoch;
          const address = master.address;
          this.switchTo(address, `poll of ${client.address}`);
          this.replicaList = replicas;
          this.replicaSet.update(replicas.filter((r) => r.healthy && !(r.address.host === address.host && r.address.port === address.port)).map((r) => r.address));
          return;
        } catch {
          // The next Sentinel may answer.
        }
      }
    } finally {
      this.polling = false;
    }
  }

  /** Re-points the master client and tells the listeners; false when `address` is already the master. */
  private switchTo(address: RedisAddress, source: string): boolean {
    if (this.closed || (address.host === this.master.host && address.port === this.master.port)) return false;
    this.logger.warn('redis master changed', { master_name: this.options.masterName, from: this.master.address, to: formatAddress(address), source });
    void this.master.retarget(address.host, address.port);
    for (const listener of this.listeners) {
      try {
        listener(address);
      } catch (err) {
        this.logger.error('redis master-change listener failed', { error: describeRedisError(err) });
      }
    }
    return true;
  }
}

/**
 * Connects `client` or rejects with its first socket error, or after `timeoutMs`. The client
 * keeps reconnecting by itself in the background (the Sentinel may come back for later polls).
 */
async function connectBounded(client: RedisClient, timeoutMs: number): Promise<void> {
  if (client.isReady) return;
  let onError: ((err: unknown) => void) | undefined;
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      client.connect(),
      new Promise<never>((_, reject) => {
        onError = reject;
        client.raw.on('error', onError);
        timer = setTimeout(() => reject(new Error(`no answer within ${Math.round(timeoutMs)}ms`)), timeoutMs);
      }),
    ]);
  } finally {
    clearTimeout(timer);
    if (onError !== undefined) client.raw.off('error', onError);
  }
}

function parseAddressReply(reply: RawReply): RedisAddress | undefined {
  if (!Array.isArray(reply) || reply.length < 2) return undefined;
  const port = Number(reply[1]);
  return Number.isInteger(port) && port > 0 ? { host: String(reply[0]), port } : undefined;
}

/** `SENTINEL MASTER <name>`: the address and `config-epoch` (which grows with every failover). */
function parseMasterReply(reply: RawReply): { address: RedisAddress; epoch: number } | undefined {
  if (!Array.isArray(reply)) return undefined;
  const info = new Map<string, string>();
  for (let i = 0; i + 1 < reply.length; i += 2) info.set(String(reply[i]), String(reply[i + 1]));
  const host = info.get('ip');
  const port = Number(info.get('port'));
  if (host === undefined || !Number.isInteger(port) || port <= 0) return undefined;
  return { address: { host, port }, epoch: Number(info.get('config-epoch') ?? 0) };
}

function parseReplicas(reply: RawReply): SentinelReplica[] {
  if (!Array.isArray(reply)) return [];
  const out: SentinelReplica[] = [];
  for (const item of reply) {
    if (!Array.isArray(item)) continue;
    const info = new Map<string, string>();
    for (let i = 0; i + 1 < item.length; i += 2) info.set(String(item[i]), String(item[i + 1]));
    const port = Number(info.get('port'));
    const host = info.get('ip');
    if (host === undefined || !Number.isInteger(port)) continue;
    const flags = (info.get('flags') ?? '').split(',');
    const link = info.get('master-link-status') ?? 'unknown';
    const down = flags.some((f) => f === 's_down' || f === 'o_down' || f === 'disconnected');
    out.push({ address: { host, port }, healthy: !down && link === 'ok', detail: `flags ${flags.join(',')}, master link ${link}` });
  }
  return out;
}

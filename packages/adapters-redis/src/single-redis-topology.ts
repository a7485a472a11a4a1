import { RedisClient, describeRedisError, type RedisClientOptions } from './redis-client.js';
import { connectAndPing } from './redis-startup.js';
import { ReplicaSet } from './replica-set.js';
import type { RedisAddress, RedisTopology, RedisTopologyNode } from './redis-topology.js';

/** Options of {@link SingleRedisTopology}. */
export interface SingleRedisTopologyOptions {
  /**
   * The master's client options (address, password, db, timeouts, metrics, logger), or an
   * already-created client; replica clients are built with the same settings.
   */
  master: RedisClientOptions | RedisClient;
  /** `GATEWAY_REDIS_REPLICA_ADDRS`: fixed replica addresses for the bulk reads. */
  replicas?: readonly RedisAddress[];
}

/**
 * A master at a fixed address (`GATEWAY_REDIS_MASTER_ADDR`) and optional fixed replicas
 * (`GATEWAY_REDIS_REPLICA_ADDRS`). The master never moves, so no master-change is ever
 * reported; a replica that is down is skipped until it reconnects.
 */
export class SingleRedisTopology implements RedisTopology {
  readonly kind = 'single';
  readonly master: RedisClient;
  private readonly replicaSet: ReplicaSet;
  private readonly replicaAddresses: readonly RedisAddress[];

  constructor(options: SingleRedisTopologyOptions) {
    const master = options.master instanceof RedisClient ? options.master : new RedisClient(options.master);
    this.master = master;
    this.replicaSet = new ReplicaSet((address) => master.sibling(address, ':replica'));
    this.replicaAddresses = options.replicas ?? [];
  }

  replicas(): readonly RedisClient[] {
    return this.replicaSet.ready();
  }

  knownReplicas(): number {
    return this.replicaAddresses.length;
  }

  async connect(timeoutMs: number): Promise<void> {
    await connectAndPing(this.master, timeoutMs);
    this.replicaSet.update(this.replicaAddresses);
  }

  onMasterChange(): () => void {
    return () => undefined;
  }

  async describe(timeoutMs = this.master.commandTimeoutMs): Promise<RedisTopologyNode[]> {
    let master: RedisTopologyNode;
    try {
      await this.master.ping({ timeoutMs });
      master = { role: 'master', address: this.master.address, reachable: true, detail: 'PONG' };
    } catch (err) {
      master = { role: 'master', address: this.master.address, reachable: false, detail: describeRedisError(err) };
    }
    return [master, ...(await this.replicaSet.describe(timeoutMs))];
  }

  async close(): Promise<void> {
    this.replicaSet.close();
    await this.master.close().catch(() => this.master.destroy());
  }

  /** `await using x = new SingleRedisTopology(…)`: {@link SingleRedisTopology.close} at scope exit. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}

import { describeRedisError, type RedisClient } from './redis-client.js';
import { formatAddress, type RedisAddress, type RedisTopologyNode } from './redis-topology.js';

/**
 * The replica clients of a topology, keyed by address. Replicas connect (and reconnect) in the
 * background: a replica that is down never delays startup or a request, it is only skipped
 * until it is back. {@link ReplicaSet.ready} lists the connected ones.
 */
export class ReplicaSet {
  private readonly clients = new Map<string, RedisClient>();

  constructor(private readonly create: (address: RedisAddress) => RedisClient) {}

  /** Makes the set exactly `addresses` (closing replicas that left, connecting new ones). */
  update(addresses: readonly RedisAddress[]): void {
    const wanted = new Map(addresses.map((a) => [formatAddress(a), a]));
    for (const [key, client] of this.clients) {
      if (!wanted.has(key)) {
        this.clients.delete(key);
        client.destroy();
      }
    }
    for (const [key, address] of wanted) {
      if (this.clients.has(key)) continue;
      const client = this.create(address);
      this.clients.set(key, client);
      // Errors are logged by the client's own listener; connect() retries until it succeeds
      // or the client is destroyed.
      client.connect().catch(() => undefined);
    }
  }

  /** Connected replicas, in the order they were configured or discovered. */
  ready(): RedisClient[] {
    const out: RedisClient[] = [];
    for (const client of this.clients.values()) if (client.isReady) out.push(client);
    return out;
  }

  /** Every replica with a bounded `ROLE` check. */
  async describe(timeoutMs: number): Promise<RedisTopologyNode[]> {
    return Promise.all(
      [...this.clients.values()].map(async (client): Promise<RedisTopologyNode> => {
        try {
          // A replica found a moment ago may still be connecting.
          await client.whenReady(timeoutMs);
          const role = await client.command(['ROLE'], { timeoutMs });
          const [kind, masterHost, masterPort, state] = Array.isArray(role) ? role.map(String) : [];
          const detail = kind === 'slave' ? `replica of ${masterHost}:${masterPort}, link ${state}` : `role ${kind ?? 'unknown'}`;
          return { role: 'replica', address: client.address, reachable: true, detail };
        } catch (err) {
          return { role: 'replica', address: client.address, reachable: false, detail: describeRedisError(err) };
        }
      }),
    );
  }

  /** Destroys every replica client. */
  close(): void {
    for (const client of this.clients.values()) client.destroy();
    this.clients.clear();
  }
}

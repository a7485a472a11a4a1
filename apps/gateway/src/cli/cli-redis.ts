import {
  RedisClusterClient,
  connectAndPing,
  createRedisClusterClient,
  type RawReply,
  type RedisClient,
  type RedisTopology,
} from '@edge-gateway/adapters-redis';
import { createRedisTopology } from '../redis-topology-config.js';
import { loadConfig, type GatewayConfig } from '../config/config.js';
import { CommandError } from './cli-io.js';

type Env = Readonly<Record<string, string | undefined>>;

/** `env` with a placeholder signer key path when none is set (commands that do not sign). */
export function withoutSignerRequirement(env: Env): Env {
  const variable = 'GATEWAY_RESPONSE_SIGNER_PRIVATE_KEY_PEM_PATH';
  const path = env[variable]?.trim();
  return path === undefined || path === '' ? { ...env, [variable]: '(not needed by this command)' } : env;
}

/**
 * The gateway configuration for the Redis commands (sessions, events, streams): the same
 * variables as the binary; the signer key is not needed, so its variable may be unset.
 */
export function loadRedisCommandConfig(env: Env): GatewayConfig {
  try {
    return loadConfig(withoutSignerRequirement(env));
  } catch (error) {
    throw new CommandError(`configuration: ${error instanceof Error ? error.message : String(error)}`);
  }
}

/**
 * Opens the Redis topology with the gateway's settings (master address or Sentinel discovery,
 * password, db, timeouts) and PINGs the master. Close it with `topology.close()`.
 */
export async function connectRedis(config: GatewayConfig): Promise<RedisTopology> {
  const topology = createRedisTopology(config, { clientName: 'edge-gateway-cli' });
  await topology.connect(config.redis.pingTimeoutMs);
  return topology;
}

/** The CLI's Redis client: the master of one server or Sentinel topology, or a cluster client (`GATEWAY_REDIS_CLUSTER_NODES`). */
export type CliRedisClient = RedisClient | RedisClusterClient;

/** Connects a cluster client with the gateway's settings and PINGs one node. */
export async function connectRedisCluster(config: GatewayConfig): Promise<RedisClusterClient> {
  const client = createRedisClusterClient({
    nodes: config.redis.clusterNodes,
    password: config.redis.password,
    clientName: 'edge-gateway-cli',
    commandTimeoutMs: config.redis.commandTimeoutMs,
  });
  await connectAndPing(client, config.redis.pingTimeoutMs);
  return client;
}

/** Runs `work` with a connected master client (or cluster client) and closes it afterwards; Redis errors become `CommandError`s. */
export async function withRedis<T>(config: GatewayConfig, work: (client: CliRedisClient) => Promise<T>): Promise<T> {
  let connection: { client: CliRedisClient; close: () => Promise<void> };
  try {
    if (config.redis.clusterNodes.length > 0) {
      const cluster = await connectRedisCluster(config);
      connection = { client: cluster, close: () => cluster.close() };
    } else {
      const topology: RedisTopology = await connectRedis(config);
      connection = { client: topology.master, close: () => topology.close() };
    }
  } catch (error) {
    throw new CommandError(error instanceof Error ? error.message : String(error));
  }
  try {
    return await work(connection.client);
  } catch (error) {
    if (error instanceof CommandError) throw error;
    throw new CommandError(`redis: ${error instanceof Error ? error.message : String(error)}`);
  } finally {
    await connection.close();
  }
}

/** A flat `[field, value, …]` RESP2 reply (HGETALL, stream entry fields) as a record. */
export function fieldsFromReply(reply: RawReply): Record<string, string> {
  const out: Record<string, string> = {};
  if (!Array.isArray(reply)) return out;
  for (let i = 0; i + 1 < reply.length; i += 2) out[String(reply[i])] = String(reply[i + 1]);
  return out;
}

/** One stream entry of an XRANGE/XREAD reply. */
export interface RawStreamEntry {
  readonly id: string;
  readonly fields: Record<string, string>;
}

/** `[[id, [field, value, …]], …]` as entries. */
export function entriesFromReply(reply: RawReply): RawStreamEntry[] {
  if (!Array.isArray(reply)) return [];
  return reply.map((item) => {
    const [id, fields] = Array.isArray(item) ? item : [];
    return { id: String(id), fields: fieldsFromReply(fields ?? null) };
  });
}

/** The flat argument list of a record for HSET / XADD. */
export function flatten(fields: Readonly<Record<string, string>>): string[] {
  return Object.entries(fields).flatMap(([name, value]) => [name, value]);
}

/** How long `sessions create` / `sessions revoke` wait for a replica by default (`--wait`). */
export const DEFAULT_REPLICA_WAIT_MS = 1000;

/**
 * Whether the configuration is a lone master (`GATEWAY_REDIS_MASTER_ADDR` without
 * `GATEWAY_REDIS_REPLICA_ADDRS`): no replica to wait for.
 */
export function isLoneMaster(config: GatewayConfig): boolean {
  return config.redis.clusterNodes.length === 0 && config.redis.sentinel === undefined && config.redis.replicas.length === 0;
}

/**
 * `WAIT 1 <timeoutMs>` on the connection that wrote `key` (`WAIT` covers every earlier write of
 * its connection; on a cluster, the connection to the master of `key`'s slot): the number of
 * replicas that acknowledged within the timeout.
 */
export async function waitForReplica(client: CliRedisClient, key: string, timeoutMs: number): Promise<number> {
  const args = ['WAIT', '1', String(timeoutMs)];
  if (client instanceof RedisClusterClient) return Number(await client.raw.sendCommand(key, false, args));
  return Number(await client.command(args, { timeoutMs: timeoutMs + client.commandTimeoutMs }));
}

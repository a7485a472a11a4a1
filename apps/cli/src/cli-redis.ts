import {
  type RedisClusterClient,
  connectAndPing,
  createRedisClusterClient,
  type RawReply,
  type RedisClient,
  type RedisTopology,
} from '@edge-gateway/adapters-redis';
import { createRedisTopology } from '@edge-gateway/gateway/redis-topology-config';
import { loadConfig, type GatewayConfig } from '@edge-gateway/gateway/config';
import { parseGoDuration } from '@edge-gateway/gateway/duration';
import { CommandError, ExitCode, Mark, UsageError, type CliIo } from './cli-io.js';

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
  return Number(await client.command(['WAIT', '1', String(timeoutMs)], { key, timeoutMs: timeoutMs + client.commandTimeoutMs }));
}

/** The longest `--wait`. */
const MAX_REPLICA_WAIT_MS = 60_000;

/**
 * Waits for a replica to acknowledge what was just written (SPEC §5.1, §5.4, §9.2): one `WAIT`
 * on the master connection after the last write, or, on a cluster, one per key's master. Prints
 * whether one acknowledged; `unconfirmed` when none did.
 */
export async function reportReplication(
  io: CliIo,
  config: GatewayConfig,
  client: CliRedisClient,
  written: { readonly keys: readonly string[]; readonly what: string; readonly risk: string },
  waitMs: number,
): Promise<number> {
  if (isLoneMaster(config)) {
    io.out(`${Mark.skip} not waited for a replica: a lone master (GATEWAY_REDIS_MASTER_ADDR without GATEWAY_REDIS_REPLICA_ADDRS)`);
    return ExitCode.ok;
  }
  if (waitMs === 0) {
    io.out(`${Mark.skip} not waited for a replica (--wait 0): ${written.risk}`);
    return ExitCode.ok;
  }
  // One WAIT covers every earlier write of the connection; on a cluster each key's master has its own.
  const keys = config.redis.clusterNodes.length > 0 ? [...new Set(written.keys)] : written.keys.slice(-1);
  let least = Infinity;
  try {
    for (const key of keys) least = Math.min(least, await waitForReplica(client, key, waitMs));
  } catch (error) {
    io.out(`${Mark.warn} could not wait for a replica (${error instanceof Error ? error.message : String(error)}): ${written.risk}`);
    return ExitCode.unconfirmed;
  }
  if (least >= 1) {
    io.out(`${Mark.ok} replicated: ${least} replica(s) acknowledged ${written.what} (WAIT 1 ${waitMs})`);
    return ExitCode.ok;
  }
  io.out(`${Mark.warn} not replicated: no replica acknowledged ${written.what} within ${waitMs}ms; ${written.risk}`);
  return ExitCode.unconfirmed;
}

/**
 * The `--wait <duration>` of the commands that wait for a replica: a Go duration from 1ms to 1m,
 * or 0 (do not wait); absent: {@link DEFAULT_REPLICA_WAIT_MS}.
 */
export function parseReplicaWait(text: string | undefined, usage: string): number {
  if (text === undefined) return DEFAULT_REPLICA_WAIT_MS;
  const ms = parseGoDuration(text);
  if (ms === undefined || ms > MAX_REPLICA_WAIT_MS || (ms > 0 && ms < 1)) {
    throw new UsageError(`--wait must be a duration from 1ms to 1m, or 0 (got "${text}")`, usage);
  }
  return Math.round(ms);
}

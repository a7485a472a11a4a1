import type { RawReply, RedisClient, RedisTopology } from '@edge-gateway/adapters-redis';
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

/** Runs `work` with a connected master client and closes it afterwards; Redis errors become `CommandError`s. */
export async function withRedis<T>(config: GatewayConfig, work: (client: RedisClient) => Promise<T>): Promise<T> {
  let topology: RedisTopology;
  try {
    topology = await connectRedis(config);
  } catch (error) {
    throw new CommandError(error instanceof Error ? error.message : String(error));
  }
  try {
    return await work(topology.master);
  } catch (error) {
    if (error instanceof CommandError) throw error;
    throw new CommandError(`redis: ${error instanceof Error ? error.message : String(error)}`);
  } finally {
    await topology.close();
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

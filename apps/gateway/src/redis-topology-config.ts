import type { GatewayMetrics, Logger } from '@edge-gateway/core';
import { SentinelRedisTopology, SingleRedisTopology, type RedisTopology } from '@edge-gateway/adapters-redis';
import type { GatewayConfig } from './config/config.js';

/**
 * The Redis topology the configuration describes (SPEC §5.6): Sentinel discovery when
 * `GATEWAY_REDIS_SENTINEL_ADDRS` is set, else the fixed master with the fixed replicas of
 * `GATEWAY_REDIS_REPLICA_ADDRS`. Not connected yet (`connect` runs the startup PING).
 */
export function createRedisTopology(
  config: GatewayConfig,
  extras: { clientName: string; metrics?: GatewayMetrics; logger?: Logger },
): RedisTopology {
  const settings = {
    password: config.redis.password,
    db: config.redis.db,
    clientName: extras.clientName,
    commandTimeoutMs: config.redis.commandTimeoutMs,
    ...(extras.metrics !== undefined ? { metrics: extras.metrics } : {}),
    ...(extras.logger !== undefined ? { logger: extras.logger } : {}),
  };
  const { sentinel, master } = config.redis;
  if (sentinel !== undefined) {
    return new SentinelRedisTopology({
      sentinels: sentinel.addrs,
      masterName: sentinel.masterName,
      sentinelPassword: sentinel.password,
      master: settings,
    });
  }
  if (master === undefined) throw new Error('redis configuration has neither a master address nor Sentinels');
  return new SingleRedisTopology({ master: { ...settings, host: master.host, port: master.port }, replicas: config.redis.replicas });
}

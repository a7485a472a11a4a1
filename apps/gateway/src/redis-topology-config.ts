import type { GatewayMetrics, Logger } from '@edge-gateway/core';
import { createRedisTopology as topologyOf, type RedisBackendOptions, type RedisConnectionOptions, type RedisTopology } from '@edge-gateway/adapters-redis';
import { checkReplayReplicas, type GatewayConfig } from './config/config.js';

/** Where Redis is and how to connect (SPEC §5.6, §9): Cluster seeds, Sentinel discovery, or the fixed master and replicas. */
export function redisConnectionOptions(config: GatewayConfig, extras: { clientName: string; metrics?: GatewayMetrics; logger?: Logger }): RedisConnectionOptions {
  const { sentinel, master, clusterNodes } = config.redis;
  return {
    topology:
      clusterNodes.length > 0
        ? { kind: 'cluster', nodes: clusterNodes }
        : sentinel !== undefined
          ? { kind: 'sentinel', sentinels: sentinel.addrs, masterName: sentinel.masterName, sentinelPassword: sentinel.password }
          : { kind: 'single', master: master ?? missingMaster(), replicas: config.redis.replicas },
    password: config.redis.password,
    db: config.redis.db,
    clientName: extras.clientName,
    commandTimeoutMs: config.redis.commandTimeoutMs,
    ...(extras.metrics !== undefined ? { metrics: extras.metrics } : {}),
    ...(extras.logger !== undefined ? { logger: extras.logger } : {}),
  };
}

function missingMaster(): never {
  throw new Error('redis configuration has neither a master address nor Sentinels');
}

/**
 * The Redis topology the configuration describes (SPEC §5.6): Sentinel discovery when
 * `GATEWAY_REDIS_SENTINEL_ADDRS` is set, else the fixed master with the fixed replicas of
 * `GATEWAY_REDIS_REPLICA_ADDRS`. Not connected yet (`connect` runs the startup PING).
 */
export function createRedisTopology(config: GatewayConfig, extras: { clientName: string; metrics?: GatewayMetrics; logger?: Logger }): RedisTopology {
  return topologyOf(redisConnectionOptions(config, extras));
}

/** `createRedisBackend`'s options from the configuration (SPEC §7): the binary's only Redis wiring. */
export function redisBackendOptions(config: GatewayConfig, extras: { metrics: GatewayMetrics; logger: Logger }): RedisBackendOptions {
  const { redis } = config;
  return {
    ...redisConnectionOptions(config, { clientName: 'edge-gateway', ...extras }),
    keyPrefix: redis.keyPrefix,
    sessionEventsStream: config.sessionEventsStream,
    clientEventsStream: config.clientEventsStream,
    pingTimeoutMs: redis.pingTimeoutMs,
    sessionReads: redis.sessionReads,
    clientEventsReads: redis.clientEventsReads,
    replay: {
      minReplicas: redis.replay.minReplicas,
      waitTimeoutMs: redis.replay.waitTimeoutMs,
      journal: { windowMs: redis.replay.reassertWindowMs, maxEntries: redis.replay.reassertMaxEntries },
    },
    resumeIndexMaxBytes: config.pushResumeIndexMaxBytes,
    fanout: config.pushFanout,
    maxEventBytes: config.core.pushMaxEventBytes,
    routed: {
      historyMaxLen: config.pushRoutedHistoryMaxLen,
      historyTtlMs: config.pushRoutedHistoryTtlMs,
      relay: config.pushRoutedRelay,
      relayClaimIdleMs: config.pushRoutedRelayClaimIdleMs,
    },
    // A discovered topology with fewer replicas than GATEWAY_REDIS_REPLAY_MIN_REPLICAS: a ConfigError naming it.
    checkReplicas: (found) => checkReplayReplicas(redis.replay, found),
  };
}

import { hostname } from 'node:os';
import type { DependencyContainer } from 'tsyringe';
import { UserEventIndex } from '@edge-gateway/core';
import {
  RedisEventHistory,
  RedisRateLimiter,
  RedisReplayStore,
  RedisRevocationStore,
  RedisRoutedFeed,
  RedisRoutedPublisher,
  RedisSessionStore,
  RedisStreamSubscriber,
  RedisRoutedRelay,
  StreamContinuity,
  connectAndPing,
  createRedisClusterClient,
  routedUserKeys,
  type RedisClusterClient,
} from '@edge-gateway/adapters-redis';
import type { EventSource, GatewayBackend } from './backend.js';
import { checkReplayReplicas, type GatewayConfig } from './config/config.js';
import { cached, coreOf, log, metrics, replayStoreOptions } from './container.js';
import { Tokens } from './tokens.js';

const cluster = (c: DependencyContainer) => c.resolve<RedisClusterClient>(Tokens.RedisClient);

/**
 * Registers the Redis Cluster backend (`GATEWAY_REDIS_CLUSTER_NODES`, SPEC §9): one cluster
 * client (node-redis `createCluster`) under the session and replay stores (single-key commands,
 * unchanged), the session-events subscriber (its blocking reads on a connection to the master
 * holding the stream), and the client events: the client-events stream as on one server
 * (`GATEWAY_PUSH_FANOUT=stream`), or routed fan-out (`routed`).
 */
export function registerRedisClusterBackend(container: DependencyContainer, config: GatewayConfig): void {
  const routed = config.pushFanout === 'routed';
  container.register(
    Tokens.RedisClient,
    cached((c) =>
      createRedisClusterClient({
        nodes: config.redis.clusterNodes,
        password: config.redis.password,
        clientName: 'edge-gateway',
        commandTimeoutMs: config.redis.commandTimeoutMs,
        metrics: metrics(c),
        logger: log(c, 'redis'),
      }),
    ),
  );
  container.register(Tokens.SessionStore, cached((c) => new RedisSessionStore(cluster(c), { keyPrefix: config.redis.keyPrefix })));
  container.register(Tokens.ReplayStore, cached((c) => new RedisReplayStore(cluster(c), { ...replayStoreOptions(config), metrics: metrics(c), logger: log(c, 'replay-store') })));
  // GATEWAY_RATE_LIMIT_STORE=redis: reservation and buckets of a user in the slot of its partition tag (SPEC §5.2);
  // the script's reservations go through the replay store's own write path (WAIT when replicas are required).
  container.register(
    Tokens.RateLimiter,
    cached((c) => new RedisRateLimiter(cluster(c), { keyPrefix: config.redis.keyPrefix, cluster: true, reservations: c.resolve<RedisReplayStore>(Tokens.ReplayStore) })),
  );
  container.register(
    Tokens.RevocationStore,
    cached((c) => new RedisRevocationStore(cluster(c), { keyPrefix: config.redis.keyPrefix, streamKey: config.sessionEventsStream })),
  );
  container.register(
    Tokens.SessionEventsSubscriber,
    cached(
      (c) =>
        new RedisStreamSubscriber({
          client: cluster(c),
          streamKey: config.sessionEventsStream,
          handler: coreOf(c).sessionEvents,
          metrics: metrics(c),
          logger: log(c, 'session-events-subscriber'),
        }),
    ),
  );
  if (routed) {
    registerRoutedFanout(container, config);
  } else {
    // As on one server (SPEC §5.6): a failover of the stream's master can lose entries.
    // The per-user index answers resumes without scanning other users' entries (SPEC §8.3).
    const continuity = new StreamContinuity({ index: new UserEventIndex(config.pushResumeIndexMaxBytes) });
    container.register(
      Tokens.EventHistory,
      cached(
        (c) =>
          new RedisEventHistory(cluster(c), { streamKey: config.clientEventsStream, continuity, verifyWaitMs: config.redis.commandTimeoutMs, metrics: metrics(c) }),
      ),
    );
    container.register(
      Tokens.ClientEventsSubscriber,
      cached(
        (c) =>
          new RedisStreamSubscriber({
            client: cluster(c),
            continuity,
            streamKey: config.clientEventsStream,
            handler: coreOf(c).clientEvents,
            metrics: metrics(c),
            logger: log(c, 'client-events-subscriber'),
          }),
      ),
    );
  }
  container.register(
    Tokens.Backend,
    cached((c): GatewayBackend => {
      const client = cluster(c);
      let unwatch: (() => void) | undefined;
      return {
        kind: 'redis',
        connect: async () => {
          await connectAndPing(client, config.redis.pingTimeoutMs);
          // Every master must be able to confirm a reservation: the one with the fewest replicas decides.
          if (config.redis.replay.minReplicas > 0) {
            const masters = await client.replicasPerMaster();
            const fewest = masters.reduce<{ address: string; replicas: number } | undefined>((a, b) => (a === undefined || b.replicas < a.replicas ? b : a), undefined);
            if (fewest !== undefined) checkReplayReplicas(config.redis.replay, { replicas: fewest.replicas, where: `cluster master ${fewest.address}` });
          }
          // Session records live on every master: after any failover in the cluster, the
          // revocations this process remembers are checked on the record's master (SPEC §5.3).
          // The replay reservations this process confirmed lately are written again the same way (SPEC §5.2).
          unwatch = client.onMasterChange(() => {
            coreOf(c).sessionEvents.reassertRevocations('cluster master changed');
            void c.resolve<RedisReplayStore>(Tokens.ReplayStore).reassertRecent('cluster master changed');
          });
          // Routed mode: the publish function on every master before anyone relays or publishes.
          if (routed) await c.resolve<RedisRoutedPublisher>(Tokens.RoutedPublisher).loadFunction();
        },
        close: () => {
          unwatch?.();
          return client.close();
        },
      };
    }),
  );
}

/**
 * Routed fan-out (SPEC §9): the per-user feed (the hub's `UserFeed`), the per-user history for
 * resume, the publisher (function loading, relay), and the client-events source, which starts
 * the feed and, with `GATEWAY_PUSH_ROUTED_RELAY`, the relay of the legacy stream (one consumer
 * group shared by every gateway process, so each entry is relayed once).
 */
function registerRoutedFanout(container: DependencyContainer, config: GatewayConfig): void {
  const keyPrefix = config.redis.keyPrefix;
  container.register(
    Tokens.RoutedPublisher,
    cached(
      (c) =>
        new RedisRoutedPublisher(cluster(c), {
          keyPrefix,
          historyMaxLen: config.pushRoutedHistoryMaxLen,
          historyTtlMs: config.pushRoutedHistoryTtlMs,
          maxEventBytes: config.core.pushMaxEventBytes,
        }),
    ),
  );
  container.register(
    Tokens.UserFeed,
    cached(
      (c) =>
        new RedisRoutedFeed({
          client: cluster(c),
          keyPrefix,
          // base64 of the largest payload plus the other fields.
          maxMessageBytes: Math.ceil(config.core.pushMaxEventBytes / 3) * 4 + 4096,
          // The core's handler needs the hub and the hub needs this feed: the core is resolved on first use.
          delivery: {
            handleBatch: (entries) => coreOf(c).clientEvents.handleBatch(entries),
            discontinuity: (userId) => coreOf(c).clientEvents.discontinuity(userId),
          },
          metrics: metrics(c),
          logger: log(c, 'routed-feed'),
        }),
    ),
  );
  container.register(
    Tokens.EventHistory,
    cached((c) => new RedisEventHistory(cluster(c), { streamKey: (userId) => routedUserKeys(keyPrefix, userId).history })),
  );
  container.register(
    Tokens.ClientEventsSubscriber,
    cached((c): EventSource => {
      const feed = c.resolve<RedisRoutedFeed>(Tokens.UserFeed);
      const relay = config.pushRoutedRelay
        ? new RedisRoutedRelay({
            client: cluster(c),
            streamKey: config.clientEventsStream,
            group: `${keyPrefix}routed-relay`,
            consumer: `${hostname()}:${process.pid}`,
            publisher: c.resolve(Tokens.RoutedPublisher),
            maxEventBytes: config.core.pushMaxEventBytes,
            historyTtlMs: config.pushRoutedHistoryTtlMs,
            claimIdleMs: config.pushRoutedRelayClaimIdleMs,
            metrics: metrics(c),
            logger: log(c, 'routed-relay'),
          })
        : undefined;
      return {
        start: async () => {
          feed.start();
          await relay?.start();
        },
        close: async () => {
          await relay?.close();
          await feed.close();
        },
      };
    }),
  );
}

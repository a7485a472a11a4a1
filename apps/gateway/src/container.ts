import { instanceCachingFactory, type DependencyContainer } from 'tsyringe';
import {
  createGatewayCore,
  UserEventIndex,
  type GatewayCore,
  type GatewayMetrics,
  type Logger,
  type RateLimiter,
  type ResponseSigner,
  type RevocationStore,
  type UserFeed,
} from '@edge-gateway/core';
import {
  RedisEventHistory,
  RedisRateLimiter,
  RedisReplayStore,
  RedisRevocationStore,
  RedisSessionStore,
  RedisStreamSubscriber,
  StreamContinuity,
  type RedisClient,
  type RedisReplayStoreOptions,
  type RedisTopology,
} from '@edge-gateway/adapters-redis';
import { credentials } from '@grpc/grpc-js';
import { createDownstreamRouter, parseDownstreamRoutes } from '@edge-gateway/adapters-grpc';
import { HttpAuthUpstream } from '@edge-gateway/adapters-http';
import type { GatewayBackend } from './backend.js';
import { checkReplayReplicas, type GatewayConfig } from './config/config.js';
import { createRedisTopology } from './redis-topology-config.js';
import type { Telemetry } from './telemetry.js';
import { Tokens } from './tokens.js';

type Downstreams = ReturnType<typeof createDownstreamRouter>;

/** A singleton factory registration. */
export function cached<T>(factory: (c: DependencyContainer) => T) {
  return { useFactory: instanceCachingFactory<T>(factory) };
}

/** The logger of one component. */
export const log = (c: DependencyContainer, component: string) => c.resolve<Logger>(Tokens.Logger).child({ component });
export const metrics = (c: DependencyContainer) => c.resolve<GatewayMetrics>(Tokens.Metrics);

/**
 * Registers the Redis backend: the topology (fixed master with optional replicas, or Sentinel)
 * and its master client, the session and replay stores, the client-event history and both
 * stream subscribers (SPEC §5.6: session events read on the master, client events on replicas).
 */
export function registerRedisBackend(container: DependencyContainer, config: GatewayConfig): void {
  container.register(
    Tokens.RedisTopology,
    cached((c) => createRedisTopology(config, { clientName: 'edge-gateway', metrics: metrics(c), logger: log(c, 'redis') })),
  );
  container.register(Tokens.RedisClient, cached((c) => topology(c).master));
  // What the client-events subscriber and the resume reads know of the history across
  // failovers: entries consumed and read ahead (with their users), lost ranges (SPEC §5.6); and
  // the per-user index of consumed entries that answers resumes (SPEC §8.3).
  const continuity = new StreamContinuity({ index: new UserEventIndex(config.pushResumeIndexMaxBytes) });
  container.register(
    Tokens.SessionStore,
    cached((c) => {
      const t = topology(c);
      return new RedisSessionStore(t.master, {
        keyPrefix: config.redis.keyPrefix,
        ...(config.redis.sessionReads === 'replica' ? { replicas: () => t.replicas() } : {}),
      });
    }),
  );
  container.register(Tokens.ReplayStore, cached((c) => new RedisReplayStore(redis(c), { ...replayStoreOptions(config), metrics: metrics(c), logger: log(c, 'replay-store') })));
  // GATEWAY_RATE_LIMIT_STORE=redis: counted with the replay reservation, in its round trip, through the
  // replay store's own write path (WAIT when replicas are required).
  container.register(
    Tokens.RateLimiter,
    cached((c) => new RedisRateLimiter(redis(c), { keyPrefix: config.redis.keyPrefix, reservations: c.resolve<RedisReplayStore>(Tokens.ReplayStore) })),
  );
  container.register(
    Tokens.RevocationStore,
    cached((c) => new RedisRevocationStore(redis(c), { keyPrefix: config.redis.keyPrefix, streamKey: config.sessionEventsStream })),
  );
  container.register(
    Tokens.EventHistory,
    cached((c) => new RedisEventHistory(redis(c), { streamKey: config.clientEventsStream, continuity, verifyWaitMs: config.redis.commandTimeoutMs, metrics: metrics(c) })),
  );
  container.register(
    Tokens.SessionEventsSubscriber,
    cached(
      (c) =>
        new RedisStreamSubscriber({
          topology: topology(c),
          // Revocation latency: the session-events reader stays on the master.
          readFrom: 'master',
          streamKey: config.sessionEventsStream,
          handler: coreOf(c).sessionEvents,
          metrics: metrics(c),
          logger: log(c, 'session-events-subscriber'),
        }),
    ),
  );
  container.register(
    Tokens.ClientEventsSubscriber,
    cached(
      (c) =>
        new RedisStreamSubscriber({
          topology: topology(c),
          readFrom: config.redis.clientEventsReads,
          continuity,
          streamKey: config.clientEventsStream,
          handler: coreOf(c).clientEvents,
          metrics: metrics(c),
          logger: log(c, 'client-events-subscriber'),
        }),
    ),
  );
  container.register(
    Tokens.Backend,
    cached((c): GatewayBackend => {
      const t = topology(c);
      let unwatch: (() => void) | undefined;
      return {
        kind: 'redis',
        connect: async () => {
          await t.connect(config.redis.pingTimeoutMs);
          // Sentinel: the replicas its Sentinels list (fixed addresses were checked with the config).
          if (t.kind === 'sentinel') {
            // A failover can lose reservations a replica confirmed (SPEC §5.2): the ones this
            // process confirmed lately are written again on the new master.
            unwatch = t.onMasterChange(() => void c.resolve<RedisReplayStore>(Tokens.ReplayStore).reassertRecent('redis master changed'));
            checkReplayReplicas(config.redis.replay, { replicas: t.knownReplicas(), where: `master "${config.redis.sentinel?.masterName ?? ''}" (as its Sentinels list its replicas)` });
          }
        },
        close: () => {
          unwatch?.();
          return t.close();
        },
      };
    }),
  );
}

/** The replay store's settings (SPEC §5.2): the key prefix and the replicated reservations. */
export function replayStoreOptions(config: GatewayConfig): RedisReplayStoreOptions {
  const replay = config.redis.replay;
  return {
    keyPrefix: config.redis.keyPrefix,
    minReplicas: replay.minReplicas,
    waitTimeoutMs: replay.waitTimeoutMs,
    journal: { windowMs: replay.reassertWindowMs, maxEntries: replay.reassertMaxEntries },
  };
}

const topology = (c: DependencyContainer) => c.resolve<RedisTopology>(Tokens.RedisTopology);
const redis = (c: DependencyContainer) => c.resolve<RedisClient>(Tokens.RedisClient);

/**
 * Registers the core (assembled by `createGatewayCore` from the chosen adapters), the
 * downstream router and the auth upstream, with factory and value registrations (no
 * decorators anywhere). The backend (stores, history, event sources) is registered
 * separately (`registerRedisBackend` or the development backend). Nothing is constructed
 * until resolved.
 */
export function registerGateway(
  container: DependencyContainer,
  values: {
    config: GatewayConfig;
    logger: Logger;
    telemetry: Telemetry;
    signer: ResponseSigner;
    /** `GATEWAY_DOWNSTREAM_TLS_CA_PATH`'s PEM (loaded at startup step 2); undefined: Node's roots. */
    downstreamCa?: Buffer | undefined;
  },
): void {
  const { config } = values;
  container.register(Tokens.Config, { useValue: config });
  container.register(Tokens.Logger, { useValue: values.logger });
  container.register(Tokens.Telemetry, { useValue: values.telemetry });
  container.register(Tokens.Metrics, { useValue: values.telemetry.metrics });
  container.register(Tokens.Signer, { useValue: values.signer });
  container.register(
    Tokens.Downstreams,
    cached(() => {
      return createDownstreamRouter(parseDownstreamRoutes(config.downstreamRoutes), { tlsCredentials: credentials.createSsl(values.downstreamCa ?? null) });
    }),
  );
  container.register(
    Tokens.Core,
    cached((c) =>
      createGatewayCore(
        {
          sessions: c.resolve(Tokens.SessionStore),
          replay: c.resolve(Tokens.ReplayStore),
          // Redis backends: revocations lost in a failover are written back (SPEC §5.3).
          ...(c.isRegistered(Tokens.RevocationStore) ? { revocations: c.resolve<RevocationStore>(Tokens.RevocationStore) } : {}),
          history: c.resolve(Tokens.EventHistory),
          // Routed fan-out (cluster backend): the hub tells the feed which users are held here.
          ...(c.isRegistered(Tokens.UserFeed) ? { feed: c.resolve<UserFeed>(Tokens.UserFeed) } : {}),
          // GATEWAY_RATE_LIMIT_STORE=redis: the backend's limiter (counted with the reservation); local: the core's in-memory one.
          ...(config.rateLimitStore === 'redis' && c.isRegistered(Tokens.RateLimiter) ? { rateLimiter: c.resolve<RateLimiter>(Tokens.RateLimiter) } : {}),
          signer: c.resolve(Tokens.Signer),
          router: c.resolve<Downstreams>(Tokens.Downstreams).router,
          metrics: metrics(c),
          logger: c.resolve<Logger>(Tokens.Logger),
        },
        config.core,
      ),
    ),
  );
  container.register(
    Tokens.AuthUpstream,
    cached(() =>
      config.authUpstreamUrl === ''
        ? undefined
        : new HttpAuthUpstream({ baseUrl: config.authUpstreamUrl, timeoutMs: config.authUpstreamTimeoutMs }),
    ),
  );
}

/** The core's stream-entry handlers, for the event sources of a backend. */
export const coreOf = (c: DependencyContainer): GatewayCore => c.resolve<GatewayCore>(Tokens.Core);

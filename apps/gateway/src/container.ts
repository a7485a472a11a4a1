import { instanceCachingFactory, type DependencyContainer } from 'tsyringe';
import {
  createGatewayCore,
  type GatewayCore,
  type GatewayMetrics,
  type Logger,
  type RateLimiter,
  type ResponseSigner,
  type RevocationStore,
  type UserFeed,
} from '@edge-gateway/core';
import { createRedisBackend, type RedisBackend } from '@edge-gateway/adapters-redis';
import { credentials } from '@grpc/grpc-js';
import { createDownstreamRouter, parseDownstreamRoutes } from '@edge-gateway/adapters-grpc';
import { HttpAuthUpstream } from '@edge-gateway/adapters-http';
import type { GatewayBackend } from './backend.js';
import type { GatewayConfig } from './config/config.js';
import { redisBackendOptions } from './redis-topology-config.js';
import type { Telemetry } from '@edge-gateway/node-runtime';
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
 * Registers the Redis backend (`createRedisBackend` from the config: one master with optional
 * replicas, Sentinel, or a Cluster with stream or routed fan-out) and its ports: the session,
 * replay, revocation and rate-limit stores, the client-event history, the routed feed, and both
 * event sources (SPEC §5.6: session events read on the master).
 */
export function registerRedisBackend(container: DependencyContainer, config: GatewayConfig): void {
  container.register(Tokens.Redis, cached((c) => createRedisBackend(redisBackendOptions(config, { metrics: metrics(c), logger: c.resolve<Logger>(Tokens.Logger) }))));
  container.register(Tokens.SessionStore, cached((c) => redis(c).ports.sessions));
  container.register(Tokens.ReplayStore, cached((c) => redis(c).ports.replay));
  container.register(Tokens.RevocationStore, cached((c) => redis(c).ports.revocations));
  container.register(Tokens.EventHistory, cached((c) => redis(c).ports.history));
  // GATEWAY_RATE_LIMIT_STORE=redis: counted with the replay reservation, in its round trip.
  container.register(Tokens.RateLimiter, cached((c) => redis(c).rateLimiter));
  if (config.pushFanout === 'routed') container.register(Tokens.UserFeed, cached((c) => redis(c).ports.feed));
  // The core needs the ports and the event sources need the core: made once, on first use.
  const sources = (c: DependencyContainer) => redis(c).eventSources(coreOf(c));
  container.register(Tokens.SessionEventsSubscriber, cached((c) => sources(c).sessionEvents));
  container.register(Tokens.ClientEventsSubscriber, cached((c) => sources(c).clientEvents));
  container.register(
    Tokens.Backend,
    cached((c): GatewayBackend => ({ kind: 'redis', connect: () => redis(c).connect(), close: () => redis(c).close() })),
  );
}

const redis = (c: DependencyContainer) => c.resolve<RedisBackend>(Tokens.Redis);

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

import { instanceCachingFactory, type DependencyContainer } from 'tsyringe';
import {
  ClientEventsHandler,
  CommandService,
  PushHub,
  SessionCache,
  SessionEventsHandler,
  SubscriptionService,
  type GatewayMetrics,
  type Logger,
  type ResponseSigner,
} from '@edge-gateway/core';
import {
  RedisEventHistory,
  RedisReplayStore,
  RedisSessionStore,
  RedisStreamSubscriber,
  connectAndPing,
  createRedisClient,
  type RedisClient,
} from '@edge-gateway/adapters-redis';
import { createDownstreamRouter, parseDownstreamRoutes } from '@edge-gateway/adapters-grpc';
import { HttpAuthUpstream } from '@edge-gateway/adapters-http';
import type { GatewayBackend } from './backend.js';
import type { GatewayConfig } from './config/config.js';
import type { Telemetry } from './telemetry.js';
import { Tokens } from './tokens.js';

type Downstreams = ReturnType<typeof createDownstreamRouter>;

/** A singleton factory registration. */
export function cached<T>(factory: (c: DependencyContainer) => T) {
  return { useFactory: instanceCachingFactory<T>(factory) };
}

const log = (c: DependencyContainer, component: string) => c.resolve<Logger>(Tokens.Logger).child({ component });
const metrics = (c: DependencyContainer) => c.resolve<GatewayMetrics>(Tokens.Metrics);

/**
 * Registers the Redis backend: the one shared client, the session and replay stores, the
 * client-event history and both stream subscribers.
 */
export function registerRedisBackend(container: DependencyContainer, config: GatewayConfig): void {
  container.register(
    Tokens.RedisClient,
    cached((c) =>
      createRedisClient({
        host: config.redis.master.host,
        port: config.redis.master.port,
        password: config.redis.password,
        db: config.redis.db,
        clientName: 'edge-gateway',
        commandTimeoutMs: config.redis.commandTimeoutMs,
        metrics: metrics(c),
        logger: log(c, 'redis'),
      }),
    ),
  );
  container.register(Tokens.SessionStore, cached((c) => new RedisSessionStore(redis(c), { keyPrefix: config.redis.keyPrefix })));
  container.register(Tokens.ReplayStore, cached((c) => new RedisReplayStore(redis(c), { keyPrefix: config.redis.keyPrefix })));
  container.register(Tokens.EventHistory, cached((c) => new RedisEventHistory(redis(c), { streamKey: config.clientEventsStream })));
  container.register(
    Tokens.SessionEventsSubscriber,
    cached(
      (c) =>
        new RedisStreamSubscriber({
          client: redis(c),
          streamKey: config.sessionEventsStream,
          handler: c.resolve(Tokens.SessionEventsHandler),
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
          client: redis(c),
          streamKey: config.clientEventsStream,
          handler: c.resolve(Tokens.ClientEventsHandler),
          metrics: metrics(c),
          logger: log(c, 'client-events-subscriber'),
        }),
    ),
  );
  container.register(
    Tokens.Backend,
    cached((c): GatewayBackend => {
      const client = redis(c);
      return {
        kind: 'redis',
        connect: () => connectAndPing(client, config.redis.pingTimeoutMs),
        close: async () => {
          try {
            await client.close();
          } catch {
            client.destroy();
          }
        },
      };
    }),
  );
}

const redis = (c: DependencyContainer) => c.resolve<RedisClient>(Tokens.RedisClient);

/**
 * Registers the transport-independent components (core services, hub, handlers, router,
 * auth upstream) with factory and value registrations (no decorators anywhere). The backend
 * is registered separately (`registerRedisBackend` or the development backend). Nothing is
 * constructed until resolved.
 */
export function registerGateway(
  container: DependencyContainer,
  values: { config: GatewayConfig; logger: Logger; telemetry: Telemetry; signer: ResponseSigner },
): void {
  const { config } = values;
  container.register(Tokens.Config, { useValue: config });
  container.register(Tokens.Logger, { useValue: values.logger });
  container.register(Tokens.Telemetry, { useValue: values.telemetry });
  container.register(Tokens.Metrics, { useValue: values.telemetry.metrics });
  container.register(Tokens.Signer, { useValue: values.signer });

  container.register(
    Tokens.SessionCache,
    cached(
      (c) =>
        new SessionCache(c.resolve(Tokens.SessionStore), {
          maxEntries: config.sessionCacheMaxEntries,
          ttlMs: config.sessionCacheTtlMs,
          logger: log(c, 'session-cache'),
        }),
    ),
  );
  container.register(
    Tokens.PushHub,
    cached((c) => new PushHub({ bufferSize: config.pushStreamBuffer, metrics: metrics(c), logger: log(c, 'push-hub') })),
  );
  container.register(
    Tokens.Downstreams,
    cached(() => createDownstreamRouter(parseDownstreamRoutes(config.downstreamRoutes))),
  );
  container.register(
    Tokens.CommandService,
    cached(
      (c) =>
        new CommandService({
          sessions: c.resolve(Tokens.SessionCache),
          replay: c.resolve(Tokens.ReplayStore),
          router: c.resolve<Downstreams>(Tokens.Downstreams).router,
          signer: c.resolve(Tokens.Signer),
          freshnessWindowMs: config.freshnessWindowMs,
          maxPayloadBytes: config.maxPayloadBytes,
          downstreamTimeoutMs: config.downstreamTimeoutMs,
          metrics: metrics(c),
          logger: log(c, 'commands'),
        }),
    ),
  );
  container.register(
    Tokens.SubscriptionService,
    cached(
      (c) =>
        new SubscriptionService({
          sessions: c.resolve(Tokens.SessionCache),
          replay: c.resolve(Tokens.ReplayStore),
          hub: c.resolve(Tokens.PushHub),
          signer: c.resolve(Tokens.Signer),
          history: c.resolve(Tokens.EventHistory),
          freshnessWindowMs: config.freshnessWindowMs,
          resumeMaxEvents: config.pushResumeMaxEvents,
          resumeMaxScan: config.pushResumeMaxScan,
          metrics: metrics(c),
          logger: log(c, 'subscriptions'),
        }),
    ),
  );
  container.register(
    Tokens.SessionEventsHandler,
    cached(
      (c) =>
        new SessionEventsHandler({
          cache: c.resolve(Tokens.SessionCache),
          hub: c.resolve(Tokens.PushHub),
          metrics: metrics(c),
          logger: log(c, 'session-events'),
        }),
    ),
  );
  container.register(
    Tokens.ClientEventsHandler,
    cached(
      (c) =>
        new ClientEventsHandler({
          hub: c.resolve(Tokens.PushHub),
          signer: c.resolve(Tokens.Signer),
          metrics: metrics(c),
          logger: log(c, 'client-events'),
        }),
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

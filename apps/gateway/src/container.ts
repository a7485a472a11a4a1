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
  createRedisClient,
  type RedisClient,
} from '@edge-gateway/adapters-redis';
import { createDownstreamRouter, parseDownstreamRoutes } from '@edge-gateway/adapters-grpc';
import { HttpAuthUpstream } from '@edge-gateway/adapters-http';
import type { GatewayConfig } from './config/config.js';
import type { Telemetry } from './telemetry.js';
import { Tokens } from './tokens.js';

type Downstreams = ReturnType<typeof createDownstreamRouter>;

function cached<T>(factory: (c: DependencyContainer) => T) {
  return { useFactory: instanceCachingFactory<T>(factory) };
}

/**
 * Registers every component of the binary with factory and value registrations (no
 * decorators anywhere). Nothing is constructed until resolved.
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

  const log = (c: DependencyContainer, component: string) => c.resolve<Logger>(Tokens.Logger).child({ component });
  const metrics = (c: DependencyContainer) => c.resolve<GatewayMetrics>(Tokens.Metrics);

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
  const redis = (c: DependencyContainer) => c.resolve<RedisClient>(Tokens.RedisClient);
  container.register(Tokens.SessionStore, cached((c) => new RedisSessionStore(redis(c), { keyPrefix: config.redis.keyPrefix })));
  container.register(Tokens.ReplayStore, cached((c) => new RedisReplayStore(redis(c), { keyPrefix: config.redis.keyPrefix })));
  container.register(Tokens.EventHistory, cached((c) => new RedisEventHistory(redis(c), { streamKey: config.clientEventsStream })));
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
    Tokens.AuthUpstream,
    cached(() =>
      config.authUpstreamUrl === ''
        ? undefined
        : new HttpAuthUpstream({ baseUrl: config.authUpstreamUrl, timeoutMs: config.authUpstreamTimeoutMs }),
    ),
  );
}

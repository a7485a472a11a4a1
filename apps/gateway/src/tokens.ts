/** Injection tokens of the gateway's tsyringe container (the only place DI lives). */
export const Tokens = {
  Config: Symbol('GatewayConfig'),
  Logger: Symbol('Logger'),
  Telemetry: Symbol('Telemetry'),
  Metrics: Symbol('GatewayMetrics'),
  Signer: Symbol('ResponseSigner'),
  Backend: Symbol('GatewayBackend'),
  /** The `RedisBackend` (`createRedisBackend`): stores, history, feed, event sources, one `close()`. */
  Redis: Symbol('RedisBackend'),
  UserFeed: Symbol('UserFeed'),
  /** The backend's shared `RateLimiter` (`GATEWAY_RATE_LIMIT_STORE=redis`); absent: the core counts in the process. */
  RateLimiter: Symbol('RateLimiter'),
  SessionStore: Symbol('SessionStore'),
  ReplayStore: Symbol('ReplayStore'),
  RevocationStore: Symbol('RevocationStore'),
  EventHistory: Symbol('EventHistory'),
  Downstreams: Symbol('Downstreams'),
  Core: Symbol('GatewayCore'),
  SessionEventsSubscriber: Symbol('SessionEventsSubscriber'),
  ClientEventsSubscriber: Symbol('ClientEventsSubscriber'),
  AuthUpstream: Symbol('AuthUpstream'),
} as const;

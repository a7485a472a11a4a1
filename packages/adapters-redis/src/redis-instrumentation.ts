import { RedisInstrumentation, type RedisInstrumentationConfig } from '@opentelemetry/instrumentation-redis';

/**
 * A configured `RedisInstrumentation` (from `@opentelemetry/instrumentation-redis`) for the
 * app to register with its tracer provider. It patches node-redis when `@redis/client` is
 * first `require`d, so it must be registered before `redis` is loaded: import this from
 * `@edge-gateway/adapters-redis/instrumentation` (which does not load `redis`) in a module
 * that runs first (e.g. `node --import`), or load the adapters with a dynamic `import()`
 * afterwards. When it is not active, `RedisClient` records its own `redis <COMMAND>` spans.
 */
export function redisInstrumentation(config: RedisInstrumentationConfig = {}): RedisInstrumentation {
  return new RedisInstrumentation({
    // Spans only inside a request/trace: background XREAD polling would flood the exporter.
    requireParentSpan: true,
    ...config,
  });
}

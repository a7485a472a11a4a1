// Free of adapter imports: the process runner loads it before telemetry is set up, and loading
// node-redis that early keeps the Redis instrumentation from patching it (no redis-<COMMAND> spans).
import type { RunProcessOptions } from '@edge-gateway/node-runtime';

/**
 * How the binary and the development mode run under `runProcess`: configuration, startup and
 * TLS file errors are written for the operator (their message alone is the `startup failed`
 * line's `error`), and when traces are exported node-redis is instrumented (loaded only then).
 */
export const processOptions: RunProcessOptions = {
  operatorErrors: ['ConfigError', 'StartupError', 'TlsFilesError'],
  telemetry: {
    instrumentations: async () => {
      const { redisInstrumentation } = await import('@edge-gateway/adapters-redis/instrumentation');
      return [redisInstrumentation()];
    },
  },
};

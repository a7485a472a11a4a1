import { setLogger } from '@grpc/grpc-js';
import type { Logger } from '@edge-gateway/core';

/**
 * Sends grpc-js's own diagnostics (by default `E …` lines on stderr, e.g. `No address added
 * out of total 1 resolved` when a port is taken) through the gateway's JSON logger, so every
 * line the binary prints is one JSON object (SPEC §8.5). The gateway reports the failures that
 * matter itself (a taken port is a `startup failed` line naming the variable), so grpc-js's
 * errors are kept at `warn` and its info and debug lines at `debug`.
 */
export function routeGrpcJsLogs(logger: Logger): void {
  const log = logger.child({ component: 'grpc-js' });
  const text = (message: unknown, rest: unknown[]): string => [message, ...rest].map(String).join(' ');
  setLogger({
    error: (message?: unknown, ...rest: unknown[]) => log.warn('grpc-js diagnostic', { detail: text(message, rest) }),
    info: (message?: unknown, ...rest: unknown[]) => log.debug('grpc-js diagnostic', { detail: text(message, rest) }),
    debug: (message?: unknown, ...rest: unknown[]) => log.debug('grpc-js diagnostic', { detail: text(message, rest) }),
  });
}

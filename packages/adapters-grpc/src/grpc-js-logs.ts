import { setLogger } from '@grpc/grpc-js';
import type { Logger } from '@edge-gateway/core';

/**
 * Sends grpc-js's own diagnostics (by default `E …` lines on stderr, e.g. `No address added
 * out of total 1 resolved` when a port is taken) through `logger` as `grpc-js diagnostic` lines
 * (`component: grpc-js`, the text in `detail`), so a process that logs JSON prints only JSON
 * (SPEC §8.5). The caller reports the failures that matter itself (the binary turns a taken port
 * into a `startup failed` line naming the variable), so grpc-js's errors are kept at `warn` and
 * its info and debug lines at `debug`. grpc-js has one logger per process (`setLogger`): the
 * last call wins.
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

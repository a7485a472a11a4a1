import { StaticRouter } from '@edge-gateway/core';
import { GrpcCommandDownstream, type GrpcCommandDownstreamOptions } from './grpc-command-downstream.js';

/** One `prefix=host:port` pair of `GATEWAY_DOWNSTREAM_ROUTES`. */
export interface DownstreamRoute {
  readonly prefix: string;
  readonly target: string;
}

const PREFIX = /^[a-z0-9._-]{1,128}$/;
const TARGET = /^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/;

/**
 * Parses `GATEWAY_DOWNSTREAM_ROUTES`: comma-separated `prefix=host:port` pairs, whitespace
 * trimmed; empty → no routes. Throws an `Error` naming the bad pair; duplicate prefixes are
 * rejected.
 */
export function parseDownstreamRoutes(value: string): DownstreamRoute[] {
  if (value.trim() === '') return [];
  const routes: DownstreamRoute[] = [];
  const seen = new Set<string>();
  for (const raw of value.split(',')) {
    const pair = raw.trim();
    const eq = pair.indexOf('=');
    const prefix = eq < 0 ? '' : pair.slice(0, eq).trim();
    const target = eq < 0 ? '' : pair.slice(eq + 1).trim();
    const port = TARGET.exec(target)?.[1];
    if (prefix === '' || port === undefined) {
      throw new Error(`invalid route "${pair}": expected prefix=host:port`);
    }
    if (!PREFIX.test(prefix)) {
      throw new Error(`invalid route "${pair}": prefix must be 1-128 characters of [a-z0-9._-]`);
    }
    if (Number(port) < 1 || Number(port) > 65535) {
      throw new Error(`invalid route "${pair}": port must be 1-65535`);
    }
    if (seen.has(prefix)) throw new Error(`invalid route "${pair}": duplicate prefix "${prefix}"`);
    seen.add(prefix);
    routes.push({ prefix, target });
  }
  return routes;
}

/** A router over gRPC downstreams, and the way to close their channels. */
export interface DownstreamRouter {
  readonly router: StaticRouter;
  /** Closes every downstream channel. */
  close(): void;
}

/** Builds a `StaticRouter` with one `GrpcCommandDownstream` per distinct target. */
export function createDownstreamRouter(
  routes: readonly DownstreamRoute[],
  options: GrpcCommandDownstreamOptions = {},
): DownstreamRouter {
  const downstreams = new Map<string, GrpcCommandDownstream>();
  const router = new StaticRouter(
    routes.map(({ prefix, target }) => {
      let downstream = downstreams.get(target);
      if (downstream === undefined) {
        downstream = new GrpcCommandDownstream(target, options);
        downstreams.set(target, downstream);
      }
      return { prefix, downstream };
    }),
  );
  return {
    router,
    close: () => {
      for (const downstream of downstreams.values()) downstream.close();
    },
  };
}

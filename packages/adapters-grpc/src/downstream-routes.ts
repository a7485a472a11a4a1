import { credentials, type ChannelCredentials } from '@grpc/grpc-js';
import { StaticRouter } from '@edge-gateway/core';
import { GrpcCommandDownstream, type GrpcCommandDownstreamOptions } from './grpc-command-downstream.js';

/** One `prefix=host:port` (plaintext) or `prefix=tls://host:port` pair of `GATEWAY_DOWNSTREAM_ROUTES`. */
export interface DownstreamRoute {
  readonly prefix: string;
  /** `host:port` (without the `tls://` scheme). */
  readonly target: string;
  /** The route said `tls://`: the channel uses TLS, verifying the server as `host`. */
  readonly tls: boolean;
}

const TLS_SCHEME = 'tls://';

const PREFIX = /^[a-z0-9._-]{1,128}$/;
const TARGET = /^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/;

/**
 * Parses `GATEWAY_DOWNSTREAM_ROUTES`: comma-separated `prefix=host:port` pairs, whitespace
 * trimmed; empty → no routes. A target written `tls://host:port` is reached over TLS (plaintext
 * otherwise). Throws an `Error` naming the bad pair; duplicate prefixes are rejected.
 */
export function parseDownstreamRoutes(value: string): DownstreamRoute[] {
  if (value.trim() === '') return [];
  const routes: DownstreamRoute[] = [];
  const seen = new Set<string>();
  for (const raw of value.split(',')) {
    const pair = raw.trim();
    const eq = pair.indexOf('=');
    const prefix = eq < 0 ? '' : pair.slice(0, eq).trim();
    const written = eq < 0 ? '' : pair.slice(eq + 1).trim();
    const tls = written.startsWith(TLS_SCHEME);
    const target = tls ? written.slice(TLS_SCHEME.length) : written;
    const port = TARGET.exec(target)?.[1];
    if (prefix === '' || port === undefined) {
      throw new Error(`invalid route "${pair}": expected prefix=host:port or prefix=tls://host:port`);
    }
    if (!PREFIX.test(prefix)) {
      throw new Error(`invalid route "${pair}": prefix must be 1-128 characters of [a-z0-9._-]`);
    }
    if (Number(port) < 1 || Number(port) > 65535) {
      throw new Error(`invalid route "${pair}": port must be 1-65535`);
    }
    if (seen.has(prefix)) throw new Error(`invalid route "${pair}": duplicate prefix "${prefix}"`);
    seen.add(prefix);
    routes.push({ prefix, target, tls });
  }
  return routes;
}

/** A router over gRPC downstreams, and the way to close their channels. */
export interface DownstreamRouter {
  readonly router: StaticRouter;
  /** Closes every downstream channel. */
  close(): Promise<void>;
  /** `await using routes = createDownstreamRouter(…)`: {@link DownstreamRouter.close} at scope exit. */
  [Symbol.asyncDispose](): Promise<void>;
}

export interface DownstreamRouterOptions extends GrpcCommandDownstreamOptions {
  /**
   * Credentials of the `tls://` routes. Default: TLS verified against Node's root
   * certificates (`credentials.createSsl()`); pass `credentials.createSsl(ca)` to trust a
   * private CA. `credentials` (plaintext routes) stays insecure by default.
   */
  readonly tlsCredentials?: ChannelCredentials;
}

/** Builds a `StaticRouter` with one `GrpcCommandDownstream` per distinct target (and scheme). */
export function createDownstreamRouter(routes: readonly DownstreamRoute[], options: DownstreamRouterOptions = {}): DownstreamRouter {
  const downstreams = new Map<string, GrpcCommandDownstream>();
  const router = new StaticRouter(
    routes.map(({ prefix, target, tls }) => {
      const key = `${tls ? TLS_SCHEME : ''}${target}`;
      let downstream = downstreams.get(key);
      if (downstream === undefined) {
        const { tlsCredentials, ...plain } = options;
        downstream = new GrpcCommandDownstream(
          target,
          tls ? { ...plain, credentials: tlsCredentials ?? credentials.createSsl() } : plain,
        );
        downstreams.set(key, downstream);
      }
      return { prefix, downstream };
    }),
  );
  const close = async (): Promise<void> => {
    await Promise.all([...downstreams.values()].map((downstream) => downstream.close()));
  };
  return { router, close, [Symbol.asyncDispose]: close };
}

import type { Server as NetServer } from 'node:net';
import { Server, ServerCredentials, type ChannelOptions } from '@grpc/grpc-js';
import { ReflectionService } from '@grpc/reflection';
import { HealthImplementation } from 'grpc-health-check';
import { ConnectionBudgets, DEFAULT_CLOSE_BUDGET_MS, GatewayMetrics, MAX_CALLS_PER_CONNECTION, noopLogger, type ConnectionLimits, type GatewayCore, type Logger, type RequestLogLimiter } from '@edge-gateway/core';
import { connectionTracking } from './connection-tracking.js';
import { createEdgeGatewayService } from './edge-gateway-service.js';
import { edgeGatewayServiceDefinition } from './event-encoding.js';
import { loadReflectionDescriptor } from './proto-files.js';
import type { TlsKeyPair, TlsPairSource } from '@edge-gateway/core/node';
import { ReloadableTlsCredentials } from './reloadable-tls-credentials.js';

/** Room for the other request fields on top of `maxPayloadBytes`, so an oversized payload
 * within it still reaches the core's field check and gets the exact `payload: …` message. */
export const RECEIVE_HEADROOM_BYTES = 64 * 1024;

/** Fully-qualified name of the public service (also its health-check service name). */
export const EDGE_GATEWAY_SERVICE_NAME = 'edgegateway.v1.EdgeGateway';

/** How long a connection closed for its cost may take to deliver its statuses and GOAWAY before it is destroyed. */
export const GUARD_CLOSE_GRACE_MS = 2000;

export interface GrpcServerOptions {
  /** `host:port`; `:port` means all interfaces; port 0 picks a free port. */
  readonly address: string;
  /** The assembled core (`createGatewayCore`): the server calls `execute` and `openStream`. */
  readonly core: Pick<GatewayCore, 'execute' | 'openStream'>;
  /** `GATEWAY_MAX_PAYLOAD_BYTES`; the max receive size is derived from it. */
  readonly maxPayloadBytes: number;
  readonly metrics?: GatewayMetrics;
  readonly logger?: Logger;
  /** Server keepalive pings, so dead clients (and their push streams) are noticed. */
  readonly keepalive?: { readonly timeMs?: number; readonly timeoutMs?: number };
  /**
   * Serve TLS with this certificate chain and key (PEM); default plaintext (h2c). A
   * {@link TlsPairSource} (e.g. the watcher `openTlsFiles` of `@edge-gateway/core/node` returns)
   * is followed: each new pair is served to the connections made from then on, until `close`.
   */
  readonly tls?: TlsKeyPair | TlsPairSource;
  /**
   * Maximum connection age: a connection older than `ageMs` (grpc-js adds up to ±10% jitter)
   * gets a GOAWAY, so its client opens a new connection for new calls (after a scale-out, or to
   * re-resolve DNS); calls in progress get `graceMs` to finish, then the connection is closed
   * and the calls still open on it (push streams) end `UNAVAILABLE` on the client. Default
   * (or `ageMs` 0): unlimited; `graceMs` defaults to {@link DEFAULT_MAX_CONNECTION_AGE_GRACE_MS}.
   */
  readonly maxConnectionAge?: { readonly ageMs: number; readonly graceMs?: number };
  /**
   * With `tls`: a connection's TLS handshake must complete this long after it was accepted
   * (`GATEWAY_HTTP_HEADERS_TIMEOUT`). Node bounds the time between handshake bytes with it; the
   * `guard` (when given) bounds the whole handshake. Default: Node's 120 s.
   */
  readonly tlsHandshakeTimeoutMs?: number;
  /**
   * Counts and caps the listener's connections and takes over its accept errors, e.g.
   * `ListenerGuard` of `@edge-gateway/adapters-http` (attached as listener `grpc`).
   */
  readonly guard?: ConnectionGuard;
  /**
   * What one connection may cost (`GATEWAY_CONNECTION_MAX_BUFFER_BYTES`, `_DRAIN_TIMEOUT`,
   * `_FAILURE_LIMIT`, SPEC §2.2); unset fields take the core's defaults. A connection carries at
   * most {@link MAX_CALLS_PER_CONNECTION} calls at once (HTTP/2 `SETTINGS_MAX_CONCURRENT_STREAMS`).
   */
  readonly connectionLimits?: Partial<ConnectionLimits>;
  /** The core's failure-line limiter (`GatewayCore.requestLog`), for the connection close lines. */
  readonly requestLog?: RequestLogLimiter;
}

/** What bounds a listener's connections (`ListenerGuard` of `@edge-gateway/adapters-http` is one). */
export interface ConnectionGuard {
  attach(server: NetServer, options: { readonly listener: string; readonly tlsHandshakeTimeoutMs?: number }): void;
}

/** A started gRPC server. */
export interface GrpcServerHandle {
  readonly server: Server;
  /** The bound port (useful with port 0). */
  readonly port: number;
  /** The bound `host:port`. */
  readonly address: string;
  /** `grpc.health.v1` implementation: SERVING for `''` and the EdgeGateway service. */
  readonly health: HealthImplementation;
  /**
   * Marks health NOT_SERVING and stops gracefully (in-flight calls finish); after
   * `budgetMs` (default `DEFAULT_CLOSE_BUDGET_MS`, 15 s) every remaining call is cancelled.
   * Resolves how it ended. Calling it again returns the same promise.
   */
  close(budgetMs?: number): Promise<'graceful' | 'forced'>;
  /** @deprecated Use {@link GrpcServerHandle.close} (one shutdown verb in every package). */
  shutdown(budgetMs: number): Promise<'graceful' | 'forced'>;
  /** `await using grpc = await startGrpcServer(…)`: {@link GrpcServerHandle.close} with the default budget at scope exit. */
  [Symbol.asyncDispose](): Promise<void>;
  /**
   * Only on a server started with `tls`: serves `pair` to every connection made from now on
   * (open connections and their streams keep going on the certificate they negotiated).
   */
  setTls?(pair: TlsKeyPair): void;
}

export const DEFAULT_KEEPALIVE_TIME_MS = 30_000;
export const DEFAULT_KEEPALIVE_TIMEOUT_MS = 10_000;

/** Splits `host:port` / `:port` / `[v6]:port` into the address grpc-js binds and the host to report. */
export function bindAddress(address: string): { bind: string; host: string; fallback?: { bind: string; host: string } } {
  const match = /^(.*):(\d{1,5})$/.exec(address.trim());
  if (match === null) throw new Error(`invalid listen address "${address}": expected host:port`);
  const port = Number(match[2]);
  if (port > 65535) throw new Error(`invalid listen address "${address}": port out of range`);
  if (match[1] === '') {
    // All interfaces: dual-stack where the machine has IPv6, IPv4 only where it has not.
    return { bind: `[::]:${port}`, host: '::', fallback: { bind: `0.0.0.0:${port}`, host: '0.0.0.0' } };
  }
  const host = match[1] as string;
  return { bind: `${host}:${port}`, host };
}

/**
 * Starts the authenticated gRPC listener: EdgeGateway, `grpc.health.v1` and server
 * reflection, with the receive limit and keepalive set.
 */
export async function startGrpcServer(options: GrpcServerOptions): Promise<GrpcServerHandle> {
  const logger = (options.logger ?? noopLogger).child({ component: 'grpc' });
  const target = bindAddress(options.address);
  const metrics = options.metrics ?? new GatewayMetrics();
  const budgets = new ConnectionBudgets(options.connectionLimits ?? {}, {
    transport: 'grpc',
    metrics,
    logger,
    ...(options.requestLog === undefined ? {} : { requestLog: options.requestLog }),
  });
  const serverOptions: ChannelOptions = {
    'grpc.max_concurrent_streams': MAX_CALLS_PER_CONNECTION,
    'grpc.max_receive_message_length': options.maxPayloadBytes + RECEIVE_HEADROOM_BYTES,
    'grpc.keepalive_time_ms': options.keepalive?.timeMs ?? DEFAULT_KEEPALIVE_TIME_MS,
    'grpc.keepalive_timeout_ms': options.keepalive?.timeoutMs ?? DEFAULT_KEEPALIVE_TIMEOUT_MS,
    'grpc.keepalive_permit_without_calls': 1,
    'grpc.http2.min_ping_interval_without_data_ms': 10_000,
    ...maxConnectionAgeOptions(options.maxConnectionAge),
  };
  const server = new Server({ ...serverOptions, interceptors: [connectionTracking({ budgets, closeGraceMs: GUARD_CLOSE_GRACE_MS, logger })] });
  server.addService(edgeGatewayServiceDefinition, createEdgeGatewayService({ core: options.core, metrics, logger }));
  const health = new HealthImplementation({ '': 'SERVING', [EDGE_GATEWAY_SERVICE_NAME]: 'SERVING' });
  health.addToServer(server);
  new ReflectionService(loadReflectionDescriptor()).addToServer(server);

  const source = options.tls !== undefined && 'onChange' in options.tls ? options.tls : undefined;
  const tls: TlsKeyPair | undefined = source !== undefined ? source.current : (options.tls as TlsKeyPair | undefined);
  const reloadable = tls === undefined ? undefined : new ReloadableTlsCredentials(tls, { handshakeTimeoutMs: options.tlsHandshakeTimeoutMs });
  const credentials = reloadable ?? ServerCredentials.createInsecure();
  const bindTo = (bind: string) =>
    new Promise<number>((resolve, reject) => {
      server.bindAsync(bind, credentials, (error, bound) => (error ? reject(error) : resolve(bound)));
    });
  let host = target.host;
  let port: number;
  try {
    try {
      port = await bindTo(target.bind);
    } catch (error) {
      if (target.fallback === undefined) throw error;
      host = target.fallback.host;
      port = await bindTo(target.fallback.bind);
    }
  } catch (error) {
    throw listenError(options.address, error);
  }
  const bracketed = host.includes(':') && !host.startsWith('[') ? `[${host}]` : host;
  if (options.guard !== undefined) {
    const handshake = tls === undefined || options.tlsHandshakeTimeoutMs === undefined ? {} : { tlsHandshakeTimeoutMs: options.tlsHandshakeTimeoutMs };
    try {
      for (const listening of http2Servers(server)) options.guard.attach(listening, { listener: 'grpc', ...handshake });
    } catch (error) {
      server.forceShutdown();
      throw error;
    }
  }

  // Followed from the moment the server is up (a pair that came while it started is served now).
  if (source !== undefined && reloadable !== undefined && source.current !== tls) reloadable.replace(source.current);
  const unfollow = reloadable === undefined ? undefined : source?.onChange((pair) => reloadable.replace(pair));

  let closed: Promise<'graceful' | 'forced'> | undefined;
  return {
    server,
    port,
    address: `${bracketed}:${port}`,
    health,
    ...(reloadable === undefined ? {} : { setTls: (pair: TlsKeyPair) => reloadable.replace(pair) }),
    close,
    shutdown: close,
    async [Symbol.asyncDispose]() {
      await close();
    },
  };

  function close(budgetMs: number = DEFAULT_CLOSE_BUDGET_MS): Promise<'graceful' | 'forced'> {
    closed ??= stop(budgetMs);
    return closed;
  }

  function stop(budgetMs: number): Promise<'graceful' | 'forced'> {
    unfollow?.();
    health.setStatus('', 'NOT_SERVING');
    health.setStatus(EDGE_GATEWAY_SERVICE_NAME, 'NOT_SERVING');
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        logger.warn('grpc graceful shutdown exceeded its budget; forcing', { budget_ms: budgetMs });
        server.forceShutdown();
        resolve('forced');
      }, budgetMs);
      server.tryShutdown(() => {
        clearTimeout(timer);
        resolve('graceful');
      });
    });
  }
}

/**
 * The Node servers grpc-js bound (one per address). grpc-js keeps them private; the pinned
 * version has them in `http2Servers`. A version without them fails startup rather than
 * running without the connection guard.
 */
function http2Servers(server: Server): NetServer[] {
  const servers = (server as unknown as { http2Servers?: unknown }).http2Servers;
  if (!(servers instanceof Map) || servers.size === 0) {
    throw new Error('cannot guard the gRPC listener: this @grpc/grpc-js version does not expose its servers (http2Servers)');
  }
  return [...(servers as Map<NetServer, unknown>).keys()];
}

/** How long calls in progress may finish after a connection reached its maximum age (`GATEWAY_GRPC_MAX_CONNECTION_AGE_GRACE`). */
export const DEFAULT_MAX_CONNECTION_AGE_GRACE_MS = 30_000;

/** grpc-js's server options for a maximum connection age; none when unlimited. */
function maxConnectionAgeOptions(age: GrpcServerOptions['maxConnectionAge']): ChannelOptions {
  if (age === undefined || age.ageMs <= 0) return {};
  return { 'grpc.max_connection_age_ms': age.ageMs, 'grpc.max_connection_age_grace_ms': age.graceMs ?? DEFAULT_MAX_CONNECTION_AGE_GRACE_MS };
}

/**
 * grpc-js reports a failed bind as `No address added out of total 1 resolved errors: [listen
 * EADDRINUSE: address already in use 127.0.0.1:9090]`; the operator needs the address and
 * the reason, in the words the HTTP listeners use.
 */
function listenError(address: string, error: unknown): Error {
  const text = error instanceof Error ? error.message : String(error);
  const match = /listen (E[A-Z_]+): (.+?) \S+:\d+\]?$/.exec(text) ?? /\b(E[A-Z_]{3,})\b/.exec(text);
  if (match === null) return new Error(`cannot listen on ${address}: ${text}`, { cause: error });
  const reason = match[2] ?? text;
  return new Error(`cannot listen on ${address}: ${reason} (${match[1]})`, { cause: error });
}

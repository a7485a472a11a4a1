import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { Server as TlsServer } from 'node:tls';
import { type AddressInfo, type Socket } from 'node:net';
import { type Express } from 'express';
import { DEFAULT_CLOSE_BUDGET_MS, noopLogger, type GatewayMetrics, type Logger } from '@edge-gateway/core';
import type { TlsKeyPair, TlsPairSource } from '@edge-gateway/core/node';

import { AnswerBounds } from './answer-bounds.js';
import { formatListenAddress, parseListenAddress } from './listen-address.js';
import { boundTlsHandshakes, type ListenerGuard } from './listener-guard.js';

/** How a listener closed: every connection ended on its own, or some were destroyed. */
export type CloseOutcome = 'graceful' | 'forced';

/** A started HTTP listener. */
export interface HttpListener {
  readonly server: Server;
  /** The bound host, e.g. `127.0.0.1` or `::`. */
  readonly host: string;
  /** The bound port (the real one when listening on port 0). */
  readonly port: number;
  /** The bound `host:port` (`[host]:port` for IPv6). */
  readonly address: string;
  /**
   * Stops accepting connections, closes idle keep-alive connections at once, lets in-flight
   * requests finish (their connections close after the answer) and destroys what is left
   * after `budgetMs` (default `DEFAULT_CLOSE_BUDGET_MS`, 15 s). Calling it again returns the
   * same promise.
   */
  close(budgetMs?: number): Promise<CloseOutcome>;
  /** `await using listener = await listen(…)`: {@link HttpListener.close} with the default budget at scope exit. */
  [Symbol.asyncDispose](): Promise<void>;
  /**
   * Only on a listener started with `tls`: serves `pair` to every connection made from now on
   * (open connections keep the certificate they negotiated).
   */
  setTls?(pair: TlsKeyPair): void;
}

export interface ListenOptions {
  readonly logger?: Logger;
  /**
   * Time a client has to send the request headers, counted from the connection or the end of
   * the previous request (`GATEWAY_HTTP_HEADERS_TIMEOUT`); then `408` and the connection closes.
   * Default {@link DEFAULT_HTTP_TIMEOUTS}.
   */
  readonly headersTimeoutMs?: number;
  /** Time a client has to send the whole request, body included (`GATEWAY_HTTP_REQUEST_TIMEOUT`). */
  readonly requestTimeoutMs?: number;
  /** How long an idle keep-alive connection stays open (`GATEWAY_HTTP_KEEPALIVE_TIMEOUT`). */
  readonly keepAliveTimeoutMs?: number;
  /**
   * A connection with answers waiting whose socket takes no byte for this long is closed
   * (`GATEWAY_HTTP_WRITE_TIMEOUT`, default 30 s: `DEFAULT_HTTP_WRITE_TIMEOUT_MS`).
   */
  readonly writeTimeoutMs?: number;
  /**
   * Answer bytes queued on one connection (not taken by its socket) past which the connection is
   * not read and its pipelined requests wait unanswered, until below half
   * (`GATEWAY_CONNECTION_MAX_BUFFER_BYTES`, default 8 MiB).
   */
  readonly maxBufferBytes?: number;
  /** Counts write-timeout closes in `gateway_connections_closed_total{transport="http"}`. */
  readonly metrics?: GatewayMetrics;
  /**
   * Serve HTTPS with this certificate; default plain HTTP. A {@link TlsPairSource} (e.g. the
   * watcher `openTlsFiles` of `@edge-gateway/core/node` returns) is followed: each new pair is
   * served to the connections made from then on, until the listener closes. A fixed pair can be
   * replaced with `HttpListener.setTls`. The TLS handshake must complete within
   * `headersTimeoutMs` of the connection; the request headers then get their own
   * `headersTimeoutMs`.
   */
  readonly tls?: TlsKeyPair | TlsPairSource;
  /**
   * Counts this listener's connections (against the guard's cap unless `capped` is false),
   * and takes over its accept errors (see `ListenerGuard`).
   */
  readonly guard?: { readonly guard: ListenerGuard; readonly listener: string; readonly capped?: boolean };
}

/**
 * Bounds on how long a client may hold a connection without finishing its request (issue 12):
 * Node's defaults let a client dripping one body byte every 5 s hold a connection ~5 minutes.
 */
export const DEFAULT_HTTP_TIMEOUTS = { headersTimeoutMs: 10_000, requestTimeoutMs: 30_000, keepAliveTimeoutMs: 5_000 } as const;

const LISTEN_ERRORS: Record<string, string> = {
  EADDRINUSE: 'address already in use',
  EACCES: 'permission denied',
  EADDRNOTAVAIL: 'address not available on this host',
  ENOTFOUND: 'host not found',
  EAI_AGAIN: 'host could not be resolved',
};

/**
 * Starts `app` on `address` (`host:port`, `:port` for all interfaces, port 0 for any free
 * port). Rejects with an `Error` naming the address and the reason (e.g. address already in use).
 */
export async function listen(app: Express, address: string, options: ListenOptions = {}): Promise<HttpListener> {
  const { host, port } = parseListenAddress(address);
  const logger = options.logger ?? noopLogger;
  const headersTimeout = options.headersTimeoutMs ?? DEFAULT_HTTP_TIMEOUTS.headersTimeoutMs;
  const requestTimeout = options.requestTimeoutMs ?? DEFAULT_HTTP_TIMEOUTS.requestTimeoutMs;
  const serverOptions = {
    headersTimeout: Math.min(headersTimeout, requestTimeout),
    requestTimeout,
    keepAliveTimeout: options.keepAliveTimeoutMs ?? DEFAULT_HTTP_TIMEOUTS.keepAliveTimeoutMs,
    // How often Node checks the two timeouts above (default 30 s, which would let a request
    // live up to twice its bound).
    connectionsCheckingInterval: Math.max(100, Math.min(1000, Math.floor(headersTimeout / 4))),
  };
  // An https.Server takes the same options and emits the same request events; typed as
  // http's Server for the code below.
  const source = options.tls !== undefined && 'onChange' in options.tls ? options.tls : undefined;
  const tls: TlsKeyPair | undefined = source !== undefined ? source.current : (options.tls as TlsKeyPair | undefined);
  const server =
    tls === undefined
      ? createServer(serverOptions)
      : (createHttpsServer({ ...serverOptions, cert: tls.cert, key: tls.key, handshakeTimeout: serverOptions.headersTimeout }) as unknown as Server);
  // Node's handshakeTimeout above restarts with every byte; this one counts from the connection.
  if (tls !== undefined) boundTlsHandshakes(server, serverOptions.headersTimeout);
  // Also set as a property: the constructor option is not honoured on every supported Node.
  server.keepAliveTimeout = options.keepAliveTimeoutMs ?? DEFAULT_HTTP_TIMEOUTS.keepAliveTimeoutMs;
  const active = new Set<ServerResponse>();
  let closing = false;

  // Connections that have not started a request yet: Node's idle-connection closing skips
  // them (clients such as undici open spare connections), so close() destroys them itself.
  const fresh = new Set<Socket>();
  // With TLS the request's socket is the TLS socket, which 'secureConnection' hands out.
  server.on(tls === undefined ? 'connection' : 'secureConnection', (socket: Socket) => {
    fresh.add(socket);
    socket.once('close', () => fresh.delete(socket));
  });
  // Runs before the app: lets close() ask in-flight and late keep-alive requests to end
  // their connection once answered.
  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    fresh.delete(req.socket);
    if (closing) res.setHeader('Connection', 'close');
    active.add(res);
    res.once('close', () => {
      active.delete(res);
      // An answer that was already streaming when close() began leaves a keep-alive
      // connection behind: close it as soon as it turns idle.
      if (closing) setImmediate(() => server.closeIdleConnections());
    });
  });
  const bounds = new AnswerBounds(server, {
    headersTimeoutMs: serverOptions.headersTimeout,
    logger,
    ...(options.writeTimeoutMs === undefined ? {} : { writeTimeoutMs: options.writeTimeoutMs }),
    ...(options.maxBufferBytes === undefined ? {} : { maxBufferBytes: options.maxBufferBytes }),
    ...(options.metrics === undefined ? {} : { metrics: options.metrics }),
  });
  server.on('request', bounds.handler(app));

  await new Promise<void>((resolve, reject) => {
    const onError = (error: NodeJS.ErrnoException): void => {
      const reason = (error.code !== undefined ? LISTEN_ERRORS[error.code] : undefined) ?? error.message;
      reject(new Error(`cannot listen on ${address}: ${reason}${error.code ? ` (${error.code})` : ''}`, { cause: error }));
    };
    server.once('error', onError);
    server.listen({ host: host === '' ? undefined : host, port }, () => {
      server.off('error', onError);
      // Before the first connection is accepted.
      if (options.guard !== undefined) options.guard.guard.attach(server, { listener: options.guard.listener, capped: options.guard.capped ?? true });
      resolve();
    });
  });
  if (options.guard === undefined) server.on('error', (error) => logger.error('http listener error', { error: error.message }));

  const setTls = (pair: TlsKeyPair): void => (server as unknown as TlsServer).setSecureContext({ cert: pair.cert, key: pair.key });
  // Followed from the moment the listener is up (a pair that came while it started is served now).
  if (source !== undefined && source.current !== tls) setTls(source.current);
  const unfollow = source?.onChange(setTls);

  const bound = server.address() as AddressInfo;
  let closed: Promise<CloseOutcome> | undefined;

  const close = (budgetMs: number = DEFAULT_CLOSE_BUDGET_MS): Promise<CloseOutcome> => {
    closed ??= new Promise<CloseOutcome>((resolve) => {
      closing = true;
      unfollow?.();
      for (const res of active) {
        if (!res.headersSent) res.setHeader('Connection', 'close');
      }
      let outcome: CloseOutcome = 'graceful';
      const timer = setTimeout(() => {
        outcome = 'forced';
        logger.warn('http listener close budget exceeded, destroying connections', {
          address: formatListenAddress(bound.address, bound.port),
          budget_ms: budgetMs,
        });
        server.closeAllConnections();
      }, budgetMs);
      // close() also closes idle keep-alive connections (Node >= 19).
      server.close(() => {
        clearTimeout(timer);
        resolve(outcome);
      });
      server.closeIdleConnections();
      for (const socket of fresh) socket.destroy();
    });
    return closed;
  };

  return {
    server,
    host: bound.address,
    port: bound.port,
    address: formatListenAddress(bound.address, bound.port),
    close,
    async [Symbol.asyncDispose]() {
      await close();
    },
    ...(tls === undefined ? {} : { setTls }),
  };
}

import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { Server as TlsServer } from 'node:tls';
import type { AddressInfo, Server as NetServer, Socket } from 'node:net';
import { WebSocketServer, type WebSocket } from 'ws';
import { ConnectionBudgets, DEFAULT_CLOSE_BUDGET_MS, GatewayMetrics, MAX_CALLS_PER_CONNECTION, RequestLogLimiter, noopLogger, type ConnectionLimits, type GatewayCore, type Logger } from '@edge-gateway/core';
import type { TlsKeyPair, TlsPairSource } from '@edge-gateway/core/node';
import { CloseCodes, WEBSOCKET_PATH, WEBSOCKET_SUBPROTOCOL, WEBSOCKET_SUBPROTOCOL_TRAILERS } from '@edge-gateway/protocol';
import { WebSocketConnection } from './websocket-connection.js';

/**
 * Room for the other request fields and the frame header on top of `maxPayloadBytes`: the bound
 * is on the whole WebSocket message (5-byte header, a `0x04` frame's `timeout_ms`, body).
 */
export const FRAME_HEADROOM_BYTES = 64 * 1024;
export const DEFAULT_PING_INTERVAL_MS = 30_000;
/** `GATEWAY_WEBSOCKET_IDLE_TIMEOUT`'s default. */
export const DEFAULT_IDLE_TIMEOUT_MS = 30_000;
export const DEFAULT_MAX_CALLS_IN_FLIGHT = MAX_CALLS_PER_CONNECTION;
/** How long a connection closed for its cost (1008) may take to close before it is dropped. */
export const GUARD_CLOSE_GRACE_MS = 2000;
export const DEFAULT_BUFFER_HIGH_WATER_BYTES = 64 * 1024;
/**
 * Bounds on a client of the listener's own HTTP server before its upgrade is complete: the
 * same as the gateway's HTTP listeners (`GATEWAY_HTTP_HEADERS_TIMEOUT` and friends). Node's
 * defaults would let a client dripping header bytes hold a connection for minutes.
 */
export const DEFAULT_HTTP_TIMEOUTS = { headersTimeoutMs: 10_000, requestTimeoutMs: 30_000, keepAliveTimeoutMs: 5_000 } as const;

export interface WebSocketServerOptions {
  /** The assembled core (`createGatewayCore`): the server calls `execute` and `openStream`. */
  readonly core: Pick<GatewayCore, 'execute' | 'openStream'>;
  /** Listen on this host (`''`: all interfaces) and port (0: any free port)… */
  readonly listen?: { readonly host: string; readonly port: number };
  /** …or serve upgrades of an existing HTTP server (e.g. the one serving a web app). */
  readonly server?: Server;
  /**
   * With `listen`: serve `wss://` with this certificate chain and key (PEM); default plain `ws://`.
   * A {@link TlsPairSource} (e.g. the watcher `openTlsFiles` of `@edge-gateway/core/node`
   * returns) is followed: each new pair is served to the connections made from then on, until
   * `close`. The handshake must complete within `headersTimeoutMs` (Node's `handshakeTimeout`,
   * between handshake bytes; the `guard` bounds it from the connection). With `server`, its
   * owner sets up TLS.
   */
  readonly tls?: TlsKeyPair | TlsPairSource;
  /** `GATEWAY_MAX_PAYLOAD_BYTES`; the maximum frame size is this plus {@link FRAME_HEADROOM_BYTES}. */
  readonly maxPayloadBytes: number;
  /**
   * `Origin` headers accepted, exactly (e.g. `https://app.example.com`); `*` accepts any.
   * A request without `Origin` (not a browser) is always accepted. `Origin: null` (sandboxed
   * iframes, `file:` pages) is an origin like any other: accepted only when `null` or `*` is
   * listed. Default: none, so browsers are refused (fail closed).
   */
  readonly allowedOrigins?: readonly string[];
  /**
   * Time a client has to send the upgrade request's headers (`GATEWAY_HTTP_HEADERS_TIMEOUT`);
   * then `408` and the connection closes (only for the server `listen` creates: with `server`,
   * its owner sets the HTTP bounds). Also the time an upgraded connection has to send its first
   * complete frame, with either. Default {@link DEFAULT_HTTP_TIMEOUTS}.
   */
  readonly headersTimeoutMs?: number;
  /** Time a client has to send a whole (non-upgrade) request (`GATEWAY_HTTP_REQUEST_TIMEOUT`); an upgraded connection is not bounded by it. */
  readonly requestTimeoutMs?: number;
  /** How long an idle keep-alive connection (one answered `426`) stays open (`GATEWAY_HTTP_KEEPALIVE_TIMEOUT`). */
  readonly keepAliveTimeoutMs?: number;
  /** A ping every interval; a connection that has not answered the previous one is dropped. */
  readonly pingIntervalMs?: number;
  /**
   * An upgraded connection without a call in flight (command or stream) for this long is
   * closed `1000` `idle` (`GATEWAY_WEBSOCKET_IDLE_TIMEOUT`); pings and pongs do not count.
   * Before that, its first complete frame must come within `headersTimeoutMs` of the upgrade
   * (else `1008` `no frame received`). Default {@link DEFAULT_IDLE_TIMEOUT_MS}.
   */
  readonly idleTimeoutMs?: number;
  /** Calls (commands and streams) in flight per connection before it is closed 1008. */
  readonly maxCallsInFlight?: number;
  /** Bytes buffered per connection above which push streams stop writing (and queue in the hub). */
  readonly bufferHighWaterBytes?: number;
  /**
   * What one connection may cost (`GATEWAY_CONNECTION_MAX_BUFFER_BYTES`, `_DRAIN_TIMEOUT`,
   * `_FAILURE_LIMIT`, SPEC §2.2); unset fields take the core's defaults.
   */
  readonly connectionLimits?: Partial<ConnectionLimits>;
  readonly metrics?: GatewayMetrics;
  readonly logger?: Logger;
  /**
   * Bounds the transport's per-request failure lines (SPEC §8.5); pass the core's
   * (`GatewayCore.requestLog`). Default: one of its own.
   */
  readonly requestLog?: RequestLogLimiter;
  /**
   * Counts and caps the connections of the server `listen` creates (as listener `websocket`)
   * and takes over its accept errors, e.g. `ListenerGuard` of `@edge-gateway/adapters-http`.
   */
  readonly guard?: { attach(server: NetServer, options: { readonly listener: string; readonly tlsHandshakeTimeoutMs?: number }): void };
}

/** A started WebSocket transport. */
export interface WebSocketServerHandle {
  /** The bound `host:port` (the HTTP server's when attached). */
  readonly address: string;
  readonly port: number;
  /** Open connections. */
  readonly connections: number;
  /**
   * Refuses new connections, lets calls in flight finish, then closes every connection 1001
   * `gateway is shutting down`; after `budgetMs` (default `DEFAULT_CLOSE_BUDGET_MS`, 15 s) what
   * is left is dropped. Call it after the push hub closed (every stream then got its status).
   * Calling it again returns the same promise.
   */
  close(budgetMs?: number): Promise<'graceful' | 'forced'>;
  /** `await using ws = await startWebSocketServer(…)`: {@link WebSocketServerHandle.close} with the default budget at scope exit. */
  [Symbol.asyncDispose](): Promise<void>;
}

/** Writes a plain HTTP refusal on an upgrade socket. */
function refuse(socket: Socket, status: number, text: string): void {
  socket.end(`HTTP/1.1 ${status} ${text}\r\nConnection: close\r\nContent-Type: text/plain\r\nContent-Length: ${text.length}\r\n\r\n${text}`);
}

/**
 * Starts the EdgeGateway WebSocket transport (SPEC §2.2): upgrades on `/v1/ws` with the
 * `edgegateway.v1` subprotocol and an allowed origin, binary frames only, no compression.
 */
export async function startWebSocketServer(options: WebSocketServerOptions): Promise<WebSocketServerHandle> {
  const logger = (options.logger ?? noopLogger).child({ component: 'websocket' });
  const gatewayMetrics = options.metrics ?? new GatewayMetrics();
  const metrics = { calls: gatewayMetrics.transportCalls('websocket'), connections: gatewayMetrics.transportConnections('websocket') };
  const origins = new Set(options.allowedOrigins ?? []);
  const requestLog = options.requestLog ?? new RequestLogLimiter({ logger, metrics: gatewayMetrics });
  const limits = {
    maxCallsInFlight: options.maxCallsInFlight ?? DEFAULT_MAX_CALLS_IN_FLIGHT,
    bufferHighWaterBytes: options.bufferHighWaterBytes ?? DEFAULT_BUFFER_HIGH_WATER_BYTES,
    firstFrameTimeoutMs: options.headersTimeoutMs ?? DEFAULT_HTTP_TIMEOUTS.headersTimeoutMs,
    idleTimeoutMs: options.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS,
    closeGraceMs: GUARD_CLOSE_GRACE_MS,
  };
  const budgets = new ConnectionBudgets(options.connectionLimits ?? {}, { transport: 'websocket', metrics: gatewayMetrics, logger, requestLog });
  const wss = new WebSocketServer({
    noServer: true,
    maxPayload: options.maxPayloadBytes + FRAME_HEADROOM_BYTES,
    // Compression costs CPU per frame and opens the door to decompression bombs.
    perMessageDeflate: false,
    // The connections are tracked in `connections` below; ws's own set would cost a set entry
    // and a `close` listener per connection.
    clientTracking: false,
    // edgegateway.v1.1 (status trailers) when the client offers it, else edgegateway.v1.
    handleProtocols: (offered) => (offered.has(WEBSOCKET_SUBPROTOCOL_TRAILERS) ? WEBSOCKET_SUBPROTOCOL_TRAILERS : offered.has(WEBSOCKET_SUBPROTOCOL) ? WEBSOCKET_SUBPROTOCOL : false),
  });
  const connections = new Map<WebSocket, WebSocketConnection>();
  const alive = new WeakSet<WebSocket>();
  let closing = false;
  // The socket listeners, shared by every connection (`this` is the socket): no closure per
  // connection (issue 25).
  function onMessage(this: WebSocket, data: Buffer, isBinary: boolean): void {
    connections.get(this)?.frameReceived(data, isBinary);
  }
  function onClose(this: WebSocket): void {
    const connection = connections.get(this);
    connections.delete(this);
    connection?.socketClosed();
  }
  function onPong(this: WebSocket): void {
    alive.add(this);
  }
  // A socket error (reset, oversized frame) closes the connection; the close handler cleans up.
  const onError = (): void => undefined;

  const onUpgrade = (request: IncomingMessage, socket: Socket, head: Buffer): void => {
    const path = (request.url ?? '').split('?')[0];
    if (path !== WEBSOCKET_PATH) return refuse(socket, 404, 'Not Found');
    if (closing) return refuse(socket, 503, 'Service Unavailable');
    const origin = request.headers.origin;
    if (origin !== undefined && !origins.has('*') && !origins.has(origin)) {
      if (requestLog.allow('websocket', 'PERMISSION_DENIED')) logger.warn('websocket upgrade refused', { reason: 'origin not allowed' });
      return refuse(socket, 403, 'Forbidden');
    }
    const offered = String(request.headers['sec-websocket-protocol'] ?? '').split(',').map((p) => p.trim());
    if (!offered.includes(WEBSOCKET_SUBPROTOCOL) && !offered.includes(WEBSOCKET_SUBPROTOCOL_TRAILERS)) return refuse(socket, 400, 'Bad Request');
    wss.handleUpgrade(request, socket, head, (ws) => {
      const connection = new WebSocketConnection(ws, options.core, limits, metrics, logger, budgets);
      connections.set(ws, connection);
      alive.add(ws);
      metrics.connections.opened();
      ws.on('message', onMessage);
      ws.on('close', onClose);
      ws.on('pong', onPong);
      ws.on('error', onError);
    });
  };

  let server = options.server;
  const own = server === undefined;
  const source = own && options.tls !== undefined && 'onChange' in options.tls ? options.tls : undefined;
  const tls: TlsKeyPair | undefined = !own ? undefined : source !== undefined ? source.current : (options.tls as TlsKeyPair | undefined);
  if (server === undefined) {
    const bind = options.listen ?? { host: '127.0.0.1', port: 0 };
    const headersTimeout = options.headersTimeoutMs ?? DEFAULT_HTTP_TIMEOUTS.headersTimeoutMs;
    const requestTimeout = options.requestTimeoutMs ?? DEFAULT_HTTP_TIMEOUTS.requestTimeoutMs;
    const keepAliveTimeout = options.keepAliveTimeoutMs ?? DEFAULT_HTTP_TIMEOUTS.keepAliveTimeoutMs;
    const serverOptions = {
      headersTimeout: Math.min(headersTimeout, requestTimeout),
      requestTimeout,
      keepAliveTimeout,
      // How often Node checks the bounds (default 30 s, which would let a request live up to
      // twice its bound); as on the HTTP listeners.
      connectionsCheckingInterval: Math.max(100, Math.min(1000, Math.floor(headersTimeout / 4))),
    };
    const upgradeRequired = (_: IncomingMessage, res: ServerResponse): void => {
      res.writeHead(426, { 'Content-Type': 'text/plain', Upgrade: 'websocket' }).end('Upgrade Required');
    };
    // An https.Server emits the same request and upgrade events; typed as http's Server below.
    const created =
      tls === undefined
        ? createServer(serverOptions, upgradeRequired)
        : (createHttpsServer({ ...serverOptions, cert: tls.cert, key: tls.key, handshakeTimeout: headersTimeout }, upgradeRequired) as unknown as Server);
    // Also set as a property: the constructor option is not honoured on every supported Node.
    created.keepAliveTimeout = keepAliveTimeout;
    await new Promise<void>((resolve, reject) => {
      created.once('error', reject);
      created.listen({ host: bind.host === '' ? undefined : bind.host, port: bind.port }, () => {
        created.off('error', reject);
        // Before the first connection is accepted.
        options.guard?.attach(created, { listener: 'websocket', ...(tls === undefined ? {} : { tlsHandshakeTimeoutMs: headersTimeout }) });
        resolve();
      });
    });
    server = created;
  }
  server.on('upgrade', onUpgrade);
  const http = server;
  // Followed from the moment the listener is up (a pair that came while it started is served now).
  const setTls = (pair: TlsKeyPair): void => (http as unknown as TlsServer).setSecureContext({ cert: pair.cert, key: pair.key });
  if (source !== undefined && source.current !== tls) setTls(source.current);
  const unfollow = source?.onChange(setTls);

  const ping = setInterval(() => {
    for (const [ws, connection] of connections) {
      // Not read while its answers drain: its pong may be unread; the drain timeout bounds it.
      if (connection.readingPaused) {
        alive.add(ws);
        continue;
      }
      if (!alive.has(ws)) {
        ws.terminate();
        continue;
      }
      alive.delete(ws);
      ws.ping();
    }
  }, options.pingIntervalMs ?? DEFAULT_PING_INTERVAL_MS);
  ping.unref();

  const bound = http.address() as AddressInfo;
  const address = bound.address.includes(':') ? `[${bound.address}]:${bound.port}` : `${bound.address}:${bound.port}`;
  let closed: Promise<'graceful' | 'forced'> | undefined;

  const close = (budgetMs: number = DEFAULT_CLOSE_BUDGET_MS): Promise<'graceful' | 'forced'> => {
    closed ??= (async () => {
      closing = true;
      unfollow?.();
      clearInterval(ping);
      if (own) http.close();
      let forced = false;
      const timedOut = (): boolean => forced;
      const drained = Promise.all(
        [...connections.values()].map(
          (connection) =>
            new Promise<void>((resolve) => {
              if (connection.inFlight === 0) return resolve();
              connection.onIdle = resolve;
            }),
        ),
      );
      let timer: NodeJS.Timeout | undefined;
      const budget = new Promise<void>((resolve) => {
        timer = setTimeout(() => {
          forced = true;
          resolve();
        }, budgetMs);
      });
      await Promise.race([drained, budget]);
      const gone = Promise.all(
        [...connections.keys()].map((ws) => new Promise<void>((resolve) => (ws.readyState === ws.CLOSED ? resolve() : ws.once('close', () => resolve())))),
      );
      for (const connection of connections.values()) connection.closeWith(CloseCodes.goingAway, 'gateway is shutting down');
      await Promise.race([gone, budget]);
      clearTimeout(timer);
      for (const ws of connections.keys()) ws.terminate();
      http.off('upgrade', onUpgrade);
      wss.close();
      if (timedOut()) logger.warn('websocket close budget exceeded, dropping connections', { budget_ms: budgetMs });
      return timedOut() ? 'forced' : 'graceful';
    })();
    return closed;
  };

  return {
    address,
    port: bound.port,
    get connections() {
      return connections.size;
    },
    close,
    async [Symbol.asyncDispose]() {
      await close();
    },
  };
}

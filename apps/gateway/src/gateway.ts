import { container as rootContainer, type DependencyContainer } from 'tsyringe';
import { runShutdown, type AuthUpstream, type Ed25519ResponseSigner, type GatewayCore, type Logger, type ShutdownStep } from '@edge-gateway/core';
import type { RedisBackend } from '@edge-gateway/adapters-redis';
import { routeGrpcJsLogs, startGrpcServer, type GrpcServerHandle, type createDownstreamRouter } from '@edge-gateway/adapters-grpc';
import { ListenerGuard, createAdminApp, createPublicApp, listen, parseListenAddress, type HttpListener, type Readiness } from '@edge-gateway/adapters-http';
import { startWebSocketServer, type WebSocketServerHandle } from '@edge-gateway/adapters-ws';
import { ConfigError, describeConfig, loadConfig, type GatewayConfig, type TlsFiles } from './config/config.js';
import { formatDuration } from './config/duration.js';
import type { EventSource, GatewayBackend } from './backend.js';
import { registerGateway, registerRedisBackend } from './container.js';
import { SignerKeyError, TlsFilesError, createSignerRotation, loadCaCertificates, loadSignerKey, openTlsFiles, warnIfKeyExposed, type TlsFileWatcher } from '@edge-gateway/core/node';
import { MaxConnectionsError, TELEMETRY_FLUSH_TIMEOUT_MS, maxConnectionsFor, readOpenFileLimit, type Telemetry } from '@edge-gateway/node-runtime';
import { Tokens } from './tokens.js';

/** How replay reservations are confirmed (SPEC §5.2), for the `redis connected` line. */
function replayFields(config: GatewayConfig): Record<string, unknown> {
  const { minReplicas, waitTimeoutMs } = config.redis.replay;
  return { replay_min_replicas: minReplicas, ...(minReplicas > 0 ? { replay_wait_timeout: formatDuration(waitTimeoutMs) } : {}) };
}

/** Startup failed; `message` is the one line an operator reads (never a secret). */
export class StartupError extends Error {
  override readonly name = 'StartupError';
}

/**
 * Loads a listener's certificate at startup (step 2, with the signer key) and watches its files
 * from then on (SPEC §8.6; the listener follows the watcher); errors name the variable.
 */
async function openListenerTls(listener: string, files: TlsFiles | undefined, logger: Logger): Promise<TlsFileWatcher | undefined> {
  if (files === undefined) return undefined;
  try {
    return await openTlsFiles({ listener, files, logger });
  } catch (error) {
    if (error instanceof TlsFilesError) throw new StartupError(error.message);
    throw error;
  }
}

/** `GATEWAY_DOWNSTREAM_TLS_CA_PATH`, read once at startup; empty: Node's root certificates. */
async function loadDownstreamCa(path: string): Promise<Buffer | undefined> {
  if (path === '') return undefined;
  try {
    return await loadCaCertificates(path, 'GATEWAY_DOWNSTREAM_TLS_CA_PATH');
  } catch (error) {
    if (error instanceof TlsFilesError) throw new StartupError(error.message);
    throw error;
  }
}

/** Awaits a listener start; a failure (e.g. the port is taken) names the variable to fix. */
async function listening<T>(variable: string, start: Promise<T>): Promise<T> {
  try {
    return await start;
  } catch (error) {
    throw new StartupError(`${variable}: ${error instanceof Error ? error.message : String(error)}`);
  }
}

export interface StartOptions {
  readonly env: Readonly<Record<string, string | undefined>>;
  readonly logger: Logger;
  /** Created from the env by the caller so the logger and metrics exist before config is valid. */
  readonly telemetry: Telemetry;
  /**
   * Registers the backend (`Tokens.Backend`, stores, history, both event sources). Default:
   * Redis from the config. The development mode passes its in-memory backend here.
   */
  readonly registerBackend?: (container: DependencyContainer, config: GatewayConfig) => void;
  /** Already-loaded config (the development mode builds its own); default: from `env`. */
  readonly config?: GatewayConfig;
  /**
   * Bound address of an admin listener the caller runs itself (the development mode serves
   * `/metrics` and its dev routes there), so the startup logs show it instead of `""`.
   */
  readonly externalAdminHttpAddr?: string;
}

/** A started gateway. */
export interface RunningGateway {
  readonly config: GatewayConfig;
  /** The assembled core (for transports started next to the binary's, e.g. the dev mode's). */
  readonly core: GatewayCore;
  readonly publicHttp: HttpListener;
  readonly grpc: GrpcServerHandle;
  readonly adminHttp: HttpListener | undefined;
  /** The WebSocket transport, when `GATEWAY_WEBSOCKET_ADDR` is set. */
  readonly websocket: WebSocketServerHandle | undefined;
  /** Runs the shutdown sequence of SPEC §8.2 once; later calls return the same promise. */
  shutdown(): Promise<boolean>;
  /** SIGHUP: re-reads the signer key file (rotation without downtime). */
  reload(): Promise<void>;
}

async function loadSigner(path: string): Promise<Ed25519ResponseSigner> {
  try {
    return await loadSignerKey(path);
  } catch (error) {
    if (error instanceof SignerKeyError) throw new StartupError(error.message);
    throw error;
  }
}

/**
 * Starts the gateway in the order of SPEC §8.1. On any failure, what was already started is
 * closed again and a `StartupError` (or `ConfigError`) is thrown.
 */
export async function startGateway(options: StartOptions): Promise<RunningGateway> {
  const { logger, telemetry } = options;
  const config = options.config ?? loadConfig(options.env);
  const external = options.externalAdminHttpAddr;
  logger.info('starting gateway', { ...describeConfig(config), ...(external === undefined ? {} : { admin_http_addr: external }) });
  // The public listeners share one cap below the open-file limit, so the admin listener, Redis
  // and the downstreams always have descriptors left.
  const openFiles = readOpenFileLimit();
  let maxConnections: number;
  try {
    maxConnections = maxConnectionsFor(config.maxConnections, openFiles);
  } catch (error) {
    if (error instanceof MaxConnectionsError) throw new StartupError(error.message);
    throw error;
  }
  const guard = new ListenerGuard({ maxConnections, metrics: telemetry.metrics, logger });
  const rotation = createSignerRotation(await loadSigner(config.signerKeyPath), config.signerKeyPath, logger);
  const signer = rotation.signer;
  logger.info('response signer loaded', { signer_key_id: signer.keyId });
  telemetry.metrics.observeSignerKey(signer);
  await warnIfKeyExposed(config.signerKeyPath, logger);
  // Certificates are re-read when their files change (and on SIGHUP); new connections get them.
  const tlsWatchers: TlsFileWatcher[] = [];
  const closeTlsWatchers = (): void => {
    for (const watcher of tlsWatchers) watcher.close();
  };
  let publicHttpTls: TlsFileWatcher | undefined;
  let grpcTls: TlsFileWatcher | undefined;
  let websocketTls: TlsFileWatcher | undefined;
  let downstreamCa: Buffer | undefined;
  try {
    publicHttpTls = await openListenerTls('public http', config.publicHttpTls, logger);
    if (publicHttpTls !== undefined) tlsWatchers.push(publicHttpTls);
    grpcTls = await openListenerTls('authenticated grpc', config.grpcTls, logger);
    if (grpcTls !== undefined) tlsWatchers.push(grpcTls);
    websocketTls = await openListenerTls('websocket', config.websocketTls, logger);
    if (websocketTls !== undefined) tlsWatchers.push(websocketTls);
    downstreamCa = await loadDownstreamCa(config.downstreamTlsCaPath);
  } catch (error) {
    closeTlsWatchers();
    throw error;
  }

  const container = rootContainer.createChildContainer();
  registerGateway(container, { config, logger, telemetry, signer, downstreamCa });
  (options.registerBackend ?? registerRedisBackend)(container, config);

  const undo: ShutdownStep[] = [];
  const abort = async (error: unknown): Promise<never> => {
    closeTlsWatchers();
    await runShutdown([...undo].reverse(), config.shutdownTimeoutMs, logger.child({ phase: 'startup-rollback' }));
    throw error;
  };

  let readiness: Readiness = 'starting';
  const backend = container.resolve<GatewayBackend>(Tokens.Backend);
  const downstreams = container.resolve<ReturnType<typeof createDownstreamRouter>>(Tokens.Downstreams);
  undo.push({ component: 'downstreams', stop: () => downstreams.close() });
  try {
    await backend.connect();
  } catch (error) {
    // A setting the topology cannot satisfy (GATEWAY_REDIS_REPLAY_MIN_REPLICAS) names its variable.
    await abort(error instanceof ConfigError ? error : new StartupError(error instanceof Error ? error.message : String(error)));
  }
  undo.push({ component: backend.kind, stop: () => backend.close() });
  if (backend.kind === 'redis') {
    const { topology } = container.resolve<RedisBackend>(Tokens.Redis);
    logger.info('redis connected', {
      ...(topology === undefined
        ? { topology: 'cluster', cluster_nodes: config.redis.clusterNodes.map((n) => `${n.host}:${n.port}`).join(',') }
        : {
            address: topology.master.address,
            topology: topology.kind,
            replicas: topology.replicas().map((r) => r.address),
            session_reads: config.redis.sessionReads,
            client_events_reads: config.redis.clientEventsReads,
            db: config.redis.db,
          }),
      ping_timeout: formatDuration(config.redis.pingTimeoutMs),
      push_fanout: config.pushFanout,
      ...replayFields(config),
    });
  }

  const sessionSubscriber = container.resolve<EventSource>(Tokens.SessionEventsSubscriber);
  const clientSubscriber = container.resolve<EventSource>(Tokens.ClientEventsSubscriber);
  const core = container.resolve<GatewayCore>(Tokens.Core);

  let publicHttp: HttpListener | undefined;
  let grpc: GrpcServerHandle | undefined;
  let adminHttp: HttpListener | undefined;
  let websocket: WebSocketServerHandle | undefined;
  try {
    await sessionSubscriber.start();
    undo.push({ component: 'session-events subscriber', stop: () => sessionSubscriber.close() });
    await clientSubscriber.start();
    undo.push({ component: 'client-events subscriber', stop: () => clientSubscriber.close() });
    logger.info('stream subscribers started', {
      session_events_stream: config.sessionEventsStream,
      client_events_stream: config.clientEventsStream,
    });

    const publicApp = createPublicApp({
      readiness: () => readiness,
      authUpstream: container.resolve<AuthUpstream | undefined>(Tokens.AuthUpstream),
      metrics: telemetry.metrics,
      logger: logger.child({ component: 'public-http' }),
    });
    const publicGuard = { guard, listener: 'public' };
    publicHttp = await listening(
      'GATEWAY_PUBLIC_HTTP_ADDR',
      listen(publicApp, config.publicHttpAddr, {
        ...config.http,
        maxBufferBytes: config.connectionLimits.maxBufferBytes,
        metrics: telemetry.metrics,
        logger: logger.child({ component: 'public-http' }),
        guard: publicGuard,
        ...(publicHttpTls === undefined ? {} : { tls: publicHttpTls }),
      }),
    );
    const publicListener = publicHttp;
    undo.push({ component: 'public http listener', stop: (budget) => publicListener.close(budget) });
    logger.info('public http listener started', { address: publicHttp.address });

    routeGrpcJsLogs(logger);
    grpc = await listening(
      'GATEWAY_AUTHENTICATED_GRPC_ADDR',
      startGrpcServer({
        address: config.grpcAddr,
        core,
        maxPayloadBytes: config.core.maxPayloadBytes,
        metrics: telemetry.metrics,
        logger: logger.child({ component: 'grpc' }),
        maxConnectionAge: config.grpcMaxConnection,
        guard,
        connectionLimits: config.connectionLimits,
        requestLog: core.requestLog,
        ...(grpcTls === undefined ? {} : { tls: grpcTls, tlsHandshakeTimeoutMs: config.http.headersTimeoutMs }),
      }),
    );
    const grpcServer = grpc;
    undo.push({ component: 'grpc server', stop: (budget) => grpcServer.close(budget) });
    logger.info('authenticated grpc listener started', { address: grpc.address });
    if (config.websocketAddr !== '') {
      websocket = await startWebSocketServer({
        core,
        listen: parseListenAddress(config.websocketAddr),
        maxPayloadBytes: config.core.maxPayloadBytes,
        allowedOrigins: config.websocketAllowedOrigins,
        ...config.http,
        idleTimeoutMs: config.websocketIdleTimeoutMs,
        metrics: telemetry.metrics,
        requestLog: core.requestLog,
        connectionLimits: config.connectionLimits,
        logger,
        guard,
        ...(websocketTls === undefined ? {} : { tls: websocketTls }),
      });
      const websocketServer = websocket;
      undo.push({ component: 'websocket server', stop: (budget) => websocketServer.close(budget) });
      logger.info('websocket listener started', { address: websocket.address, tls: websocketTls !== undefined });
    }
    if (downstreams.router.size === 0) {
      logger.warn('no downstream routes configured: ExecuteCommand answers UNIMPLEMENTED', {});
    }

    if (config.adminHttpAddr !== '') {
      const adminApp = createAdminApp({
        metricsHandler: telemetry.metricsHandler,
        metrics: telemetry.metrics,
        logger: logger.child({ component: 'admin-http' }),
      });
      // Not capped: /metrics answers while the public listeners are full.
      adminHttp = await listening('GATEWAY_ADMIN_HTTP_ADDR', listen(adminApp, config.adminHttpAddr, {
          ...config.http,
          maxBufferBytes: config.connectionLimits.maxBufferBytes,
          metrics: telemetry.metrics,
          logger: logger.child({ component: 'admin-http' }),
          guard: { guard, listener: 'admin', capped: false },
        }),);
      const adminListener = adminHttp;
      undo.push({ component: 'admin http listener', stop: (budget) => adminListener.close(budget) });
      logger.info('admin http listener started', { address: adminHttp.address });
    }
  } catch (error) {
    await abort(error instanceof StartupError ? error : new StartupError(error instanceof Error ? error.message : String(error)));
  }

  readiness = 'ready';
  logger.info('gateway started', {
    public_http_addr: publicHttp?.address,
    authenticated_grpc_addr: grpc?.address,
    admin_http_addr: adminHttp?.address ?? external ?? '',
    websocket_addr: websocket?.address ?? '',
    signer_key_id: signer.keyId,
    max_connections: maxConnections,
    open_files_limit: Number.isFinite(openFiles.soft) ? openFiles.soft : 'unlimited',
    open_files_limit_source: openFiles.source,
  });

  let stopping: Promise<boolean> | undefined;
  const shutdown = (): Promise<boolean> => {
    stopping ??= (async () => {
      logger.info('gateway shutting down', { budget_per_step: formatDuration(config.shutdownTimeoutMs) });
      closeTlsWatchers();
      const steps = core.shutdownSteps({
        onShuttingDown: () => {
          readiness = 'shutting_down';
        },
        eventSources: [sessionSubscriber, clientSubscriber],
        transports: [
          { component: 'grpc server', stop: (budget) => grpc?.close(budget) },
          ...(websocket === undefined ? [] : [{ component: 'websocket server', stop: (budget: number) => websocket?.close(budget) }]),
          {
            component: 'http listeners',
            stop: (budget) => Promise.all([publicHttp?.close(budget), adminHttp?.close(budget)]),
          },
        ],
        resources: [
          { component: 'downstreams', stop: () => downstreams.close() },
          { component: backend.kind, stop: () => backend.close() },
          // Half the step budget at most, so the warn line comes before the step would overrun.
          { component: 'telemetry', stop: (budget) => telemetry.shutdown({ timeoutMs: Math.min(TELEMETRY_FLUSH_TIMEOUT_MS, Math.max(1, Math.floor(budget / 2))), logger: logger.child({ component: 'telemetry' }) }) },
        ],
      });
      const clean = await runShutdown(steps, config.shutdownTimeoutMs, logger);
      logger.info('gateway stopped', { clean });
      return clean;
    })();
    return stopping;
  };

  return {
    config,
    core,
    publicHttp: publicHttp as HttpListener,
    grpc: grpc as GrpcServerHandle,
    adminHttp,
    websocket,
    shutdown,
    async reload() {
      logger.info('reload requested', { reloads: ['signer key', ...(tlsWatchers.length > 0 ? ['tls certificates'] : [])] });
      await Promise.all([rotation.reload(), ...tlsWatchers.map((watcher) => watcher.reload())]);
    },
  };
}

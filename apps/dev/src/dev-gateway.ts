import { rmSync, writeFileSync } from 'node:fs';
import type { Logger } from '@edge-gateway/core';
import { createAdminApp, listen, type HttpListener } from '@edge-gateway/adapters-http';
import { startWebSocketServer, type WebSocketServerHandle } from '@edge-gateway/adapters-ws';
import { startGateway, type RunningGateway } from '@edge-gateway/gateway';
import { DEMO_ROUTES, createDemoPage } from './demo-page.js';
import type { Telemetry } from '@edge-gateway/node-runtime';
import { ConfigError } from '@edge-gateway/gateway/config';
import { portState } from '@edge-gateway/gateway/port-state';
import { devAdminAddress, loadDevConfig } from './dev-config.js';
import { DEMO_DEVICE, devDir, devPaths, readRunningDevGateway, writeDevKeys, type DevGatewayInfo, type DevKeys } from './dev-files.js';
import { DEV_ROUTES, createDevRoutes } from './dev-routes.js';
import { startEchoDownstream } from './echo-downstream.js';
import { InMemoryBackend } from './in-memory-backend.js';
import { sessionRecordFields } from '@edge-gateway/protocol';

/** The warning every development-mode start logs first. */
export const DEV_MODE_WARNING = 'development mode: in-memory stores, nothing is kept; never use in production';

export interface DevGatewayOptions {
  readonly env: Readonly<Record<string, string | undefined>>;
  readonly logger: Logger;
  readonly telemetry: Telemetry;
}

/** A started development gateway. */
export interface DevGateway {
  readonly gateway: RunningGateway;
  readonly backend: InMemoryBackend;
  readonly adminHttp: HttpListener;
  /** The WebSocket transport on the admin listener (`/v1/ws`), used by the browser demo at `/demo`. */
  readonly websocket: WebSocketServerHandle;
  readonly keys: DevKeys;
  /** Stops the gateway (SPEC §8.2 sequence), then the admin listener and the echo service. */
  shutdown(): Promise<boolean>;
}

/**
 * Validates the configuration and fails with a `ConfigError` naming the variable when one of
 * the three listen ports is taken (typically by another development gateway).
 */
async function checkDevListeners(env: Readonly<Record<string, string | undefined>>, dir: string): Promise<void> {
  const preview = loadDevConfig(env, { signerKeyPath: devPaths(dir).signerKey, echoAddress: '127.0.0.1:1' });
  const listeners: Array<[string, string]> = [
    ['GATEWAY_PUBLIC_HTTP_ADDR', preview.publicHttpAddr],
    ['GATEWAY_AUTHENTICATED_GRPC_ADDR', preview.grpcAddr],
    ['GATEWAY_ADMIN_HTTP_ADDR', devAdminAddress(env)],
  ];
  for (const [variable, address] of listeners) {
    const state = await portState(address);
    if (state.state === 'free') continue;
    const running = readRunningDevGateway(dir);
    const by = running === undefined ? '' : ` (the development gateway pid ${running.pid} runs with this folder)`;
    throw new ConfigError(variable, `${address}: ${state.detail}${by}; nothing in ${dir} was changed`);
  }
}

/**
 * Starts the development gateway (`npm run dev`): the full gateway through `startGateway`
 * with the in-memory backend, a fresh signer key, an in-process `echo.` downstream, a demo
 * device session, and an admin listener serving `/metrics` plus the dev routes.
 */
export async function startDevGateway(options: DevGatewayOptions): Promise<DevGateway> {
  const { env, logger, telemetry } = options;
  const dir = devDir(env);
  logger.warn(DEV_MODE_WARNING, { dev_dir: dir });

  // Everything that can fail is checked before the folder is touched: a second `npm run dev`
  // must not replace the keys a running one (and its demo) still use.
  await checkDevListeners(env, dir);
  const keys = writeDevKeys(dir);
  const backend = new InMemoryBackend();
  backend.writeSession(sessionRecordFields({ ...DEMO_DEVICE, status: 'active', clientPublicKey: keys.demoDevice.publicKeyRaw }));

  const echo = await startEchoDownstream();
  let adminHttp: HttpListener | undefined;
  let websocket: WebSocketServerHandle | undefined;
  try {
    const config = loadDevConfig(env, { signerKeyPath: keys.paths.signerKey, echoAddress: echo.address });
    const adminApp = createAdminApp({
      metricsHandler: telemetry.metricsHandler,
      metrics: telemetry.metrics,
      logger: logger.child({ component: 'admin-http' }),
    });
    const devRoutes = createDevRoutes(backend);
    const demoPage = createDemoPage(keys);
    const handler = (req: Parameters<typeof devRoutes>[0], res: Parameters<typeof devRoutes>[1]): void => {
      if (!devRoutes(req, res) && !demoPage(req, res)) adminApp(req, res);
    };
    // listen() only attaches the app as the server's request listener; a plain handler serves.
    adminHttp = await listen(handler as unknown as Parameters<typeof listen>[0], devAdminAddress(env), {
      logger: logger.child({ component: 'admin-http' }),
    });
    logger.info('admin http listener started', { address: adminHttp.address, dev_routes: [...DEV_ROUTES, ...DEMO_ROUTES] });

    const gateway = await startGateway({
      env,
      logger,
      telemetry,
      config,
      registerBackend: backend.register(),
      externalAdminHttpAddr: adminHttp.address,
    });
    // The browser demo's transport: the same origin as the page, so only that origin is allowed.
    websocket = await startWebSocketServer({
      core: gateway.core,
      server: adminHttp.server,
      maxPayloadBytes: config.core.maxPayloadBytes,
      allowedOrigins: [`http://${adminHttp.address}`, `http://localhost:${adminHttp.port}`, `http://127.0.0.1:${adminHttp.port}`],
      headersTimeoutMs: config.http.headersTimeoutMs,
      idleTimeoutMs: config.websocketIdleTimeoutMs,
      metrics: telemetry.metrics,
      requestLog: gateway.core.requestLog,
      logger,
    });
    logger.info('development websocket transport started', { address: `${adminHttp.address}`, path: '/v1/ws', demo_page: `http://${adminHttp.address}/demo` });
    const info: DevGatewayInfo = {
      pid: process.pid,
      public_http_addr: gateway.publicHttp.address,
      authenticated_grpc_addr: gateway.grpc.address,
      admin_http_addr: adminHttp.address,
      signer_key_id: keys.signer.keyId,
    };
    writeFileSync(keys.paths.running, `${JSON.stringify(info, null, 2)}\n`);
    logger.info('development gateway ready', {
      ...info,
      echo_downstream: echo.address,
      demo_device_session_id: DEMO_DEVICE.deviceSessionId,
      demo_user_id: DEMO_DEVICE.userId,
      demo_device_key: keys.paths.demoDeviceKey,
      gateway_public_key_file: keys.paths.gatewayPublicKey,
      next: 'run "npm run demo" in another terminal',
    });

    const admin = adminHttp;
    const devWebsocket = websocket;
    let stopping: Promise<boolean> | undefined;
    const shutdown = (): Promise<boolean> => {
      stopping ??= (async () => {
        const clean = await gateway.shutdown();
        await devWebsocket.close(gateway.config.shutdownTimeoutMs);
        await admin.close(gateway.config.shutdownTimeoutMs);
        await echo.stop();
        rmSync(keys.paths.running, { force: true });
        logger.info('component stopped', { component: 'development admin listener and echo downstream' });
        return clean;
      })();
      return stopping;
    };
    return { gateway, backend, adminHttp, websocket, keys, shutdown };
  } catch (error) {
    await websocket?.close(1000);
    await adminHttp?.close(1000);
    await echo.stop();
    throw error;
  }
}

import { loadConfig, parseHostPort, type GatewayConfig } from '@edge-gateway/gateway/config';

type Env = Readonly<Record<string, string | undefined>>;

/** Default admin address of the development mode: loopback only, since the dev routes are unauthenticated. */
export const DEV_ADMIN_HTTP_ADDR = '127.0.0.1:9100';

/**
 * Placeholder Redis settings: the development mode never talks to Redis. `GATEWAY_RATE_LIMITS`
 * still applies, counted in the process (`GATEWAY_RATE_LIMIT_STORE=redis` would otherwise be
 * reported while nothing counts in Redis).
 */
const NO_REDIS = {
  GATEWAY_REDIS_MASTER_ADDR: 'in-memory:0',
  GATEWAY_REDIS_PASSWORD: 'unused-in-development-mode',
  GATEWAY_REDIS_REPLICA_ADDRS: '',
  GATEWAY_REDIS_REPLAY_MIN_REPLICAS: '',
  GATEWAY_RATE_LIMIT_STORE: 'local',
} as const;

/** The admin address of the development mode: `GATEWAY_ADMIN_HTTP_ADDR`, else {@link DEV_ADMIN_HTTP_ADDR}. */
export function devAdminAddress(env: Env): string {
  const configured = env['GATEWAY_ADMIN_HTTP_ADDR']?.trim();
  const address = configured === undefined || configured === '' ? DEV_ADMIN_HTTP_ADDR : configured;
  parseHostPort('GATEWAY_ADMIN_HTTP_ADDR', address, true);
  return address;
}

/**
 * The gateway configuration of the development mode: the caller's environment (so listener
 * addresses, timeouts, log level and rate limits still apply, and deprecated variables still fail) with
 * placeholder Redis settings, the freshly generated signer key, the `echo.` route added, and
 * the admin listener left to the development mode (it serves `/metrics` and the dev routes).
 */
export function loadDevConfig(env: Env, dev: { signerKeyPath: string; echoAddress: string }): GatewayConfig {
  const routes = (env['GATEWAY_DOWNSTREAM_ROUTES'] ?? '').trim();
  const hasEcho = routes.split(',').some((pair) => pair.trim().startsWith('echo.='));
  return loadConfig({
    ...env,
    ...NO_REDIS,
    GATEWAY_RESPONSE_SIGNER_PRIVATE_KEY_PEM_PATH: dev.signerKeyPath,
    GATEWAY_ADMIN_HTTP_ADDR: '',
    GATEWAY_DOWNSTREAM_ROUTES: hasEcho ? routes : [`echo.=${dev.echoAddress}`, routes].filter((r) => r !== '').join(','),
  });
}

import type { RedisClient, RedisClusterClient, RedisTopology } from '@edge-gateway/adapters-redis';
import { ConfigError, DEPRECATED_VARIABLES, describeRedisLocation, loadConfig, parseHostPort, type GatewayConfig } from '@edge-gateway/gateway/config';
import { formatDuration } from '@edge-gateway/gateway/duration';
import { portState } from '@edge-gateway/gateway/port-state';
import { SignerKeyError, loadSignerKey } from '@edge-gateway/core/node';
import { Checklist } from './checklist.js';
import { ExitCode, parseCommandArgs, type CliIo } from './cli-io.js';
import { connectRedis, connectRedisCluster, entriesFromReply, withoutSignerRequirement } from './cli-redis.js';
import { identifyGatewayListener, probeUrl, type ListenerKind } from './gateway-identify.js';

export const DOCTOR_USAGE = `Usage: edge-gateway doctor [--probe]

Runs the runbook's startup and readiness checks against the environment the gateway would
get (the same GATEWAY_* variables), printing a ✓/✗ checklist:

  config          no deprecated variables (named if set), every variable valid
  signer key      GATEWAY_RESPONSE_SIGNER_PRIVATE_KEY_PEM_PATH loads as PKCS#8 Ed25519; key id
  redis           PING of the master (discovered through Sentinel when configured) with the
                  configured password and db; the topology: master, replicas and Sentinels,
                  each with its reachability
  streams         both stream keys are streams (length, last id) or absent (publishers create them)
  listeners       public, gRPC and admin addresses parse; whether their ports are free here
                  (a port held by a running gateway is recognised by its health answers)
  routes          GATEWAY_DOWNSTREAM_ROUTES parses; auth upstream configured or not

"!" lines are worth a look but do not fail. The exit code is 1 when any check failed.
The Redis password is never printed.

Options:
  --probe       also GET /healthz and /readyz of a running gateway at the public address,
                and /metrics at the admin address (a host-less ":port" means 127.0.0.1)
  -h, --help    show this help`;

type Env = Readonly<Record<string, string | undefined>>;

function message(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** The Redis Cluster checks: PING through the seeds, the masters found, both streams. */
/** The parsed rules, one per clause: `session=20/s:40 (every command, per device session)`. */
function describeRateLimits(config: GatewayConfig): string {
  return config.core.rateLimits
    .map((rule) => {
      const what = rule.scope === 'session_streams' ? 'stream opens' : rule.routePrefix === '' ? 'every command' : `commands ${rule.routePrefix}*`;
      const per = rule.scope === 'user' ? 'per user' : 'per device session';
      return `${rule.id} (${what}, ${per})`;
    })
    .join(', ');
}

async function checkCluster(checks: Checklist, config: GatewayConfig): Promise<void> {
  let cluster: RedisClusterClient | undefined;
  try {
    cluster = await connectRedisCluster(config);
    checks.ok('redis: PING', `PONG from the cluster (${describeRedisLocation(config)}) with the configured password`);
  } catch (error) {
    checks.fail('redis: PING', message(error));
  }
  if (cluster === undefined) {
    checks.skip('redis: topology', 'redis PING failed');
    checks.skip(`stream session-events (${config.sessionEventsStream})`, 'redis PING failed');
    checks.skip(`stream client-events (${config.clientEventsStream})`, 'redis PING failed');
    return;
  }
  try {
    const masters = cluster.raw.masters.map((m) => `${m.host}:${m.port}`);
    checks.ok('redis: topology', `cluster: ${masters.length} masters (${masters.join(', ')}), push fan-out ${config.pushFanout}`);
    await checkStream(checks, cluster, 'session-events', config.sessionEventsStream);
    await checkStream(checks, cluster, 'client-events', config.clientEventsStream);
  } finally {
    await cluster.close();
  }
}

async function checkStream(checks: Checklist, client: RedisClient | RedisClusterClient, label: string, key: string): Promise<void> {
  const check = `stream ${label} (${key})`;
  try {
    const type = String(await client.command(['TYPE', key]));
    if (type === 'none') {
      checks.ok(check, 'absent: fine, publishers create it with their first XADD (the gateway reads from then on)');
      return;
    }
    if (type !== 'stream') {
      checks.fail(check, `the key holds a ${type}, not a stream: the gateway's XREAD on it fails (WRONGTYPE)`);
      return;
    }
    const length = Number(await client.command(['XLEN', key]));
    const last = entriesFromReply(await client.command(['XREVRANGE', key, '+', '-', 'COUNT', '1']))[0];
    const first = entriesFromReply(await client.command(['XRANGE', key, '-', '+', 'COUNT', '1']))[0];
    checks.ok(check, `stream, length ${length}, first id ${first?.id ?? '(none)'}, last id ${last?.id ?? '(none)'}`);
  } catch (error) {
    checks.fail(check, message(error));
  }
}

/**
 * One line per node of the topology (master, replicas, Sentinels) with its reachability. An
 * unreachable replica or Sentinel is a warning (reads fall back to the master; the other
 * Sentinels still announce failovers); an unreachable master fails.
 */
async function checkTopology(checks: Checklist, topology: RedisTopology, config: GatewayConfig): Promise<void> {
  // A diagnostic from a fresh process connects to every node: bound it like the startup PING,
  // not by the request-path command timeout (which may be a few hundred ms).
  const nodes = await topology.describe(config.redis.pingTimeoutMs);
  for (const node of nodes) {
    const check = `redis: ${node.role} ${node.address}`;
    if (node.reachable) checks.ok(check, node.detail);
    else if (node.role === 'master') checks.fail(check, node.detail);
    else checks.warn(check, `unreachable or not used: ${node.detail}`);
  }
  const replicas = nodes.filter((n) => n.role === 'replica' && n.reachable).length;
  const reads = `client-events reads on ${replicas > 0 ? `${replicas} replica(s)` : 'the master (no replica answers)'}; session lookups on ${config.redis.sessionReads === 'replica' ? 'replicas, retried on the master' : 'the master'}`;
  if (config.redis.sentinel === undefined && config.redis.replicas.length === 0) checks.ok('redis: topology', `single master, no replicas configured: ${reads}`);
  else checks.ok('redis: topology', `${topology.kind}: ${reads}`);
}

async function probe(checks: Checklist, check: string, url: string, expect: (status: number, body: string) => string | undefined): Promise<void> {
  try {
    const response = await fetch(url, { signal: AbortSignal.timeout(3000) });
    const body = await response.text();
    const problem = expect(response.status, body);
    if (problem === undefined) checks.ok(check, `${url} answered ${response.status}`);
    else checks.fail(check, `${url} answered ${response.status}: ${problem}`);
  } catch (error) {
    const cause = (error as { cause?: { code?: string } }).cause?.code;
    checks.fail(check, `${url} failed (${cause ?? message(error)})`);
  }
}

/** `edge-gateway doctor`. */
export async function doctorCommand(io: CliIo, argv: readonly string[]): Promise<number> {
  const args = parseCommandArgs(io, argv, DOCTOR_USAGE, { probe: { type: 'boolean' } }, { min: 0, max: 0 });
  if (args === undefined) return ExitCode.ok;
  const checks = new Checklist(io);
  const env: Env = io.env;

  // Startup step 1: configuration.
  const deprecated = Object.keys(DEPRECATED_VARIABLES).filter((name) => env[name] !== undefined);
  if (deprecated.length === 0) checks.ok('config: deprecated variables', `none set (${Object.keys(DEPRECATED_VARIABLES).join(', ')})`);
  for (const name of deprecated) {
    checks.fail(`config: deprecated variable ${name}`, `is set: no longer accepted (${DEPRECATED_VARIABLES[name] as string}); the gateway refuses to start until it is unset`);
  }
  const rest: Record<string, string | undefined> = { ...env };
  for (const name of deprecated) delete rest[name];
  let config: GatewayConfig | undefined;
  try {
    config = loadConfig(rest);
    checks.ok(
      'config: valid',
      `redis ${describeRedisLocation(config)} db ${config.redis.db}, key prefix "${config.redis.keyPrefix}", ` +
        `ping timeout ${formatDuration(config.redis.pingTimeoutMs)}, command timeout ${formatDuration(config.redis.commandTimeoutMs)}`,
    );
  } catch (error) {
    if (error instanceof ConfigError) for (const p of error.problems) checks.fail(`config: ${p.variable}`, p.problem);
    else checks.fail('config: valid', message(error));
  }

  // Startup step 2: the signer key.
  const keyPath = config?.signerKeyPath ?? env['GATEWAY_RESPONSE_SIGNER_PRIVATE_KEY_PEM_PATH']?.trim();
  if (keyPath === undefined || keyPath === '') {
    checks.fail('signer key: loads', 'GATEWAY_RESPONSE_SIGNER_PRIVATE_KEY_PEM_PATH is not set');
  } else {
    try {
      const signer = await loadSignerKey(keyPath);
      checks.ok('signer key: loads', `PKCS#8 Ed25519 from ${keyPath}, key id ${signer.keyId}, public key ${Buffer.from(signer.publicKey).toString('base64')}`);
    } catch (error) {
      checks.fail('signer key: loads', error instanceof SignerKeyError ? error.message : message(error));
    }
  }

  // Startup step 3: Redis, and the two streams the subscribers read. A missing signer path
  // alone (already reported above) does not stop these checks.
  let redisConfig = config;
  if (redisConfig === undefined) {
    try {
      redisConfig = loadConfig(withoutSignerRequirement(rest));
    } catch {
      redisConfig = undefined;
    }
  }
  if (redisConfig === undefined) {
    for (const check of ['redis: PING', 'stream session-events', 'stream client-events']) checks.skip(check, 'config is not valid');
  } else if (redisConfig.redis.clusterNodes.length > 0) {
    await checkCluster(checks, redisConfig);
  } else {
    const where = describeRedisLocation(redisConfig);
    let topology: RedisTopology | undefined;
    try {
      topology = await connectRedis(redisConfig);
      const discovered = redisConfig.redis.sentinel === undefined ? '' : ` (the master, discovered as ${where})`;
      checks.ok('redis: PING', `PONG from ${topology.master.address}${discovered} db ${redisConfig.redis.db} with the configured password`);
    } catch (error) {
      checks.fail('redis: PING', message(error));
    }
    if (topology === undefined) {
      checks.skip('redis: topology', 'redis PING failed');
      checks.skip(`stream session-events (${redisConfig.sessionEventsStream})`, 'redis PING failed');
      checks.skip(`stream client-events (${redisConfig.clientEventsStream})`, 'redis PING failed');
    } else {
      try {
        await checkTopology(checks, topology, redisConfig);
        await checkStream(checks, topology.master, 'session-events', redisConfig.sessionEventsStream);
        await checkStream(checks, topology.master, 'client-events', redisConfig.clientEventsStream);
      } finally {
        await topology.close();
      }
    }
  }

  // Step 5: listeners.
  const listeners: Array<[ListenerKind, string, string]> = [
    ['public http', 'GATEWAY_PUBLIC_HTTP_ADDR', config?.publicHttpAddr ?? env['GATEWAY_PUBLIC_HTTP_ADDR'] ?? ':8080'],
    ['authenticated grpc', 'GATEWAY_AUTHENTICATED_GRPC_ADDR', config?.grpcAddr ?? env['GATEWAY_AUTHENTICATED_GRPC_ADDR'] ?? ':9090'],
  ];
  const admin = config?.adminHttpAddr ?? env['GATEWAY_ADMIN_HTTP_ADDR']?.trim() ?? '';
  if (admin !== '') listeners.push(['admin http', 'GATEWAY_ADMIN_HTTP_ADDR', admin]);
  for (const [name, variable, address] of listeners) {
    const check = `listener ${name} ${address}`;
    try {
      parseHostPort(variable, address, true);
    } catch (error) {
      checks.fail(check, message(error));
      continue;
    }
    const state = await portState(address);
    if (state.state === 'free') checks.ok(check, state.detail);
    else if (state.state === 'error') checks.fail(check, state.detail);
    else {
      // In use: by the running gateway (what --probe checks) or by something else?
      const gateway = await identifyGatewayListener(name, address);
      const port = parseHostPort(variable, address, true).port;
      if (gateway === undefined) checks.warn(check, `${state.detail}, by something that does not answer like a gateway's ${name} listener`);
      else if (args.flag('probe')) checks.ok(check, `port ${port} is served by the running gateway (${gateway})`);
      else checks.warn(check, `port ${port} is in use by a running gateway (${gateway}): a second one here cannot bind it`);
    }
  }
  if (admin === '') checks.ok('listener admin http', 'disabled (GATEWAY_ADMIN_HTTP_ADDR is empty): no /metrics endpoint');

  // Startup caveats: routes and the auth upstream.
  try {
    // Loaded here: the gRPC adapter is the slowest import and only this check needs it.
    const { parseDownstreamRoutes } = await import('@edge-gateway/adapters-grpc');
    const routes = parseDownstreamRoutes(config?.downstreamRoutes ?? env['GATEWAY_DOWNSTREAM_ROUTES'] ?? '');
    if (routes.length === 0) checks.warn('downstream routes', 'none configured: ExecuteCommand answers UNIMPLEMENTED (runbook startup caveat)');
    else checks.ok('downstream routes', routes.map((r) => `${r.prefix} → ${r.target}`).join(', '));
  } catch (error) {
    checks.fail('downstream routes', `GATEWAY_DOWNSTREAM_ROUTES: ${message(error)}`);
  }
  if (config !== undefined) {
    if (config.core.rateLimits.length === 0) checks.ok('rate limits', 'none (GATEWAY_RATE_LIMITS is empty): every signed request is admitted');
    else checks.ok('rate limits', `${describeRateLimits(config)}; counted ${config.rateLimitStore === 'redis' ? 'across the fleet in Redis, with the replay reservation' : 'in each process (N processes admit up to N times each rule)'}`);
    if (config.authUpstreamUrl === '') checks.warn('auth upstream', 'not configured: the public auth routes answer 503 service_unavailable (runbook startup caveat)');
    else checks.ok('auth upstream', `${new URL(config.authUpstreamUrl).origin}, timeout ${formatDuration(config.authUpstreamTimeoutMs)}`);
  }

  // Readiness (runbook): probes of a running process.
  if (args.flag('probe') && config !== undefined) {
    await probe(checks, 'probe /healthz', probeUrl(config.publicHttpAddr, '/healthz'), (status, body) =>
      status === 200 && body.includes('"ok"') ? undefined : body.slice(0, 200),
    );
    await probe(checks, 'probe /readyz', probeUrl(config.publicHttpAddr, '/readyz'), (status, body) =>
      status === 200 && body.includes('"ready"') ? undefined : body.slice(0, 200),
    );
    if (config.adminHttpAddr !== '') {
      await probe(checks, 'probe /metrics', probeUrl(config.adminHttpAddr, '/metrics'), (status, body) =>
        status === 200 ? undefined : body.slice(0, 200),
      );
    }
  }

  io.out(
    checks.failed.length === 0 ? 'doctor: all checks passed' : `doctor: ${checks.failed.length} check(s) failed: ${checks.failed.join('; ')}`,
  );
  return checks.failed.length === 0 ? ExitCode.ok : ExitCode.failed;
}

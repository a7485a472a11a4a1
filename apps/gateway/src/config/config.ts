import { DEFAULT_MAX_CONNECTION_AGE_GRACE_MS, parseDownstreamRoutes } from '@edge-gateway/adapters-grpc';
import { DEFAULT_AUTH_UPSTREAM_TIMEOUT_MS, DEFAULT_HTTP_TIMEOUTS, DEFAULT_HTTP_WRITE_TIMEOUT_MS } from '@edge-gateway/adapters-http';
import {
  DEFAULT_COMMAND_TIMEOUT_MS,
  DEFAULT_REPLAY_JOURNAL_MAX_ENTRIES,
  DEFAULT_REPLAY_JOURNAL_WINDOW_MS,
  DEFAULT_REPLAY_WAIT_TIMEOUT_MS,
  DEFAULT_ROUTED_HISTORY_MAXLEN,
  DEFAULT_ROUTED_HISTORY_TTL_MS,
  DEFAULT_ROUTED_RELAY_CLAIM_IDLE_MS,
  REDIS_BACKEND_DEFAULTS,
  ROUTED_MAX_EVENT_BYTES_LIMIT,
  ROUTED_MAX_INTEGER_ARGUMENT,
} from '@edge-gateway/adapters-redis';
import { DEFAULT_IDLE_TIMEOUT_MS } from '@edge-gateway/adapters-ws';
import {
  DEFAULT_CLOSE_BUDGET_MS,
  DEFAULT_CONNECTION_LIMITS,
  DEFAULT_RESUME_INDEX_MAX_BYTES,
  formatRateLimitRules,
  GATEWAY_CORE_DEFAULTS,
  parseFailureLimit,
  parseRateLimitRules,
  type ConnectionLimits,
  type GatewayCoreOptions,
} from '@edge-gateway/core';
import {
  ConfigError,
  InvalidSetting as Invalid,
  mayCarryCredentials,
  parseGoDuration,
  parseHostPort,
  parsers,
  quoteValue,
  readSettings,
  REQUIRED,
  throwProblems,
  type HostPort,
  type LogLevel,
  type Setting as TableRow,
  type SettingPath,
  type SettingsReading as Reading,
} from '@edge-gateway/node-runtime';

// The environment-table engine is @edge-gateway/node-runtime's; these names stay here for the CLI and dev mode.
export { ConfigError, mayCarryCredentials, parseHostPort, quoteValue, REQUIRED, type ConfigProblem, type Described, type HostPort, type SameAs } from '@edge-gateway/node-runtime';

/** Redis Sentinel discovery (`GATEWAY_REDIS_SENTINEL_ADDRS` and friends). */
export interface SentinelConfig {
  readonly addrs: readonly HostPort[];
  readonly masterName: string;
  /** Empty: the Sentinels need no password. */
  readonly password: string;
}

/** A listener's certificate chain and private key files (PEM), re-read when they change. */
export interface TlsFiles {
  readonly certPath: string;
  readonly keyPath: string;
  /** The variables they came from, for messages. */
  readonly certVariable: string;
  readonly keyVariable: string;
}

/** Replicated replay reservations (SPEC §5.2): `GATEWAY_REDIS_REPLAY_*`. */
export interface ReplayDurabilityConfig {
  /** Default 1 where the topology has replicas (Sentinel, replica addresses, Cluster), 0 on a lone master. */
  readonly minReplicas: number;
  /** Whether `GATEWAY_REDIS_REPLAY_MIN_REPLICAS` was set (else `minReplicas` is the topology's default), for messages. */
  readonly minReplicasSet: boolean;
  readonly waitTimeoutMs: number;
  /** Confirmed reservations kept to answer replays locally and re-assert after a master change (0: off). */
  readonly reassertWindowMs: number;
  readonly reassertMaxEntries: number;
}

export const REPLAY_MIN_REPLICAS = 'GATEWAY_REDIS_REPLAY_MIN_REPLICAS';
export const REPLAY_WAIT_TIMEOUT = 'GATEWAY_REDIS_REPLAY_WAIT_TIMEOUT';

export type { LogLevel };
/** How client events reach the processes holding their streams (SPEC §9). */
export type PushFanout = 'stream' | 'routed';
/** Where the rate limits are counted (`GATEWAY_RATE_LIMIT_STORE`). */
export type RateLimitStore = 'local' | 'redis';

/** The `createGatewayCore` options the binary sets, under their own names (`GatewayConfig.core`). */
export type GatewayCoreSettings = Required<Omit<GatewayCoreOptions, 'asyncCrypto'>>;

/**
 * The validated configuration of SPEC §7 (durations in milliseconds). Which variable sets which
 * field, and its default, is the table {@link SETTINGS}.
 */
export interface GatewayConfig {
  readonly redis: {
    /** Undefined with Sentinel (the master is discovered) or a cluster. */
    readonly master: HostPort | undefined;
    /** Seed nodes of a Redis Cluster; empty without. */
    readonly clusterNodes: readonly HostPort[];
    readonly password: string;
    /** Fixed replicas (without Sentinel) for the bulk reads. */
    readonly replicas: readonly HostPort[];
    /** Discovery through Sentinel; undefined without. */
    readonly sentinel: SentinelConfig | undefined;
    readonly sessionReads: 'master' | 'replica';
    /** `replica` offloads the master, but an event lost with it before its replica got it is never seen (SPEC §5.6). */
    readonly clientEventsReads: 'master' | 'replica';
    readonly db: number;
    readonly keyPrefix: string;
    readonly pingTimeoutMs: number;
    readonly commandTimeoutMs: number;
    readonly replay: ReplayDurabilityConfig;
  };
  /** Passed to `createGatewayCore` as they are. */
  readonly core: GatewayCoreSettings;
  readonly sessionEventsStream: string;
  readonly clientEventsStream: string;
  readonly signerKeyPath: string;
  readonly publicHttpAddr: string;
  readonly grpcAddr: string;
  /** Empty: the admin listener is disabled. */
  readonly adminHttpAddr: string;
  /** Empty (default): the WebSocket transport is off. */
  readonly websocketAddr: string;
  /** Browser `Origin`s accepted by the WebSocket transport (`*`: any); empty: none. */
  readonly websocketAllowedOrigins: readonly string[];
  readonly websocketIdleTimeoutMs: number;
  readonly shutdownTimeoutMs: number;
  /** A gRPC connection older than `ageMs` gets a GOAWAY, then `graceMs`; `ageMs` 0: unlimited (and `graceMs` 0). */
  readonly grpcMaxConnection: { readonly ageMs: number; readonly graceMs: number };
  /** Undefined: 80 % of the open-file soft limit, read at startup (`readOpenFileLimit`, @edge-gateway/node-runtime). */
  readonly maxConnections: number | undefined;
  /** Both HTTP listeners and the WebSocket listener (`writeTimeoutMs`: the HTTP listeners). */
  readonly http: { readonly headersTimeoutMs: number; readonly requestTimeoutMs: number; readonly keepAliveTimeoutMs: number; readonly writeTimeoutMs: number };
  /** Memory of the per-user index of consumed client-events entries (stream fan-out); 0: off. */
  readonly pushResumeIndexMaxBytes: number;
  readonly pushFanout: PushFanout;
  /** History entries kept per user when the gateway publishes (relay, CLI). */
  readonly pushRoutedHistoryMaxLen: number;
  readonly pushRoutedHistoryTtlMs: number;
  /** Move entries of the client-events stream into the routed path. */
  readonly pushRoutedRelay: boolean;
  readonly pushRoutedRelayClaimIdleMs: number;
  readonly authUpstreamUrl: string;
  readonly authUpstreamTimeoutMs: number;
  /** Raw `GATEWAY_DOWNSTREAM_ROUTES`; parsed by the gRPC adapter. */
  readonly downstreamRoutes: string;
  /** PEM roots for `tls://` routes; empty: Node's root certificates. */
  readonly downstreamTlsCaPath: string;
  /** Undefined: plaintext (h2c). */
  readonly grpcTls: TlsFiles | undefined;
  /** Undefined: plain HTTP. */
  readonly publicHttpTls: TlsFiles | undefined;
  /** Undefined: `ws://` (plain) on `GATEWAY_WEBSOCKET_ADDR`; set: `wss://`. */
  readonly websocketTls: TlsFiles | undefined;
  readonly rateLimitStore: RateLimitStore;
  /** What one gRPC, WebSocket or HTTP connection may cost (SPEC §2.3). */
  readonly connectionLimits: ConnectionLimits;
  readonly logLevel: LogLevel;
}

/** Variables that are no longer accepted: setting them at all fails startup. */
export const DEPRECATED_VARIABLES: Readonly<Record<string, string>> = {
  GATEWAY_REDIS_TLS_ENABLED: 'Redis TLS is disabled by policy',
  GATEWAY_REDIS_USERNAME: 'Redis authentication is password-only',
};

/** Every dotted path into {@link GatewayConfig}: a row's target that is not one does not compile. */
export type ConfigPath = SettingPath<GatewayConfig>;
/** One variable of SPEC §7: one row of that table and of the README's; `core.<name>` is the `createGatewayCore` option `<name>`. */
export type Setting = TableRow<GatewayConfig>;

const { text, oneOf, bool, integer, duration, address, hostPortList, foreign } = parsers;
/** Shortest `GATEWAY_GRPC_MAX_CONNECTION_AGE`: a shorter one would make clients reconnect all the time. */
export const MIN_GRPC_MAX_CONNECTION_AGE_MS = 1000;
/** Longest age or grace: Node's timers (which grpc-js uses) fire at once beyond 2^31-1 ms (24.8 days). */
export const MAX_GRPC_CONNECTION_TIMER_MS = 480 * 3_600_000;
const AT_MOST_480H: [number, string] = [MAX_GRPC_CONNECTION_TIMER_MS, 'must be at most 480h'];
const HOUR = 3_600_000;
const WITHHELD_ROUTES = 'is not a list of prefix=host:port (the value is not shown: it looks like a URL or holds user:password@)';

/**
 * SPEC §7 as a table: variable → where it goes → default → how it is read. Problems are
 * reported in this order. What depends on several variables is {@link crossChecks}.
 */
export const SETTINGS: readonly Setting[] = [
  // Redis topology (SPEC §5.6, §9): exactly one of a master (with optional replicas), Sentinels or a Cluster.
  { env: 'GATEWAY_REDIS_MASTER_ADDR', to: 'redis.master', default: { doc: 'required without Sentinel' }, parse: (v, env) => parseHostPort(env, v, false) },
  { env: 'GATEWAY_REDIS_PASSWORD', to: 'redis.password', default: REQUIRED, parse: text },
  { env: 'GATEWAY_REDIS_REPLICA_ADDRS', to: 'redis.replicas', default: [], parse: hostPortList },
  { env: 'GATEWAY_REDIS_SENTINEL_ADDRS', to: 'redis.sentinel.addrs', default: [], parse: hostPortList },
  { env: 'GATEWAY_REDIS_SENTINEL_MASTER_NAME', to: 'redis.sentinel.masterName', default: { doc: '—' }, parse: text },
  { env: 'GATEWAY_REDIS_SENTINEL_PASSWORD', to: 'redis.sentinel.password', default: '', parse: text },
  { env: 'GATEWAY_REDIS_CLUSTER_NODES', to: 'redis.clusterNodes', default: [], parse: hostPortList },
  { env: REPLAY_MIN_REPLICAS, to: 'redis.replay.minReplicas', default: { doc: '`0` on a lone master' }, parse: integer(0) },
  { env: REPLAY_WAIT_TIMEOUT, to: 'redis.replay.waitTimeoutMs', default: DEFAULT_REPLAY_WAIT_TIMEOUT_MS, parse: duration({ min: [1, 'must be at least 1ms'] }) },
  { env: 'GATEWAY_REDIS_REPLAY_REASSERT_WINDOW', to: 'redis.replay.reassertWindowMs', default: DEFAULT_REPLAY_JOURNAL_WINDOW_MS, parse: duration() },
  { env: 'GATEWAY_REDIS_REPLAY_REASSERT_MAX_ENTRIES', to: 'redis.replay.reassertMaxEntries', default: DEFAULT_REPLAY_JOURNAL_MAX_ENTRIES, parse: integer(0) },
  { env: 'GATEWAY_REDIS_SESSION_READS', to: 'redis.sessionReads', default: 'master', parse: oneOf('master', 'replica') },
  { env: 'GATEWAY_REDIS_CLIENT_EVENTS_READS', to: 'redis.clientEventsReads', default: 'master', parse: oneOf('master', 'replica') },
  { env: 'GATEWAY_REDIS_DB', to: 'redis.db', default: 0, parse: integer(0) },
  { env: 'GATEWAY_REDIS_KEY_PREFIX', to: 'redis.keyPrefix', default: REDIS_BACKEND_DEFAULTS.keyPrefix, parse: text, emptyIsValue: true },
  { env: 'GATEWAY_REDIS_PING_TIMEOUT', to: 'redis.pingTimeoutMs', default: REDIS_BACKEND_DEFAULTS.pingTimeoutMs, parse: duration() },
  { env: 'GATEWAY_REDIS_COMMAND_TIMEOUT', to: 'redis.commandTimeoutMs', default: DEFAULT_COMMAND_TIMEOUT_MS, parse: duration() },
  { env: 'GATEWAY_SESSION_EVENTS_REDIS_STREAM', to: 'sessionEventsStream', default: REDIS_BACKEND_DEFAULTS.sessionEventsStream, parse: text },
  { env: 'GATEWAY_CLIENT_EVENTS_REDIS_STREAM', to: 'clientEventsStream', default: REDIS_BACKEND_DEFAULTS.clientEventsStream, parse: text },
  // Push fan-out (SPEC §9)
  { env: 'GATEWAY_PUSH_FANOUT', to: 'pushFanout', default: 'stream', parse: oneOf('stream', 'routed') },
  { env: 'GATEWAY_PUSH_ROUTED_RELAY', to: 'pushRoutedRelay', default: false, parse: bool },
  { env: 'GATEWAY_PUSH_ROUTED_RELAY_CLAIM_IDLE', to: 'pushRoutedRelayClaimIdleMs', default: DEFAULT_ROUTED_RELAY_CLAIM_IDLE_MS, parse: duration({ min: [1000, 'must be at least 1s'], max: [24 * HOUR, 'must be at most 24h'] }) },
  { env: 'GATEWAY_PUSH_ROUTED_HISTORY_MAXLEN', to: 'pushRoutedHistoryMaxLen', default: DEFAULT_ROUTED_HISTORY_MAXLEN, parse: integer(1, ROUTED_MAX_INTEGER_ARGUMENT) },
  { env: 'GATEWAY_PUSH_ROUTED_HISTORY_TTL', to: 'pushRoutedHistoryTtlMs', default: DEFAULT_ROUTED_HISTORY_TTL_MS, parse: duration({ max: [ROUTED_MAX_INTEGER_ARGUMENT, `must be at most ${ROUTED_MAX_INTEGER_ARGUMENT} ms`] }) },
  // Signer, listeners, TLS
  { env: 'GATEWAY_RESPONSE_SIGNER_PRIVATE_KEY_PEM_PATH', to: 'signerKeyPath', default: REQUIRED, parse: text },
  { env: 'GATEWAY_PUBLIC_HTTP_ADDR', to: 'publicHttpAddr', default: ':8080', parse: address },
  { env: 'GATEWAY_AUTHENTICATED_GRPC_ADDR', to: 'grpcAddr', default: ':9090', parse: address },
  { env: 'GATEWAY_ADMIN_HTTP_ADDR', to: 'adminHttpAddr', default: '', parse: address },
  { env: 'GATEWAY_AUTHENTICATED_GRPC_TLS_CERT_PATH', to: 'grpcTls.certPath', default: '', parse: text },
  { env: 'GATEWAY_AUTHENTICATED_GRPC_TLS_KEY_PATH', to: 'grpcTls.keyPath', default: '', parse: text },
  { env: 'GATEWAY_PUBLIC_HTTP_TLS_CERT_PATH', to: 'publicHttpTls.certPath', default: '', parse: text },
  { env: 'GATEWAY_PUBLIC_HTTP_TLS_KEY_PATH', to: 'publicHttpTls.keyPath', default: '', parse: text },
  { env: 'GATEWAY_WEBSOCKET_TLS_CERT_PATH', to: 'websocketTls.certPath', default: '', parse: text },
  { env: 'GATEWAY_WEBSOCKET_TLS_KEY_PATH', to: 'websocketTls.keyPath', default: '', parse: text },
  { env: 'GATEWAY_DOWNSTREAM_TLS_CA_PATH', to: 'downstreamTlsCaPath', default: '', parse: text },
  { env: 'GATEWAY_WEBSOCKET_ADDR', to: 'websocketAddr', default: '', parse: address },
  { env: 'GATEWAY_WEBSOCKET_IDLE_TIMEOUT', to: 'websocketIdleTimeoutMs', default: DEFAULT_IDLE_TIMEOUT_MS, parse: duration() },
  { env: 'GATEWAY_WEBSOCKET_ALLOWED_ORIGINS', to: 'websocketAllowedOrigins', default: [], parse: (v) => v.split(',').map((part) => parseOrigin(part.trim())) },
  { env: 'GATEWAY_SHUTDOWN_TIMEOUT', to: 'shutdownTimeoutMs', default: DEFAULT_CLOSE_BUDGET_MS, parse: duration() },
  { env: 'GATEWAY_GRPC_MAX_CONNECTION_AGE', to: 'grpcMaxConnection.ageMs', default: 0, parse: parseMaxConnectionAge },
  { env: 'GATEWAY_GRPC_MAX_CONNECTION_AGE_GRACE', to: 'grpcMaxConnection.graceMs', default: DEFAULT_MAX_CONNECTION_AGE_GRACE_MS, parse: duration({ max: AT_MOST_480H }) },
  { env: 'GATEWAY_MAX_CONNECTIONS', to: 'maxConnections', default: { doc: '80 %' }, parse: integer(1) },
  { env: 'GATEWAY_HTTP_HEADERS_TIMEOUT', to: 'http.headersTimeoutMs', default: DEFAULT_HTTP_TIMEOUTS.headersTimeoutMs, parse: duration() },
  { env: 'GATEWAY_HTTP_REQUEST_TIMEOUT', to: 'http.requestTimeoutMs', default: DEFAULT_HTTP_TIMEOUTS.requestTimeoutMs, parse: duration() },
  { env: 'GATEWAY_HTTP_KEEPALIVE_TIMEOUT', to: 'http.keepAliveTimeoutMs', default: DEFAULT_HTTP_TIMEOUTS.keepAliveTimeoutMs, parse: duration() },
  { env: 'GATEWAY_HTTP_WRITE_TIMEOUT', to: 'http.writeTimeoutMs', default: DEFAULT_HTTP_WRITE_TIMEOUT_MS, parse: duration() },
  // The core (createGatewayCore options, under their own names and with the core's defaults)
  { env: 'GATEWAY_REQUEST_FRESHNESS_WINDOW', to: 'core.freshnessWindowMs', default: GATEWAY_CORE_DEFAULTS.freshnessWindowMs, parse: duration() },
  { env: 'GATEWAY_MAX_PAYLOAD_BYTES', to: 'core.maxPayloadBytes', default: GATEWAY_CORE_DEFAULTS.maxPayloadBytes, parse: integer(1) },
  { env: 'GATEWAY_PUSH_STREAM_BUFFER', to: 'core.pushStreamBuffer', default: GATEWAY_CORE_DEFAULTS.pushStreamBuffer, parse: integer(1) },
  { env: 'GATEWAY_PUSH_STREAM_BUFFER_BYTES', to: 'core.pushStreamBufferBytes', default: GATEWAY_CORE_DEFAULTS.pushStreamBufferBytes, parse: integer(1) },
  { env: 'GATEWAY_PUSH_MAX_STREAMS_PER_SESSION', to: 'core.pushMaxStreamsPerSession', default: GATEWAY_CORE_DEFAULTS.pushMaxStreamsPerSession, parse: integer(1) },
  { env: 'GATEWAY_PUSH_MAX_EVENT_BYTES', to: 'core.pushMaxEventBytes', default: GATEWAY_CORE_DEFAULTS.pushMaxEventBytes, parse: integer(0) },
  { env: 'GATEWAY_PUSH_RESUME_MAX_EVENTS', to: 'core.resumeMaxEvents', default: GATEWAY_CORE_DEFAULTS.resumeMaxEvents, parse: integer(0) },
  { env: 'GATEWAY_PUSH_RESUME_MAX_SCAN', to: 'core.resumeMaxScan', default: GATEWAY_CORE_DEFAULTS.resumeMaxScan, parse: integer(1) },
  { env: 'GATEWAY_PUSH_RESUME_MAX_BYTES', to: 'core.resumeMaxBytes', default: { sameAs: 'GATEWAY_PUSH_STREAM_BUFFER_BYTES' }, parse: integer(0) },
  { env: 'GATEWAY_PUSH_RESUME_INDEX_MAX_BYTES', to: 'pushResumeIndexMaxBytes', default: DEFAULT_RESUME_INDEX_MAX_BYTES, parse: integer(0) },
  { env: 'GATEWAY_SESSION_CACHE_TTL', to: 'core.sessionCacheTtlMs', default: GATEWAY_CORE_DEFAULTS.sessionCacheTtlMs, parse: duration() },
  { env: 'GATEWAY_SESSION_CACHE_MAX_ENTRIES', to: 'core.sessionCacheMaxEntries', default: GATEWAY_CORE_DEFAULTS.sessionCacheMaxEntries, parse: integer(1) },
  { env: 'GATEWAY_SESSION_REVOCATIONS_MAX_ENTRIES', to: 'core.revocationsMaxEntries', default: GATEWAY_CORE_DEFAULTS.revocationsMaxEntries, parse: integer(1) },
  { env: 'GATEWAY_COMMAND_CRYPTO_THREADPOOL', to: 'core.commandAsyncCrypto', default: GATEWAY_CORE_DEFAULTS.commandAsyncCrypto, parse: bool },
  { env: 'GATEWAY_DOWNSTREAM_TIMEOUT', to: 'core.downstreamTimeoutMs', default: GATEWAY_CORE_DEFAULTS.downstreamTimeoutMs, parse: duration() },
  { env: 'GATEWAY_RATE_LIMITS', to: 'core.rateLimits', default: GATEWAY_CORE_DEFAULTS.rateLimits, parse: foreign(parseRateLimitRules) },
  { env: 'GATEWAY_RATE_LIMIT_STORE', to: 'rateLimitStore', default: 'local', parse: oneOf('local', 'redis') },
  // Upstreams
  { env: 'GATEWAY_AUTH_UPSTREAM_URL', to: 'authUpstreamUrl', default: '', parse: parseAuthUrl },
  { env: 'GATEWAY_AUTH_UPSTREAM_TIMEOUT', to: 'authUpstreamTimeoutMs', default: DEFAULT_AUTH_UPSTREAM_TIMEOUT_MS, parse: duration() },
  // The route parser quotes the bad pair; withheld when it may carry credentials.
  { env: 'GATEWAY_DOWNSTREAM_ROUTES', to: 'downstreamRoutes', default: '', parse: foreign((v) => (parseDownstreamRoutes(v), v), (e, v) => (mayCarryCredentials(v) ? WITHHELD_ROUTES : e.message)) },
  // Per connection (SPEC §2.3): the failure limit is read first
  { env: 'GATEWAY_CONNECTION_FAILURE_LIMIT', to: 'connectionLimits.failureLimit', default: DEFAULT_CONNECTION_LIMITS.failureLimit, parse: foreign(parseFailureLimit, (e, v) => `"${v}" ${e.message}`) },
  { env: 'GATEWAY_CONNECTION_MAX_BUFFER_BYTES', to: 'connectionLimits.maxBufferBytes', default: DEFAULT_CONNECTION_LIMITS.maxBufferBytes, parse: integer(1) },
  { env: 'GATEWAY_CONNECTION_DRAIN_TIMEOUT', to: 'connectionLimits.drainTimeoutMs', default: DEFAULT_CONNECTION_LIMITS.drainTimeoutMs, parse: duration() },
  { env: 'GATEWAY_LOG_LEVEL', to: 'logLevel', default: 'info', parse: oneOf('error', 'warn', 'info', 'debug') },
];

/** `empty or 0: unlimited`, else a duration of 1s to 480h. */
function parseMaxConnectionAge(value: string): number {
  const ms = parseGoDuration(value);
  if (ms === undefined) throw new Invalid(`"${value}" is not a valid duration (use Go syntax like 500ms, 10s, 1h30m; empty or 0: unlimited)`);
  if (ms > 0 && ms < MIN_GRPC_MAX_CONNECTION_AGE_MS) throw new Invalid('must be at least 1s (or empty/0: unlimited)');
  if (ms > MAX_GRPC_CONNECTION_TIMER_MS) throw new Invalid('must be at most 480h');
  return ms;
}

function parseAuthUrl(value: string): string {
  const url = URL.canParse(value) ? new URL(value) : undefined;
  if (url === undefined) throw new Invalid(`${quoteValue(value)} is not a URL`);
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new Invalid('must be an http:// or https:// URL');
  return value;
}

/** An exact origin (`https://app.example.com`), `null` (sandboxed iframes, file: pages, SPEC §2.2) or `*`. */
function parseOrigin(origin: string): string {
  if (origin === '*' || origin === 'null') return origin;
  const url = URL.canParse(origin) ? new URL(origin) : undefined;
  if (url === undefined || (url.protocol !== 'http:' && url.protocol !== 'https:') || url.origin !== origin) {
    throw new Invalid(`${origin.includes('@') ? 'an origin (not shown: it holds user:password@)' : `"${origin}"`} is not an origin like https://app.example.com (scheme, host, optional port; no path)`);
  }
  return origin;
}

/**
 * What one row cannot say: settings that exclude or bound each other. Each check names the
 * variable to fix; none piles onto a variable whose own value was already refused.
 */
function crossChecks(r: Reading): void {
  checkTopology(r);
  const cluster = r.get<HostPort[]>('GATEWAY_REDIS_CLUSTER_NODES').length > 0;
  const routed = r.get<string>('GATEWAY_PUSH_FANOUT') === 'routed';
  if (routed && !cluster) r.fail('GATEWAY_PUSH_FANOUT', 'routed requires GATEWAY_REDIS_CLUSTER_NODES (a Redis Cluster)');
  if (r.get<boolean>('GATEWAY_PUSH_ROUTED_RELAY') && !routed && !r.failed('GATEWAY_PUSH_FANOUT')) r.fail('GATEWAY_PUSH_ROUTED_RELAY', 'requires GATEWAY_PUSH_FANOUT=routed');
  if (r.get('GATEWAY_SESSION_EVENTS_REDIS_STREAM') === r.get('GATEWAY_CLIENT_EVENTS_REDIS_STREAM')) {
    r.fail('GATEWAY_CLIENT_EVENTS_REDIS_STREAM', 'must differ from GATEWAY_SESSION_EVENTS_REDIS_STREAM');
  }
  const bufferBytes = r.get<number>('GATEWAY_PUSH_STREAM_BUFFER_BYTES');
  if (r.get<number>('GATEWAY_PUSH_RESUME_MAX_BYTES') > bufferBytes && !r.failed('GATEWAY_PUSH_STREAM_BUFFER_BYTES')) {
    r.fail('GATEWAY_PUSH_RESUME_MAX_BYTES', `must not be larger than GATEWAY_PUSH_STREAM_BUFFER_BYTES (${bufferBytes})`);
  }
  // The publish function's limits (SPEC §9.2): the partition's hash tag must be the first of every key.
  if (routed && r.get<number>('GATEWAY_PUSH_MAX_EVENT_BYTES') > ROUTED_MAX_EVENT_BYTES_LIMIT) {
    r.fail('GATEWAY_PUSH_MAX_EVENT_BYTES', `must be at most ${ROUTED_MAX_EVENT_BYTES_LIMIT} with GATEWAY_PUSH_FANOUT=routed (the publish function's limit)`);
  }
  if (routed && r.get<string>('GATEWAY_REDIS_KEY_PREFIX').includes('{')) {
    r.fail('GATEWAY_REDIS_KEY_PREFIX', 'must not contain { with GATEWAY_PUSH_FANOUT=routed (the partition hash tag must be the first of every key)');
  }
  // A live relay refreshes the entries it holds every third of the claim idle, between commands.
  const commandTimeoutMs = r.get<number>('GATEWAY_REDIS_COMMAND_TIMEOUT');
  if (!r.failed('GATEWAY_REDIS_COMMAND_TIMEOUT') && r.get<number>('GATEWAY_PUSH_ROUTED_RELAY_CLAIM_IDLE') <= 2 * commandTimeoutMs) {
    r.fail('GATEWAY_PUSH_ROUTED_RELAY_CLAIM_IDLE', `must be more than twice GATEWAY_REDIS_COMMAND_TIMEOUT (${commandTimeoutMs}ms)`);
  }
  if (!r.failed('GATEWAY_REDIS_COMMAND_TIMEOUT') && r.get<number>(REPLAY_WAIT_TIMEOUT) > commandTimeoutMs) {
    r.fail(REPLAY_WAIT_TIMEOUT, 'must not be longer than GATEWAY_REDIS_COMMAND_TIMEOUT');
  }
  checkReplayTopology(r);
  if (!r.failed('GATEWAY_HTTP_REQUEST_TIMEOUT') && r.get<number>('GATEWAY_HTTP_HEADERS_TIMEOUT') > r.get<number>('GATEWAY_HTTP_REQUEST_TIMEOUT')) {
    r.fail('GATEWAY_HTTP_HEADERS_TIMEOUT', 'must not be longer than GATEWAY_HTTP_REQUEST_TIMEOUT');
  }
  const AGE = 'GATEWAY_GRPC_MAX_CONNECTION_AGE';
  if (r.get(AGE) === 0 && !r.failed(AGE) && r.isSet('GATEWAY_GRPC_MAX_CONNECTION_AGE_GRACE')) {
    r.fail('GATEWAY_GRPC_MAX_CONNECTION_AGE_GRACE', `is set but ${AGE} is not (the grace only follows a maximum age)`);
  }
  for (const prefix of ['GATEWAY_AUTHENTICATED_GRPC_TLS', 'GATEWAY_PUBLIC_HTTP_TLS', 'GATEWAY_WEBSOCKET_TLS']) {
    const [cert, key] = [`${prefix}_CERT_PATH`, `${prefix}_KEY_PATH`];
    if (r.isSet(cert) !== r.isSet(key)) {
      const [missing, set] = r.isSet(cert) ? [key, cert] : [cert, key];
      r.fail(missing, `is required when ${set} is set (set both or neither)`);
    }
  }
  if (r.isSet('GATEWAY_WEBSOCKET_TLS_CERT_PATH') && r.get('GATEWAY_WEBSOCKET_ADDR') === '' && !r.failed('GATEWAY_WEBSOCKET_ADDR')) {
    r.fail('GATEWAY_WEBSOCKET_TLS_CERT_PATH', 'is set but GATEWAY_WEBSOCKET_ADDR is not (the certificate is for the WebSocket listener)');
  }
}

/**
 * Where Redis is (SPEC §5.6): a fixed master (optional fixed replicas), Sentinel discovery, or a
 * Cluster, never two. Stops at the first problem (one topology mistake, one message).
 */
function checkTopology(r: Reading): void {
  if (r.failed('GATEWAY_REDIS_CLUSTER_NODES', 'GATEWAY_REDIS_SENTINEL_ADDRS', 'GATEWAY_REDIS_MASTER_ADDR', 'GATEWAY_REDIS_REPLICA_ADDRS')) return;
  if (r.get<HostPort[]>('GATEWAY_REDIS_CLUSTER_NODES').length > 0) {
    const other = ['GATEWAY_REDIS_MASTER_ADDR', 'GATEWAY_REDIS_SENTINEL_ADDRS', 'GATEWAY_REDIS_REPLICA_ADDRS'].find((name) => r.isSet(name));
    if (other !== undefined) return r.fail('GATEWAY_REDIS_CLUSTER_NODES', `is mutually exclusive with ${other}; set only one Redis topology`);
    if (r.get('GATEWAY_REDIS_DB') !== 0) return r.fail('GATEWAY_REDIS_DB', 'must be 0 with GATEWAY_REDIS_CLUSTER_NODES (a cluster has only database 0)');
    const reads = ['GATEWAY_REDIS_SESSION_READS', 'GATEWAY_REDIS_CLIENT_EVENTS_READS'].find((name) => r.text(name) !== '' && r.text(name) !== 'master');
    if (reads !== undefined) r.fail(reads, 'must be master with GATEWAY_REDIS_CLUSTER_NODES (cluster reads go to the masters)');
    return;
  }
  if (r.get<HostPort[]>('GATEWAY_REDIS_SENTINEL_ADDRS').length === 0) {
    const orphan = ['GATEWAY_REDIS_SENTINEL_MASTER_NAME', 'GATEWAY_REDIS_SENTINEL_PASSWORD'].find((name) => r.isSet(name));
    if (orphan !== undefined) return r.fail(orphan, 'is set but GATEWAY_REDIS_SENTINEL_ADDRS is empty');
    if (!r.isSet('GATEWAY_REDIS_MASTER_ADDR')) r.fail('GATEWAY_REDIS_MASTER_ADDR', 'is required');
    return;
  }
  if (r.isSet('GATEWAY_REDIS_MASTER_ADDR')) {
    return r.fail('GATEWAY_REDIS_MASTER_ADDR', 'GATEWAY_REDIS_MASTER_ADDR and GATEWAY_REDIS_SENTINEL_ADDRS are both set; set only one (with Sentinel the master is discovered)');
  }
  if (r.isSet('GATEWAY_REDIS_REPLICA_ADDRS')) {
    return r.fail('GATEWAY_REDIS_REPLICA_ADDRS', 'GATEWAY_REDIS_REPLICA_ADDRS and GATEWAY_REDIS_SENTINEL_ADDRS are both set; with Sentinel the replicas are discovered');
  }
  const masterName = r.text('GATEWAY_REDIS_SENTINEL_MASTER_NAME');
  if (masterName === '') r.fail('GATEWAY_REDIS_SENTINEL_MASTER_NAME', 'is required');
  else if (/\s/.test(masterName)) r.fail('GATEWAY_REDIS_SENTINEL_MASTER_NAME', 'must not contain whitespace');
}

/**
 * `GATEWAY_REDIS_REPLAY_MIN_REPLICAS`: default 1 with replicas, 0 on a lone master. What the
 * configuration alone can tell is checked here (a lone master has none, fixed replica addresses
 * are all there can be); Sentinel and Cluster at startup ({@link checkReplayReplicas}).
 */
function checkReplayTopology(r: Reading): void {
  const lone = r.get<HostPort[]>('GATEWAY_REDIS_SENTINEL_ADDRS').length === 0 && r.get<HostPort[]>('GATEWAY_REDIS_CLUSTER_NODES').length === 0;
  const replicas = r.get<HostPort[]>('GATEWAY_REDIS_REPLICA_ADDRS').length;
  if (!r.isSet(REPLAY_MIN_REPLICAS)) return void r.values.set(REPLAY_MIN_REPLICAS, lone && replicas === 0 ? 0 : 1);
  const minReplicas = r.get<number>(REPLAY_MIN_REPLICAS);
  if (!lone || r.get('GATEWAY_REDIS_MASTER_ADDR') === undefined) return;
  if (replicas === 0 && minReplicas > 0) {
    r.fail(REPLAY_MIN_REPLICAS, `${minReplicas} asks for more replicas than a lone master has (GATEWAY_REDIS_MASTER_ADDR without GATEWAY_REDIS_REPLICA_ADDRS: none); set 0 or list the replicas in GATEWAY_REDIS_REPLICA_ADDRS`);
  } else if (minReplicas > replicas) {
    r.fail(REPLAY_MIN_REPLICAS, `${minReplicas} asks for more replicas than GATEWAY_REDIS_REPLICA_ADDRS lists (${replicas})`);
  }
}

/**
 * Reads and validates SPEC §7 from the environment. Throws one `ConfigError` that names every
 * missing or invalid variable (not only the first), in the order of {@link SETTINGS}.
 */
export function loadConfig(env: Readonly<Record<string, string | undefined>> = process.env): GatewayConfig {
  const { values, problems, reading: r } = readSettings(SETTINGS, env, (reading) => {
    for (const [name, why] of Object.entries(DEPRECATED_VARIABLES)) {
      if (env[name] !== undefined) reading.fail(name, `is deprecated and no longer accepted (${why}); unset it`);
    }
    crossChecks(reading);
  });
  throwProblems(problems);
  const config = values as Mutable<GatewayConfig>;
  const redis = config.redis as Mutable<GatewayConfig['redis']>;
  if (redis.sentinel?.addrs.length === 0) redis.sentinel = undefined;
  const replay = redis.replay as Mutable<ReplayDurabilityConfig>;
  replay.minReplicasSet = r.isSet(REPLAY_MIN_REPLICAS);
  replay.waitTimeoutMs = Math.round(replay.waitTimeoutMs);
  replay.reassertWindowMs = Math.round(replay.reassertWindowMs);
  if (config.grpcMaxConnection.ageMs === 0) config.grpcMaxConnection = { ageMs: 0, graceMs: 0 };
  config.grpcTls = tlsFiles(config.grpcTls, 'GATEWAY_AUTHENTICATED_GRPC_TLS');
  config.publicHttpTls = tlsFiles(config.publicHttpTls, 'GATEWAY_PUBLIC_HTTP_TLS');
  config.websocketTls = tlsFiles(config.websocketTls, 'GATEWAY_WEBSOCKET_TLS');
  return config;
}

type Mutable<T> = { -readonly [K in keyof T]: T[K] };

function tlsFiles(files: TlsFiles | undefined, prefix: string): TlsFiles | undefined {
  if (files === undefined || (files.certPath === '' && files.keyPath === '')) return undefined;
  return { certPath: files.certPath, keyPath: files.keyPath, certVariable: `${prefix}_CERT_PATH`, keyVariable: `${prefix}_KEY_PATH` };
}

/**
 * Startup check of `GATEWAY_REDIS_REPLAY_MIN_REPLICAS` against a discovered topology (Sentinel:
 * the replicas the Sentinels know, up or down; Cluster: the master with the fewest replicas): a
 * reservation could never count if it asks for more. Throws a `ConfigError` naming the variable.
 */
export function checkReplayReplicas(replay: ReplayDurabilityConfig, found: { readonly replicas: number; readonly where: string }): void {
  if (replay.minReplicas <= found.replicas) return;
  const asked = replay.minReplicasSet ? `${replay.minReplicas}` : `${replay.minReplicas} (the default with replicas)`;
  throw new ConfigError(
    REPLAY_MIN_REPLICAS,
    `${asked} asks for more replicas than ${found.where} has (${found.replicas}); add replicas, or set ${REPLAY_MIN_REPLICAS}=${found.replicas} and accept that a failover may lose reservations (SPEC §5.2)`,
  );
}

/** `host:port` of a configured address. */
export const formatHostPort = (address: HostPort): string => (address.host.includes(':') ? `[${address.host}]:${address.port}` : `${address.host}:${address.port}`);

/** Where Redis is, for logs and messages: the master address, the Sentinels and master name, or the cluster seeds. */
export function describeRedisLocation(config: GatewayConfig): string {
  const { master, sentinel, clusterNodes } = config.redis;
  if (clusterNodes.length > 0) return `cluster via ${clusterNodes.map(formatHostPort).join(',')}`;
  if (sentinel !== undefined) return `sentinel master "${sentinel.masterName}" via ${sentinel.addrs.map(formatHostPort).join(',')}`;
  return master === undefined ? '(none)' : formatHostPort(master);
}

/** The configuration as safe to log: no password. */
export function describeConfig(config: GatewayConfig): Record<string, unknown> {
  return {
    ...(config.redis.clusterNodes.length > 0
      ? { redis_cluster_nodes: config.redis.clusterNodes.map(formatHostPort).join(',') }
      : { redis_master_addr: config.redis.master === undefined ? '' : formatHostPort(config.redis.master) }),
    ...(config.redis.sentinel === undefined
      ? {}
      : { redis_sentinel_addrs: config.redis.sentinel.addrs.map(formatHostPort).join(','), redis_sentinel_master_name: config.redis.sentinel.masterName }),
    redis_session_reads: config.redis.sessionReads,
    redis_client_events_reads: config.redis.clientEventsReads,
    redis_replay_min_replicas: config.redis.replay.minReplicas,
    redis_replay_wait_timeout_ms: config.redis.replay.waitTimeoutMs,
    redis_replay_reassert_window_ms: config.redis.replay.reassertWindowMs,
    push_fanout: config.pushFanout,
    redis_db: config.redis.db,
    redis_key_prefix: config.redis.keyPrefix,
    session_events_stream: config.sessionEventsStream,
    client_events_stream: config.clientEventsStream,
    public_http_addr: config.publicHttpAddr,
    authenticated_grpc_addr: config.grpcAddr,
    admin_http_addr: config.adminHttpAddr,
    websocket_addr: config.websocketAddr,
    websocket_allowed_origins: config.websocketAllowedOrigins,
    downstream_routes: config.downstreamRoutes,
    rate_limits: formatRateLimitRules(config.core.rateLimits),
    rate_limit_store: config.rateLimitStore,
    connection_max_buffer_bytes: config.connectionLimits.maxBufferBytes,
    connection_drain_timeout_ms: config.connectionLimits.drainTimeoutMs,
    connection_failure_limit: config.connectionLimits.failureLimit.text,
    authenticated_grpc_tls: config.grpcTls !== undefined,
    grpc_max_connection_age_ms: config.grpcMaxConnection.ageMs,
    grpc_max_connection_age_grace_ms: config.grpcMaxConnection.graceMs,
    public_http_tls: config.publicHttpTls !== undefined,
    websocket_tls: config.websocketTls !== undefined,
    auth_upstream: config.authUpstreamUrl === '' ? '' : new URL(config.authUpstreamUrl).origin,
  };
}

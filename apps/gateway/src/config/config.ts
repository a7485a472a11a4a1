import { parseDownstreamRoutes } from '@edge-gateway/adapters-grpc';
import { ROUTED_MAX_EVENT_BYTES_LIMIT, ROUTED_MAX_INTEGER_ARGUMENT } from '@edge-gateway/adapters-redis';
import {
  DEFAULT_CONNECTION_FAILURE_LIMIT,
  DEFAULT_CONNECTION_LIMITS,
  DEFAULT_RESUME_INDEX_MAX_BYTES,
  formatRateLimitRules,
  parseFailureLimit,
  parseRateLimitRules,
  RateLimitRuleError,
  type ConnectionLimits,
  type RateLimitRule,
} from '@edge-gateway/core';
import { parseGoDuration } from './duration.js';

/** One invalid or missing variable. */
export { ConfigError, type ConfigProblem } from './config-error.js';
import { ConfigError, type ConfigProblem } from './config-error.js';

export interface HostPort {
  readonly host: string;
  readonly port: number;
}

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

/**
 * `GATEWAY_REDIS_REPLAY_MIN_REPLICAS` and `GATEWAY_REDIS_REPLAY_WAIT_TIMEOUT` (SPEC §5.2): a
 * reservation counts once `WAIT` reports it on `minReplicas` replicas within `waitTimeoutMs`.
 */
export interface ReplayDurabilityConfig {
  /** Default 1 where the topology has replicas (Sentinel, replica addresses, Cluster), 0 on a lone master. */
  readonly minReplicas: number;
  /** Whether `GATEWAY_REDIS_REPLAY_MIN_REPLICAS` was set (else `minReplicas` is the topology's default), for messages. */
  readonly minReplicasSet: boolean;
  readonly waitTimeoutMs: number;
  /** `GATEWAY_REDIS_REPLAY_REASSERT_WINDOW`: confirmed reservations kept to answer replays locally and re-assert after a master change (0: off). */
  readonly reassertWindowMs: number;
  /** `GATEWAY_REDIS_REPLAY_REASSERT_MAX_ENTRIES`: the bound of that journal. */
  readonly reassertMaxEntries: number;
}

export const REPLAY_MIN_REPLICAS = 'GATEWAY_REDIS_REPLAY_MIN_REPLICAS';
export const REPLAY_WAIT_TIMEOUT = 'GATEWAY_REDIS_REPLAY_WAIT_TIMEOUT';

export type LogLevel = 'error' | 'warn' | 'info' | 'debug';

/** How client events reach the processes holding their streams (SPEC §9). */
export type PushFanout = 'stream' | 'routed';

/** Where the rate limits are counted (`GATEWAY_RATE_LIMIT_STORE`). */
export type RateLimitStore = 'local' | 'redis';

/** The validated configuration of SPEC §7 (durations in milliseconds). */
export interface GatewayConfig {
  readonly redis: {
    /** `GATEWAY_REDIS_MASTER_ADDR`; undefined with Sentinel (the master is discovered) or a cluster. */
    readonly master: HostPort | undefined;
    /** `GATEWAY_REDIS_CLUSTER_NODES`: seed nodes of a Redis Cluster; empty without. */
    readonly clusterNodes: readonly HostPort[];
    readonly password: string;
    /** `GATEWAY_REDIS_REPLICA_ADDRS` (without Sentinel): replicas for the bulk reads. */
    readonly replicas: readonly HostPort[];
    /** `GATEWAY_REDIS_SENTINEL_*`: discovery through Sentinel; undefined without. */
    readonly sentinel: SentinelConfig | undefined;
    /** `GATEWAY_REDIS_SESSION_READS`: where session lookups go first. */
    readonly sessionReads: 'master' | 'replica';
    /**
     * `GATEWAY_REDIS_CLIENT_EVENTS_READS`: where the client-events `XREAD` goes (stream mode).
     * `master` (default): an event a master acknowledged is delivered before a failover can lose
     * it; `replica` offloads the master but an event lost with a master before its replica got
     * it is never seen, so never announced (SPEC §5.6).
     */
    readonly clientEventsReads: 'master' | 'replica';
    readonly db: number;
    readonly keyPrefix: string;
    readonly pingTimeoutMs: number;
    readonly commandTimeoutMs: number;
    /** Replicated replay reservations (SPEC §5.2). */
    readonly replay: ReplayDurabilityConfig;
  };
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
  /** `GATEWAY_WEBSOCKET_IDLE_TIMEOUT`: an upgraded connection without a call in flight this long is closed `1000` `idle`. */
  readonly websocketIdleTimeoutMs: number;
  readonly shutdownTimeoutMs: number;
  /**
   * `GATEWAY_GRPC_MAX_CONNECTION_AGE` / `_GRACE`: a gRPC connection older than `ageMs` gets a
   * GOAWAY, calls in progress get `graceMs` to finish, then it is closed. `ageMs` 0: unlimited
   * (and `graceMs` 0).
   */
  readonly grpcMaxConnection: { readonly ageMs: number; readonly graceMs: number };
  /**
   * `GATEWAY_MAX_CONNECTIONS`: open connections of the public listeners together; undefined:
   * 80 % of the open-file soft limit, read at startup (`open-file-limit.ts`).
   */
  readonly maxConnections: number | undefined;
  /**
   * `GATEWAY_HTTP_HEADERS_TIMEOUT` / `_REQUEST_TIMEOUT` / `_KEEPALIVE_TIMEOUT` (both HTTP listeners
   * and the WebSocket listener) and `GATEWAY_HTTP_WRITE_TIMEOUT` (both HTTP listeners).
   */
  readonly http: { readonly headersTimeoutMs: number; readonly requestTimeoutMs: number; readonly keepAliveTimeoutMs: number; readonly writeTimeoutMs: number };
  readonly freshnessWindowMs: number;
  readonly maxPayloadBytes: number;
  readonly pushStreamBuffer: number;
  /** `GATEWAY_PUSH_MAX_EVENT_BYTES`: largest decoded client-event payload. */
  readonly pushMaxEventBytes: number;
  /** `GATEWAY_PUSH_STREAM_BUFFER_BYTES`: payload bytes queued per stream before it overflows. */
  readonly pushStreamBufferBytes: number;
  /** `GATEWAY_PUSH_MAX_STREAMS_PER_SESSION`: one more stream replaces the session's oldest. */
  readonly pushMaxStreamsPerSession: number;
  readonly pushResumeMaxEvents: number;
  readonly pushResumeMaxScan: number;
  /**
   * `GATEWAY_PUSH_RESUME_MAX_BYTES`: payload bytes replayed at most for one resume; default and
   * upper limit `GATEWAY_PUSH_STREAM_BUFFER_BYTES` (a resume never queues more than a live stream may hold).
   */
  readonly pushResumeMaxBytes: number;
  /**
   * `GATEWAY_PUSH_RESUME_INDEX_MAX_BYTES`: memory of the per-user index of consumed client-events
   * entries that answers resumes without scanning other users' entries (stream fan-out); 0: off.
   */
  readonly pushResumeIndexMaxBytes: number;
  /** `GATEWAY_COMMAND_CRYPTO_THREADPOOL`: a command's verify and sign may go to libuv's threadpool when the event loop is saturated. */
  readonly commandCryptoThreadpool: boolean;
  /** `GATEWAY_PUSH_FANOUT`. */
  readonly pushFanout: PushFanout;
  /** `GATEWAY_PUSH_ROUTED_HISTORY_MAXLEN`: history entries kept per user when the gateway publishes (relay, CLI). */
  readonly pushRoutedHistoryMaxLen: number;
  /** `GATEWAY_PUSH_ROUTED_HISTORY_TTL`. */
  readonly pushRoutedHistoryTtlMs: number;
  /** `GATEWAY_PUSH_ROUTED_RELAY`: move entries of the client-events stream into the routed path. */
  readonly pushRoutedRelay: boolean;
  /** `GATEWAY_PUSH_ROUTED_RELAY_CLAIM_IDLE`: relay entries pending this long in another consumer are claimed. */
  readonly pushRoutedRelayClaimIdleMs: number;
  readonly sessionCacheTtlMs: number;
  readonly sessionCacheMaxEntries: number;
  /** `GATEWAY_SESSION_REVOCATIONS_MAX_ENTRIES`: revocations remembered at most (SPEC §5.5). */
  readonly sessionRevocationsMaxEntries: number;
  readonly authUpstreamUrl: string;
  readonly authUpstreamTimeoutMs: number;
  /** Raw `GATEWAY_DOWNSTREAM_ROUTES`; parsed by the gRPC adapter. */
  readonly downstreamRoutes: string;
  /** `GATEWAY_DOWNSTREAM_TLS_CA_PATH`: PEM roots for `tls://` routes; empty: Node's root certificates. */
  readonly downstreamTlsCaPath: string;
  /** `GATEWAY_AUTHENTICATED_GRPC_TLS_CERT_PATH` / `_KEY_PATH`; undefined: plaintext (h2c). */
  readonly grpcTls: TlsFiles | undefined;
  /** `GATEWAY_PUBLIC_HTTP_TLS_CERT_PATH` / `_KEY_PATH`; undefined: plain HTTP. */
  readonly publicHttpTls: TlsFiles | undefined;
  readonly downstreamTimeoutMs: number;
  /** `GATEWAY_RATE_LIMITS`, parsed, in the order written; empty: no limits. */
  readonly rateLimits: readonly RateLimitRule[];
  /** `GATEWAY_RATE_LIMIT_STORE`: `local` (per process) or `redis` (across the fleet, with the replay reservation). */
  readonly rateLimitStore: RateLimitStore;
  /**
   * `GATEWAY_CONNECTION_MAX_BUFFER_BYTES`, `_DRAIN_TIMEOUT` and `_FAILURE_LIMIT`: what one gRPC or
   * WebSocket connection may cost (SPEC §2.2).
   */
  readonly connectionLimits: ConnectionLimits;
  readonly logLevel: LogLevel;
}

/** Variables that are no longer accepted: setting them at all fails startup. */
export const DEPRECATED_VARIABLES: Readonly<Record<string, string>> = {
  GATEWAY_REDIS_TLS_ENABLED: 'Redis TLS is disabled by policy',
  GATEWAY_REDIS_USERNAME: 'Redis authentication is password-only',
};

type Env = Readonly<Record<string, string | undefined>>;

/**
 * True when a value may carry credentials: URL user info (`user:password@`) or a whole URL.
 * Such a value is never echoed in an error (the `startup failed` line is read by many).
 */
export function mayCarryCredentials(value: string): boolean {
  return value.includes('@') || value.includes('://');
}

/** `"value"` for an error message, or a note that it is withheld (see {@link mayCarryCredentials}). */
export function quoteValue(value: string): string {
  return mayCarryCredentials(value) ? 'the value (not shown: it looks like a URL or holds user:password@)' : `"${value}"`;
}

/** Parses `host:port`, `[v6]:port`, or (when `allowEmptyHost`) `:port`. */
export function parseHostPort(variable: string, value: string, allowEmptyHost: boolean): HostPort {
  const match = /^(?:\[([^\]]+)\]|([^:[\]]*)):(\d{1,5})$/.exec(value);
  if (match === null) throw new ConfigError(variable, `${quoteValue(value)} is not host:port`);
  const host = match[1] ?? match[2] ?? '';
  const port = Number(match[3]);
  if (port > 65535) throw new ConfigError(variable, `port ${port} is out of range`);
  if (host === '' && !allowEmptyHost) throw new ConfigError(variable, `${quoteValue(value)} has no host`);
  return { host, port };
}

class Reader {
  /** Problems found so far; reading goes on after one so every problem is reported. */
  readonly problems: ConfigProblem[] = [];

  constructor(private readonly env: Env) {}

  /** Records a problem (the first per variable is kept). */
  fail(variable: string, problem: string): void {
    if (!this.problems.some((p) => p.variable === variable)) this.problems.push({ variable, problem });
  }

  /** Runs a check that throws `ConfigError`; on failure records it and returns `fallback`. */
  check<T>(fallback: T, read: () => T): T {
    try {
      return read();
    } catch (error) {
      if (!(error instanceof ConfigError)) throw error;
      for (const p of error.problems) this.fail(p.variable, p.problem);
      return fallback;
    }
  }

  /** Throws one `ConfigError` listing every recorded problem. */
  throwIfFailed(): void {
    const [first, ...more] = this.problems;
    if (first !== undefined) throw new ConfigError(first.variable, first.problem, more);
  }

  raw(name: string): string | undefined {
    const value = this.env[name];
    return value === undefined ? undefined : value.trim();
  }

  string(name: string, fallback: string): string {
    const value = this.raw(name);
    return value === undefined || value === '' ? fallback : value;
  }

  /** Records `is required` and returns `''` when unset or empty. */
  required(name: string): string {
    const value = this.raw(name);
    if (value === undefined || value === '') this.fail(name, 'is required');
    return value ?? '';
  }

  duration(name: string, fallback: string): number {
    const text = this.string(name, fallback);
    const ms = parseGoDuration(text);
    if (ms === undefined) this.fail(name, `"${text}" is not a valid duration (use Go syntax like 500ms, 10s, 1h30m)`);
    else if (ms <= 0) this.fail(name, 'must be greater than zero');
    return ms ?? 0;
  }

  integer(name: string, fallback: number, min: number): number {
    const text = this.raw(name);
    if (text === undefined || text === '') return fallback;
    if (!/^\d+$/.test(text)) {
      this.fail(name, `"${text}" is not an integer`);
      return fallback;
    }
    const value = Number(text);
    if (!Number.isSafeInteger(value) || value < min) this.fail(name, `must be an integer >= ${min}`);
    return value;
  }

  /** `<prefix>_CERT_PATH` and `<prefix>_KEY_PATH`: both or neither. */
  tlsFiles(prefix: string): TlsFiles | undefined {
    const certVariable = `${prefix}_CERT_PATH`;
    const keyVariable = `${prefix}_KEY_PATH`;
    const certPath = this.string(certVariable, '');
    const keyPath = this.string(keyVariable, '');
    if (certPath === '' && keyPath === '') return undefined;
    if (certPath === '') this.fail(certVariable, `is required when ${keyVariable} is set (set both or neither)`);
    if (keyPath === '') this.fail(keyVariable, `is required when ${certVariable} is set (set both or neither)`);
    return { certPath, keyPath, certVariable, keyVariable };
  }

  address(name: string, fallback: string): string {
    const value = this.string(name, fallback);
    this.check(undefined, () => parseHostPort(name, value, true));
    return value;
  }
}

function hostPortList(r: Reader, name: string): HostPort[] {
  const text = r.string(name, '');
  return text === '' ? [] : text.split(',').map((part) => parseHostPort(name, part.trim(), false));
}

/**
 * Where Redis is (SPEC §5.6): a fixed master (`GATEWAY_REDIS_MASTER_ADDR`, optional fixed
 * replicas) or Sentinel discovery (`GATEWAY_REDIS_SENTINEL_ADDRS` + `_MASTER_NAME`), never both.
 */
function readRedisTopology(r: Reader): {
  master: HostPort | undefined;
  replicas: HostPort[];
  sentinel: SentinelConfig | undefined;
  clusterNodes: HostPort[];
} {
  const clusterNodes = hostPortList(r, 'GATEWAY_REDIS_CLUSTER_NODES');
  if (clusterNodes.length > 0) {
    for (const other of ['GATEWAY_REDIS_MASTER_ADDR', 'GATEWAY_REDIS_SENTINEL_ADDRS', 'GATEWAY_REDIS_REPLICA_ADDRS']) {
      if (r.string(other, '') !== '') throw new ConfigError('GATEWAY_REDIS_CLUSTER_NODES', `is mutually exclusive with ${other}; set only one Redis topology`);
    }
    if (r.integer('GATEWAY_REDIS_DB', 0, 0) !== 0) throw new ConfigError('GATEWAY_REDIS_DB', 'must be 0 with GATEWAY_REDIS_CLUSTER_NODES (a cluster has only database 0)');
    for (const reads of ['GATEWAY_REDIS_SESSION_READS', 'GATEWAY_REDIS_CLIENT_EVENTS_READS']) {
      if (r.string(reads, 'master') !== 'master') throw new ConfigError(reads, 'must be master with GATEWAY_REDIS_CLUSTER_NODES (cluster reads go to the masters)');
    }
    return { master: undefined, replicas: [], sentinel: undefined, clusterNodes };
  }
  const sentinelAddrs = hostPortList(r, 'GATEWAY_REDIS_SENTINEL_ADDRS');
  const masterText = r.string('GATEWAY_REDIS_MASTER_ADDR', '');
  const replicas = hostPortList(r, 'GATEWAY_REDIS_REPLICA_ADDRS');
  if (sentinelAddrs.length === 0) {
    for (const name of ['GATEWAY_REDIS_SENTINEL_MASTER_NAME', 'GATEWAY_REDIS_SENTINEL_PASSWORD']) {
      if (r.string(name, '') !== '') throw new ConfigError(name, 'is set but GATEWAY_REDIS_SENTINEL_ADDRS is empty');
    }
    return { master: parseHostPort('GATEWAY_REDIS_MASTER_ADDR', r.required('GATEWAY_REDIS_MASTER_ADDR'), false), replicas, sentinel: undefined, clusterNodes };
  }
  if (masterText !== '') {
    throw new ConfigError(
      'GATEWAY_REDIS_MASTER_ADDR',
      'GATEWAY_REDIS_MASTER_ADDR and GATEWAY_REDIS_SENTINEL_ADDRS are both set; set only one (with Sentinel the master is discovered)',
    );
  }
  if (replicas.length > 0) {
    throw new ConfigError(
      'GATEWAY_REDIS_REPLICA_ADDRS',
      'GATEWAY_REDIS_REPLICA_ADDRS and GATEWAY_REDIS_SENTINEL_ADDRS are both set; with Sentinel the replicas are discovered',
    );
  }
  const masterName = r.required('GATEWAY_REDIS_SENTINEL_MASTER_NAME');
  if (/\s/.test(masterName)) throw new ConfigError('GATEWAY_REDIS_SENTINEL_MASTER_NAME', 'must not contain whitespace');
  return { master: undefined, replicas: [], sentinel: { addrs: sentinelAddrs, masterName, password: r.string('GATEWAY_REDIS_SENTINEL_PASSWORD', '') }, clusterNodes };
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

/**
 * Reads and validates SPEC §7 from the environment. Throws one `ConfigError` that names every
 * missing or invalid variable (not only the first).
 */
export function loadConfig(env: Env = process.env): GatewayConfig {
  const r = new Reader(env);
  for (const [name, why] of Object.entries(DEPRECATED_VARIABLES)) {
    if (env[name] !== undefined) r.fail(name, `is deprecated and no longer accepted (${why}); unset it`);
  }
  const { master, replicas, sentinel, clusterNodes } = r.check({ master: undefined, replicas: [], sentinel: undefined, clusterNodes: [] }, () => readRedisTopology(r));
  const pushFanout = r.string('GATEWAY_PUSH_FANOUT', 'stream');
  if (pushFanout !== 'stream' && pushFanout !== 'routed') r.fail('GATEWAY_PUSH_FANOUT', `"${pushFanout}" is not one of stream, routed`);
  else if (pushFanout === 'routed' && clusterNodes.length === 0) r.fail('GATEWAY_PUSH_FANOUT', 'routed requires GATEWAY_REDIS_CLUSTER_NODES (a Redis Cluster)');
  const commandCryptoText = r.string('GATEWAY_COMMAND_CRYPTO_THREADPOOL', 'false');
  if (commandCryptoText !== 'true' && commandCryptoText !== 'false') r.fail('GATEWAY_COMMAND_CRYPTO_THREADPOOL', `"${commandCryptoText}" is not true or false`);
  const relayText = r.string('GATEWAY_PUSH_ROUTED_RELAY', 'false');
  if (relayText !== 'true' && relayText !== 'false') r.fail('GATEWAY_PUSH_ROUTED_RELAY', `"${relayText}" is not true or false`);
  else if (relayText === 'true' && pushFanout !== 'routed') r.fail('GATEWAY_PUSH_ROUTED_RELAY', 'requires GATEWAY_PUSH_FANOUT=routed');
  const password = r.required('GATEWAY_REDIS_PASSWORD');
  const sessionReads = r.string('GATEWAY_REDIS_SESSION_READS', 'master');
  if (sessionReads !== 'master' && sessionReads !== 'replica') {
    r.fail('GATEWAY_REDIS_SESSION_READS', `"${sessionReads}" is not one of master, replica`);
  }
  const clientEventsReads = r.string('GATEWAY_REDIS_CLIENT_EVENTS_READS', 'master');
  if (clientEventsReads !== 'master' && clientEventsReads !== 'replica') {
    r.fail('GATEWAY_REDIS_CLIENT_EVENTS_READS', `"${clientEventsReads}" is not one of master, replica`);
  }
  const adminHttpAddr = r.string('GATEWAY_ADMIN_HTTP_ADDR', '');
  if (adminHttpAddr !== '') r.check(undefined, () => parseHostPort('GATEWAY_ADMIN_HTTP_ADDR', adminHttpAddr, true));
  const websocketAddr = r.string('GATEWAY_WEBSOCKET_ADDR', '');
  if (websocketAddr !== '') r.check(undefined, () => parseHostPort('GATEWAY_WEBSOCKET_ADDR', websocketAddr, true));
  const websocketAllowedOrigins = r.check([], () => parseOrigins(r.string('GATEWAY_WEBSOCKET_ALLOWED_ORIGINS', '')));
  const authUpstreamUrl = r.string('GATEWAY_AUTH_UPSTREAM_URL', '');
  if (authUpstreamUrl !== '') {
    const url = URL.canParse(authUpstreamUrl) ? new URL(authUpstreamUrl) : undefined;
    if (url === undefined) r.fail('GATEWAY_AUTH_UPSTREAM_URL', `${quoteValue(authUpstreamUrl)} is not a URL`);
    else if (url.protocol !== 'http:' && url.protocol !== 'https:') r.fail('GATEWAY_AUTH_UPSTREAM_URL', 'must be an http:// or https:// URL');
  }
  const logLevel = r.string('GATEWAY_LOG_LEVEL', 'info');
  if (!['error', 'warn', 'info', 'debug'].includes(logLevel)) {
    r.fail('GATEWAY_LOG_LEVEL', `"${logLevel}" is not one of error, warn, info, debug`);
  }
  const sessionEventsStream = r.string('GATEWAY_SESSION_EVENTS_REDIS_STREAM', 'gateway:session-events');
  const clientEventsStream = r.string('GATEWAY_CLIENT_EVENTS_REDIS_STREAM', 'gateway:client-events');
  if (sessionEventsStream === clientEventsStream) {
    r.fail('GATEWAY_CLIENT_EVENTS_REDIS_STREAM', 'must differ from GATEWAY_SESSION_EVENTS_REDIS_STREAM');
  }
  const pushStreamBufferBytes = r.integer('GATEWAY_PUSH_STREAM_BUFFER_BYTES', 4_194_304, 1);
  const pushResumeMaxBytes = r.integer('GATEWAY_PUSH_RESUME_MAX_BYTES', pushStreamBufferBytes, 0);
  if (pushResumeMaxBytes > pushStreamBufferBytes) {
    r.fail('GATEWAY_PUSH_RESUME_MAX_BYTES', `must not be larger than GATEWAY_PUSH_STREAM_BUFFER_BYTES (${pushStreamBufferBytes})`);
  }
  const routedLimits = readRoutedLimits(r, pushFanout === 'routed');
  const downstreamRoutes = r.string('GATEWAY_DOWNSTREAM_ROUTES', '');
  try {
    parseDownstreamRoutes(downstreamRoutes);
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    // The route parser quotes the bad pair; withhold it when it may carry credentials.
    r.fail('GATEWAY_DOWNSTREAM_ROUTES', mayCarryCredentials(downstreamRoutes) ? 'is not a list of prefix=host:port (the value is not shown: it looks like a URL or holds user:password@)' : message);
  }
  const rateLimits = r.check<RateLimitRule[]>([], () => {
    try {
      return parseRateLimitRules(r.string('GATEWAY_RATE_LIMITS', ''));
    } catch (error) {
      if (error instanceof RateLimitRuleError) throw new ConfigError('GATEWAY_RATE_LIMITS', error.message);
      throw error;
    }
  });
  const rateLimitStore = r.string('GATEWAY_RATE_LIMIT_STORE', 'local');
  if (rateLimitStore !== 'local' && rateLimitStore !== 'redis') r.fail('GATEWAY_RATE_LIMIT_STORE', `"${rateLimitStore}" is not one of local, redis`);
  const commandTimeoutMs = r.duration('GATEWAY_REDIS_COMMAND_TIMEOUT', '2s');
  const replay = readReplayDurability(r, { master, replicas, sentinel, clusterNodes }, commandTimeoutMs);
  const config: GatewayConfig = {
    redis: {
      master,
      clusterNodes,
      password,
      replicas,
      sentinel,
      sessionReads: sessionReads === 'replica' ? 'replica' : 'master',
      clientEventsReads: clientEventsReads === 'replica' ? 'replica' : 'master',
      db: r.integer('GATEWAY_REDIS_DB', 0, 0),
      keyPrefix: r.raw('GATEWAY_REDIS_KEY_PREFIX') ?? 'gateway:',
      pingTimeoutMs: r.duration('GATEWAY_REDIS_PING_TIMEOUT', '5s'),
      commandTimeoutMs,
      replay,
    },
    sessionEventsStream,
    clientEventsStream,
    signerKeyPath: r.required('GATEWAY_RESPONSE_SIGNER_PRIVATE_KEY_PEM_PATH'),
    publicHttpAddr: r.address('GATEWAY_PUBLIC_HTTP_ADDR', ':8080'),
    grpcAddr: r.address('GATEWAY_AUTHENTICATED_GRPC_ADDR', ':9090'),
    adminHttpAddr,
    websocketAddr,
    websocketAllowedOrigins,
    websocketIdleTimeoutMs: r.duration('GATEWAY_WEBSOCKET_IDLE_TIMEOUT', '30s'),
    shutdownTimeoutMs: r.duration('GATEWAY_SHUTDOWN_TIMEOUT', '15s'),
    grpcMaxConnection: readGrpcMaxConnection(r),
    maxConnections: r.integer('GATEWAY_MAX_CONNECTIONS', 0, 1) || undefined,
    http: readHttpTimeouts(r),
    freshnessWindowMs: r.duration('GATEWAY_REQUEST_FRESHNESS_WINDOW', '5m'),
    maxPayloadBytes: r.integer('GATEWAY_MAX_PAYLOAD_BYTES', 1_048_576, 1),
    pushStreamBuffer: r.integer('GATEWAY_PUSH_STREAM_BUFFER', 256, 1),
    pushMaxEventBytes: routedLimits.pushMaxEventBytes,
    pushStreamBufferBytes,
    pushMaxStreamsPerSession: r.integer('GATEWAY_PUSH_MAX_STREAMS_PER_SESSION', 4, 1),
    pushResumeMaxEvents: r.integer('GATEWAY_PUSH_RESUME_MAX_EVENTS', 1000, 0),
    pushResumeMaxScan: r.integer('GATEWAY_PUSH_RESUME_MAX_SCAN', 10_000, 1),
    pushResumeMaxBytes,
    pushResumeIndexMaxBytes: r.integer('GATEWAY_PUSH_RESUME_INDEX_MAX_BYTES', DEFAULT_RESUME_INDEX_MAX_BYTES, 0),
    commandCryptoThreadpool: commandCryptoText === 'true',
    pushFanout: pushFanout as PushFanout,
    pushRoutedHistoryMaxLen: routedLimits.historyMaxLen,
    pushRoutedHistoryTtlMs: routedLimits.historyTtlMs,
    pushRoutedRelay: relayText === 'true',
    pushRoutedRelayClaimIdleMs: readRelayClaimIdle(r),
    sessionCacheTtlMs: r.duration('GATEWAY_SESSION_CACHE_TTL', '30s'),
    sessionCacheMaxEntries: r.integer('GATEWAY_SESSION_CACHE_MAX_ENTRIES', 100_000, 1),
    sessionRevocationsMaxEntries: r.integer('GATEWAY_SESSION_REVOCATIONS_MAX_ENTRIES', 100_000, 1),
    authUpstreamUrl,
    authUpstreamTimeoutMs: r.duration('GATEWAY_AUTH_UPSTREAM_TIMEOUT', '5s'),
    downstreamRoutes,
    downstreamTlsCaPath: r.string('GATEWAY_DOWNSTREAM_TLS_CA_PATH', ''),
    grpcTls: r.tlsFiles('GATEWAY_AUTHENTICATED_GRPC_TLS'),
    publicHttpTls: r.tlsFiles('GATEWAY_PUBLIC_HTTP_TLS'),
    downstreamTimeoutMs: r.duration('GATEWAY_DOWNSTREAM_TIMEOUT', '10s'),
    rateLimits,
    rateLimitStore: rateLimitStore as RateLimitStore,
    connectionLimits: readConnectionLimits(r),
    logLevel: logLevel as LogLevel,
  };
  r.throwIfFailed();
  return config;
}

/**
 * `GATEWAY_PUSH_MAX_EVENT_BYTES` and the routed history bounds, within what the publish function
 * accepts (SPEC §9.2): with routed fan-out the event bound is at most 16 MiB and the key prefix
 * holds no `{` (the partition's hash tag must be the first of every key).
 */
function readRoutedLimits(r: Reader, routed: boolean): { pushMaxEventBytes: number; historyMaxLen: number; historyTtlMs: number } {
  const pushMaxEventBytes = r.integer('GATEWAY_PUSH_MAX_EVENT_BYTES', 1_048_576, 0);
  if (routed && pushMaxEventBytes > ROUTED_MAX_EVENT_BYTES_LIMIT) {
    r.fail('GATEWAY_PUSH_MAX_EVENT_BYTES', `must be at most ${ROUTED_MAX_EVENT_BYTES_LIMIT} with GATEWAY_PUSH_FANOUT=routed (the publish function's limit)`);
  }
  if (routed && (r.raw('GATEWAY_REDIS_KEY_PREFIX') ?? '').includes('{')) {
    r.fail('GATEWAY_REDIS_KEY_PREFIX', 'must not contain { with GATEWAY_PUSH_FANOUT=routed (the partition hash tag must be the first of every key)');
  }
  const historyMaxLen = r.integer('GATEWAY_PUSH_ROUTED_HISTORY_MAXLEN', 1000, 1);
  if (historyMaxLen > ROUTED_MAX_INTEGER_ARGUMENT) r.fail('GATEWAY_PUSH_ROUTED_HISTORY_MAXLEN', `must be at most ${ROUTED_MAX_INTEGER_ARGUMENT}`);
  const historyTtlMs = r.duration('GATEWAY_PUSH_ROUTED_HISTORY_TTL', '24h');
  if (historyTtlMs > ROUTED_MAX_INTEGER_ARGUMENT) r.fail('GATEWAY_PUSH_ROUTED_HISTORY_TTL', `must be at most ${ROUTED_MAX_INTEGER_ARGUMENT} ms`);
  return { pushMaxEventBytes, historyMaxLen, historyTtlMs };
}

/**
 * `GATEWAY_PUSH_ROUTED_RELAY_CLAIM_IDLE` (default 30s): at least 1s, at most 24h, and more than
 * twice `GATEWAY_REDIS_COMMAND_TIMEOUT`, so a live relay refreshes the entries it holds (every
 * third of it, between commands) before another process may claim them.
 */
function readRelayClaimIdle(r: Reader): number {
  const NAME = 'GATEWAY_PUSH_ROUTED_RELAY_CLAIM_IDLE';
  const claimIdleMs = r.duration(NAME, '30s');
  const commandTimeoutMs = r.duration('GATEWAY_REDIS_COMMAND_TIMEOUT', '2s');
  if (claimIdleMs > 0 && claimIdleMs < 1000) r.fail(NAME, 'must be at least 1s');
  else if (claimIdleMs > 24 * 3_600_000) r.fail(NAME, 'must be at most 24h');
  else if (claimIdleMs > 0 && commandTimeoutMs > 0 && claimIdleMs <= 2 * commandTimeoutMs) {
    r.fail(NAME, `must be more than twice GATEWAY_REDIS_COMMAND_TIMEOUT (${commandTimeoutMs}ms)`);
  }
  return claimIdleMs;
}

/**
 * `GATEWAY_REDIS_REPLAY_MIN_REPLICAS` (integer >= 0; default 1 with replicas, 0 on a lone master)
 * and `GATEWAY_REDIS_REPLAY_WAIT_TIMEOUT` (default 50ms, at least 1ms, at most the command
 * timeout). What the configuration alone can tell is checked here: a lone master has no replica,
 * fixed replica addresses are all there can be. Sentinel and Cluster are checked at startup
 * against the replicas they know ({@link checkReplayReplicas}).
 */
function readReplayDurability(
  r: Reader,
  topology: { master: HostPort | undefined; replicas: readonly HostPort[]; sentinel: SentinelConfig | undefined; clusterNodes: readonly HostPort[] },
  commandTimeoutMs: number,
): ReplayDurabilityConfig {
  const lone = topology.sentinel === undefined && topology.clusterNodes.length === 0 && topology.replicas.length === 0;
  const text = r.raw(REPLAY_MIN_REPLICAS);
  const minReplicasSet = text !== undefined && text !== '';
  const minReplicas = r.integer(REPLAY_MIN_REPLICAS, lone ? 0 : 1, 0);
  if (minReplicasSet && topology.master !== undefined) {
    const most = topology.replicas.length;
    if (lone && minReplicas > 0) {
      r.fail(REPLAY_MIN_REPLICAS, `${minReplicas} asks for more replicas than a lone master has (GATEWAY_REDIS_MASTER_ADDR without GATEWAY_REDIS_REPLICA_ADDRS: none); set 0 or list the replicas in GATEWAY_REDIS_REPLICA_ADDRS`);
    } else if (minReplicas > most) {
      r.fail(REPLAY_MIN_REPLICAS, `${minReplicas} asks for more replicas than GATEWAY_REDIS_REPLICA_ADDRS lists (${most})`);
    }
  }
  const waitTimeoutMs = r.duration(REPLAY_WAIT_TIMEOUT, '50ms');
  if (waitTimeoutMs > 0 && waitTimeoutMs < 1) r.fail(REPLAY_WAIT_TIMEOUT, 'must be at least 1ms');
  else if (waitTimeoutMs > commandTimeoutMs && commandTimeoutMs > 0) r.fail(REPLAY_WAIT_TIMEOUT, 'must not be longer than GATEWAY_REDIS_COMMAND_TIMEOUT');
  const reassertWindowMs = Math.round(r.duration('GATEWAY_REDIS_REPLAY_REASSERT_WINDOW', '30s'));
  const reassertMaxEntries = r.integer('GATEWAY_REDIS_REPLAY_REASSERT_MAX_ENTRIES', 100_000, 0);
  return { minReplicas, minReplicasSet, waitTimeoutMs: Math.round(waitTimeoutMs), reassertWindowMs, reassertMaxEntries };
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

/** What one connection may cost (issue 22, SPEC §2.2): answer bytes queued, time to drain them, refused requests. */
function readConnectionLimits(r: Reader): ConnectionLimits {
  const failureText = r.string('GATEWAY_CONNECTION_FAILURE_LIMIT', DEFAULT_CONNECTION_FAILURE_LIMIT);
  const failureLimit = r.check(DEFAULT_CONNECTION_LIMITS.failureLimit, () => {
    try {
      return parseFailureLimit(failureText);
    } catch (error) {
      throw new ConfigError('GATEWAY_CONNECTION_FAILURE_LIMIT', `"${failureText}" ${error instanceof Error ? error.message : String(error)}`);
    }
  });
  return {
    maxBufferBytes: r.integer('GATEWAY_CONNECTION_MAX_BUFFER_BYTES', DEFAULT_CONNECTION_LIMITS.maxBufferBytes, 1),
    drainTimeoutMs: r.duration('GATEWAY_CONNECTION_DRAIN_TIMEOUT', '30s'),
    failureLimit,
  };
}

/** The HTTP listeners' time bounds (issue 12); the headers must be due before the whole request. */
function readHttpTimeouts(r: Reader): GatewayConfig['http'] {
  const headersTimeoutMs = r.duration('GATEWAY_HTTP_HEADERS_TIMEOUT', '10s');
  const requestTimeoutMs = r.duration('GATEWAY_HTTP_REQUEST_TIMEOUT', '30s');
  if (headersTimeoutMs > requestTimeoutMs) r.fail('GATEWAY_HTTP_HEADERS_TIMEOUT', 'must not be longer than GATEWAY_HTTP_REQUEST_TIMEOUT');
  return {
    headersTimeoutMs,
    requestTimeoutMs,
    keepAliveTimeoutMs: r.duration('GATEWAY_HTTP_KEEPALIVE_TIMEOUT', '5s'),
    writeTimeoutMs: r.duration('GATEWAY_HTTP_WRITE_TIMEOUT', '30s'),
  };
}

/** Shortest `GATEWAY_GRPC_MAX_CONNECTION_AGE`: a shorter one would make clients reconnect all the time. */
export const MIN_GRPC_MAX_CONNECTION_AGE_MS = 1000;
/** Longest age or grace: Node's timers (which grpc-js uses) fire at once beyond 2^31-1 ms (24.8 days). */
export const MAX_GRPC_CONNECTION_TIMER_MS = 480 * 3_600_000;
const DEFAULT_GRPC_MAX_CONNECTION_AGE_GRACE = '30s';

/**
 * `GATEWAY_GRPC_MAX_CONNECTION_AGE` (empty or `0`: unlimited) and `_GRACE` (default `30s`;
 * only with an age). Both bounded: at least 1s of age, at most 480h each.
 */
function readGrpcMaxConnection(r: Reader): GatewayConfig['grpcMaxConnection'] {
  const AGE = 'GATEWAY_GRPC_MAX_CONNECTION_AGE';
  const GRACE = 'GATEWAY_GRPC_MAX_CONNECTION_AGE_GRACE';
  const ageText = r.string(AGE, '0');
  const ageMs = parseGoDuration(ageText);
  const graceSet = r.string(GRACE, '') !== '';
  if (ageMs === undefined) {
    r.fail(AGE, `"${ageText}" is not a valid duration (use Go syntax like 500ms, 10s, 1h30m; empty or 0: unlimited)`);
    if (graceSet) r.duration(GRACE, DEFAULT_GRPC_MAX_CONNECTION_AGE_GRACE);
    return { ageMs: 0, graceMs: 0 };
  }
  if (ageMs === 0) {
    if (graceSet) r.fail(GRACE, `is set but ${AGE} is not (the grace only follows a maximum age)`);
    return { ageMs: 0, graceMs: 0 };
  }
  if (ageMs < MIN_GRPC_MAX_CONNECTION_AGE_MS) r.fail(AGE, 'must be at least 1s (or empty/0: unlimited)');
  else if (ageMs > MAX_GRPC_CONNECTION_TIMER_MS) r.fail(AGE, 'must be at most 480h');
  const graceMs = r.duration(GRACE, DEFAULT_GRPC_MAX_CONNECTION_AGE_GRACE);
  if (graceMs > MAX_GRPC_CONNECTION_TIMER_MS) r.fail(GRACE, 'must be at most 480h');
  return { ageMs, graceMs };
}

/**
 * `GATEWAY_WEBSOCKET_ALLOWED_ORIGINS`: comma-separated exact origins (`https://app.example.com`),
 * `null` (the opaque origin of sandboxed iframes and file: pages, SPEC §2.2) or `*`.
 */
function parseOrigins(text: string): string[] {
  if (text === '') return [];
  return text.split(',').map((part) => {
    const origin = part.trim();
    if (origin === '*' || origin === 'null') return origin;
    let url: URL | undefined;
    try {
      url = new URL(origin);
    } catch {
      url = undefined;
    }
    if (url === undefined || (url.protocol !== 'http:' && url.protocol !== 'https:') || url.origin !== origin) {
      throw new ConfigError('GATEWAY_WEBSOCKET_ALLOWED_ORIGINS', `${origin.includes('@') ? 'an origin (not shown: it holds user:password@)' : `"${origin}"`} is not an origin like https://app.example.com (scheme, host, optional port; no path)`);
    }
    return origin;
  });
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
    rate_limits: formatRateLimitRules(config.rateLimits),
    rate_limit_store: config.rateLimitStore,
    connection_max_buffer_bytes: config.connectionLimits.maxBufferBytes,
    connection_drain_timeout_ms: config.connectionLimits.drainTimeoutMs,
    connection_failure_limit: config.connectionLimits.failureLimit.text,
    authenticated_grpc_tls: config.grpcTls !== undefined,
    grpc_max_connection_age_ms: config.grpcMaxConnection.ageMs,
    grpc_max_connection_age_grace_ms: config.grpcMaxConnection.graceMs,
    public_http_tls: config.publicHttpTls !== undefined,
    auth_upstream: config.authUpstreamUrl === '' ? '' : new URL(config.authUpstreamUrl).origin,
  };
}

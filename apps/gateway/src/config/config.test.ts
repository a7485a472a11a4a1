import { describe, expect, it } from 'vitest';
import { ConfigError, checkReplayReplicas, describeConfig, loadConfig } from './config.js';

const base = {
  GATEWAY_REDIS_MASTER_ADDR: '127.0.0.1:6379',
  GATEWAY_REDIS_PASSWORD: 's3cret-pw',
  GATEWAY_RESPONSE_SIGNER_PRIVATE_KEY_PEM_PATH: '/keys/signer.pem',
};

function failure(env: Record<string, string>): ConfigError {
  try {
    loadConfig(env);
  } catch (error) {
    if (error instanceof ConfigError) return error;
    throw error;
  }
  throw new Error('expected a ConfigError');
}

describe('loadConfig', () => {
  it('applies the defaults of SPEC §7', () => {
    const config = loadConfig(base);
    expect(config.redis).toMatchObject({ db: 0, keyPrefix: 'gateway:', pingTimeoutMs: 5000, commandTimeoutMs: 2000, replicas: [] });
    expect(config).toMatchObject({
      sessionEventsStream: 'gateway:session-events',
      clientEventsStream: 'gateway:client-events',
      publicHttpAddr: ':8080',
      grpcAddr: ':9090',
      adminHttpAddr: '',
      shutdownTimeoutMs: 15_000,
      core: {
        freshnessWindowMs: 300_000,
        maxPayloadBytes: 1_048_576,
        pushStreamBuffer: 256,
        pushMaxEventBytes: 1_048_576,
        pushStreamBufferBytes: 4_194_304,
        pushMaxStreamsPerSession: 4,
        resumeMaxEvents: 1000,
        resumeMaxScan: 10_000,
        resumeMaxBytes: 4_194_304,
        sessionCacheTtlMs: 30_000,
        sessionCacheMaxEntries: 100_000,
        revocationsMaxEntries: 100_000,
        downstreamTimeoutMs: 10_000,
        commandAsyncCrypto: false,
        rateLimits: [],
      },
      http: { headersTimeoutMs: 10_000, requestTimeoutMs: 30_000, keepAliveTimeoutMs: 5_000, writeTimeoutMs: 30_000 },
      pushResumeIndexMaxBytes: 67_108_864,
      authUpstreamUrl: '',
      authUpstreamTimeoutMs: 5000,
      downstreamRoutes: '',
      rateLimitStore: 'local',
      connectionLimits: { maxBufferBytes: 8 * 1024 * 1024, drainTimeoutMs: 30_000, failureLimit: { text: '20/s:40', intervalMs: 50, burst: 40 } },
      logLevel: 'info',
    });
  });

  it('GATEWAY_CONNECTION_*: the per-connection bounds; bad values fail naming each variable', () => {
    const config = loadConfig({ ...base, GATEWAY_CONNECTION_MAX_BUFFER_BYTES: '65536', GATEWAY_CONNECTION_DRAIN_TIMEOUT: '5s', GATEWAY_CONNECTION_FAILURE_LIMIT: '5/m' });
    expect(config.connectionLimits).toEqual({ maxBufferBytes: 65_536, drainTimeoutMs: 5000, failureLimit: { text: '5/m:5', intervalMs: 12_000, burst: 5 } });
    expect(describeConfig(config)).toMatchObject({ connection_max_buffer_bytes: 65_536, connection_drain_timeout_ms: 5000, connection_failure_limit: '5/m:5' });
    const error = failure({ ...base, GATEWAY_CONNECTION_MAX_BUFFER_BYTES: '0', GATEWAY_CONNECTION_DRAIN_TIMEOUT: 'soon', GATEWAY_CONNECTION_FAILURE_LIMIT: '20 per second' });
    expect(error.problems).toEqual([
      { variable: 'GATEWAY_CONNECTION_FAILURE_LIMIT', problem: '"20 per second" is not <rate>/<s|m|h>[:burst] (e.g. 20/s:40)' },
      { variable: 'GATEWAY_CONNECTION_MAX_BUFFER_BYTES', problem: 'must be an integer >= 1' },
      { variable: 'GATEWAY_CONNECTION_DRAIN_TIMEOUT', problem: '"soon" is not a valid duration (use Go syntax like 500ms, 10s, 1h30m)' },
    ]);
    expect(failure({ ...base, GATEWAY_CONNECTION_FAILURE_LIMIT: '0/s' }).message).toBe('GATEWAY_CONNECTION_FAILURE_LIMIT: "0/s" the rate and the burst must be 1-1000000000');
  });

  it('GATEWAY_RATE_LIMITS: parsed in the order written; a malformed rule fails naming the variable and the rule', () => {
    const config = loadConfig({ ...base, GATEWAY_RATE_LIMITS: 'session=20/s:40,user:orders.=5/m', GATEWAY_RATE_LIMIT_STORE: 'redis' });
    expect(config.rateLimitStore).toBe('redis');
    expect(config.core.rateLimits.map((rule) => rule.id)).toEqual(['session=20/s:40', 'user:orders.=5/m:5']);
    const error = failure({ ...base, GATEWAY_RATE_LIMITS: 'session=20/s,sesion=1/s' });
    expect(error.message).toBe('GATEWAY_RATE_LIMITS: rule "sesion=1/s": scope must be one of session, user, session_streams');
    expect(failure({ ...base, GATEWAY_RATE_LIMIT_STORE: 'memcached' }).message).toBe('GATEWAY_RATE_LIMIT_STORE: "memcached" is not one of local, redis');
  });

  it.each(['GATEWAY_REDIS_TLS_ENABLED', 'GATEWAY_REDIS_USERNAME'])('fails on the deprecated %s, even when empty', (name) => {
    const error = failure({ ...base, [name]: '' });
    expect(error.variable).toBe(name);
    expect(error.message).toMatch(new RegExp(`^${name}: is deprecated`));
  });

  it.each([
    ['GATEWAY_REDIS_MASTER_ADDR', { GATEWAY_REDIS_MASTER_ADDR: '' }],
    ['GATEWAY_REDIS_MASTER_ADDR', { GATEWAY_REDIS_MASTER_ADDR: 'localhost' }],
    ['GATEWAY_REDIS_MASTER_ADDR', { GATEWAY_REDIS_MASTER_ADDR: ':6379' }],
    ['GATEWAY_REDIS_MASTER_ADDR', { GATEWAY_REDIS_MASTER_ADDR: 'h:70000' }],
    ['GATEWAY_REDIS_PASSWORD', { GATEWAY_REDIS_PASSWORD: '' }],
    ['GATEWAY_RESPONSE_SIGNER_PRIVATE_KEY_PEM_PATH', { GATEWAY_RESPONSE_SIGNER_PRIVATE_KEY_PEM_PATH: '' }],
    ['GATEWAY_REDIS_DB', { GATEWAY_REDIS_DB: '-1' }],
    ['GATEWAY_REDIS_DB', { GATEWAY_REDIS_DB: 'one' }],
    ['GATEWAY_REDIS_REPLICA_ADDRS', { GATEWAY_REDIS_REPLICA_ADDRS: 'a:1,b' }],
    ['GATEWAY_REDIS_PING_TIMEOUT', { GATEWAY_REDIS_PING_TIMEOUT: '5' }],
    ['GATEWAY_SHUTDOWN_TIMEOUT', { GATEWAY_SHUTDOWN_TIMEOUT: 'soon' }],
    ['GATEWAY_REQUEST_FRESHNESS_WINDOW', { GATEWAY_REQUEST_FRESHNESS_WINDOW: '0s' }],
    ['GATEWAY_PUBLIC_HTTP_ADDR', { GATEWAY_PUBLIC_HTTP_ADDR: '8080' }],
    ['GATEWAY_ADMIN_HTTP_ADDR', { GATEWAY_ADMIN_HTTP_ADDR: 'admin' }],
    ['GATEWAY_MAX_PAYLOAD_BYTES', { GATEWAY_MAX_PAYLOAD_BYTES: '1MB' }],
    ['GATEWAY_PUSH_STREAM_BUFFER', { GATEWAY_PUSH_STREAM_BUFFER: '0' }],
    ['GATEWAY_PUSH_MAX_EVENT_BYTES', { GATEWAY_PUSH_MAX_EVENT_BYTES: '1MiB' }],
    ['GATEWAY_HTTP_HEADERS_TIMEOUT', { GATEWAY_HTTP_HEADERS_TIMEOUT: '0s' }],
    ['GATEWAY_HTTP_HEADERS_TIMEOUT', { GATEWAY_HTTP_HEADERS_TIMEOUT: '1m', GATEWAY_HTTP_REQUEST_TIMEOUT: '30s' }],
    ['GATEWAY_HTTP_REQUEST_TIMEOUT', { GATEWAY_HTTP_REQUEST_TIMEOUT: 'long' }],
    ['GATEWAY_HTTP_KEEPALIVE_TIMEOUT', { GATEWAY_HTTP_KEEPALIVE_TIMEOUT: '5' }],
    ['GATEWAY_HTTP_WRITE_TIMEOUT', { GATEWAY_HTTP_WRITE_TIMEOUT: '0s' }],
    ['GATEWAY_PUSH_STREAM_BUFFER_BYTES', { GATEWAY_PUSH_STREAM_BUFFER_BYTES: '0' }],
    ['GATEWAY_PUSH_MAX_STREAMS_PER_SESSION', { GATEWAY_PUSH_MAX_STREAMS_PER_SESSION: '0' }],
    ['GATEWAY_PUSH_RESUME_MAX_BYTES', { GATEWAY_PUSH_RESUME_MAX_BYTES: '4MiB' }],
    ['GATEWAY_PUSH_RESUME_INDEX_MAX_BYTES', { GATEWAY_PUSH_RESUME_INDEX_MAX_BYTES: '-1' }],
    ['GATEWAY_PUSH_RESUME_INDEX_MAX_BYTES', { GATEWAY_PUSH_RESUME_INDEX_MAX_BYTES: '64MiB' }],
    ['GATEWAY_PUSH_RESUME_MAX_BYTES', { GATEWAY_PUSH_RESUME_MAX_BYTES: '-1' }],
    ['GATEWAY_PUSH_RESUME_MAX_BYTES', { GATEWAY_PUSH_RESUME_MAX_BYTES: '4194305' }],
    ['GATEWAY_PUSH_RESUME_MAX_BYTES', { GATEWAY_PUSH_STREAM_BUFFER_BYTES: '1000', GATEWAY_PUSH_RESUME_MAX_BYTES: '1001' }],
    ['GATEWAY_AUTH_UPSTREAM_URL', { GATEWAY_AUTH_UPSTREAM_URL: 'not a url' }],
    ['GATEWAY_AUTH_UPSTREAM_URL', { GATEWAY_AUTH_UPSTREAM_URL: 'ftp://auth' }],
    ['GATEWAY_LOG_LEVEL', { GATEWAY_LOG_LEVEL: 'verbose' }],
    ['GATEWAY_CLIENT_EVENTS_REDIS_STREAM', { GATEWAY_CLIENT_EVENTS_REDIS_STREAM: 'gateway:session-events' }],
  ])('names %s when it is invalid', (variable, override) => {
    const error = failure({ ...base, ...override });
    expect(error.variable).toBe(variable);
    expect(error.message.startsWith(`${variable}: `)).toBe(true);
  });

  it('parses durations, addresses and lists', () => {
    const config = loadConfig({
      ...base,
      GATEWAY_REDIS_MASTER_ADDR: '[::1]:6380',
      GATEWAY_REDIS_REPLICA_ADDRS: 'r1:6379, r2:6380',
      GATEWAY_SHUTDOWN_TIMEOUT: '1m30s',
      GATEWAY_PUBLIC_HTTP_ADDR: '127.0.0.1:0',
      GATEWAY_ADMIN_HTTP_ADDR: ':9100',
      GATEWAY_REDIS_DB: '3',
    });
    expect(config.redis.master).toEqual({ host: '::1', port: 6380 });
    expect(config.redis.replicas).toEqual([
      { host: 'r1', port: 6379 },
      { host: 'r2', port: 6380 },
    ]);
    expect(config.shutdownTimeoutMs).toBe(90_000);
    expect(config.redis.db).toBe(3);
    expect(config.adminHttpAddr).toBe(':9100');
  });

  it('GATEWAY_PUSH_RESUME_MAX_BYTES follows GATEWAY_PUSH_STREAM_BUFFER_BYTES unless set (0 up to that bound)', () => {
    expect(loadConfig({ ...base, GATEWAY_PUSH_STREAM_BUFFER_BYTES: '65536' }).core.resumeMaxBytes).toBe(65_536);
    expect(loadConfig({ ...base, GATEWAY_PUSH_RESUME_MAX_BYTES: '1024' }).core.resumeMaxBytes).toBe(1024);
    expect(loadConfig({ ...base, GATEWAY_PUSH_RESUME_MAX_BYTES: '0' }).core.resumeMaxBytes).toBe(0);
    expect(loadConfig({ ...base, GATEWAY_PUSH_STREAM_BUFFER_BYTES: '1000', GATEWAY_PUSH_RESUME_MAX_BYTES: '1000' }).core.resumeMaxBytes).toBe(1000);
    expect(failure({ ...base, GATEWAY_PUSH_STREAM_BUFFER_BYTES: '1000', GATEWAY_PUSH_RESUME_MAX_BYTES: '1001' }).message).toBe(
      'GATEWAY_PUSH_RESUME_MAX_BYTES: must not be larger than GATEWAY_PUSH_STREAM_BUFFER_BYTES (1000)',
    );
  });

  it('never puts the password in the loggable description', () => {
    expect(JSON.stringify(describeConfig(loadConfig(base)))).not.toContain('s3cret-pw');
  });

  it('never echoes the password in an error', () => {
    const error = failure({ ...base, GATEWAY_REDIS_MASTER_ADDR: 'nohost', GATEWAY_REDIS_PASSWORD: 'hunter2' });
    expect(error.message).not.toContain('hunter2');
  });

  describe('Redis Cluster and routed fan-out (SPEC §9)', () => {
    const { GATEWAY_REDIS_MASTER_ADDR: _master, ...noMaster } = base;
    const clusterEnv = { ...noMaster, GATEWAY_REDIS_CLUSTER_NODES: '10.0.0.1:7000, 10.0.0.2:7001' };

    it('reads the seed nodes; stream fan-out stays the default', () => {
      const config = loadConfig(clusterEnv);
      expect(config.redis.clusterNodes).toEqual([
        { host: '10.0.0.1', port: 7000 },
        { host: '10.0.0.2', port: 7001 },
      ]);
      expect(config.pushFanout).toBe('stream');
      expect(config.pushRoutedRelay).toBe(false);
      expect(describeConfig(config)).toMatchObject({ redis_cluster_nodes: '10.0.0.1:7000,10.0.0.2:7001', push_fanout: 'stream' });
      expect(loadConfig(base).redis.clusterNodes).toEqual([]);
    });

    it('GATEWAY_COMMAND_CRYPTO_THREADPOOL: off by default, true turns it on, anything else is refused', () => {
      expect(loadConfig(base).core.commandAsyncCrypto).toBe(false);
      expect(loadConfig({ ...base, GATEWAY_COMMAND_CRYPTO_THREADPOOL: 'true' }).core.commandAsyncCrypto).toBe(true);
      const error = failure({ ...base, GATEWAY_COMMAND_CRYPTO_THREADPOOL: 'on' });
      expect(error.variable).toBe('GATEWAY_COMMAND_CRYPTO_THREADPOOL');
      expect(error.message).toBe('GATEWAY_COMMAND_CRYPTO_THREADPOOL: "on" is not true or false');
    });

    it('reads routed mode, its history bounds and the relay switch', () => {
      const config = loadConfig({
        ...clusterEnv,
        GATEWAY_PUSH_FANOUT: 'routed',
        GATEWAY_PUSH_ROUTED_RELAY: 'true',
        GATEWAY_PUSH_ROUTED_HISTORY_MAXLEN: '200',
        GATEWAY_PUSH_ROUTED_HISTORY_TTL: '1h',
      });
      expect(config).toMatchObject({ pushFanout: 'routed', pushRoutedRelay: true, pushRoutedHistoryMaxLen: 200, pushRoutedHistoryTtlMs: 3_600_000, pushRoutedRelayClaimIdleMs: 30_000 });
      expect(loadConfig({ ...clusterEnv, GATEWAY_PUSH_FANOUT: 'routed', GATEWAY_PUSH_ROUTED_RELAY_CLAIM_IDLE: '4500ms', GATEWAY_REDIS_COMMAND_TIMEOUT: '2s' }).pushRoutedRelayClaimIdleMs).toBe(4500);
      expect(loadConfig({ ...clusterEnv, GATEWAY_PUSH_FANOUT: 'routed' })).toMatchObject({ pushRoutedHistoryMaxLen: 1000, pushRoutedHistoryTtlMs: 86_400_000 });
      // The routed limits bind routed mode only.
      expect(loadConfig({ ...clusterEnv, GATEWAY_PUSH_MAX_EVENT_BYTES: '16777217', GATEWAY_REDIS_KEY_PREFIX: 'gw{1}:' })).toMatchObject({ core: { pushMaxEventBytes: 16_777_217 } });
      expect(loadConfig({ ...clusterEnv, GATEWAY_PUSH_FANOUT: 'routed', GATEWAY_PUSH_MAX_EVENT_BYTES: '16777216' })).toMatchObject({ core: { pushMaxEventBytes: 16_777_216 } });
    });

    it.each([
      ['GATEWAY_REDIS_CLUSTER_NODES', { ...clusterEnv, GATEWAY_REDIS_MASTER_ADDR: 'redis:6379' }, 'is mutually exclusive with GATEWAY_REDIS_MASTER_ADDR; set only one Redis topology'],
      ['GATEWAY_REDIS_CLUSTER_NODES', { ...clusterEnv, GATEWAY_REDIS_SENTINEL_ADDRS: 's1:26379' }, 'is mutually exclusive with GATEWAY_REDIS_SENTINEL_ADDRS; set only one Redis topology'],
      ['GATEWAY_REDIS_CLUSTER_NODES', { ...noMaster, GATEWAY_REDIS_CLUSTER_NODES: 'a:1,b' }, '"b" is not host:port'],
      ['GATEWAY_REDIS_DB', { ...clusterEnv, GATEWAY_REDIS_DB: '2' }, 'must be 0 with GATEWAY_REDIS_CLUSTER_NODES (a cluster has only database 0)'],
      ['GATEWAY_PUSH_FANOUT', { ...base, GATEWAY_PUSH_FANOUT: 'routed' }, 'routed requires GATEWAY_REDIS_CLUSTER_NODES (a Redis Cluster)'],
      ['GATEWAY_PUSH_FANOUT', { ...clusterEnv, GATEWAY_PUSH_FANOUT: 'pubsub' }, '"pubsub" is not one of stream, routed'],
      ['GATEWAY_PUSH_ROUTED_RELAY', { ...clusterEnv, GATEWAY_PUSH_ROUTED_RELAY: 'true' }, 'requires GATEWAY_PUSH_FANOUT=routed'],
      ['GATEWAY_PUSH_ROUTED_RELAY', { ...clusterEnv, GATEWAY_PUSH_FANOUT: 'routed', GATEWAY_PUSH_ROUTED_RELAY: 'yes' }, '"yes" is not true or false'],
      ['GATEWAY_PUSH_ROUTED_HISTORY_MAXLEN', { ...clusterEnv, GATEWAY_PUSH_ROUTED_HISTORY_MAXLEN: '0' }, 'must be an integer >= 1'],
      ['GATEWAY_PUSH_ROUTED_RELAY_CLAIM_IDLE', { ...clusterEnv, GATEWAY_PUSH_ROUTED_RELAY_CLAIM_IDLE: '500ms' }, 'must be at least 1s'],
      ['GATEWAY_PUSH_ROUTED_RELAY_CLAIM_IDLE', { ...clusterEnv, GATEWAY_PUSH_ROUTED_RELAY_CLAIM_IDLE: '25h' }, 'must be at most 24h'],
      ['GATEWAY_PUSH_ROUTED_RELAY_CLAIM_IDLE', { ...clusterEnv, GATEWAY_PUSH_ROUTED_RELAY_CLAIM_IDLE: '4s' }, 'must be more than twice GATEWAY_REDIS_COMMAND_TIMEOUT (2000ms)'],
      ['GATEWAY_PUSH_ROUTED_RELAY_CLAIM_IDLE', { ...clusterEnv, GATEWAY_PUSH_ROUTED_RELAY_CLAIM_IDLE: 'soon' }, '"soon" is not a valid duration (use Go syntax like 500ms, 10s, 1h30m)'],
      ['GATEWAY_PUSH_ROUTED_HISTORY_MAXLEN', { ...clusterEnv, GATEWAY_PUSH_ROUTED_HISTORY_MAXLEN: '1000000000000000' }, 'must be at most 999999999999999'],
      ['GATEWAY_PUSH_ROUTED_HISTORY_TTL', { ...clusterEnv, GATEWAY_PUSH_ROUTED_HISTORY_TTL: '300000000h' }, 'must be at most 999999999999999 ms'],
      [
        'GATEWAY_PUSH_MAX_EVENT_BYTES',
        { ...clusterEnv, GATEWAY_PUSH_FANOUT: 'routed', GATEWAY_PUSH_MAX_EVENT_BYTES: '16777217' },
        "must be at most 16777216 with GATEWAY_PUSH_FANOUT=routed (the publish function's limit)",
      ],
      [
        'GATEWAY_REDIS_KEY_PREFIX',
        { ...clusterEnv, GATEWAY_PUSH_FANOUT: 'routed', GATEWAY_REDIS_KEY_PREFIX: 'gw{1}:' },
        'must not contain { with GATEWAY_PUSH_FANOUT=routed (the partition hash tag must be the first of every key)',
      ],
    ])('%s: %s', (variable, env, problem) => {
      const error = failure(env);
      expect(error.variable).toBe(variable);
      expect(error.message).toBe(`${variable}: ${problem}`);
    });
  });
});

describe('loadConfig: Redis topology (SPEC §5.6, §7)', () => {
  const sentinelEnv = {
    GATEWAY_REDIS_PASSWORD: 's3cret-pw',
    GATEWAY_RESPONSE_SIGNER_PRIVATE_KEY_PEM_PATH: '/keys/signer.pem',
    GATEWAY_REDIS_SENTINEL_ADDRS: '10.0.0.1:26379, 10.0.0.2:26379,[::1]:26380',
    GATEWAY_REDIS_SENTINEL_MASTER_NAME: 'gw',
  };

  it('reads the Sentinels, the master name and the optional Sentinel password; no master address', () => {
    const config = loadConfig({ ...sentinelEnv, GATEWAY_REDIS_SENTINEL_PASSWORD: 'sentinel-pw' });
    expect(config.redis.master).toBeUndefined();
    expect(config.redis.sentinel).toEqual({
      addrs: [
        { host: '10.0.0.1', port: 26379 },
        { host: '10.0.0.2', port: 26379 },
        { host: '::1', port: 26380 },
      ],
      masterName: 'gw',
      password: 'sentinel-pw',
    });
    expect(loadConfig(sentinelEnv).redis.sentinel?.password).toBe('');
    const described = describeConfig(config);
    expect(described).toMatchObject({ redis_master_addr: '', redis_sentinel_addrs: '10.0.0.1:26379,10.0.0.2:26379,[::1]:26380', redis_sentinel_master_name: 'gw' });
    expect(JSON.stringify(described)).not.toContain('sentinel-pw');
  });

  it('fails naming both variables when the master address and the Sentinels are both set', () => {
    const error = failure({ ...sentinelEnv, GATEWAY_REDIS_MASTER_ADDR: '127.0.0.1:6379' });
    expect(error.message).toContain('GATEWAY_REDIS_MASTER_ADDR');
    expect(error.message).toContain('GATEWAY_REDIS_SENTINEL_ADDRS');
  });

  it('requires the master name with Sentinels, and Sentinels with a master name or Sentinel password', () => {
    const { GATEWAY_REDIS_SENTINEL_MASTER_NAME: _name, ...withoutName } = sentinelEnv;
    expect(failure(withoutName).message).toBe('GATEWAY_REDIS_SENTINEL_MASTER_NAME: is required');
    expect(failure({ ...base, GATEWAY_REDIS_SENTINEL_MASTER_NAME: 'gw' }).message).toBe(
      'GATEWAY_REDIS_SENTINEL_MASTER_NAME: is set but GATEWAY_REDIS_SENTINEL_ADDRS is empty',
    );
    expect(failure({ ...base, GATEWAY_REDIS_SENTINEL_PASSWORD: 'x' }).variable).toBe('GATEWAY_REDIS_SENTINEL_PASSWORD');
    expect(failure({ ...sentinelEnv, GATEWAY_REDIS_SENTINEL_ADDRS: '10.0.0.1' }).variable).toBe('GATEWAY_REDIS_SENTINEL_ADDRS');
    expect(failure({ ...sentinelEnv, GATEWAY_REDIS_REPLICA_ADDRS: '10.0.0.3:6379' }).variable).toBe('GATEWAY_REDIS_REPLICA_ADDRS');
  });

  it('still requires a master address without Sentinels', () => {
    const { GATEWAY_REDIS_MASTER_ADDR: _master, ...rest } = base;
    expect(failure(rest).message).toBe('GATEWAY_REDIS_MASTER_ADDR: is required');
  });

  it('reads GATEWAY_REDIS_SESSION_READS: master by default, replica, anything else fails', () => {
    expect(loadConfig(base).redis.sessionReads).toBe('master');
    expect(loadConfig({ ...base, GATEWAY_REDIS_SESSION_READS: 'replica' }).redis.sessionReads).toBe('replica');
    expect(failure({ ...base, GATEWAY_REDIS_SESSION_READS: 'any' }).message).toBe('GATEWAY_REDIS_SESSION_READS: "any" is not one of master, replica');
  });

  it('reads GATEWAY_REDIS_CLIENT_EVENTS_READS: master by default (SPEC §5.6), replica, anything else fails; master only on a Cluster', () => {
    expect(loadConfig(base).redis.clientEventsReads).toBe('master');
    expect(loadConfig({ ...base, GATEWAY_REDIS_CLIENT_EVENTS_READS: 'replica' }).redis.clientEventsReads).toBe('replica');
    expect(failure({ ...base, GATEWAY_REDIS_CLIENT_EVENTS_READS: 'replicas' }).message).toBe('GATEWAY_REDIS_CLIENT_EVENTS_READS: "replicas" is not one of master, replica');
    expect(
      failure({ ...base, GATEWAY_REDIS_MASTER_ADDR: '', GATEWAY_REDIS_CLUSTER_NODES: '10.0.0.1:7000', GATEWAY_REDIS_CLIENT_EVENTS_READS: 'replica' }).message,
    ).toBe('GATEWAY_REDIS_CLIENT_EVENTS_READS: must be master with GATEWAY_REDIS_CLUSTER_NODES (cluster reads go to the masters)');
    expect(describeConfig(loadConfig(base))).toMatchObject({ redis_client_events_reads: 'master' });
  });
});

describe('replicated replay reservations (SPEC §5.2)', () => {
  const replicasEnv = { ...base, GATEWAY_REDIS_REPLICA_ADDRS: '10.0.0.2:6379,10.0.0.3:6379' };
  const sentinelEnv = { ...base, GATEWAY_REDIS_MASTER_ADDR: '', GATEWAY_REDIS_SENTINEL_ADDRS: '10.0.0.1:26379', GATEWAY_REDIS_SENTINEL_MASTER_NAME: 'gw' };
  const clusterEnv = { ...base, GATEWAY_REDIS_MASTER_ADDR: '', GATEWAY_REDIS_CLUSTER_NODES: '10.0.0.1:7000' };

  it('defaults: 0 on a lone master, 1 with replica addresses, Sentinel or Cluster; WAIT timeout 50ms', () => {
    const journal = { reassertWindowMs: 30_000, reassertMaxEntries: 100_000 };
    expect(loadConfig(base).redis.replay).toEqual({ minReplicas: 0, minReplicasSet: false, waitTimeoutMs: 50, ...journal });
    for (const env of [replicasEnv, sentinelEnv, clusterEnv]) {
      expect(loadConfig(env).redis.replay).toEqual({ minReplicas: 1, minReplicasSet: false, waitTimeoutMs: 50, ...journal });
    }
    expect(loadConfig({ ...replicasEnv, GATEWAY_REDIS_REPLAY_MIN_REPLICAS: '2', GATEWAY_REDIS_REPLAY_WAIT_TIMEOUT: '200ms' }).redis.replay).toEqual({
      minReplicas: 2,
      minReplicasSet: true,
      waitTimeoutMs: 200,
      ...journal,
    });
    expect(
      loadConfig({ ...sentinelEnv, GATEWAY_REDIS_REPLAY_REASSERT_WINDOW: '5s', GATEWAY_REDIS_REPLAY_REASSERT_MAX_ENTRIES: '0' }).redis.replay,
    ).toMatchObject({ reassertWindowMs: 5000, reassertMaxEntries: 0 });
    expect(loadConfig({ ...sentinelEnv, GATEWAY_REDIS_REPLAY_MIN_REPLICAS: '0' }).redis.replay.minReplicas).toBe(0);
    expect(describeConfig(loadConfig(sentinelEnv))).toMatchObject({ redis_replay_min_replicas: 1, redis_replay_wait_timeout_ms: 50 });
  });

  it('fails naming the variable when the configured topology can never have that many replicas', () => {
    expect(failure({ ...base, GATEWAY_REDIS_REPLAY_MIN_REPLICAS: '1' }).message).toBe(
      'GATEWAY_REDIS_REPLAY_MIN_REPLICAS: 1 asks for more replicas than a lone master has (GATEWAY_REDIS_MASTER_ADDR without GATEWAY_REDIS_REPLICA_ADDRS: none); set 0 or list the replicas in GATEWAY_REDIS_REPLICA_ADDRS',
    );
    expect(failure({ ...replicasEnv, GATEWAY_REDIS_REPLAY_MIN_REPLICAS: '3' }).message).toBe(
      'GATEWAY_REDIS_REPLAY_MIN_REPLICAS: 3 asks for more replicas than GATEWAY_REDIS_REPLICA_ADDRS lists (2)',
    );
    expect(loadConfig({ ...replicasEnv, GATEWAY_REDIS_REPLAY_MIN_REPLICAS: '2' }).redis.replay.minReplicas).toBe(2);
  });

  it('names the variable for a bad value', () => {
    expect(failure({ ...replicasEnv, GATEWAY_REDIS_REPLAY_MIN_REPLICAS: 'one' }).message).toBe('GATEWAY_REDIS_REPLAY_MIN_REPLICAS: "one" is not an integer');
    expect(failure({ ...replicasEnv, GATEWAY_REDIS_REPLAY_MIN_REPLICAS: '-1' }).variable).toBe('GATEWAY_REDIS_REPLAY_MIN_REPLICAS');
    expect(failure({ ...replicasEnv, GATEWAY_REDIS_REPLAY_WAIT_TIMEOUT: 'soon' }).variable).toBe('GATEWAY_REDIS_REPLAY_WAIT_TIMEOUT');
    expect(failure({ ...replicasEnv, GATEWAY_REDIS_REPLAY_REASSERT_WINDOW: '0' }).message).toBe('GATEWAY_REDIS_REPLAY_REASSERT_WINDOW: must be greater than zero');
    expect(failure({ ...replicasEnv, GATEWAY_REDIS_REPLAY_REASSERT_MAX_ENTRIES: '-1' }).variable).toBe('GATEWAY_REDIS_REPLAY_REASSERT_MAX_ENTRIES');
    expect(failure({ ...replicasEnv, GATEWAY_REDIS_REPLAY_WAIT_TIMEOUT: '0' }).message).toBe('GATEWAY_REDIS_REPLAY_WAIT_TIMEOUT: must be greater than zero');
    expect(failure({ ...replicasEnv, GATEWAY_REDIS_REPLAY_WAIT_TIMEOUT: '500us' }).message).toBe('GATEWAY_REDIS_REPLAY_WAIT_TIMEOUT: must be at least 1ms');
    expect(failure({ ...replicasEnv, GATEWAY_REDIS_REPLAY_WAIT_TIMEOUT: '3s' }).message).toBe(
      'GATEWAY_REDIS_REPLAY_WAIT_TIMEOUT: must not be longer than GATEWAY_REDIS_COMMAND_TIMEOUT',
    );
  });

  it('checkReplayReplicas: a discovered topology with fewer replicas fails naming the variable (Sentinel, Cluster at startup)', () => {
    const replay = loadConfig(sentinelEnv).redis.replay;
    expect(() => checkReplayReplicas(replay, { replicas: 2, where: 'x' })).not.toThrow();
    let error: unknown;
    try {
      checkReplayReplicas(replay, { replicas: 0, where: 'cluster master 10.0.0.1:7000' });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).variable).toBe('GATEWAY_REDIS_REPLAY_MIN_REPLICAS');
    expect((error as ConfigError).message).toBe(
      'GATEWAY_REDIS_REPLAY_MIN_REPLICAS: 1 (the default with replicas) asks for more replicas than cluster master 10.0.0.1:7000 has (0); add replicas, or set GATEWAY_REDIS_REPLAY_MIN_REPLICAS=0 and accept that a failover may lose reservations (SPEC §5.2)',
    );
  });
});

describe('WebSocket transport settings', () => {
  it('is off by default and refuses every browser origin', () => {
    expect(loadConfig(base)).toMatchObject({ websocketAddr: '', websocketAllowedOrigins: [] });
  });

  it('reads the address and the allowed origins', () => {
    const config = loadConfig({ ...base, GATEWAY_WEBSOCKET_ADDR: ':9443', GATEWAY_WEBSOCKET_ALLOWED_ORIGINS: 'https://app.example.com, http://localhost:3000' });
    expect(config.websocketAddr).toBe(':9443');
    expect(config.websocketAllowedOrigins).toEqual(['https://app.example.com', 'http://localhost:3000']);
    expect(loadConfig({ ...base, GATEWAY_WEBSOCKET_ALLOWED_ORIGINS: '*' }).websocketAllowedOrigins).toEqual(['*']);
  });

  it('takes `null` (the opaque origin of sandboxed iframes and file: pages) only written exactly so', () => {
    expect(loadConfig({ ...base, GATEWAY_WEBSOCKET_ALLOWED_ORIGINS: 'https://app.example.com, null' }).websocketAllowedOrigins).toEqual(['https://app.example.com', 'null']);
    for (const bad of ['NULL', 'Null', '"null"']) {
      expect(failure({ ...base, GATEWAY_WEBSOCKET_ALLOWED_ORIGINS: bad }).message).toContain('GATEWAY_WEBSOCKET_ALLOWED_ORIGINS: ');
    }
  });

  it('names the variable for a bad address or origin', () => {
    expect(failure({ ...base, GATEWAY_WEBSOCKET_ADDR: 'nowhere' }).message).toBe('GATEWAY_WEBSOCKET_ADDR: "nowhere" is not host:port');
    for (const bad of ['app.example.com', 'https://app.example.com/', 'ftp://x.example.com', 'https://app.example.com/path']) {
      expect(failure({ ...base, GATEWAY_WEBSOCKET_ALLOWED_ORIGINS: bad }).message).toContain('GATEWAY_WEBSOCKET_ALLOWED_ORIGINS: ');
    }
  });

  describe('never echoes a value that can carry credentials (issue 12)', () => {
    it.each([
      ['GATEWAY_REDIS_MASTER_ADDR', 'redis://user:s3cr3t-pw@redis.internal:6379'],
      ['GATEWAY_REDIS_MASTER_ADDR', 'user:s3cr3t-pw@redis.internal:6379'],
      ['GATEWAY_REDIS_REPLICA_ADDRS', 'r1:6379,redis://:s3cr3t-pw@r2:6379'],
      ['GATEWAY_AUTH_UPSTREAM_URL', 'https://user:s3cr3t-pw@[auth'],
      ['GATEWAY_DOWNSTREAM_ROUTES', 'orders.=grpc://user:s3cr3t-pw@orders:443'],
      ['GATEWAY_WEBSOCKET_ALLOWED_ORIGINS', 'https://user:s3cr3t-pw@app.example.com'],
    ])('%s=%s names the variable and what is wrong, not the value', (variable, value) => {
      const error = failure({ ...base, [variable]: value });
      expect(error.problems.map((p) => p.variable)).toContain(variable);
      expect(error.message).not.toContain('s3cr3t-pw');
      expect(error.message).toMatch(new RegExp(`${variable}: .*(not shown|is not)`));
    });

    it('still quotes a plain bad value, which helps the operator', () => {
      expect(failure({ ...base, GATEWAY_REDIS_MASTER_ADDR: 'localhost' }).message).toContain('"localhost" is not host:port');
    });
  });
});

describe('gRPC maximum connection age (GATEWAY_GRPC_MAX_CONNECTION_AGE, _GRACE)', () => {
  const AGE = 'GATEWAY_GRPC_MAX_CONNECTION_AGE';
  const GRACE = 'GATEWAY_GRPC_MAX_CONNECTION_AGE_GRACE';

  it('is unlimited by default, when empty and when 0', () => {
    for (const env of [base, { ...base, [AGE]: '' }, { ...base, [AGE]: '0' }, { ...base, [AGE]: '  ' }]) {
      expect(loadConfig(env).grpcMaxConnection).toEqual({ ageMs: 0, graceMs: 0 });
    }
  });

  it('reads the age; the grace defaults to 30s and can be set', () => {
    expect(loadConfig({ ...base, [AGE]: '30m' }).grpcMaxConnection).toEqual({ ageMs: 1_800_000, graceMs: 30_000 });
    expect(loadConfig({ ...base, [AGE]: '1s', [GRACE]: '1s' }).grpcMaxConnection).toEqual({ ageMs: 1000, graceMs: 1000 });
    expect(loadConfig({ ...base, [AGE]: '1h30m', [GRACE]: '2m' }).grpcMaxConnection).toEqual({ ageMs: 5_400_000, graceMs: 120_000 });
    expect(loadConfig({ ...base, [AGE]: '480h', [GRACE]: '480h' }).grpcMaxConnection).toEqual({ ageMs: 1_728_000_000, graceMs: 1_728_000_000 });
    expect(describeConfig(loadConfig({ ...base, [AGE]: '10m' }))).toMatchObject({ grpc_max_connection_age_ms: 600_000, grpc_max_connection_age_grace_ms: 30_000 });
  });

  it('names the variable for a value that is not a duration, too short or too long', () => {
    expect(failure({ ...base, [AGE]: '10 minutes' }).message).toBe(
      `${AGE}: "10 minutes" is not a valid duration (use Go syntax like 500ms, 10s, 1h30m; empty or 0: unlimited)`,
    );
    expect(failure({ ...base, [AGE]: '-5m' }).problems.map((p) => p.variable)).toEqual([AGE]);
    expect(failure({ ...base, [AGE]: '999ms' }).message).toBe(`${AGE}: must be at least 1s (or empty/0: unlimited)`);
    expect(failure({ ...base, [AGE]: '481h' }).message).toBe(`${AGE}: must be at most 480h`);
    expect(failure({ ...base, [AGE]: '10m', [GRACE]: 'soon' }).message).toBe(`${GRACE}: "soon" is not a valid duration (use Go syntax like 500ms, 10s, 1h30m)`);
    expect(failure({ ...base, [AGE]: '10m', [GRACE]: '0' }).message).toBe(`${GRACE}: must be greater than zero`);
    expect(failure({ ...base, [AGE]: '10m', [GRACE]: '481h' }).message).toBe(`${GRACE}: must be at most 480h`);
  });

  it('refuses a grace without an age, and reports both problems of a bad pair at once', () => {
    expect(failure({ ...base, [GRACE]: '30s' }).message).toBe(`${GRACE}: is set but ${AGE} is not (the grace only follows a maximum age)`);
    expect(failure({ ...base, [AGE]: '0', [GRACE]: '30s' }).problems.map((p) => p.variable)).toEqual([GRACE]);
    const both = failure({ ...base, [AGE]: 'forever', [GRACE]: 'later', GATEWAY_SHUTDOWN_TIMEOUT: 'x' });
    expect(both.problems.map((p) => p.variable)).toEqual(['GATEWAY_SHUTDOWN_TIMEOUT', AGE, GRACE]);
  });
});

import { hostname } from 'node:os';
import {
  GatewayMetrics,
  noopLogger,
  UserEventIndex,
  DEFAULT_RESUME_INDEX_MAX_BYTES,
  type EventHistory,
  type Logger,
  type SessionEventsHandler,
  type StreamEntryHandler,
  type UserFeed,
} from '@edge-gateway/core';
import type { ReconnectOptions } from './backoff.js';
import type { RedisClientOptions } from './redis-client.js';
import { createRedisClusterClient, type RedisClusterClient } from './redis-cluster-client.js';
import type { RedisCommands } from './redis-commands.js';
import { RedisEventHistory } from './redis-event-history.js';
import { RedisRateLimiter } from './redis-rate-limiter.js';
import { RedisReplayStore } from './redis-replay-store.js';
import { RedisRevocationStore } from './redis-revocation-store.js';
import { RedisRoutedFeed, type RoutedDelivery } from './redis-routed-feed.js';
import { DEFAULT_ROUTED_HISTORY_TTL_MS, RedisRoutedPublisher } from './redis-routed-publisher.js';
import { RedisSessionStore } from './redis-session-store.js';
import { connectAndPing } from './redis-startup.js';
import { RedisStreamSubscriber } from './redis-stream-subscriber.js';
import type { RedisAddress, RedisTopology } from './redis-topology.js';
import { routedUserKeys } from './routed-keys.js';
import { RedisRoutedRelay } from './routed-relay.js';
import { SentinelRedisTopology } from './sentinel-redis-topology.js';
import { SingleRedisTopology } from './single-redis-topology.js';
import { StreamContinuity } from './stream-continuity.js';

/** Where the data lives: one master (with optional fixed replicas), Sentinel discovery, or a Redis Cluster. */
export type RedisBackendTopology =
  | {
      readonly kind: 'single';
      /** `GATEWAY_REDIS_MASTER_ADDR`. */
      readonly master: RedisAddress;
      /** `GATEWAY_REDIS_REPLICA_ADDRS`: fixed replicas for the bulk reads (default none). */
      readonly replicas?: readonly RedisAddress[];
    }
  | {
      readonly kind: 'sentinel';
      /** `GATEWAY_REDIS_SENTINEL_ADDRS`, asked in order. */
      readonly sentinels: readonly RedisAddress[];
      /** `GATEWAY_REDIS_SENTINEL_MASTER_NAME`. */
      readonly masterName: string;
      /** `GATEWAY_REDIS_SENTINEL_PASSWORD` (default: Sentinels without `requirepass`). */
      readonly sentinelPassword?: string;
      /** How often the Sentinels are asked again (default 1000 ms). */
      readonly pollIntervalMs?: number;
    }
  | {
      readonly kind: 'cluster';
      /** `GATEWAY_REDIS_CLUSTER_NODES`: seed nodes; the rest is discovered. */
      readonly nodes: readonly RedisAddress[];
    };

/** How to reach Redis: the topology and the settings of every data-node connection. */
export interface RedisConnectionOptions {
  /** Where the data lives. */
  readonly topology: RedisBackendTopology;
  /** `GATEWAY_REDIS_PASSWORD` of the data nodes (default `''`: no `AUTH`); never logged. */
  readonly password?: string;
  /** `GATEWAY_REDIS_DB` (default 0; a cluster has only 0). */
  readonly db?: number;
  /** `CLIENT SETNAME` of every connection (default `edge-gateway`; blocking readers get a suffix). */
  readonly clientName?: string;
  /** `GATEWAY_REDIS_COMMAND_TIMEOUT`: bound on each command (default 2000 ms). */
  readonly commandTimeoutMs?: number;
  /** Reconnect backoff of the clients and the stream readers (default 100 ms doubling up to 5 s). */
  readonly reconnect?: ReconnectOptions;
  /** Instrumentation: the `gateway_redis_*` and stream metrics (default: on the global meter). */
  readonly metrics?: GatewayMetrics;
  /** Instrumentation: components log through `child({ component })` (default: no lines). */
  readonly logger?: Logger;
}

/**
 * The topology of `options` (`single` or `sentinel`; a cluster is one {@link RedisClusterClient}),
 * not connected yet: `connect(pingTimeoutMs)` runs the startup `PING` (SPEC §8.1 step 3). The
 * clients get `options.logger` as it is. For the CLI and tools; the gateway uses {@link createRedisBackend}.
 */
export function createRedisTopology(options: RedisConnectionOptions): RedisTopology {
  const { topology } = options;
  const settings: Omit<RedisClientOptions, 'host' | 'port'> = {
    password: options.password ?? '',
    db: options.db ?? 0,
    clientName: options.clientName ?? 'edge-gateway',
    ...(options.commandTimeoutMs !== undefined ? { commandTimeoutMs: options.commandTimeoutMs } : {}),
    ...(options.reconnect !== undefined ? { reconnect: options.reconnect } : {}),
    ...(options.metrics !== undefined ? { metrics: options.metrics } : {}),
    ...(options.logger !== undefined ? { logger: options.logger } : {}),
  };
  switch (topology.kind) {
    case 'single':
      return new SingleRedisTopology({ master: { ...settings, host: topology.master.host, port: topology.master.port }, replicas: topology.replicas ?? [] });
    case 'sentinel':
      if (topology.sentinels.length === 0) throw new RedisBackendError('invalid_options', 'topology.sentinels is empty: list at least one Sentinel');
      if (topology.masterName.trim() === '') throw new RedisBackendError('invalid_options', 'topology.masterName is empty');
      return new SentinelRedisTopology({
        sentinels: topology.sentinels,
        masterName: topology.masterName,
        sentinelPassword: topology.sentinelPassword ?? '',
        master: settings,
        ...(topology.pollIntervalMs !== undefined ? { pollIntervalMs: topology.pollIntervalMs } : {}),
      });
    case 'cluster':
      throw new RedisBackendError('invalid_options', 'createRedisTopology: a cluster has no RedisTopology; use createRedisClusterClient or createRedisBackend');
  }
}

/** Options of {@link createRedisBackend}: plain values, each default that of the gateway binary (SPEC §7). */
export interface RedisBackendOptions extends RedisConnectionOptions {
  /** `GATEWAY_REDIS_KEY_PREFIX` (default `gateway:`). */
  readonly keyPrefix?: string;
  /** `GATEWAY_SESSION_EVENTS_REDIS_STREAM` (default `gateway:session-events`); always read on the master. */
  readonly sessionEventsStream?: string;
  /** `GATEWAY_CLIENT_EVENTS_REDIS_STREAM` (default `gateway:client-events`). */
  readonly clientEventsStream?: string;
  /** `GATEWAY_REDIS_PING_TIMEOUT`: bound on the whole of {@link RedisBackend.connect}'s connect and `PING` (default 5000 ms). */
  readonly pingTimeoutMs?: number;
  /** `GATEWAY_REDIS_SESSION_READS` (single, sentinel): `replica` looks sessions up on a replica first (default `master`). */
  readonly sessionReads?: 'master' | 'replica';
  /** `GATEWAY_REDIS_CLIENT_EVENTS_READS` (single, sentinel): where the client-events `XREAD` goes (default `master`). */
  readonly clientEventsReads?: 'master' | 'replica';
  /** Replicated replay reservations (SPEC §5.2). */
  readonly replay?: {
    /**
     * `GATEWAY_REDIS_REPLAY_MIN_REPLICAS`: replicas that must confirm a reservation (`WAIT`).
     * Default 0 on a single master without replicas, else 1.
     */
    readonly minReplicas?: number;
    /** `GATEWAY_REDIS_REPLAY_WAIT_TIMEOUT` (default 50 ms). */
    readonly waitTimeoutMs?: number;
    /**
     * `GATEWAY_REDIS_REPLAY_REASSERT_WINDOW` / `_MAX_ENTRIES` (default 30 s, 100,000): the
     * reservations confirmed lately, written again on a new master after a master change.
     */
    readonly journal?: { readonly windowMs?: number; readonly maxEntries?: number };
  };
  /** `GATEWAY_PUSH_RESUME_INDEX_MAX_BYTES`: the per-user index of consumed client events (stream fan-out; default 64 MiB, 0: off). */
  readonly resumeIndexMaxBytes?: number;
  /** `GATEWAY_PUSH_FANOUT`: `stream` (default) or `routed` (cluster only, SPEC §9). */
  readonly fanout?: 'stream' | 'routed';
  /** `GATEWAY_PUSH_MAX_EVENT_BYTES` (default 1 MiB): routed messages and relayed entries are bounded by it. */
  readonly maxEventBytes?: number;
  /** Routed fan-out (`fanout: 'routed'`). */
  readonly routed?: {
    /** `GATEWAY_PUSH_ROUTED_HISTORY_MAXLEN` (default 1000). */
    readonly historyMaxLen?: number;
    /** `GATEWAY_PUSH_ROUTED_HISTORY_TTL` (default 24 h). */
    readonly historyTtlMs?: number;
    /** `GATEWAY_PUSH_ROUTED_RELAY`: relay the client-events stream into the routed path (default false). */
    readonly relay?: boolean;
    /** `GATEWAY_PUSH_ROUTED_RELAY_CLAIM_IDLE` (default 30 s). */
    readonly relayClaimIdleMs?: number;
    /** This process's relay consumer name (default `<hostname>:<pid>`). */
    readonly relayConsumer?: string;
  };
  /**
   * Called by {@link RedisBackend.connect} with the replicas a discovered topology has (Sentinel:
   * every replica its Sentinels list; Cluster: the master with the fewest, only when
   * `replay.minReplicas` > 0); throw to refuse the start. Default: a {@link RedisBackendError}
   * `too_few_replicas` when `replay.minReplicas` asks for more.
   */
  readonly checkReplicas?: (found: ReplicaCount) => void;
}

/** The replicas a discovered topology has, for {@link RedisBackendOptions.checkReplicas}. */
export interface ReplicaCount {
  /** Replicas found. */
  readonly replicas: number;
  /** What was counted, for a message (e.g. `master "mymaster" (as its Sentinels list its replicas)`). */
  readonly where: string;
  /** The `replay.minReplicas` in force. */
  readonly minReplicas: number;
}

/** Why {@link createRedisBackend} or {@link RedisBackend.connect} refused. */
export type RedisBackendErrorCode = 'invalid_options' | 'too_few_replicas';

/** Bad options, or a topology that cannot confirm reservations as asked. */
export class RedisBackendError extends Error {
  /** Always `RedisBackendError`. */
  override readonly name = 'RedisBackendError';

  constructor(
    /** Why: `invalid_options` or `too_few_replicas`. */
    readonly code: RedisBackendErrorCode,
    message: string,
  ) {
    super(message);
  }
}

/** The core's stream handlers the backend feeds (`GatewayCore.sessionEvents` and `.clientEvents`). */
export interface RedisBackendHandlers {
  /** The session-events handler; on a cluster master change its remembered revocations are written back. */
  readonly sessionEvents: StreamEntryHandler & Pick<SessionEventsHandler, 'reassertRevocations'>;
  /** The client-events handler; routed fan-out delivers through `handleBatch` and `discontinuity`. */
  readonly clientEvents: StreamEntryHandler & RoutedDelivery;
}

/** An event source: `start()` once, `close()` (idempotent) to stop. */
export interface RedisEventSource {
  /** Resolves where reading starts and starts reading in the background; rejects if Redis cannot answer. */
  start(): Promise<void>;
  /** Stops reading (a pending blocking read is interrupted). */
  close(): Promise<void>;
}

/** The two event sources, fed into the core's handlers. */
export interface RedisEventSources {
  /** The session-events stream, read on the master (revocation latency, SPEC §5.6). */
  readonly sessionEvents: RedisEventSource;
  /** The client-events stream (`fanout: 'stream'`), or the routed feed and its optional relay (`'routed'`). */
  readonly clientEvents: RedisEventSource;
}

/** The ports `createGatewayCore` takes from Redis. */
export interface RedisBackendPorts {
  /** Session records (SPEC §5.1); with `sessionReads: 'replica'` looked up on a replica first. */
  readonly sessions: RedisSessionStore;
  /** Replay reservations (SPEC §5.2), with the journal written again after a master change. */
  readonly replay: RedisReplayStore;
  /** Writes back revocations a failover lost (SPEC §5.3). */
  readonly revocations: RedisRevocationStore;
  /** Client-event history for resumes: the stream (sharing the reader's continuity) or each user's routed history. */
  readonly history: EventHistory;
  /** Routed fan-out only: the per-user feed the hub drives. */
  readonly feed?: UserFeed;
}

/** What {@link createRedisBackend} built. */
export interface RedisBackend extends AsyncDisposable {
  /** The topology's kind. */
  readonly kind: 'single' | 'sentinel' | 'cluster';
  /** How client events arrive: the client-events stream, or routed per user (cluster). */
  readonly fanout: 'stream' | 'routed';
  /** Spread into `createGatewayCore({ ...redis.ports, signer, … })`. */
  readonly ports: RedisBackendPorts;
  /** The fleet-wide rate limiter (`GATEWAY_RATE_LIMIT_STORE=redis`); pass it as the core's `rateLimiter` to use it. */
  readonly rateLimiter: RedisRateLimiter;
  /** Single and Sentinel: the topology (master, replicas, `describe`); undefined on a cluster. */
  readonly topology: RedisTopology | undefined;
  /** Cluster: the cluster client; undefined otherwise. */
  readonly cluster: RedisClusterClient | undefined;
  /** The client writes go to: the topology's master client, or the cluster client. */
  readonly client: RedisCommands;
  /** Routed fan-out: the publisher (its function is loaded by `connect`). */
  readonly publisher: RedisRoutedPublisher | undefined;
  /** Options with their defaults applied. */
  readonly settings: RedisBackendSettings;
  /**
   * Startup step 3 (SPEC §8.1): connects and `PING`s (bounded by `pingTimeoutMs`), checks the
   * replicas of a discovered topology ({@link RedisBackendOptions.checkReplicas}), follows master
   * changes (the replay journal is written again, and on a cluster the remembered revocations),
   * and loads the routed publish function. On failure every connection is closed again.
   */
  connect(): Promise<void>;
  /**
   * The event sources, feeding `handlers` (the core: `redis.eventSources(core)`). The core needs
   * the ports and the sources need the core, so they are made here, once; not started.
   */
  eventSources(handlers: RedisBackendHandlers): RedisEventSources;
  /** Closes the event sources (if made), the replay store's connections and every client. Idempotent. */
  close(): Promise<void>;
}

/** {@link RedisBackendOptions} with defaults applied. */
export interface RedisBackendSettings {
  /** The key prefix (`keyPrefix`, default `gateway:`). */
  readonly keyPrefix: string;
  /** The session-events stream key. */
  readonly sessionEventsStream: string;
  /** The client-events stream key. */
  readonly clientEventsStream: string;
  /** Bound on `connect()`'s connect and `PING`, in ms. */
  readonly pingTimeoutMs: number;
  /** Where session lookups go first. */
  readonly sessionReads: 'master' | 'replica';
  /** Where the client-events `XREAD` goes (single, Sentinel). */
  readonly clientEventsReads: 'master' | 'replica';
  /** The `replay.minReplicas` in force (its default depends on the topology). */
  readonly minReplicas: number;
}

/**
 * Builds everything the core needs from Redis (SPEC §5, §9) for one topology: the session,
 * replay (with its reservation journal), revocation and rate-limiter stores, the client-event
 * history, and (through {@link RedisBackend.eventSources}) the session-events reader on the
 * master and the client-events reader sharing what it knows of the history with the history
 * reads (`StreamContinuity`), or the routed feed. Nothing connects before
 * {@link RedisBackend.connect}.
 *
 * ```ts
 * await using redis = createRedisBackend({ topology: { kind: 'sentinel', sentinels, masterName: 'mymaster' }, password });
 * await redis.connect();
 * const core = createGatewayCore({ ...redis.ports, signer });
 * const sources = redis.eventSources(core);
 * await sources.sessionEvents.start();
 * await sources.clientEvents.start();
 * ```
 */
/**
 * The defaults of {@link RedisBackendOptions} that are plain values: the key prefix, the two
 * stream names and the startup PING bound (the binary's `GATEWAY_REDIS_KEY_PREFIX`,
 * `GATEWAY_SESSION_EVENTS_REDIS_STREAM`, `GATEWAY_CLIENT_EVENTS_REDIS_STREAM` and
 * `GATEWAY_REDIS_PING_TIMEOUT` default to them).
 */
export const REDIS_BACKEND_DEFAULTS = {
  keyPrefix: 'gateway:',
  sessionEventsStream: 'gateway:session-events',
  clientEventsStream: 'gateway:client-events',
  pingTimeoutMs: 5000,
} as const;

export function createRedisBackend(options: RedisBackendOptions): RedisBackend {
  const { topology: where } = options;
  const fanout = options.fanout ?? 'stream';
  if (fanout !== 'stream' && fanout !== 'routed') throw new RedisBackendError('invalid_options', `fanout "${String(fanout)}" is not one of stream, routed`);
  if (fanout === 'routed' && where.kind !== 'cluster') throw new RedisBackendError('invalid_options', 'fanout "routed" requires a cluster topology');
  if (where.kind === 'cluster' && where.nodes.length === 0) throw new RedisBackendError('invalid_options', 'topology.nodes is empty: list at least one cluster node');
  const keyPrefix = options.keyPrefix ?? REDIS_BACKEND_DEFAULTS.keyPrefix;
  if (fanout === 'routed' && keyPrefix.includes('{')) throw new RedisBackendError('invalid_options', 'keyPrefix must not contain { with fanout "routed" (the partition hash tag must be the first of every key)');
  const fixedReplicas = where.kind === 'single' ? (where.replicas ?? []).length : undefined;
  const minReplicas = options.replay?.minReplicas ?? (fixedReplicas === 0 ? 0 : 1);
  if (fixedReplicas !== undefined && minReplicas > fixedReplicas) {
    throw new RedisBackendError('too_few_replicas', `replay.minReplicas ${minReplicas} asks for more replicas than topology.replicas lists (${fixedReplicas})`);
  }
  const settings: RedisBackendSettings = {
    keyPrefix,
    sessionEventsStream: options.sessionEventsStream ?? REDIS_BACKEND_DEFAULTS.sessionEventsStream,
    clientEventsStream: options.clientEventsStream ?? REDIS_BACKEND_DEFAULTS.clientEventsStream,
    pingTimeoutMs: options.pingTimeoutMs ?? REDIS_BACKEND_DEFAULTS.pingTimeoutMs,
    sessionReads: options.sessionReads ?? 'master',
    clientEventsReads: options.clientEventsReads ?? 'master',
    minReplicas,
  };
  if (settings.sessionEventsStream === settings.clientEventsStream) throw new RedisBackendError('invalid_options', 'clientEventsStream must differ from sessionEventsStream');
  const metrics = options.metrics ?? new GatewayMetrics();
  const logger = options.logger ?? noopLogger;
  const log = (component: string): Logger => logger.child({ component });
  const reconnect = options.reconnect === undefined ? {} : { reconnect: options.reconnect };
  const maxEventBytes = options.maxEventBytes ?? 1_048_576;
  const checkReplicas =
    options.checkReplicas ??
    ((found: ReplicaCount): void => {
      if (found.minReplicas > found.replicas) {
        throw new RedisBackendError('too_few_replicas', `replay.minReplicas ${found.minReplicas} asks for more replicas than ${found.where} has (${found.replicas}); add replicas, or lower it and accept that a failover may lose reservations (SPEC §5.2)`);
      }
    });

  const topology = where.kind === 'cluster' ? undefined : createRedisTopology({ ...options, clientName: options.clientName ?? 'edge-gateway', metrics, logger: log('redis') });
  const cluster =
    where.kind === 'cluster'
      ? createRedisClusterClient({
          nodes: where.nodes,
          password: options.password ?? '',
          clientName: options.clientName ?? 'edge-gateway',
          ...(options.commandTimeoutMs !== undefined ? { commandTimeoutMs: options.commandTimeoutMs } : {}),
          ...reconnect,
          metrics,
          logger: log('redis'),
        })
      : undefined;
  const client: RedisCommands = topology?.master ?? (cluster as RedisClusterClient);
  // Replicas for session lookups: single and Sentinel only (a cluster client reads its masters).
  const sessions = new RedisSessionStore(client, {
    keyPrefix,
    ...(topology !== undefined && settings.sessionReads === 'replica' ? { replicas: () => topology.replicas() } : {}),
  });
  const replay = new RedisReplayStore(client, {
    keyPrefix,
    minReplicas,
    ...(options.replay?.waitTimeoutMs !== undefined ? { waitTimeoutMs: options.replay.waitTimeoutMs } : {}),
    ...(options.replay?.journal !== undefined ? { journal: options.replay.journal } : {}),
    metrics,
    logger: log('replay-store'),
  });
  // Reservation and buckets of a user in one script, through the replay store's write path
  // (WAIT when replicas are required); on a cluster in the slot of the user's partition tag.
  const rateLimiter = new RedisRateLimiter(client, { keyPrefix, ...(cluster !== undefined ? { cluster: true } : {}), reservations: replay });
  const revocations = new RedisRevocationStore(client, { keyPrefix, streamKey: settings.sessionEventsStream });

  // The core's handlers, known once `eventSources(core)` was called (the routed feed is a port
  // of the core and delivers into it).
  let handlers: RedisBackendHandlers | undefined;
  const bound = (): RedisBackendHandlers => {
    if (handlers === undefined) throw new Error('createRedisBackend: eventSources(core) was not called yet');
    return handlers;
  };

  let history: EventHistory;
  let continuity: StreamContinuity | undefined;
  let publisher: RedisRoutedPublisher | undefined;
  let feed: RedisRoutedFeed | undefined;
  if (fanout === 'routed' && cluster !== undefined) {
    const routed = options.routed ?? {};
    publisher = new RedisRoutedPublisher(cluster, {
      keyPrefix,
      ...(routed.historyMaxLen !== undefined ? { historyMaxLen: routed.historyMaxLen } : {}),
      historyTtlMs: routed.historyTtlMs ?? DEFAULT_ROUTED_HISTORY_TTL_MS,
      maxEventBytes,
    });
    const delivery: RoutedDelivery = {
      handleBatch: async (entries) => bound().clientEvents.handleBatch(entries),
      discontinuity: (userId) => bound().clientEvents.discontinuity(userId),
    };
    feed = new RedisRoutedFeed({
      client: cluster,
      keyPrefix,
      // base64 of the largest payload plus the other fields.
      maxMessageBytes: Math.ceil(maxEventBytes / 3) * 4 + 4096,
      delivery,
      metrics,
      logger: log('routed-feed'),
    });
    history = new RedisEventHistory(cluster, { streamKey: (userId) => routedUserKeys(keyPrefix, userId).history });
  } else {
    // What the client-events reader and the resume reads know of the history across failovers:
    // entries consumed and read ahead (with their users), lost ranges (SPEC §5.6); and the
    // per-user index of consumed entries that answers resumes (SPEC §8.3).
    continuity = new StreamContinuity({ index: new UserEventIndex(options.resumeIndexMaxBytes ?? DEFAULT_RESUME_INDEX_MAX_BYTES) });
    history = new RedisEventHistory(client, { streamKey: settings.clientEventsStream, continuity, verifyWaitMs: client.commandTimeoutMs, metrics });
  }

  let sources: RedisEventSources | undefined;
  const makeSources = (core: RedisBackendHandlers): RedisEventSources => {
    // The session-events reader stays on the master (revocation latency); on a cluster, on the
    // master holding the stream.
    const sessionEvents = new RedisStreamSubscriber({
      ...(topology !== undefined ? { topology, readFrom: 'master' as const } : { client }),
      streamKey: settings.sessionEventsStream,
      handler: core.sessionEvents,
      ...reconnect,
      metrics,
      logger: log('session-events-subscriber'),
    });
    if (feed === undefined) {
      const clientEvents = new RedisStreamSubscriber({
        ...(topology !== undefined ? { topology, readFrom: settings.clientEventsReads } : { client }),
        ...(continuity !== undefined ? { continuity } : {}),
        streamKey: settings.clientEventsStream,
        handler: core.clientEvents,
        ...reconnect,
        metrics,
        logger: log('client-events-subscriber'),
      });
      return { sessionEvents, clientEvents };
    }
    const routedFeed = feed;
    const routed = options.routed ?? {};
    const relay =
      routed.relay === true && cluster !== undefined && publisher !== undefined
        ? new RedisRoutedRelay({
            client: cluster,
            streamKey: settings.clientEventsStream,
            // One consumer group shared by every gateway process: each entry is relayed once.
            group: `${keyPrefix}routed-relay`,
            consumer: routed.relayConsumer ?? `${hostname()}:${process.pid}`,
            publisher,
            maxEventBytes,
            historyTtlMs: routed.historyTtlMs ?? DEFAULT_ROUTED_HISTORY_TTL_MS,
            ...(routed.relayClaimIdleMs !== undefined ? { claimIdleMs: routed.relayClaimIdleMs } : {}),
            ...reconnect,
            metrics,
            logger: log('routed-relay'),
          })
        : undefined;
    return {
      sessionEvents,
      clientEvents: {
        start: async () => {
          routedFeed.start();
          await relay?.start();
        },
        close: async () => {
          await relay?.close();
          await routedFeed.close();
        },
      },
    };
  };

  let unwatch: (() => void) | undefined;
  let closing: Promise<void> | undefined;
  const closeClients = async (): Promise<void> => {
    unwatch?.();
    unwatch = undefined;
    replay.close();
    if (topology !== undefined) await topology.close();
    else await cluster?.close();
  };

  const backend: RedisBackend = {
    kind: where.kind,
    fanout,
    ports: { sessions, replay, revocations, history, ...(feed !== undefined ? { feed } : {}) },
    rateLimiter,
    topology,
    cluster,
    client,
    publisher,
    settings,
    async connect() {
      try {
        if (topology !== undefined) {
          await topology.connect(settings.pingTimeoutMs);
          // A failover can lose reservations a replica confirmed (SPEC §5.2): the ones this
          // process confirmed lately are written again on the new master. (A single master never moves.)
          unwatch = topology.onMasterChange(() => void replay.reassertRecent('redis master changed'));
          // Sentinel: the replicas its Sentinels list (fixed addresses were checked at creation).
          if (topology.kind === 'sentinel' && where.kind === 'sentinel') {
            checkReplicas({ replicas: topology.knownReplicas(), where: `master "${where.masterName}" (as its Sentinels list its replicas)`, minReplicas });
          }
        } else if (cluster !== undefined) {
          await connectAndPing(cluster, settings.pingTimeoutMs);
          // Every master must be able to confirm a reservation: the one with the fewest replicas decides.
          if (minReplicas > 0) {
            const masters = await cluster.replicasPerMaster();
            const fewest = masters.reduce<{ address: string; replicas: number } | undefined>((a, b) => (a === undefined || b.replicas < a.replicas ? b : a), undefined);
            if (fewest !== undefined) checkReplicas({ replicas: fewest.replicas, where: `cluster master ${fewest.address}`, minReplicas });
          }
          // Session records live on every master: after any failover in the cluster, the
          // revocations this process remembers are checked on the record's master (SPEC §5.3).
          // The replay reservations this process confirmed lately are written again the same way (SPEC §5.2).
          unwatch = cluster.onMasterChange(() => {
            handlers?.sessionEvents.reassertRevocations('cluster master changed');
            void replay.reassertRecent('cluster master changed');
          });
          // Routed mode: the publish function on every master before anyone relays or publishes.
          await publisher?.loadFunction();
        }
      } catch (error) {
        await closeClients().catch(() => undefined);
        throw error;
      }
    },
    eventSources(core) {
      if (sources !== undefined) {
        if (core !== handlers) throw new Error('createRedisBackend: eventSources was already called with other handlers');
        return sources;
      }
      handlers = core;
      sources = makeSources(core);
      return sources;
    },
    close() {
      closing ??= (async () => {
        if (sources !== undefined) await Promise.all([sources.sessionEvents.close(), sources.clientEvents.close()]);
        await closeClients();
      })();
      return closing;
    },
    async [Symbol.asyncDispose]() {
      await backend.close();
    },
  };
  return backend;
}


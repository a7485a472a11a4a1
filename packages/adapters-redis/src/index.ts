/**
 * node-redis adapters of edge-gateway. Start with `createRedisBackend(options)`: everything the
 * core needs from Redis for one master (with optional replicas), Sentinel or a Cluster. The
 * building blocks it wires (topologies, clients, stores, stream readers, history, routed fan-out)
 * are exported for embedders that need them (SPEC §5, §8.1 step 3, §9).
 */
export { backoffDelay, type ReconnectOptions } from './backoff.js';
export {
  RedisClient,
  createRedisClient,
  DEFAULT_COMMAND_TIMEOUT_MS,
  describeRedisError,
  isErrorReply,
  isUnreachableError,
  type NodeRedisClient,
  type RawReply,
  type RedisClientOptions,
  type RedisCommandOptions,
} from './redis-client.js';
export { RedisCommandError } from './redis-command-error.js';
export type { RedisCommands } from './redis-commands.js';
export {
  RedisClusterClient,
  createRedisClusterClient,
  type NodeRedisCluster,
  type RedisClusterClientOptions,
} from './redis-cluster-client.js';
export { CLUSTER_SLOTS, crc16, keySlot } from './cluster-slot.js';
export { RedisStartupError, connectAndPing, type PingableRedis, type RedisStartupErrorKind } from './redis-startup.js';
export { RedisSessionStore, type RedisSessionStoreOptions } from './redis-session-store.js';
export { RATE_LIMIT_SCRIPT, RATE_LIMIT_SCRIPT_SHA, RedisRateLimiter, type RedisRateLimiterOptions, type ReservationWrites } from './redis-rate-limiter.js';
export { RedisRevocationStore, type RedisRevocationStoreOptions } from './redis-revocation-store.js';
export { DEFAULT_REPLAY_WAIT_TIMEOUT_MS, RedisReplayStore, type RedisReplayStoreOptions } from './redis-replay-store.js';
export { DEFAULT_REPLAY_JOURNAL_MAX_ENTRIES, DEFAULT_REPLAY_JOURNAL_WINDOW_MS, ReservationJournal, type JournaledReservation } from './reservation-journal.js';
export {
  DEFAULT_WAIT_CONNECTIONS,
  type ReplicatedReply,
  type ReplicatedWriter,
  type ReplicatedWriterOptions,
} from './replicated-writes.js';
export { RedisStreamSubscriber, type RedisStreamSubscriberOptions } from './redis-stream-subscriber.js';
export { RedisEventHistory, type RedisEventHistoryOptions } from './redis-event-history.js';
export { DivergedRanges, type DivergedRange } from './diverged-ranges.js';
export { RecentEntries } from './recent-entries.js';
export {
  DEFAULT_AHEAD_CAPACITY,
  DEFAULT_CONSUMED_CAPACITY,
  DEFAULT_INDEX_BACKFILL,
  INDEX_BACKFILL_PAGE,
  StreamContinuity,
  type StreamContinuityOptions,
} from './stream-continuity.js';
export { formatAddress, type RedisAddress, type RedisTopology, type RedisTopologyNode } from './redis-topology.js';
export { SingleRedisTopology, type SingleRedisTopologyOptions } from './single-redis-topology.js';
export { SentinelRedisTopology, type SentinelRedisTopologyOptions } from './sentinel-redis-topology.js';
export {
  ROUTED_PARTITIONS,
  partitionSlot,
  partitionTag,
  routedUserKeys,
  userPartition,
  type RoutedUserKeys,
} from './routed-keys.js';
export {
  ROUTED_FUNCTION_LIBRARY,
  ROUTED_FUNCTION_SOURCE,
  ROUTED_MAX_EVENT_BYTES_LIMIT,
  ROUTED_MAX_INTEGER_ARGUMENT,
  ROUTED_PUBLISH_ARGUMENTS,
  ROUTED_PUBLISH_FUNCTION,
  ROUTED_PUBLISH_FUNCTION_V1,
  isRoutedPublishRefusal,
} from './routed-publish-function.js';
export {
  DEFAULT_ROUTED_HISTORY_MAXLEN,
  DEFAULT_ROUTED_HISTORY_TTL_MS,
  RedisRoutedPublisher,
  RoutedEventError,
  type RedisRoutedPublisherOptions,
  type RoutedEvent,
  type RoutedPublishResult,
} from './redis-routed-publisher.js';
export { RedisRoutedFeed, type RedisRoutedFeedOptions, type RoutedDelivery } from './redis-routed-feed.js';
export { RedisUserHistory } from './redis-user-history.js';
export { DEFAULT_ROUTED_RELAY_CLAIM_IDLE_MS, RedisRoutedRelay, type RedisRoutedRelayOptions } from './routed-relay.js';
export {
  REDIS_BACKEND_DEFAULTS,
  RedisBackendError,
  createRedisBackend,
  createRedisTopology,
  type RedisBackend,
  type RedisBackendErrorCode,
  type RedisBackendHandlers,
  type RedisBackendOptions,
  type RedisBackendPorts,
  type RedisBackendSettings,
  type RedisBackendTopology,
  type RedisConnectionOptions,
  type RedisEventSource,
  type RedisEventSources,
  type ReplicaCount,
} from './redis-backend.js';

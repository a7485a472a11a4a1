/**
 * node-redis adapters of edge-gateway: the topology (one master with optional replicas, or
 * Sentinel), the shared instrumented client, the session and replay stores, the stream
 * subscribers and the client-event history (SPEC §5, §8.1 step 3).
 */
export { backoffDelay, type ReconnectOptions } from './backoff.js';
export {
  RedisClient,
  createRedisClient,
  describeRedisError,
  isUnreachableError,
  type NodeRedisClient,
  type RawReply,
  type RedisClientOptions,
  type RedisCommandOptions,
} from './redis-client.js';
export { RedisCommandError } from './redis-command-error.js';
export { RedisStartupError, connectAndPing, type RedisStartupErrorKind } from './redis-startup.js';
export { RedisSessionStore, type RedisSessionStoreOptions } from './redis-session-store.js';
export { RedisReplayStore, type RedisReplayStoreOptions } from './redis-replay-store.js';
export { RedisStreamSubscriber, type RedisStreamSubscriberOptions } from './redis-stream-subscriber.js';
export { RedisEventHistory, type RedisEventHistoryOptions } from './redis-event-history.js';
export { redisInstrumentation } from './redis-instrumentation.js';
export { DivergedRanges, type DivergedRange } from './diverged-ranges.js';
export { formatAddress, type RedisAddress, type RedisTopology, type RedisTopologyNode } from './redis-topology.js';
export { SingleRedisTopology, type SingleRedisTopologyOptions } from './single-redis-topology.js';
export { SentinelRedisTopology, type SentinelRedisTopologyOptions } from './sentinel-redis-topology.js';

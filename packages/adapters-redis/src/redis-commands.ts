import type { NodeRedisClient, RawReply, RedisCommandOptions } from './redis-client.js';
import type { ReplicatedWriter, ReplicatedWriterOptions } from './replicated-writes.js';

/**
 * What the stores, the history and the stream subscribers need from Redis, whatever its
 * topology: one server ({@link RedisClient}) or a cluster ({@link RedisClusterClient}), which
 * routes each command to the master serving its key.
 */
export interface RedisCommands {
  /** Where it connects (`host:port`, or the seed list of a cluster), for logs and messages. */
  readonly address: string;
  /** Bound on each request-path command (`GATEWAY_REDIS_COMMAND_TIMEOUT`). */
  readonly commandTimeoutMs: number;
  /** Sends one command (`args[0]` is its name), bounded, measured; rejects with `RedisCommandError`. */
  command(args: readonly string[], options?: RedisCommandOptions): Promise<RawReply>;
  /**
   * A new, unconnected connection to the server holding `key`, which never reconnects by
   * itself: blocking reads (`XREAD BLOCK`) run there, so they never stall the shared client.
   */
  blockingConnection(key: string): Promise<NodeRedisClient>;
  /**
   * Writes confirmed by `WAIT` on replicas (SPEC §5.2), on dedicated connections of the master
   * holding each key, so a `WAIT` never blocks the shared client. Closed with the client.
   */
  replicatedWriter(options: ReplicatedWriterOptions): ReplicatedWriter;
}

import {
  RedisRoutedPublisher,
  connectAndPing,
  createRedisClusterClient,
  routedUserKeys,
  type RoutedEvent,
  type RoutedPublishResult,
} from '@edge-gateway/adapters-redis';

/** Options of {@link createPublisher}. */
export interface PublisherOptions {
  /** Seed nodes: `host:port,host:port` (as `GATEWAY_REDIS_CLUSTER_NODES`) or a list. */
  readonly nodes: string | ReadonlyArray<{ host: string; port: number }>;
  /** `requirepass` of the cluster nodes (`GATEWAY_REDIS_PASSWORD`). */
  readonly password: string;
  /** The gateways' `GATEWAY_REDIS_KEY_PREFIX` (default `gateway:`). */
  readonly keyPrefix?: string;
  /** History entries kept per user (default 1000). */
  readonly historyMaxLen?: number;
  /** A user's history and offset expire this long after their last event (default 24 h). */
  readonly historyTtlMs?: number;
  /**
   * The gateways' `GATEWAY_PUSH_MAX_EVENT_BYTES` (default 1 MiB, at most 16 MiB): a larger payload
   * is refused before sending, and the publish function refuses it too.
   */
  readonly maxEventBytes?: number;
  /**
   * Publish with a durable acknowledgement (SPEC §9.2): after each event's `FCALL`, a
   * `WAIT 1 <durableTimeoutMs>` on the same connection (the master of the user's partition).
   * `publish` then resolves only once at least one replica holds the event (`replicas` in the
   * result), and rejects with {@link NotReplicatedError} when none acknowledged it in time: the
   * event is on the master only, and a failover now would lose it. Default false.
   */
  readonly durable?: boolean;
  /** How long a durable publish waits for a replica (default 1000 ms, at most 60000). */
  readonly durableTimeoutMs?: number;
  /** Bound on each Redis command (default 2000 ms). */
  readonly commandTimeoutMs?: number;
  /** Bound on connecting and the first `PING` (default 5000 ms). */
  readonly connectTimeoutMs?: number;
}

/** Where a published event landed; with `durable`, how many replicas acknowledged it. */
export interface PublishResult extends RoutedPublishResult {
  /** `durable` only: the replicas that acknowledged the event (`WAIT`), at least 1. */
  readonly replicas?: number;
}

/**
 * A durable publish (`durable: true`) that no replica acknowledged within `durableTimeoutMs`.
 * The event **was** published (`result`): gateways may deliver it, but it is on the master
 * only, so a failover before it reaches a replica loses it (SPEC §5.6). Publishing it again
 * adds a second event with another id.
 */
export class NotReplicatedError extends Error {
  override readonly name = 'NotReplicatedError';
  readonly code = 'not_replicated';
  constructor(
    /** The published event's id, offset and epoch. */
    readonly result: RoutedPublishResult,
    /** How long it waited. */
    readonly timeoutMs: number,
  ) {
    super(`event ${result.id} was published but no replica acknowledged it within ${timeoutMs}ms (a failover now would lose it)`);
  }
}

/** A connected publisher. */
export interface Publisher {
  /**
   * Publishes one event. Rejects with `RoutedEventError` (nothing published) when the gateway
   * would drop the event as malformed or the publish function refused it, or with a Redis error (the event may or may not have been
   * published; a retry may deliver it twice, with two ids). With `durable`, resolves once a
   * replica acknowledged it and rejects with {@link NotReplicatedError} when none did in time.
   */
  publish(event: RoutedEvent): Promise<PublishResult>;
  /** Closes the connections after pending commands. */
  close(): Promise<void>;
  /** `await using publisher = await createPublisher(…)`: {@link Publisher.close} at scope exit. */
  [Symbol.asyncDispose](): Promise<void>;
}

function parseNodes(nodes: PublisherOptions['nodes']): Array<{ host: string; port: number }> {
  if (typeof nodes !== 'string') return [...nodes];
  return nodes
    .split(',')
    .map((part) => part.trim())
    .filter((part) => part !== '')
    .map((part) => {
      const at = part.lastIndexOf(':');
      const port = Number(part.slice(at + 1));
      if (at <= 0 || !Number.isInteger(port) || port < 1 || port > 65535) throw new RangeError(`"${part}" is not host:port`);
      return { host: part.slice(0, at).replace(/^\[(.*)\]$/, '$1'), port };
    });
}

/** Default of `durableTimeoutMs`. */
export const DEFAULT_DURABLE_TIMEOUT_MS = 1000;
const MAX_DURABLE_TIMEOUT_MS = 60_000;

/** A publisher that is not connected yet; `connect()` connects it and loads the function. */
export function createPublisher(options: PublisherOptions): Publisher & { connect(): Promise<void> } {
  const durableTimeoutMs = options.durableTimeoutMs ?? DEFAULT_DURABLE_TIMEOUT_MS;
  if (!Number.isSafeInteger(durableTimeoutMs) || durableTimeoutMs < 1 || durableTimeoutMs > MAX_DURABLE_TIMEOUT_MS) {
    throw new RangeError(`durableTimeoutMs must be an integer from 1 to ${MAX_DURABLE_TIMEOUT_MS}`);
  }
  const keyPrefix = options.keyPrefix ?? 'gateway:';
  const client = createRedisClusterClient({
    nodes: parseNodes(options.nodes),
    password: options.password,
    clientName: 'edge-gateway-publisher',
    ...(options.commandTimeoutMs === undefined ? {} : { commandTimeoutMs: options.commandTimeoutMs }),
  });
  const routed = new RedisRoutedPublisher(client, {
    ...(options.keyPrefix === undefined ? {} : { keyPrefix: options.keyPrefix }),
    ...(options.historyMaxLen === undefined ? {} : { historyMaxLen: options.historyMaxLen }),
    ...(options.historyTtlMs === undefined ? {} : { historyTtlMs: options.historyTtlMs }),
    ...(options.maxEventBytes === undefined ? {} : { maxEventBytes: options.maxEventBytes }),
  });
  return {
    async connect(): Promise<void> {
      await connectAndPing(client, options.connectTimeoutMs ?? 5000);
      await routed.loadFunction();
    },
    async publish(event: RoutedEvent): Promise<PublishResult> {
      const result = await routed.publish(event);
      if (options.durable !== true) return result;
      // The connection of the FCALL (the master of the user's partition): WAIT covers its writes.
      const replicas = Number(
        await client.command(['WAIT', '1', String(durableTimeoutMs)], {
          key: routedUserKeys(keyPrefix, event.userId).history,
          timeoutMs: durableTimeoutMs + client.commandTimeoutMs,
        }),
      );
      if (!(replicas >= 1)) throw new NotReplicatedError(result, durableTimeoutMs);
      return { ...result, replicas };
    },
    close: () => client.close(),
    [Symbol.asyncDispose]: () => client.close(),
  };
}

/** Creates a publisher, connects it to the cluster and loads the publish function on every master. */
export async function connectPublisher(options: PublisherOptions): Promise<Publisher> {
  const publisher = createPublisher(options);
  await publisher.connect();
  return publisher;
}

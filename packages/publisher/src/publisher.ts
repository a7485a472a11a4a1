import {
  RedisRoutedPublisher,
  connectAndPing,
  createRedisClusterClient,
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
  /** Bound on each Redis command (default 2000 ms). */
  readonly commandTimeoutMs?: number;
  /** Bound on connecting and the first `PING` (default 5000 ms). */
  readonly connectTimeoutMs?: number;
}

/** A connected publisher. */
export interface Publisher {
  /**
   * Publishes one event. Rejects with `RoutedEventError` (nothing published) when the gateway
   * would drop the event as malformed or the publish function refused it, or with a Redis error (the event may or may not have been
   * published; a retry may deliver it twice, with two ids).
   */
  publish(event: RoutedEvent): Promise<RoutedPublishResult>;
  /** Closes the connections after pending commands. */
  close(): Promise<void>;
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

/** A publisher that is not connected yet; `connect()` connects it and loads the function. */
export function createPublisher(options: PublisherOptions): Publisher & { connect(): Promise<void> } {
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
    publish: (event) => routed.publish(event),
    close: () => client.close(),
  };
}

/** Creates a publisher, connects it to the cluster and loads the publish function on every master. */
export async function connectPublisher(options: PublisherOptions): Promise<Publisher> {
  const publisher = createPublisher(options);
  await publisher.connect();
  return publisher;
}

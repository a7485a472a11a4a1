/**
 * Publisher API of edge-gateway's routed fan-out (SPEC §9.2), for business services: connect to
 * the Redis Cluster the gateways use, then `publish` one push event per call. Each event is
 * one `FCALL edgegateway_publish_v2` on the master of the user's partition: appended to the
 * user's bounded history, offset advanced, published on the user's sharded channel.
 *
 * ```ts
 * const publisher = await connectPublisher({ nodes: 'redis-1:6379,redis-2:6379', password });
 * await publisher.publish({ userId: 'u-42', eventType: 'chat.message_created', payload });
 * await publisher.close();
 * ```
 */
export {
  DEFAULT_DURABLE_TIMEOUT_MS,
  NotReplicatedError,
  createPublisher,
  connectPublisher,
  type Publisher,
  type PublisherOptions,
  type PublishResult,
} from './publisher.js';
export { RoutedEventError, type RoutedEvent, type RoutedPublishResult } from '@edge-gateway/adapters-redis';

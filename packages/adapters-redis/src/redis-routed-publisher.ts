import { DEFAULT_PUSH_MAX_EVENT_BYTES, isValidId, parseClientEvent } from '@edge-gateway/core';
import type { RedisClusterClient } from './redis-cluster-client.js';
import { RedisCommandError } from './redis-command-error.js';
import { routedUserKeys } from './routed-keys.js';
import {
  ROUTED_FUNCTION_SOURCE,
  ROUTED_MAX_EVENT_BYTES_LIMIT,
  ROUTED_MAX_INTEGER_ARGUMENT,
  ROUTED_PUBLISH_FUNCTION,
  isRoutedPublishRefusal,
} from './routed-publish-function.js';

/** One push event to publish (SPEC §5.4 fields). */
export interface RoutedEvent {
  readonly userId: string;
  /** Only this session's streams get it; empty or absent: every stream of the user. */
  readonly deviceSessionId?: string;
  readonly eventType: string;
  readonly payload: Uint8Array;
}

/** Where a published event landed. */
export interface RoutedPublishResult {
  /** Its id in the user's history stream: the `event_id` clients see and resume after. */
  readonly id: string;
  /** Position in the user's history (1, 2, … within one epoch). */
  readonly offset: number;
  readonly epoch: string;
}

/** Options of {@link RedisRoutedPublisher}. */
export interface RedisRoutedPublisherOptions {
  /** `GATEWAY_REDIS_KEY_PREFIX` of the gateways (default `gateway:`). */
  readonly keyPrefix?: string;
  /** History entries kept per user (`MAXLEN`, exact; default 1000). */
  readonly historyMaxLen?: number;
  /** History and offset expire this long after the user's last event (default 24 h). */
  readonly historyTtlMs?: number;
  /**
   * The gateways' `GATEWAY_PUSH_MAX_EVENT_BYTES` (default 1 MiB, at most
   * {@link ROUTED_MAX_EVENT_BYTES_LIMIT}): a larger payload is refused here and by the function.
   */
  readonly maxEventBytes?: number;
}

/**
 * Refused, nothing published: the gateway would drop this event as malformed (refused before
 * anything was sent), or the publish function refused it (`ERR invalid <argument>: …`; it
 * wrote nothing). Retrying the same event cannot succeed.
 */
export class RoutedEventError extends Error {
  override readonly name = 'RoutedEventError';
  readonly code = 'invalid_routed_event';
}

export const DEFAULT_ROUTED_HISTORY_MAXLEN = 1000;
export const DEFAULT_ROUTED_HISTORY_TTL_MS = 24 * 60 * 60 * 1000;

/**
 * Publishes push events in routed mode (SPEC §9.2): one `FCALL edgegateway_publish_v1` on the
 * master of the user's partition. The function library is loaded on every master by
 * {@link RedisRoutedPublisher.loadFunction} (the gateway does it at startup) and again, once,
 * when a master answers that it does not know the function (a master added later).
 */
export class RedisRoutedPublisher {
  private readonly keyPrefix: string;
  private readonly maxLen: number;
  private readonly ttlMs: number;
  private readonly maxEventBytes: number;

  constructor(
    private readonly client: RedisClusterClient,
    options: RedisRoutedPublisherOptions = {},
  ) {
    this.keyPrefix = options.keyPrefix ?? 'gateway:';
    this.maxLen = options.historyMaxLen ?? DEFAULT_ROUTED_HISTORY_MAXLEN;
    this.ttlMs = options.historyTtlMs ?? DEFAULT_ROUTED_HISTORY_TTL_MS;
    this.maxEventBytes = options.maxEventBytes ?? DEFAULT_PUSH_MAX_EVENT_BYTES;
    const positive = (value: number) => Number.isSafeInteger(value) && value >= 1 && value <= ROUTED_MAX_INTEGER_ARGUMENT;
    if (!positive(this.maxLen)) throw new RangeError(`historyMaxLen must be an integer from 1 to ${ROUTED_MAX_INTEGER_ARGUMENT}`);
    if (!positive(this.ttlMs)) throw new RangeError(`historyTtlMs must be an integer from 1 to ${ROUTED_MAX_INTEGER_ARGUMENT}`);
    if (!Number.isSafeInteger(this.maxEventBytes) || this.maxEventBytes < 0 || this.maxEventBytes > ROUTED_MAX_EVENT_BYTES_LIMIT) {
      throw new RangeError(`maxEventBytes must be an integer from 0 to ${ROUTED_MAX_EVENT_BYTES_LIMIT}`);
    }
    // The partition's hash tag must be the first {…} of every key (SPEC §9.1).
    if (this.keyPrefix.includes('{')) throw new RangeError('keyPrefix must not contain {');
  }

  /** `FUNCTION LOAD REPLACE` of the library on every master. */
  async loadFunction(): Promise<void> {
    await this.client.onEveryMaster(['FUNCTION', 'LOAD', 'REPLACE', ROUTED_FUNCTION_SOURCE]);
  }

  /**
   * Validates the event as the gateway will (refusing with {@link RoutedEventError}) and
   * publishes it. A refusal of the publish function is a {@link RoutedEventError} too (nothing
   * was written). Rejects with a `RedisCommandError` when Redis cannot take it; then the event
   * may or may not have been published (retrying may deliver it twice, with two ids).
   */
  async publish(event: RoutedEvent): Promise<RoutedPublishResult> {
    const session = event.deviceSessionId ?? '';
    const payloadBase64 = Buffer.from(event.payload).toString('base64');
    const parsed = parseClientEvent(
      { id: '1-0', fields: { user_id: event.userId, device_session_id: session, event_type: event.eventType, payload_base64: payloadBase64 } },
      { maxEventBytes: this.maxEventBytes },
    );
    if (!parsed.ok) throw new RoutedEventError(parsed.reason);
    if (session !== '' && !isValidId(session)) throw new RoutedEventError('device_session_id is not a device session id');
    const keys = routedUserKeys(this.keyPrefix, event.userId);
    const args = [
      'FCALL', ROUTED_PUBLISH_FUNCTION, '3', keys.history, keys.meta, keys.channel,
      String(this.maxLen), String(this.ttlMs), String(this.maxEventBytes), event.userId, session, event.eventType, payloadBase64,
    ];
    let reply;
    try {
      reply = await this.call(args);
    } catch (err) {
      if (!(err instanceof RedisCommandError && /function not found/i.test(err.message))) throw err;
      await this.loadFunction();
      reply = await this.call(args);
    }
    if (!Array.isArray(reply) || reply.length < 3) throw new RedisCommandError('FCALL', 'unexpected reply from the publish function');
    return { id: String(reply[0]), offset: Number(reply[1]), epoch: String(reply[2]) };
  }

  private async call(args: readonly string[]): Promise<unknown> {
    try {
      return await this.client.command(args);
    } catch (err) {
      if (err instanceof RedisCommandError && isRoutedPublishRefusal(err.message)) {
        throw new RoutedEventError(`refused by the publish function (${err.message.replace(/^redis FCALL failed: /, '')})`, { cause: err });
      }
      throw err;
    }
  }
}

/**
 * Example: a business service publishing a push event to devices (SPEC §5.4).
 *
 * An event is one entry in the client-events stream: `user_id` (required), optionally
 * `device_session_id` (only that session's streams get it; without it every stream of the
 * user does), `event_type` (SPEC §2.1 rule, not starting with "gateway."), and
 * `payload_base64`. Every gateway reads the whole stream, signs each event once and delivers
 * it to the matching streams it holds; publishers do not need to know which gateway a device
 * is connected to. The gateway never trims the stream, so publishers do, on every write
 * (runbook "The gateway never trims the client-events stream").
 *
 *   REDIS_URL=redis://:password@127.0.0.1:6379 node examples/dist/publish-event.js \
 *     <user_id> <event_type> '<json payload>' [device_session_id]
 *
 * Optional: CLIENT_EVENTS_STREAM (GATEWAY_CLIENT_EVENTS_REDIS_STREAM, default
 * "gateway:client-events"), CLIENT_EVENTS_MAXLEN (retention by count, default 250000).
 */
import { createClient } from 'redis';
import { isMain, requireEnv } from './run-main.js';

/** One push event. */
export interface PushEvent {
  readonly userId: string;
  /** Only this device session receives it; omit to reach every session of the user. */
  readonly deviceSessionId?: string;
  readonly eventType: string;
  readonly payload: Uint8Array;
}

/** The command this example needs from a node-redis client. */
export interface StreamRedis {
  xAdd(
    key: string,
    id: string,
    fields: Record<string, string>,
    options?: { TRIM?: { strategy: 'MAXLEN'; strategyModifier: '~'; threshold: number } },
  ): Promise<string>;
}

const EVENT_TYPE = /^[a-z][a-z0-9._-]{0,127}$/;

/**
 * Appends `event` to the client-events stream, trimming it to about `maxLen` entries, and
 * returns the entry id (which becomes the `event_id` devices see and resume from).
 * Refuses entries the gateway would drop as malformed.
 */
export async function publishEvent(redis: StreamRedis, event: PushEvent, stream = 'gateway:client-events', maxLen = 250_000): Promise<string> {
  // user_id: 1-256 characters, no control characters, as in the session records (SPEC §5.1, §5.4).
  // eslint-disable-next-line no-control-regex
  if (event.userId.length < 1 || event.userId.length > 256 || /[\u0000-\u001f\u007f]/.test(event.userId)) throw new Error('user_id must be 1-256 characters with no control characters');
  if (!EVENT_TYPE.test(event.eventType) || event.eventType.startsWith('gateway.')) {
    throw new Error('event_type must match [a-z][a-z0-9._-]{0,127} and not start with "gateway."');
  }
  const fields: Record<string, string> = {
    user_id: event.userId,
    ...(event.deviceSessionId === undefined ? {} : { device_session_id: event.deviceSessionId }),
    event_type: event.eventType,
    payload_base64: Buffer.from(event.payload).toString('base64'),
  };
  // "~": Redis trims whole macro nodes, cheap, and never below maxLen entries.
  return redis.xAdd(stream, '*', fields, { TRIM: { strategy: 'MAXLEN', strategyModifier: '~', threshold: maxLen } });
}

if (isMain(import.meta.url)) {
  const [userId, eventType, json, deviceSessionId] = process.argv.slice(2);
  if (userId === undefined || eventType === undefined || json === undefined) {
    process.stderr.write('usage: publish-event.js <user_id> <event_type> <json payload> [device_session_id]\n');
    process.exit(2);
  }
  const redis = createClient({ url: requireEnv('REDIS_URL') });
  await redis.connect();
  try {
    const id = await publishEvent(
      redis,
      { userId, eventType, payload: Buffer.from(json), ...(deviceSessionId === undefined ? {} : { deviceSessionId }) },
      process.env['CLIENT_EVENTS_STREAM'] ?? 'gateway:client-events',
      Number(process.env['CLIENT_EVENTS_MAXLEN'] ?? 250_000),
    );
    process.stdout.write(`${id}\n`);
  } catch (error) {
    process.stderr.write(`not published: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exitCode = 1;
  } finally {
    await redis.quit();
  }
}

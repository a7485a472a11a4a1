// What the intrinsic-work floors (bench/intrinsic-*.mjs, bare-push.mjs) share: their Redis
// connections and the session lookup. Kept apart from lib.mjs so a floor process loads nothing
// but what it uses (its memory is the floor the gateway is compared with).
import { createClient } from 'redis';
import { ed25519PublicKeyFromRaw, parseClientEvent } from '@edge-gateway/core';

/** A connected node-redis client whose errors are left to its commands. */
export async function connectClient(client) {
  client.on('error', () => undefined);
  await client.connect();
  return client;
}

/** The floor's Redis client and a second connection for its blocking reads. */
export async function floorRedis(port, password) {
  const redis = await connectClient(createClient({ socket: { host: '127.0.0.1', port: Number(port) }, password, commandOptions: { timeout: 0 } }));
  return { redis, reader: await connectClient(redis.duplicate()) };
}

/**
 * `session(id)`: deviceSessionId -> { userId, revoked, publicKey } (null when unknown), one
 * HGETALL per session id, cached, a pending lookup shared by its callers; `sessions`: the cache
 * itself (a value or a pending lookup), for a synchronous fast path.
 */
export function sessionLookup(redis, prefix) {
  const sessions = new Map();
  const session = (id) => {
    let entry = sessions.get(id);
    if (entry === undefined) {
      entry = redis.hGetAll(`${prefix}session:${id}`).then((h) => {
        const value = h.user_id ? { userId: h.user_id, revoked: h.status === 'revoked', publicKey: ed25519PublicKeyFromRaw(Buffer.from(h.client_public_key, 'base64')) } : null;
        sessions.set(id, value);
        return value;
      });
      sessions.set(id, entry);
    }
    return entry;
  };
  return { session, sessions };
}

/**
 * The floor's live consumer: reads the client-events stream from its end, forever, and hands
 * each well-formed event (core field names) with its id to `onEvent`, in stream order.
 */
export async function readClientEvents(reader, onEvent) {
  let lastId = '$';
  for (;;) {
    const reply = await reader.xRead({ key: 'gateway:client-events', id: lastId }, { BLOCK: 1000, COUNT: 1000 }).catch(() => null);
    for (const stream of reply ?? []) {
      for (const { id, message } of stream.messages) {
        lastId = id;
        const parsed = parseClientEvent({ id, fields: message });
        if (parsed.ok) onEvent(parsed.event, id);
      }
    }
  }
}

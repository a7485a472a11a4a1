import type { StreamEntry } from '@edge-gateway/core';
import type { RawReply } from './redis-client.js';
import { flatToRecord } from './redis-session-store.js';

/** Parses an `XRANGE`/`XREVRANGE` reply, or the per-stream part of `XREAD`: `[[id, [f, v, ...]], ...]`. */
export function parseEntries(reply: RawReply): StreamEntry[] {
  if (!Array.isArray(reply)) return [];
  const entries: StreamEntry[] = [];
  for (const item of reply) {
    if (!Array.isArray(item) || item.length < 1) continue;
    entries.push({ id: String(item[0]), fields: flatToRecord(item[1] ?? null) });
  }
  return entries;
}

/** Parses an `XREAD` reply for one stream: `null` on timeout, else `[[key, entries]]`. */
export function parseXReadReply(reply: RawReply): StreamEntry[] {
  if (!Array.isArray(reply)) return [];
  const out: StreamEntry[] = [];
  for (const stream of reply) {
    if (Array.isArray(stream)) out.push(...parseEntries(stream[1] ?? null));
  }
  return out;
}

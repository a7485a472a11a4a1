import { CLUSTER_SLOTS, crc16, keySlot } from './cluster-slot.js';

/** Partitions of routed fan-out (SPEC §9.1): fixed, so every process and publisher agrees. */
export const ROUTED_PARTITIONS = 128;

const SLOTS_PER_PARTITION = CLUSTER_SLOTS / ROUTED_PARTITIONS;

/**
 * The hash tag of partition `p`: `e<p>.<k>` with the smallest `k >= 0` whose slot lies in
 * `[128p, 128p + 127]`. Partition p thus owns its own band of 128 slots, so the partitions
 * spread over the masters exactly as the slots do (tags `{0}`..`{127}` would hash to random
 * slots and leave some masters with many partitions and others with few).
 */
export function partitionTag(partition: number): string {
  if (!Number.isInteger(partition) || partition < 0 || partition >= ROUTED_PARTITIONS) {
    throw new RangeError(`partition must be an integer in [0, ${ROUTED_PARTITIONS})`);
  }
  return TAGS[partition] as string;
}

function computeTag(partition: number): string {
  const low = partition * SLOTS_PER_PARTITION;
  for (let k = 0; ; k++) {
    const tag = `e${partition}.${k}`;
    const slot = crc16(Buffer.from(tag, 'utf8')) % CLUSTER_SLOTS;
    if (slot >= low && slot < low + SLOTS_PER_PARTITION) return tag;
  }
}

const TAGS: readonly string[] = Array.from({ length: ROUTED_PARTITIONS }, (_, p) => computeTag(p));

/** The partition of a user: CRC16-XMODEM of the UTF-8 user id, modulo 128. */
export function userPartition(userId: string): number {
  return crc16(Buffer.from(userId, 'utf8')) % ROUTED_PARTITIONS;
}

/** The Redis keys of one user in routed mode (all in the slot of the user's partition tag). */
export interface RoutedUserKeys {
  readonly partition: number;
  /** Bounded history stream (same fields as a client-events entry, plus `offset` and `epoch`). */
  readonly history: string;
  /** Hash `epoch`, `offset`, `last_id`: where the history stands. */
  readonly meta: string;
  /** Sharded PUB/SUB channel (`SPUBLISH`). */
  readonly channel: string;
}

/**
 * `P + "push:{" + tag + "}:h:" + user_id` (history), `…:m:…` (meta), `…:c:…` (channel).
 * The tag comes first, so braces inside a user id cannot change the slot.
 */
export function routedUserKeys(keyPrefix: string, userId: string): RoutedUserKeys {
  const partition = userPartition(userId);
  const base = `${keyPrefix}push:{${partitionTag(partition)}}:`;
  return { partition, history: `${base}h:${userId}`, meta: `${base}m:${userId}`, channel: `${base}c:${userId}` };
}

/** The slot of a partition (for tests and diagnostics). */
export function partitionSlot(partition: number): number {
  return keySlot(`{${partitionTag(partition)}}`);
}

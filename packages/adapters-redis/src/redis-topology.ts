import type { RedisClient } from './redis-client.js';

/** A `host:port` pair. */
export interface RedisAddress {
  readonly host: string;
  readonly port: number;
}

/** One node of a topology as {@link RedisTopology.describe} found it. */
export interface RedisTopologyNode {
  readonly role: 'master' | 'replica' | 'sentinel';
  /** `host:port`. */
  readonly address: string;
  readonly reachable: boolean;
  /** What was found (e.g. `PONG`, the reported replication link) or why it is unreachable. */
  readonly detail: string;
}

/**
 * Where the gateway's Redis data lives and which node serves which read (SPEC §5.6). The
 * stores and stream subscribers only use this interface, so a deployment shape (one master
 * with optional static replicas, Sentinel, later Redis Cluster) is one implementation.
 *
 * - {@link RedisTopology.master} takes every write and every read that must see the latest
 *   state. It is one {@link RedisClient} object for the process's lifetime: when the master
 *   moves, the client is re-pointed (`retarget`) rather than replaced.
 * - {@link RedisTopology.replicas} serve the bulk reads that may lag a little.
 */
export interface RedisTopology {
  /** `single` (a fixed master address) or `sentinel` (discovered and followed). */
  readonly kind: 'single' | 'sentinel';
  /** The shared client of the current master. */
  readonly master: RedisClient;
  /** Clients of the replicas that are connected right now, in preference order (may be empty). */
  replicas(): readonly RedisClient[];
  /**
   * How many replicas the topology knows of, connected or not (the fixed addresses; with
   * Sentinel, every replica its Sentinels list, as of the last discovery): the most a `WAIT` on
   * the master could ever count (SPEC §5.2).
   */
  knownReplicas(): number;
  /**
   * Discovers the master (Sentinel), connects its shared client and runs one `PING`, all
   * bounded by `timeoutMs` (SPEC §8.1 step 3); replicas connect in the background. Rejects with
   * a `RedisStartupError` and leaves nothing running.
   */
  connect(timeoutMs: number): Promise<void>;
  /**
   * Calls `listener` after the master moved and {@link RedisTopology.master} points at the new
   * one. Returns a function that removes the listener.
   */
  onMasterChange(listener: (master: RedisAddress) => void): () => void;
  /**
   * Every node with its reachability (for `doctor`), each check bounded by `timeoutMs`
   * (default: the command timeout).
   */
  describe(timeoutMs?: number): Promise<RedisTopologyNode[]>;
  /** Closes every connection and stops discovery. */
  close(): Promise<void>;
}

/** `host:port`. */
export const formatAddress = (address: RedisAddress): string =>
  address.host.includes(':') ? `[${address.host}]:${address.port}` : `${address.host}:${address.port}`;

import { connectAndPing, createRedisClient, describeRedisError, type RedisAddress, type RedisClient } from '@edge-gateway/adapters-redis';
import type { GatewayConfig } from '@edge-gateway/gateway/config';
import { CommandError } from './cli-io.js';
import { fieldsFromReply } from './cli-redis.js';

/** Bounds of `edge-gateway redis failover`. */
export interface FailoverOptions {
  /** `--pause`: the `CLIENT PAUSE … WRITE` lease (renewed until the switch), and the bound on the replicas' catch-up. */
  readonly pauseMs: number;
  /** `--timeout`: the bound on the whole failover, from the first check to the new master. */
  readonly timeoutMs: number;
}

/** `host:port` of an address (IPv6 in brackets). */
export const addressText = (address: RedisAddress): string => (address.host.includes(':') ? `[${address.host}]:${address.port}` : `${address.host}:${address.port}`);

/** What `INFO replication` says about one node. */
export interface ReplicationInfo {
  readonly role: 'master' | 'replica';
  /** `master_repl_offset`: on a master, the replication stream it produced; on a replica, what it received. */
  readonly masterReplOffset: number;
  /** `slave_repl_offset` of a replica: the offset it has processed (`-1` on a master). */
  readonly processedOffset: number;
  /** A replica's `master_host:master_port`; undefined on a master. */
  readonly master: RedisAddress | undefined;
  /** A replica's `master_link_status` is `up`. */
  readonly linkUp: boolean;
  /**
   * The offset at which this node stopped following its previous master (became a master):
   * `second_repl_offset - 1`; undefined when it has no previous history (`-1`).
   */
  readonly promotedAtOffset: number | undefined;
}

/** Parses the text of `INFO replication`. */
export function parseReplicationInfo(text: string): ReplicationInfo {
  const fields = new Map<string, string>();
  for (const line of text.split(/\r?\n/)) {
    const colon = line.indexOf(':');
    if (colon > 0 && !line.startsWith('#')) fields.set(line.slice(0, colon), line.slice(colon + 1).trim());
  }
  const role = fields.get('role') === 'slave' ? 'replica' : 'master';
  const host = fields.get('master_host');
  const port = Number(fields.get('master_port'));
  return {
    role,
    masterReplOffset: Number(fields.get('master_repl_offset') ?? -1),
    processedOffset: role === 'replica' ? Number(fields.get('slave_repl_offset') ?? -1) : -1,
    master: role === 'replica' && host !== undefined && Number.isInteger(port) ? { host, port } : undefined,
    linkUp: fields.get('master_link_status') === 'up',
    promotedAtOffset: Number(fields.get('second_repl_offset') ?? -1) > 0 ? Number(fields.get('second_repl_offset')) - 1 : undefined,
  };
}

/**
 * The connections a failover opens to individual nodes (data nodes, Sentinels): each one
 * connected and PINGed within `GATEWAY_REDIS_PING_TIMEOUT`, every command bounded by
 * `GATEWAY_REDIS_COMMAND_TIMEOUT`, all closed by {@link NodeConnections.closeAll}.
 */
export class NodeConnections {
  private readonly open = new Map<string, RedisClient>();

  constructor(private readonly config: GatewayConfig) {}

  /** A connected client of the node at `address` (reused when already open). */
  async connect(address: RedisAddress, password: string, what: string): Promise<RedisClient> {
    const key = `${addressText(address)} ${password === this.config.redis.password ? 'data' : 'sentinel'}`;
    const existing = this.open.get(key);
    if (existing !== undefined) return existing;
    const client = createRedisClient({
      host: address.host,
      port: address.port,
      password,
      clientName: 'edge-gateway-cli',
      commandTimeoutMs: this.config.redis.commandTimeoutMs,
      // A node that restarts (a demoted master) is back within half a second.
      reconnect: { minDelayMs: 100, maxDelayMs: 500 },
    });
    try {
      await connectAndPing(client, this.config.redis.pingTimeoutMs);
    } catch (error) {
      throw new CommandError(`cannot reach ${what} ${addressText(address)}: ${error instanceof Error ? error.message : String(error)}`);
    }
    this.open.set(key, client);
    return client;
  }

  /** A data node (the gateway's `GATEWAY_REDIS_PASSWORD`). */
  node(address: RedisAddress, what: string): Promise<RedisClient> {
    return this.connect(address, this.config.redis.password, what);
  }

  closeAll(): void {
    for (const client of this.open.values()) client.destroy();
    this.open.clear();
  }
}

/** `INFO replication` of a node, parsed. */
export async function replicationOf(client: RedisClient): Promise<ReplicationInfo> {
  return parseReplicationInfo(String(await client.command(['INFO', 'replication'])));
}

/** A flat `[field, value, …]` reply as a map (SENTINEL MASTER, one entry of SENTINEL REPLICAS). */
export function replyFields(reply: unknown): Record<string, string> {
  return fieldsFromReply(reply as Parameters<typeof fieldsFromReply>[0]);
}

/** The message of an error for the operator (never a password). */
export function errorText(error: unknown): string {
  if (error instanceof CommandError) return error.message;
  return describeRedisError(error);
}

/**
 * An error raised before the failover was triggered, as the operator should read it: the
 * reason, and that nothing changed.
 */
export function nothingChanged(error: unknown): CommandError {
  if (error instanceof CommandError && error.message.endsWith('nothing changed')) return error;
  return new CommandError(`${error instanceof CommandError ? error.message : `redis: ${errorText(error)}`}; nothing changed`);
}

/** Waits `ms` (between polls of a node's state). */
export const pause = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * A `CLIENT PAUSE <leaseMs> WRITE` held on a master and renewed every third of the lease until
 * released: if this process dies, the master resumes writes within one lease by itself.
 * {@link WritePause.heldUntil} is the end of the pause the master is known to hold (each
 * renewal counts from the moment it was sent, not from its answer).
 */
export class WritePause {
  private timer: NodeJS.Timeout | undefined;
  private known = 0;

  constructor(
    private readonly client: RedisClient,
    readonly leaseMs: number,
  ) {}

  /** Pauses writes; resolves once the master acknowledged the pause. */
  async start(): Promise<void> {
    await this.renew();
    this.timer = setInterval(() => void this.renew().catch(() => undefined), Math.max(100, Math.floor(this.leaseMs / 3)));
  }

  /** Until when (epoch ms) the master is known to keep writes paused. */
  get heldUntil(): number {
    return this.known;
  }

  /** Stops renewing; the pause ends on its own within one lease. */
  stopRenewing(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  /** Stops renewing and ends the pause now (`CLIENT UNPAUSE`). */
  async release(): Promise<void> {
    this.stopRenewing();
    await this.client.command(['CLIENT', 'UNPAUSE']);
    this.known = 0;
  }

  private async renew(): Promise<void> {
    const sentAt = Date.now();
    await this.client.command(['CLIENT', 'PAUSE', String(this.leaseMs), 'WRITE']);
    this.known = Math.max(this.known, sentAt + this.leaseMs);
  }
}

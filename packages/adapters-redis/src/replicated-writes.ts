import type { GatewayMetrics, Logger } from '@edge-gateway/core';
import { boundedCommand, type NodeRedisClient, type RawReply } from './redis-client.js';
import { RedisCommandError } from './redis-command-error.js';

/** Options of a {@link ReplicatedWriter} (SPEC §5.2). */
export interface ReplicatedWriterOptions {
  /** `WAIT` asks for this many replicas (`GATEWAY_REDIS_REPLAY_MIN_REPLICAS`, at least 1). */
  readonly minReplicas: number;
  /** `WAIT`'s own timeout in ms (`GATEWAY_REDIS_REPLAY_WAIT_TIMEOUT`), greater than zero. */
  readonly waitTimeoutMs: number;
  /**
   * Connections per master taking turns (default {@link DEFAULT_WAIT_CONNECTIONS}): while one
   * waits for its `WAIT`, the next batch is written and waited for on another one.
   */
  readonly connectionsPerMaster?: number;
}

/** Default of {@link ReplicatedWriterOptions.connectionsPerMaster} (measured: docs/performance.md). */
export const DEFAULT_WAIT_CONNECTIONS = 2;

/** A write and how many replicas acknowledged it. */
export interface ReplicatedReply {
  readonly reply: RawReply;
  /**
   * What `WAIT` reported for the batch of the write (replicas that acknowledged it);
   * `undefined` when the reply needed no `WAIT` (see {@link ReplicatedWriter.write}).
   */
  readonly replicas: number | undefined;
  /**
   * Set when the write itself succeeded but its `WAIT` failed or timed out (connection lost, a
   * master change): the write is on the master and maybe on replicas, unconfirmed.
   */
  readonly waitError?: unknown;
}

/**
 * Writes that count only once `WAIT` confirms them on replicas (SPEC §5.2), without ever
 * blocking the shared client. `WAIT` covers the earlier writes of its own connection, so each
 * write goes to a dedicated connection of the master holding its key, and one `WAIT` follows
 * every write sent on that connection in the same event-loop turn (a batch). While a batch waits
 * for its `WAIT`, new writes form the next batch on another connection of the same master, or,
 * when every connection waits, the batch after the first `WAIT` to return: writes never queue
 * behind a `WAIT` in Redis.
 */
export interface ReplicatedWriter {
  readonly minReplicas: number;
  /**
   * Sends `args` (a write of `key`) and resolves with its reply and the number of replicas
   * `WAIT` reported; a reply for which `needsWait` is false (e.g. `SET NX` that found the key)
   * resolves at once with `replicas` undefined. Rejects with a `RedisCommandError` when the
   * write failed or timed out (bounded by the command timeout; it may or may not have run); a
   * write that succeeded but whose `WAIT` failed (bounded by the command timeout plus its own)
   * resolves with `waitError`.
   */
  write(key: string, args: readonly string[], needsWait?: (reply: RawReply) => boolean): Promise<ReplicatedReply>;
  /** Closes the writer's connections; pending writes reject. */
  close(): void;
}

/** What a {@link WaitLane} needs besides its connections. */
export interface WaitLaneSettings extends ReplicatedWriterOptions {
  /** `host:port` of the master, for logs. */
  readonly address: string;
  readonly commandTimeoutMs: number;
  readonly metrics: GatewayMetrics;
  readonly logger: Logger;
}

const always = (): boolean => true;

/** One write between its call and its outcome. */
interface PendingWrite {
  readonly args: readonly string[];
  /** Cluster: `ASKING` first (an `ASK` redirect during a slot migration). */
  readonly asking: boolean;
  readonly needsWait: (reply: RawReply) => boolean;
  readonly resolve: (value: ReplicatedReply) => void;
  readonly reject: (error: unknown) => void;
  /** The write's own reply, once Redis answered it (before the batch's `WAIT`). */
  sent: Promise<RawReply> | undefined;
  answered: boolean;
  reply: RawReply;
  settled: boolean;
  /** Set while it waits for a first connection to become ready. */
  timer: NodeJS.Timeout | undefined;
}

/** One dedicated connection and the batch it carries. */
class WaitConnection {
  /** `idle`: free; `collecting`: writes sent, its `WAIT` goes out at the end of this turn; `waiting`: `WAIT` sent. */
  state: 'idle' | 'collecting' | 'waiting' = 'idle';
  batch: PendingWrite[] = [];
  wasReady = false;

  constructor(readonly client: NodeRedisClient) {}
}

/**
 * Settles the writes of a batch whose `WAIT` answered: `settle` for each that succeeded and is
 * not settled yet. The writes' replies come before the `WAIT`'s on the same connection, and are
 * handled first, so normally every write has its reply here; one that has not (its reply handler
 * not run yet) is awaited, not guessed.
 */
async function settleBatch(batch: readonly PendingWrite[], settle: (write: PendingWrite) => void): Promise<void> {
  let late: PendingWrite[] | undefined;
  for (const write of batch) {
    if (write.settled) continue;
    if (write.answered) {
      write.settled = true;
      settle(write);
    } else {
      (late ??= []).push(write);
    }
  }
  if (late === undefined) return;
  await Promise.allSettled(late.map((w) => w.sent));
  for (const write of late) {
    if (write.settled || !write.answered) continue;
    write.settled = true;
    settle(write);
  }
}

/** Shortfalls are logged at most this often per master (each is counted by the core's metric). */
const SHORTFALL_LOG_INTERVAL_MS = 5000;

/**
 * The dedicated connections of one master and the batching of {@link ReplicatedWriter}. The
 * connections reconnect by themselves; while they are down, writes fail at once (no offline
 * queue), except before a connection was ever ready (startup, a new master), when a write waits
 * for it within the command timeout.
 */
export class WaitLane {
  private readonly connections: WaitConnection[];
  private queued: PendingWrite[] = [];
  private closed = false;
  private lastShortfallLog = -Infinity;
  private suppressedShortfalls = 0;
  private readonly waitArgs: string[];

  constructor(
    open: () => NodeRedisClient,
    private readonly settings: WaitLaneSettings,
  ) {
    this.waitArgs = ['WAIT', String(settings.minReplicas), String(settings.waitTimeoutMs)];
    const count = Math.max(1, settings.connectionsPerMaster ?? DEFAULT_WAIT_CONNECTIONS);
    this.connections = Array.from({ length: count }, () => {
      const connection = new WaitConnection(open());
      connection.client.on('ready', () => {
        connection.wasReady = true;
        this.pump();
      });
      // Errors are logged by the connection's own listener; it reconnects until destroyed.
      connection.client.connect().catch(() => undefined);
      return connection;
    });
  }

  get address(): string {
    return this.settings.address;
  }

  write(args: readonly string[], needsWait: (reply: RawReply) => boolean = always, asking = false): Promise<ReplicatedReply> {
    const name = (args[0] ?? '').toUpperCase();
    if (this.closed) return Promise.reject(new RedisCommandError(name, 'the client is closed'));
    return new Promise<ReplicatedReply>((resolve, reject) => {
      this.dispatch({ args, asking, needsWait, resolve, reject, sent: undefined, answered: false, reply: null, settled: false, timer: undefined });
    });
  }

  /** Destroys the connections: writes in flight reject, queued ones too. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const connection of this.connections) if (connection.client.isOpen) connection.client.destroy();
    const queued = this.queued;
    this.queued = [];
    for (const write of queued) this.fail(write, new RedisCommandError((write.args[0] ?? '').toUpperCase(), 'the client is closed'));
  }

  private dispatch(write: PendingWrite): void {
    let idle: WaitConnection | undefined;
    let busy = false;
    for (const connection of this.connections) {
      if (connection.state === 'collecting') return this.add(connection, [write]);
      if (connection.state === 'waiting') busy = true;
      else if (idle === undefined && connection.client.isReady) idle = connection;
    }
    if (idle !== undefined) return this.add(idle, [write]);
    // Every connection waits for its WAIT: the write joins the batch after the first to return
    // (bounded: that WAIT is bounded by the command timeout plus its own).
    if (busy) {
      this.queued.push(write);
      return;
    }
    // No connection ready. One that never was (startup, a new master) is awaited within the
    // command timeout; one that was and dropped is reconnecting: fail at once, as the shared
    // client does (no offline queue).
    if (this.connections.some((c) => !c.wasReady && c.client.isOpen)) {
      write.timer = setTimeout(() => {
        write.timer = undefined;
        this.queued = this.queued.filter((w) => w !== write);
        this.fail(write, new RedisCommandError((write.args[0] ?? '').toUpperCase(), `no connection to ${this.settings.address} within ${this.settings.commandTimeoutMs}ms`));
      }, this.settings.commandTimeoutMs);
      this.queued.push(write);
      return;
    }
    this.fail(write, new RedisCommandError((write.args[0] ?? '').toUpperCase(), 'the client is offline (not connected to redis)'));
  }

  /** Moves the queued writes onto a free connection, as one batch. */
  private pump(): void {
    if (this.queued.length === 0 || this.closed) return;
    const connection = this.connections.find((c) => c.state === 'collecting') ?? this.connections.find((c) => c.state === 'idle' && c.client.isReady);
    if (connection === undefined) return;
    const writes = this.queued;
    this.queued = [];
    for (const write of writes) {
      if (write.timer !== undefined) {
        clearTimeout(write.timer);
        write.timer = undefined;
      }
    }
    this.add(connection, writes);
  }

  private add(connection: WaitConnection, writes: readonly PendingWrite[]): void {
    if (connection.state === 'idle') {
      connection.state = 'collecting';
      // Scheduled before the first write, so it runs before node-redis's own write of this turn
      // (also a setImmediate, queued by the first sendCommand): the writes and their WAIT leave
      // in one socket write.
      setImmediate(() => this.flush(connection));
    }
    const { commandTimeoutMs, metrics } = this.settings;
    for (const write of writes) {
      connection.batch.push(write);
      const name = (write.args[0] ?? '').toUpperCase();
      if (write.asking) connection.client.sendCommand(['ASKING']).catch(() => undefined);
      const sent = boundedCommand(name, commandTimeoutMs, metrics, (abortSignal) =>
        connection.client.sendCommand(write.args as string[], abortSignal === undefined ? undefined : { abortSignal }) as Promise<RawReply>,
      );
      write.sent = sent;
      sent.then(
        (reply) => {
          write.answered = true;
          write.reply = reply;
          if (write.settled || write.needsWait(reply)) return;
          write.settled = true;
          write.resolve({ reply, replicas: undefined });
        },
        (err: unknown) => this.fail(write, err),
      );
    }
  }

  private flush(connection: WaitConnection): void {
    if (connection.state !== 'collecting') return;
    connection.state = 'waiting';
    const batch = connection.batch;
    connection.batch = [];
    const { commandTimeoutMs, waitTimeoutMs, metrics } = this.settings;
    const waited = boundedCommand('WAIT', commandTimeoutMs + waitTimeoutMs, metrics, (abortSignal) =>
      connection.client.sendCommand(this.waitArgs, abortSignal === undefined ? undefined : { abortSignal }) as Promise<RawReply>,
    );
    waited
      .then(
        async (count) => {
          const replicas = Number(count);
          await settleBatch(batch, (write) => write.resolve({ reply: write.reply, replicas }));
          if (replicas < this.settings.minReplicas) this.shortfall(replicas, batch.length);
        },
        // A write that succeeded is reported with the WAIT's error (its caller may withdraw it).
        (err: unknown) => settleBatch(batch, (write) => write.resolve({ reply: write.reply, replicas: undefined, waitError: err })),
      )
      .finally(() => {
        connection.state = 'idle';
        this.pump();
      });
  }

  private fail(write: PendingWrite, err: unknown): void {
    if (write.settled) return;
    write.settled = true;
    write.reject(err);
  }

  private shortfall(replicas: number, writes: number): void {
    const now = performance.now();
    if (now - this.lastShortfallLog < SHORTFALL_LOG_INTERVAL_MS) {
      this.suppressedShortfalls += 1;
      return;
    }
    this.settings.logger.warn('replicated write not acknowledged', {
      address: this.settings.address,
      acknowledged: replicas,
      required: this.settings.minReplicas,
      wait_timeout_ms: this.settings.waitTimeoutMs,
      writes,
      // Batches short of replicas since the previous line (not logged one by one).
      suppressed: this.suppressedShortfalls,
    });
    this.lastShortfallLog = now;
    this.suppressedShortfalls = 0;
  }
}

/** The replicated writes of one master that may move (Sentinel): a new lane on every move. */
export class MasterReplicatedWriter implements ReplicatedWriter {
  private lane: WaitLane;
  private closed = false;

  constructor(
    private readonly createLane: () => WaitLane,
    readonly minReplicas: number,
    private readonly onClose: () => void,
  ) {
    this.lane = createLane();
  }

  write(_key: string, args: readonly string[], needsWait?: (reply: RawReply) => boolean): Promise<ReplicatedReply> {
    return this.lane.write(args, needsWait);
  }

  /**
   * The master moved: nothing more goes to the old one. Its connections are destroyed at once
   * (writes waiting there reject: unconfirmed), new writes go to the new master.
   */
  masterMoved(): void {
    if (this.closed) return;
    const old = this.lane;
    this.lane = this.createLane();
    old.close();
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.lane.close();
    this.onClose();
  }
}

/** `MOVED <slot> <host:port>` or `ASK <slot> <host:port>` in a failed write, if it is one. */
export function redirectOf(err: unknown): { kind: 'MOVED' | 'ASK'; address: string } | undefined {
  const cause = err instanceof RedisCommandError ? err.cause : err;
  const text = cause instanceof Error ? cause.message : '';
  const match = /^(MOVED|ASK) \d+ (\S+)$/.exec(text);
  return match === null ? undefined : { kind: match[1] as 'MOVED' | 'ASK', address: match[2] as string };
}

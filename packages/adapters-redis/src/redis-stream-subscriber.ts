import { GatewayMetrics, noopLogger, type Logger, type StreamEntry, type StreamEntryHandler } from '@edge-gateway/core';
import { backoffDelay, type ReconnectOptions } from './backoff.js';
import { describeRedisError, type NodeRedisClient, type RedisClient } from './redis-client.js';
import { parseEntries, parseXReadReply } from './stream-reply.js';

/** Options of {@link RedisStreamSubscriber}. */
export interface RedisStreamSubscriberOptions {
  /** The shared client: resolves the start id and creates the dedicated blocking connection. */
  client: RedisClient;
  /** Stream key, used as configured (not prefixed). */
  streamKey: string;
  /** Receives every entry in stream order. */
  handler: StreamEntryHandler;
  /** `XREAD BLOCK` milliseconds (default 5000). */
  blockMs?: number;
  /** `XREAD COUNT` (default 512). */
  batchSize?: number;
  /** Backoff between reconnect attempts (default 100ms doubling up to 5s). */
  reconnect?: ReconnectOptions;
  metrics?: GatewayMetrics;
  logger?: Logger;
}

/**
 * Consumes one Redis stream in order (SPEC §5.5) with `XREAD BLOCK` on its own connection, so
 * blocking reads never stall the shared client. It starts strictly after the stream's last id
 * at start; on a Redis error it counts `gateway_stream_subscriber_reconnects_total`, backs off,
 * reconnects, calls `handler.onReconnect()`, and resumes after the last entry it processed.
 * `stop()` destroys the blocking connection, so it returns at once even during `BLOCK`.
 */
export class RedisStreamSubscriber {
  private readonly client: RedisClient;
  private readonly streamKey: string;
  private readonly handler: StreamEntryHandler;
  private readonly blockMs: number;
  private readonly batchSize: number;
  private readonly reconnect: ReconnectOptions;
  private readonly metrics: GatewayMetrics;
  private readonly logger: Logger;
  private last = '0-0';
  private state: 'new' | 'running' | 'stopped' = 'new';
  private connection: NodeRedisClient | undefined;
  private loop: Promise<void> | undefined;
  private wake: (() => void) | undefined;

  constructor(options: RedisStreamSubscriberOptions) {
    this.client = options.client;
    this.streamKey = options.streamKey;
    this.handler = options.handler;
    this.blockMs = options.blockMs ?? 5000;
    this.batchSize = options.batchSize ?? 512;
    this.reconnect = options.reconnect ?? {};
    this.metrics = options.metrics ?? new GatewayMetrics();
    this.logger = (options.logger ?? noopLogger).child({ component: 'stream-subscriber', stream: options.handler.stream });
  }

  /** Id of the last entry handed to the handler (or the start id). */
  get lastId(): string {
    return this.last;
  }

  /**
   * Resolves the start id (the stream's current last id, `0-0` when the stream does not exist)
   * and starts the read loop in the background. Rejects if Redis cannot answer.
   */
  async start(): Promise<void> {
    if (this.state !== 'new') throw new Error('RedisStreamSubscriber can only be started once');
    this.state = 'running';
    try {
      const reply = await this.client.command(['XREVRANGE', this.streamKey, '+', '-', 'COUNT', '1']);
      this.last = parseEntries(reply)[0]?.id ?? '0-0';
    } catch (err) {
      this.state = 'stopped';
      throw err;
    }
    this.logger.info('stream subscriber started', { stream_key: this.streamKey, start_after: this.last });
    this.loop = this.run();
  }

  /** Stops the loop, interrupting a pending blocking read; resolves once the loop ended. */
  async stop(): Promise<void> {
    if (this.state === 'stopped' && this.loop === undefined) return;
    this.state = 'stopped';
    this.connection?.destroy();
    this.wake?.();
    await this.loop;
    this.loop = undefined;
  }

  private async run(): Promise<void> {
    let attempt = 0;
    let reconnecting = false;
    while (this.state === 'running') {
      const connection = this.client.duplicate();
      this.connection = connection;
      try {
        await connection.connect();
        if (this.state !== 'running') break;
        if (reconnecting) {
          reconnecting = false;
          this.logger.info('stream subscriber reconnected', { resume_after: this.last });
          this.notifyReconnect();
        }
        attempt = 0;
        await this.readLoop(connection);
      } catch (err) {
        if (this.state !== 'running') break;
        const delayMs = backoffDelay(attempt++, this.reconnect);
        reconnecting = true;
        this.metrics.subscriberReconnects.add(1, { stream: this.handler.stream });
        this.logger.warn('stream subscriber error; reconnecting', { error: describeRedisError(err), retry_in_ms: delayMs, resume_after: this.last });
        await this.sleep(delayMs);
      } finally {
        if (connection.isOpen) connection.destroy();
        if (this.connection === connection) this.connection = undefined;
      }
    }
  }

  private async readLoop(connection: NodeRedisClient): Promise<void> {
    while (this.state === 'running') {
      const reply = await this.client.command(
        ['XREAD', 'COUNT', String(this.batchSize), 'BLOCK', String(this.blockMs), 'STREAMS', this.streamKey, this.last],
        // A server that stops answering (e.g. frozen) must not hang the loop for ever.
        { connection, timeoutMs: this.blockMs + this.client.commandTimeoutMs },
      );
      if (this.state !== 'running') return;
      const entries = parseXReadReply(reply);
      if (entries.length === 0) continue;
      if (this.handler.handleBatch !== undefined) {
        // Advance first: entries whose handler throws are not redelivered.
        this.last = (entries[entries.length - 1] as StreamEntry).id;
        try {
          await this.handler.handleBatch(entries);
        } catch (err) {
          this.logger.error('stream entry handler failed', { entry_id: entries[0]?.id, entries: entries.length, error: describeRedisError(err) });
        }
        continue;
      }
      for (const entry of entries) {
        // Advance first: an entry whose handler throws is not redelivered.
        this.last = entry.id;
        try {
          this.handler.handle(entry);
        } catch (err) {
          this.logger.error('stream entry handler failed', { entry_id: entry.id, error: describeRedisError(err) });
        }
      }
    }
  }

  private notifyReconnect(): void {
    try {
      this.handler.onReconnect?.();
    } catch (err) {
      this.logger.error('stream handler onReconnect failed', { error: describeRedisError(err) });
    }
  }

  private sleep(ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const timer = setTimeout(done, ms);
      function done(): void {
        clearTimeout(timer);
        resolve();
      }
      this.wake = done;
    }).finally(() => {
      this.wake = undefined;
    });
  }
}

import {
  GatewayMetrics,
  compareStreamIds as compareIds,
  noopLogger,
  type Logger,
  type StreamEntry,
  type StreamEntryHandler,
  type StreamReconnect,
} from '@edge-gateway/core';
import { backoffDelay, type ReconnectOptions } from './backoff.js';
import { describeRedisError, type NodeRedisClient } from './redis-client.js';
import type { RedisCommands } from './redis-commands.js';
import { RecentEntries, previousStreamId } from './recent-entries.js';
import { INDEX_BACKFILL_PAGE, type StreamContinuity } from './stream-continuity.js';
import type { RedisTopology } from './redis-topology.js';
import { parseEntries, parseXReadReply } from './stream-reply.js';

/** Options of {@link RedisStreamSubscriber}. */
export interface RedisStreamSubscriberOptions {
  /**
   * Where the stream lives. The master resolves the start id, checks the history on every
   * reconnect and (by default) serves the blocking reads; a master change moves the reader.
   */
  topology?: RedisTopology;
  /**
   * Without a topology: the shared client of the one Redis (as `SingleRedisTopology`), or of a
   * Redis Cluster, whose blocking reads run on a connection to the master holding the stream.
   */
  client?: RedisCommands;
  /**
   * `replica`: blocking reads go to a connected replica when there is one, falling back to the
   * master when none answers; a watchdog moves a reader whose replica stops following the
   * master. `master` (default): reads on the master, for streams whose latency matters.
   */
  readFrom?: 'master' | 'replica';
  /** How often a replica reader is compared with the master's last id (default 2000 ms). */
  watchdogMs?: number;
  /**
   * What the process knows about this stream's history across failovers, shared with the
   * `RedisEventHistory` of the same stream (client events): the consumed entries are remembered
   * there (with their `user_id`), lost ranges recorded there, and resumes wait there until the
   * history was checked after a reconnect. Without it the subscriber remembers the last 1024
   * consumed entries for itself.
   */
  continuity?: StreamContinuity;
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

/** How long a replica that failed or fell behind is skipped before it is tried again. */
const REPLICA_PENALTY_MS = 10_000;

/** Entries read per `XREVRANGE` while looking for the newest entry both histories share. */
const WALK_PAGE = 128;

/** What {@link RedisStreamSubscriber.walkBack} found below a lost entry. */
interface Walk {
  /** The newest entry of the master's history that the process knew with the same fields. */
  readonly common: string | undefined;
  /** The lowest entry passed that the process did not know (new on the master), if any. */
  readonly lowestUnseen: string | undefined;
  readonly unseen: number;
}

/**
 * Consumes one Redis stream in order (SPEC §5.5, §5.6) with `XREAD BLOCK` on its own connection,
 * so blocking reads never stall the shared client. It starts strictly after the stream's last id
 * at start; on a Redis error it counts `gateway_stream_subscriber_reconnects_total`, backs off,
 * reconnects, calls `handler.onReconnect()`, and resumes after the last entry it processed.
 * `stop()` destroys the blocking connection, so it returns at once even during `BLOCK`.
 *
 * High availability: a master change interrupts the read at once (no backoff) so the reader
 * never keeps blocking on a demoted node. On every reconnect the last consumed entry is looked
 * up on the master; when it is gone or has other fields (lost in a failover: asynchronous
 * replication), `gateway_stream_history_diverged_total` is counted, the divergence is logged,
 * the handler is told which users' entries were lost (`onHistoryLost`), and the reader rewinds
 * to the newest entry of the master's history it has consumed, so entries the new master wrote
 * with lower ids than the old cursor are still delivered. The handler's `onReconnect` is told
 * whether the history diverged and whether a master change moved the reader.
 */
export class RedisStreamSubscriber {
  private readonly topology: RedisTopology | undefined;
  private readonly client: RedisCommands;
  private readonly readFrom: 'master' | 'replica';
  private readonly watchdogMs: number;
  private readonly recent: RecentEntries;
  private readonly continuity: StreamContinuity | undefined;
  private readonly penalties = new Map<RedisCommands, number>();
  private readTarget: RedisCommands | undefined;
  private moveReason: string | undefined;
  /** A master change moved the reader since the handler was last told of a reconnect. */
  private masterChanged = false;
  private unsubscribe: (() => void) | undefined;
  private watchdog: NodeJS.Timeout | undefined;
  private watchdogBusy = false;
  private lastSeen: { reader: string; master: string } | undefined;
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
    const client = options.topology?.master ?? options.client;
    if (client === undefined) throw new Error('RedisStreamSubscriber needs a topology or a client');
    this.topology = options.topology;
    this.client = client;
    this.readFrom = options.readFrom ?? 'master';
    this.watchdogMs = options.watchdogMs ?? 2000;
    this.continuity = options.continuity;
    this.recent = options.continuity?.consumed ?? new RecentEntries();
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
      const start = parseEntries(reply)[0];
      if (start !== undefined) this.recent.remember(start);
      this.setLast(start?.id ?? '0-0');
      if (start !== undefined && (this.continuity?.indexBackfill ?? 0) > 0) await this.backfillIndex(start);
      else this.continuity?.startedAfter(this.last);
    } catch (err) {
      this.state = 'stopped';
      throw err;
    }
    this.logger.info('stream subscriber started', { stream_key: this.streamKey, start_after: this.last, read_from: this.readFrom });
    this.unsubscribe = this.topology?.onMasterChange(() => {
      this.masterChanged = true;
      this.move('master changed');
    });
    if (this.readFrom === 'replica') {
      this.watchdog = setInterval(() => void this.checkReplica(), this.watchdogMs);
      this.watchdog.unref();
    }
    this.loop = this.run();
  }

  /**
   * Reads the stream's tail (up to the continuity's `indexBackfill` entries, newest first, in
   * pages) into the resume index. Best effort: a page that fails ends the read with what it has.
   */
  private async backfillIndex(newest: StreamEntry): Promise<void> {
    const continuity = this.continuity as StreamContinuity;
    const wanted = continuity.indexBackfill;
    const started = performance.now();
    const pages: StreamEntry[][] = [[newest]];
    let read = 1;
    let complete = false;
    let error: unknown;
    let below = newest.id;
    while (read < wanted) {
      try {
        const count = Math.min(INDEX_BACKFILL_PAGE, wanted - read);
        const page = parseEntries(await this.client.command(['XREVRANGE', this.streamKey, `(${below}`, '-', 'COUNT', String(count)]));
        if (page.length > 0) {
          pages.push(page);
          read += page.length;
          below = (page[page.length - 1] as StreamEntry).id;
        }
        if (page.length < count) {
          complete = true;
          break;
        }
      } catch (err) {
        error = err;
        break;
      }
    }
    const tail: StreamEntry[] = [];
    for (let p = pages.length - 1; p >= 0; p -= 1) {
      const page = pages[p] as StreamEntry[];
      for (let i = page.length - 1; i >= 0; i -= 1) tail.push(page[i] as StreamEntry);
    }
    continuity.startedAfterTail(this.last, tail, complete);
    const fields = { entries: tail.length, whole_stream: complete, took_ms: Math.round(performance.now() - started) };
    if (error === undefined) this.logger.info('resume index filled from the stream tail', fields);
    else this.logger.warn('resume index backfill stopped early', { ...fields, error: describeRedisError(error) });
  }

  /**
   * Ends the current read and reconnects at once (no backoff), counting a reconnect: after a
   * master change, or when the watchdog found the replica stale.
   */
  move(reason: string): void {
    if (this.state !== 'running') return;
    this.moveReason = reason;
    // Another node: its history must be checked before a resume trusts an id again.
    this.continuity?.markUnverified();
    if (this.connection?.isOpen === true) this.connection.destroy();
    this.wake?.();
  }


  /** @deprecated Use {@link RedisStreamSubscriber.close} (one shutdown verb in every package). */
  stop(): Promise<void> {
    return this.close();
  }

  /** `await using x = new RedisStreamSubscriber(…)`: {@link RedisStreamSubscriber.close} at scope exit. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  /** Stops the loop, interrupting a pending blocking read; resolves once the loop ended. Idempotent. */
  async close(): Promise<void> {
    if (this.state === 'stopped' && this.loop === undefined) return;
    this.state = 'stopped';
    this.unsubscribe?.();
    clearInterval(this.watchdog);
    // Nothing checks the history any more: a waiting resume must not wait for it.
    this.continuity?.markVerified();
    this.continuity?.stopped();
    if (this.connection?.isOpen === true) this.connection.destroy();
    this.wake?.();
    await this.loop;
    this.loop = undefined;
  }

  private async run(): Promise<void> {
    let attempt = 0;
    let reconnecting = false;
    while (this.state === 'running') {
      const target = this.pickReadTarget();
      this.readTarget = target;
      this.moveReason = undefined;
      let connection: NodeRedisClient | undefined;
      try {
        // Resolved on every (re)connect: in a cluster the stream's master may have changed.
        connection = await target.blockingConnection(this.streamKey);
        this.connection = connection;
        if (this.state !== 'running') break;
        await connection.connect();
        if (this.state !== 'running') break;
        if (reconnecting) {
          const historyDiverged = await this.verifyHistory();
          reconnecting = false;
          this.continuity?.markVerified();
          this.logger.info('stream subscriber reconnected', { resume_after: this.last, address: target.address });
          this.notifyReconnect({ historyDiverged, masterChanged: this.masterChanged });
          this.masterChanged = false;
        }
        attempt = 0;
        await this.readLoop(connection);
      } catch (err) {
        if (this.state !== 'running') break;
        reconnecting = true;
        this.continuity?.markUnverified();
        this.metrics.subscriberReconnects.add(1, { stream: this.handler.stream });
        const moved = this.moveReason;
        if (moved !== undefined) {
          this.logger.warn('stream subscriber moved; reconnecting', { reason: moved, from: target.address, resume_after: this.last });
          continue;
        }
        // A replica that fails is skipped for a while: the next attempt falls back to the master.
        if (target !== this.client) this.penalties.set(target, performance.now() + REPLICA_PENALTY_MS);
        const delayMs = target !== this.client ? 0 : backoffDelay(attempt++, this.reconnect);
        this.logger.warn('stream subscriber error; reconnecting', { error: describeRedisError(err), address: target.address, retry_in_ms: delayMs, resume_after: this.last });
        if (delayMs > 0) await this.sleep(delayMs);
      } finally {
        // Not only when isOpen: node-redis's destroy() during the connect handshake (stop or
        // move while connecting) sets isOpen to false but leaves the socket open once the
        // handshake ends; a second destroy() after connect() settled closes it. Without this the
        // socket outlives stop(), keeping a Redis connection and the process alive.
        if (connection !== undefined) destroyConnection(connection);
        if (this.connection === connection) this.connection = undefined;
      }
    }
  }

  /**
   * Reads and hands on entries until the connection fails or the subscriber stops. A batch
   * handler (`handleBatch`, which may sign in the threadpool) runs while the next read is in
   * flight: batch k+1 is handed on only once batch k is handled (stream order kept, at most one
   * batch handled and one read at a time), and the loop ends only once the last batch is
   * handled (a reconnect's notices come after it).
   */
  private async readLoop(connection: NodeRedisClient): Promise<void> {
    let handling: Promise<void> | undefined;
    try {
      await this.readEntries(connection, async (entries) => {
        if (handling !== undefined) await handling;
        handling = this.handleBatchAlone(entries);
      });
    } finally {
      if (handling !== undefined) await handling;
    }
  }

  /** `handleBatch` of one read; a failure is logged, never thrown. */
  private async handleBatchAlone(entries: readonly StreamEntry[]): Promise<void> {
    try {
      await this.handler.handleBatch?.(entries);
    } catch (err) {
      this.logger.error('stream entry handler failed', { entry_id: entries[0]?.id, entries: entries.length, error: describeRedisError(err) });
    }
  }

  private async readEntries(connection: NodeRedisClient, handOn: (entries: readonly StreamEntry[]) => Promise<void>): Promise<void> {
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
        for (const entry of entries) {
          this.recent.remember(entry);
          this.continuity?.consumedEntry(entry);
        }
        this.setLast((entries[entries.length - 1] as StreamEntry).id);
        await handOn(entries);
        continue;
      }
      for (const entry of entries) {
        // Advance first: an entry whose handler throws is not redelivered.
        this.recent.remember(entry);
        this.continuity?.consumedEntry(entry);
        this.setLast(entry.id);
        try {
          this.handler.handle(entry);
        } catch (err) {
          this.logger.error('stream entry handler failed', { entry_id: entry.id, error: describeRedisError(err) });
        }
      }
    }
  }

  /** The replica to read from (the first connected one not penalised), else the master. */
  private pickReadTarget(): RedisCommands {
    if (this.readFrom !== 'replica' || this.topology === undefined) return this.client;
    const now = performance.now();
    for (const replica of this.topology.replicas()) {
      const until = this.penalties.get(replica);
      if (until !== undefined && until > now) continue;
      this.penalties.delete(replica);
      return replica;
    }
    return this.client;
  }

  /** Moves the cursor (and the position resumes compare with). */
  private setLast(id: string): void {
    this.last = id;
    if (this.continuity !== undefined) this.continuity.position = id;
  }

  /** Whether the process knew `entry` with these fields (consumed, or read ahead by a resume). */
  private known(entry: StreamEntry): boolean {
    return this.recent.matches(entry) === true || this.continuity?.ahead.matches(entry) === true;
  }

  /**
   * Checks on the master that the last consumed entry, and the newest entry a resume read ahead
   * of the subscriber, still exist with the same fields (SPEC §5.6). If not (lost in a failover:
   * asynchronous replication), counts and logs the divergence, records the lost range, tells the
   * handler (which tells the streams concerned), and, when consumed entries were lost, moves the
   * cursor back to the newest entry of the master's history the subscriber consumed, so entries
   * the new master wrote below the old cursor are read next. The cursor never moves below the
   * oldest entry the subscriber remembers: an older entry is taken as consumed (reading from
   * `0-0` instead, as when the new master held none of the remembered entries, would hand a
   * replica reader the whole history again). Rejects when the master cannot answer (the caller
   * retries with backoff: with no master nothing new is written). Resolves true when the
   * history diverged.
   */
  private async verifyHistory(): Promise<boolean> {
    const cursor = this.last;
    const aheadRecord = this.continuity?.ahead;
    const ahead = aheadRecord?.newestAfter(cursor);
    // A cursor a previous rewind placed right before an entry, or the start of an empty
    // stream, is not an entry: only entries read ahead can be checked then.
    if (this.recent.has(cursor) && !(await this.holds(cursor, this.recent))) {
      const floor = this.recent.oldestId ?? cursor;
      const walk = await this.walkBack(cursor, (id) => compareIds(id, floor) < 0, this.recent.size + (this.continuity?.ahead.size ?? 0) + 1);
      // No shared entry: read on from the lowest new one, or from right before the oldest entry
      // remembered (older ones were consumed long ago, or cannot be told from them).
      const resumeAfter = walk.common ?? previousStreamId(walk.lowestUnseen ?? floor);
      this.setLast(resumeAfter);
      // The index may hold lost entries, and lacks those the new master wrote below the old cursor.
      this.continuity?.startedAfter(resumeAfter);
      this.lost({ after: walk.common, upTo: ahead ?? cursor, floor }, {
        message: 'stream history diverged: the last consumed entry is not on the master (lost in a failover)',
        last_consumed: cursor,
        resume_after: resumeAfter,
        unseen_entries_below_cursor: walk.unseen,
        common_entry_found: walk.common !== undefined,
      });
      return true;
    }
    if (ahead === undefined || aheadRecord === undefined || (await this.holds(ahead, aheadRecord))) return false;
    // The consumed history is intact; entries a resume handed out beyond it are gone.
    const walk = await this.walkBack(ahead, (id) => compareIds(id, cursor) <= 0, aheadRecord.size + 1);
    this.lost({ after: walk.common ?? cursor, upTo: ahead, floor: cursor }, {
      message: 'stream history diverged: entries a resume read ahead of the subscriber are not on the master (lost in a failover)',
      last_consumed: cursor,
      resume_after: cursor,
      unseen_entries_below_cursor: 0,
      common_entry_found: walk.common !== undefined,
    });
    return true;
  }

  /** Whether the master holds the entry `id` with the fields `record` remembers for it. */
  private async holds(id: string, record: RecentEntries): Promise<boolean> {
    const found = parseEntries(await this.client.command(['XRANGE', this.streamKey, id, id]))[0];
    return found !== undefined && record.matches(found) !== false;
  }

  /**
   * Walks the master's history down from `from` (inclusive), `WALK_PAGE` entries per read and
   * at most `budget` in all, to the newest entry the process knew; stops early at an id for
   * which `below` holds (nothing older can be judged).
   */
  private async walkBack(from: string, below: (id: string) => boolean, budget: number): Promise<Walk> {
    let upper = from;
    let unseen = 0;
    let lowestUnseen: string | undefined;
    while (budget > 0) {
      const count = Math.min(WALK_PAGE, budget);
      const page = parseEntries(await this.client.command(['XREVRANGE', this.streamKey, upper, '-', 'COUNT', String(count)]));
      for (const entry of page) {
        if (below(entry.id)) return { common: undefined, lowestUnseen, unseen };
        if (this.known(entry)) return { common: entry.id, lowestUnseen, unseen };
        unseen += 1;
        lowestUnseen = entry.id;
      }
      budget -= page.length;
      if (page.length < count) break;
      upper = `(${(page[page.length - 1] as StreamEntry).id}`;
    }
    return { common: undefined, lowestUnseen, unseen };
  }

  /**
   * Records a loss of the known entries in `(after, upTo]` (`after` undefined: none of the
   * remembered entries is left, so the range starts before `floor`), counts and logs it, and
   * tells the handler with the users of the lost entries the process remembers.
   */
  private lost(loss: { after: string | undefined; upTo: string; floor: string }, log: { message: string } & Record<string, unknown>): void {
    const users = new Set<string>();
    this.recent.valuesIn(loss.after, loss.upTo, users);
    this.continuity?.ahead.valuesIn(loss.after, loss.upTo, users);
    // Read ahead, then lost: a later check must not find them lost again.
    this.continuity?.ahead.forgetIn(loss.after, loss.upTo);
    this.continuity?.ranges.add({ after: loss.after ?? previousStreamId(loss.floor), upTo: loss.upTo });
    this.metrics.streamHistoryDiverged.add(1, { stream: this.handler.stream });
    const { message, ...fields } = log;
    this.logger.error(message, {
      stream_key: this.streamKey,
      ...fields,
      lost_after: loss.after ?? '(unknown)',
      lost_up_to: loss.upTo,
      users_with_lost_entries: users.size,
    });
    try {
      this.handler.onHistoryLost?.({ after: loss.after, upTo: loss.upTo, userIds: [...users] });
    } catch (err) {
      this.logger.error('stream handler onHistoryLost failed', { error: describeRedisError(err) });
    }
  }

  /**
   * Watchdog of a replica reader: if the replica reports its link to the master down, or the
   * master's last id was ahead of the reader at the previous check and the reader has not moved
   * since, or the master's history is behind the reader (it diverged), the reader is moved (the
   * replica is skipped for a while). A reader that fell back to the master moves back to a
   * replica once one is connected (and not skipped).
   */
  private async checkReplica(): Promise<void> {
    const target = this.readTarget;
    if (this.state !== 'running' || this.watchdogBusy || target === undefined) return;
    if (target === this.client) {
      this.lastSeen = undefined;
      // Reading on the master because no replica answered: go back once one does.
      const replica = this.pickReadTarget();
      if (replica !== this.client) this.move(`replica ${replica.address} is available again`);
      return;
    }
    // The topology no longer lists it as a usable replica (promoted in a failover, or gone): its
    // blocking connection may still answer, as the new master, and the checks below would
    // never find it behind a master that is itself. Move to what the topology offers now.
    if (this.topology !== undefined && !(this.topology.replicas() as readonly RedisCommands[]).includes(target)) {
      this.lastSeen = undefined;
      this.move(`replica ${target.address} is no longer a replica of the topology`);
      return;
    }
    this.watchdogBusy = true;
    try {
      // A replica cut off from its master gets nothing more: move at once, rather than after
      // two rounds of the master being ahead (the entries meanwhile would reach this process
      // only after the master had them for seconds, or never, if it fails then).
      const info = String(await target.command(['INFO', 'replication']));
      if (/^role:master/m.test(info) && this.readTarget === target) {
        this.lastSeen = undefined;
        this.move(`replica ${target.address} is a master now`);
        return;
      }
      const link = /master_link_status:(\w+)/.exec(info)?.[1];
      if (link !== undefined && link !== 'up' && this.readTarget === target) {
        this.penalties.set(target, performance.now() + REPLICA_PENALTY_MS);
        this.lastSeen = undefined;
        this.move(`replica ${target.address} lost its link to the master (master_link_status:${link})`);
        return;
      }
    } catch {
      // The replica does not answer: its read fails and moves the reader by itself.
    } finally {
      this.watchdogBusy = false;
    }
    if (this.state !== 'running' || this.readTarget !== target || this.watchdogBusy) return;
    this.watchdogBusy = true;
    try {
      const masterLast = parseEntries(await this.client.command(['XREVRANGE', this.streamKey, '+', '-', 'COUNT', '1']))[0]?.id ?? '0-0';
      const reader = this.last;
      const previous = this.lastSeen;
      this.lastSeen = { reader, master: masterLast };
      const behindBefore = previous !== undefined && previous.reader === reader && compareIds(previous.master, reader) > 0;
      const ahead = compareIds(masterLast, reader) < 0 && this.recent.size > 0;
      if ((behindBefore || ahead) && this.readTarget === target) {
        this.penalties.set(target, performance.now() + REPLICA_PENALTY_MS);
        this.lastSeen = undefined;
        this.move(ahead ? `replica ${target.address} is ahead of the master (diverged)` : `replica ${target.address} stopped following the master`);
      }
    } catch {
      // The master is unreachable: nothing to compare against now.
    } finally {
      this.watchdogBusy = false;
    }
  }

  private notifyReconnect(reconnect: StreamReconnect): void {
    try {
      this.handler.onReconnect?.(reconnect);
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

/** Closes a blocking connection at once, whatever state node-redis reports for it. */
function destroyConnection(connection: NodeRedisClient): void {
  try {
    connection.destroy();
  } catch {
    // Already closed.
  }
}

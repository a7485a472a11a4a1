import { SpanKind, SpanStatusCode, trace, type Span } from '@opentelemetry/api';
import { GatewayMetrics, noopLogger, tracerProviderInstalled, type Logger } from '@edge-gateway/core';
import { createRequire } from 'node:module';
import type { createClient as CreateClient } from '@redis/client';
import { backoffDelay, type ReconnectOptions } from './backoff.js';
import { RedisCommandError } from './redis-command-error.js';
import { MasterReplicatedWriter, WaitLane, type ReplicatedWriter, type ReplicatedWriterOptions } from './replicated-writes.js';

// node-redis's core package: `redis` itself only adds the module commands (JSON, search, …),
// which this package never sends and which cost ~60 ms of startup to load. Loaded with
// `require` (it is CommonJS) so @opentelemetry/instrumentation-redis can patch it, as it
// patches what is `require`d after it was enabled.
const { createClient, ErrorReply } = createRequire(import.meta.url)('@redis/client') as { createClient: typeof CreateClient; ErrorReply: new () => Error };

/** Builds a node-redis client speaking RESP2 (flat array replies, parsed by this package). */
function createResp2Client(options: Omit<Parameters<typeof CreateClient>[0] & object, 'RESP'>) {
  return createClient({ ...options, RESP: 2 });
}

/** The node-redis client type this package wraps (RESP2, no modules). */
export type NodeRedisClient = ReturnType<typeof createResp2Client>;

/** A raw RESP2 reply as node-redis returns it for `sendCommand` (no type mapping). */
export type RawReply = string | number | null | RawReply[];

/** Bound on each command when `commandTimeoutMs` is not given (`GATEWAY_REDIS_COMMAND_TIMEOUT` default, 2 s). */
export const DEFAULT_COMMAND_TIMEOUT_MS = 2000;

/** Options of {@link createRedisClient}. */
export interface RedisClientOptions {
  host: string;
  port: number;
  /** `requirepass` password; never logged. */
  password: string;
  /** Logical database (default 0). */
  db?: number;
  /** `CLIENT SETNAME` value (stream connections get a `:stream` suffix). */
  clientName?: string;
  /** Bound on each command (`GATEWAY_REDIS_COMMAND_TIMEOUT`, default {@link DEFAULT_COMMAND_TIMEOUT_MS}). */
  commandTimeoutMs?: number;
  /** Reconnect backoff of the shared connection. */
  reconnect?: ReconnectOptions;
  metrics?: GatewayMetrics;
  logger?: Logger;
}

/** Per-call options of {@link RedisClient.command}. */
export interface RedisCommandOptions {
  /** Overrides the client's command timeout; `0` disables it. */
  timeoutMs?: number;
  /** Run on this connection (e.g. a duplicate) instead of the shared one. */
  connection?: NodeRedisClient;
  /**
   * Cluster: send it to the master of this key's slot, on the connection the keyed commands of
   * that slot use (e.g. a `WAIT` after a write of `key`). One server ignores it.
   */
  key?: string;
}

const tracer = trace.getTracer('@edge-gateway/adapters-redis');

/** Error codes of a socket that could not reach the server. */
const UNREACHABLE_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN', 'ETIMEDOUT', 'EPIPE']);

/** Describes an error for logs and messages: name, message and errno code; no arguments, no password. */
export function describeRedisError(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const code = (err as NodeJS.ErrnoException).code;
  const base = err.message || err.name;
  return code !== undefined && !base.includes(code) ? `${base} (${code})` : base;
}

/**
 * Whether Redis answered the command with an error reply (`-ERR …`, `-READONLY …`): the server
 * got it and refused it. Any other failure (timeout, lost connection) leaves open whether it ran.
 */
export function isErrorReply(err: unknown): boolean {
  const cause = err instanceof RedisCommandError && err.cause !== undefined ? err.cause : err;
  return cause instanceof ErrorReply;
}

/** Whether `err` is a socket-level "cannot reach the server" error. */
export function isUnreachableError(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  return code !== undefined && UNREACHABLE_CODES.has(code);
}

/**
 * The one shared Redis connection of a gateway process (SPEC §5.5, §8.1). Commands never wait
 * in an offline queue: while the connection is down they fail at once, and each command is
 * bounded by `commandTimeoutMs`. The connection reconnects by itself with capped exponential
 * backoff. Every command issued through {@link RedisClient.command} records
 * `gateway_redis_command_duration_seconds{command,outcome}` and, unless
 * `@opentelemetry/instrumentation-redis` already patched node-redis, a client span
 * `redis <COMMAND>`.
 */
export class RedisClient {
  readonly db: number;
  readonly commandTimeoutMs: number;
  readonly metrics: GatewayMetrics;
  readonly logger: Logger;
  private readonly options: RedisClientOptions;
  private current: NodeRedisClient;
  private currentHost: string;
  private currentPort: number;
  private ended = false;
  private readonly writers = new Set<MasterReplicatedWriter>();

  constructor(options: RedisClientOptions) {
    this.options = options;
    this.currentHost = options.host;
    this.currentPort = options.port;
    this.db = options.db ?? 0;
    this.commandTimeoutMs = options.commandTimeoutMs ?? DEFAULT_COMMAND_TIMEOUT_MS;
    this.metrics = options.metrics ?? new GatewayMetrics();
    this.logger = (options.logger ?? noopLogger).child({ component: 'redis' });
    this.current = this.newConnection({ name: options.clientName, reconnect: true });
  }

  /** The underlying node-redis client of the shared connection; prefer {@link RedisClient.command}. */
  get raw(): NodeRedisClient {
    return this.current;
  }

  /** Host of the server this client talks to (changes on {@link RedisClient.retarget}). */
  get host(): string {
    return this.currentHost;
  }

  /** Port of the server this client talks to (changes on {@link RedisClient.retarget}). */
  get port(): number {
    return this.currentPort;
  }

  /**
   * Points the client at another server (a new master after a failover). From this call on,
   * nothing is sent to the old server: its shared connection is destroyed at once (pending
   * commands reject, so their callers hear of the failure; nothing is retried elsewhere), new
   * commands fail fast until the new connection is ready (no offline queue), and new dedicated
   * connections ({@link RedisClient.duplicate}) go to the new address. A write accepted by a
   * demoted master after the switch would be lost, which is why the old connection is not kept
   * until the new one is up. Resolves once the new connection is ready (or closed).
   */
  async retarget(host: string, port: number): Promise<void> {
    if (host === this.currentHost && port === this.currentPort) return;
    const previous = this.current;
    const wasOpen = previous.isOpen;
    this.currentHost = host;
    this.currentPort = port;
    this.current = this.newConnection({ name: this.options.clientName, reconnect: true });
    destroyConnection(previous);
    // Replicated writes waiting for a WAIT on the old master reject (never confirmed there).
    for (const writer of this.writers) writer.masterMoved();
    if (!wasOpen || this.ended) return;
    try {
      await this.current.connect();
    } catch {
      // Destroyed while connecting: superseded by a later retarget, or closed.
    }
  }

  /**
   * A new, unconnected client with this client's settings (password, db, timeouts, metrics,
   * logger) for another server, e.g. a replica; `nameSuffix` is appended to the client name.
   */
  sibling(address: { host: string; port: number }, nameSuffix: string): RedisClient {
    const name = this.options.clientName;
    return new RedisClient({ ...this.options, host: address.host, port: address.port, ...(name !== undefined ? { clientName: `${name}${nameSuffix}` } : {}) });
  }

  /** `host:port` of the server, for messages. */
  get address(): string {
    return `${this.host}:${this.port}`;
  }

  /** Whether the shared connection is established and ready for commands. */
  get isReady(): boolean {
    return this.raw.isReady;
  }

  /** Resolves `true` once the shared connection is ready, or `false` after `timeoutMs`. */
  whenReady(timeoutMs: number): Promise<boolean> {
    if (this.raw.isReady) return Promise.resolve(true);
    const raw = this.raw;
    return new Promise<boolean>((resolve) => {
      const done = (ready: boolean): void => {
        clearTimeout(timer);
        raw.off('ready', onReady);
        resolve(ready);
      };
      const onReady = (): void => done(true);
      const timer = setTimeout(() => done(raw.isReady), timeoutMs);
      raw.on('ready', onReady);
    });
  }

  /**
   * Opens the shared connection (retrying with backoff until ready or destroyed). After
   * {@link RedisClient.close} or {@link RedisClient.destroy} it does nothing: a background task
   * that still holds the client (a discovery poll, a replica connecting) must not reopen a
   * connection its owner closed (that kept the CLI's process alive after its work was done).
   */
  async connect(): Promise<void> {
    if (this.ended) return;
    if (!this.raw.isOpen) await this.raw.connect();
  }

  /** Closes the shared connection after pending commands finish (and every replicated writer at once); the client stays closed. */
  close(): Promise<void> {
    this.ended = true;
    this.closeWriters();
    return closeOrDestroy(this.raw);
  }

  /** `await using x = new RedisClient(…)`: {@link RedisClient.close} at scope exit. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  /**
   * Closes the shared connection at once, rejecting pending commands; the client stays closed.
   * Not a graceful stop (that is {@link RedisClient.close}): the abort, node-redis's own verb.
   */
  destroy(): void {
    this.ended = true;
    this.closeWriters();
    destroyConnection(this.raw);
  }

  /** Whether {@link RedisClient.close} or {@link RedisClient.destroy} was called. */
  get closed(): boolean {
    return this.ended;
  }

  /**
   * Writes confirmed by `WAIT` on dedicated connections to this server (SPEC §5.2), named
   * `<clientName>:replay`; they follow {@link RedisClient.retarget} (a new master: new
   * connections, writes waiting on the old one reject) and close with this client.
   */
  replicatedWriter(options: ReplicatedWriterOptions): ReplicatedWriter {
    const name = this.options.clientName !== undefined ? `${this.options.clientName}:replay` : undefined;
    const writer = new MasterReplicatedWriter(
      () =>
        new WaitLane(() => this.newConnection({ name, reconnect: true, role: 'replay' }), {
          ...options,
          address: this.address,
          commandTimeoutMs: this.commandTimeoutMs,
          metrics: this.metrics,
          logger: this.logger,
        }),
      options.minReplicas,
      () => this.writers.delete(writer),
    );
    this.writers.add(writer);
    return writer;
  }

  private closeWriters(): void {
    for (const writer of [...this.writers]) writer.close();
  }

  /**
   * A new, unconnected connection to the same server with its own error listener.
   * With `reconnect: false` it never reconnects by itself: the first socket error ends it
   * (stream subscribers run their own reconnect loop).
   */
  newConnection(options: { name?: string | undefined; reconnect: boolean; role?: string }): NodeRedisClient {
    const reconnect = this.options.reconnect ?? {};
    // node-redis writes its queue until the socket buffer reaches the high-water mark, then waits
    // for 'drain' and a later event-loop turn. With the 16 KiB default only ~250 commands go out
    // per turn, so under a burst (a storm of subscribes) commands sat unwritten until they timed
    // out. 1 MiB per turn keeps the queue moving. (net.Socket option, passed through by
    // node-redis; not in its option type, hence the separate object.)
    const socket = {
      host: this.host,
      port: this.port,
      connectTimeout: Math.max(this.commandTimeoutMs, 1000),
      writableHighWaterMark: SOCKET_WRITE_HIGH_WATER_MARK,
      reconnectStrategy: options.reconnect ? (retries: number) => backoffDelay(retries, reconnect) : (false as const),
    };
    const settings = {
      socket,
      password: this.options.password,
      database: this.db,
      ...(options.name !== undefined ? { name: options.name } : {}),
      disableOfflineQueue: true,
      // No node-redis command timeout: `command()` bounds every command itself. node-redis's
      // default (5 s) would add an AbortSignal.timeout per command (a second timer, a WeakRef
      // and a finalizer, and a DOMException when it fires 5 s later for nothing), and would
      // cut blocking reads longer than 5 s.
      commandOptions: { timeout: 0 },
    };
    // Further connections reuse the shared client's class: node-redis caches the class it
    // builds per options (one entry), so a fresh createClient with other options rebuilds all
    // command methods (~60 ms on the event loop).
    const connection = (this.current as NodeRedisClient | undefined) === undefined ? createResp2Client(settings) : this.current.duplicate(settings);
    const role = options.role ?? (options.reconnect ? 'shared' : (options.name ?? 'dedicated'));
    // Without a listener an `error` event would crash the process.
    connection.on('error', (err: unknown) => {
      this.logger.warn('redis connection error', { connection: role, address: this.address, error: describeRedisError(err) });
    });
    return connection;
  }

  /** A connection for blocking reads (see {@link RedisClient.newConnection}), named `<clientName>:stream`. */
  duplicate(): NodeRedisClient {
    const name = this.options.clientName !== undefined ? `${this.options.clientName}:stream` : undefined;
    return this.newConnection({ name, reconnect: false });
  }

  /**
   * Sends one command (`args[0]` is its name) with the command timeout, records its duration
   * and outcome, and traces it. Rejects with {@link RedisCommandError}.
   */
  command(args: readonly string[], options: RedisCommandOptions = {}): Promise<RawReply> {
    const name = (args[0] ?? '').toUpperCase();
    const connection = options.connection ?? this.raw;
    const timeoutMs = options.timeoutMs ?? this.commandTimeoutMs;
    // node-redis does not modify the arguments it is given (the copy the type asks for would cost an array per command).
    const send = (abortSignal: AbortSignal | undefined): Promise<RawReply> =>
      connection.sendCommand(args as string[], abortSignal === undefined ? undefined : { abortSignal }) as Promise<RawReply>;
    const span = this.startSpan(name, connection);
    if (span === undefined) return boundedCommand(name, timeoutMs, this.metrics, send);
    return boundedCommand(name, timeoutMs, this.metrics, send).then(
      (reply) => {
        span.end();
        return reply;
      },
      (err: unknown) => {
        if (err instanceof Error) {
          span.recordException(err);
          span.setStatus({ code: SpanStatusCode.ERROR, message: err.message });
        }
        span.end();
        throw err;
      },
    );
  }

  /** A dedicated connection for blocking reads of `key` (this server holds every key). */
  blockingConnection(_key: string): Promise<NodeRedisClient> {
    return Promise.resolve(this.duplicate());
  }

  /** `PING`; resolves when the server answered `PONG`. */
  async ping(options: RedisCommandOptions = {}): Promise<void> {
    await this.command(['PING'], options);
  }

  private startSpan(name: string, connection: NodeRedisClient): Span | undefined {
    // instrumentation-redis wraps sendCommand (shimmer marks it `__wrapped`); then its span
    // suffices. Without a tracing SDK a span would be a no-op: none is made.
    if ((connection.sendCommand as { __wrapped?: boolean }).__wrapped === true || !tracerProviderInstalled()) return undefined;
    return tracer.startSpan(`redis ${name}`, {
      kind: SpanKind.CLIENT,
      attributes: {
        'db.system': 'redis',
        'db.system.name': 'redis',
        'db.operation.name': name,
        'db.namespace': String(this.db),
        'server.address': this.host,
        'server.port': this.port,
      },
    });
  }
}

/** Closes a node-redis client (or cluster) after its pending commands; destroys it if that fails. */
export async function closeOrDestroy(raw: ClosableConnection): Promise<void> {
  if (!raw.isOpen) return;
  // Nothing can be pending on a connection that is not ready (no offline queue): end it now.
  if (raw.isReady === false) return destroyConnection(raw);
  try {
    await raw.close();
  } catch {
    destroyConnection(raw);
  }
}

/**
 * Destroys a node-redis connection, including one that is still connecting. node-redis 6.3
 * forgets a socket whose TCP connect was in flight when `destroy()` ran: the socket connects
 * afterwards, stays open and keeps the process alive (the CLI hung after its work under
 * Sentinel, holding connections to replicas that connected in the background). The socket
 * announces itself with `connect`; destroying then closes it.
 */
export function destroyConnection(raw: ClosableConnection): void {
  const connecting = raw.isOpen && raw.isReady === false;
  if (raw.isOpen) raw.destroy();
  if (connecting) raw.once?.('connect', () => raw.destroy());
}

/** What {@link closeOrDestroy} and {@link destroyConnection} need of a node-redis client or cluster client. */
export interface ClosableConnection {
  readonly isOpen: boolean;
  readonly isReady?: boolean;
  close(): Promise<unknown>;
  destroy(): unknown;
  once?(event: 'connect', listener: () => void): unknown;
}

/** Thrown by {@link withTimeout}; mapped to a {@link RedisCommandError}. */
class CommandTimeout extends Error {}

/**
 * node-redis's `timeout` command option only covers the time before the command is written
 * to the socket; a server that accepted the bytes but does not answer (frozen, partitioned)
 * would hang the caller for ever. This bounds the whole round trip. The late reply, if any,
 * is still consumed by node-redis in order, so later commands are not misaligned.
 */
/** Socket write buffer per turn of the event loop (see `newConnection`). */
export const SOCKET_WRITE_HIGH_WATER_MARK = 1024 * 1024;

/** How late a timeout timer may fire before the lateness counts as a stalled event loop. */
export const EVENT_LOOP_STALL_TOLERANCE_MS = 100;

/** A stalled event loop extends a command's wait by at most this many times its bound. */
export const EVENT_LOOP_STALL_MAX_EXTENSION = 4;

/**
 * Rejects with `CommandTimeout` when `promise` has not settled within `timeoutMs`. The bound is
 * meant for a Redis that does not answer, not for this process being busy: when the timer fires
 * late because the event loop was stalled (e.g. a burst of thousands of subscribes being
 * decoded), the reply may be sitting unread in the socket, so the wait is extended by the time
 * the loop was stalled (in total at most `EVENT_LOOP_STALL_MAX_EXTENSION × timeoutMs`), and the
 * final check runs after one more poll for I/O (`setImmediate`), so a reply already received
 * is read before the command is declared timed out. `onTimeout` runs right after the
 * rejection (to withdraw the work); a settlement of `promise` after that is ignored.
 */
export function withTimeout<T>(promise: Promise<T>, timeoutMs: number, onTimeout?: () => void): Promise<T> {
  if (timeoutMs <= 0) return promise;
  return new Promise<T>((resolve, reject) => {
    let settled = false;
    let extended = 0;
    let due = performance.now() + timeoutMs;
    const expire = (): void => {
      const late = performance.now() - due;
      if (late > EVENT_LOOP_STALL_TOLERANCE_MS && extended < EVENT_LOOP_STALL_MAX_EXTENSION * timeoutMs) {
        const extra = Math.min(late, timeoutMs, EVENT_LOOP_STALL_MAX_EXTENSION * timeoutMs - extended);
        extended += extra;
        due = performance.now() + extra;
        timer = setTimeout(expire, extra);
        return;
      }
      setImmediate(() => {
        if (settled) return;
        settled = true;
        reject(new CommandTimeout());
        onTimeout?.();
      });
    };
    let timer = setTimeout(expire, timeoutMs);
    promise.then(
      (value) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        resolve(value);
      },
      (err: unknown) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        reject(err);
      },
    );
  });
}

/**
 * The abort signal handed to node-redis to withdraw a command that was not written yet when
 * its time ran out (so it never runs later: a late `SET NX` would burn the request id of a
 * retry). node-redis only reads `aborted` and adds, then removes, one `abort` listener per
 * command (`commands-queue.js` of the pinned 6.3.1; the withdrawal is proven against the real
 * driver in test/stores.test.ts). This one-listener object replaces an `AbortController` per
 * command, whose `EventTarget` machinery cost more than the rest of this wrapper.
 */
class CommandWithdrawal {
  aborted = false;
  private listener: (() => void) | undefined;

  addEventListener(_type: 'abort', listener: () => void): void {
    this.listener = listener;
  }

  removeEventListener(_type: 'abort', listener: () => void): void {
    if (this.listener === listener) this.listener = undefined;
  }

  abort(): void {
    if (this.aborted) return;
    this.aborted = true;
    const listener = this.listener;
    this.listener = undefined;
    listener?.();
  }
}

type Outcome = 'ok' | 'error';
// One frozen label set per (command, outcome): no attribute object per command. Command names
// come from this package's own code, so the map stays small.
const outcomeLabels = new Map<string, Readonly<{ command: string; outcome: Outcome }>>();
function redisLabels(command: string, outcome: Outcome): Readonly<{ command: string; outcome: Outcome }> {
  const key = outcome === 'ok' ? command : `${command}\u0000error`;
  let labels = outcomeLabels.get(key);
  if (labels === undefined) outcomeLabels.set(key, (labels = Object.freeze({ command, outcome })));
  return labels;
}

/**
 * Runs one command with the command timeout, records
 * `gateway_redis_command_duration_seconds{command,outcome}` and rejects with a
 * {@link RedisCommandError}. `send` gets the abort signal that withdraws the command on timeout.
 */
export function boundedCommand(
  name: string,
  timeoutMs: number,
  metrics: GatewayMetrics,
  send: (abortSignal: AbortSignal | undefined) => Promise<RawReply>,
): Promise<RawReply> {
  const started = performance.now();
  const record = (outcome: Outcome): void => metrics.redisCommandDuration.record((performance.now() - started) / 1000, redisLabels(name, outcome));
  const failed = (err: unknown): never => {
    record('error');
    throw toCommandError(name, err, timeoutMs);
  };
  let sent: Promise<RawReply>;
  // On timeout the command is also withdrawn from node-redis's queue if it was not written
  // yet (see CommandWithdrawal), rather than through node-redis's `timeout` option, which
  // costs an AbortSignal.timeout per command (a second timer, a WeakRef and a finalizer).
  const withdrawal = timeoutMs > 0 ? new CommandWithdrawal() : undefined;
  try {
    sent = send(withdrawal as AbortSignal | undefined);
  } catch (err) {
    return Promise.reject(err).catch(failed);
  }
  const bounded = withdrawal === undefined ? sent : withTimeout(sent, timeoutMs, () => withdrawal.abort());
  return bounded.then((reply) => {
    record('ok');
    return reply;
  }, failed);
}

function toCommandError(name: string, err: unknown, timeoutMs: number): RedisCommandError {
  if (err instanceof RedisCommandError) return err;
  const errName = err instanceof Error ? err.constructor.name : '';
  if (err instanceof CommandTimeout || errName === 'TimeoutError') return new RedisCommandError(name, `timed out after ${timeoutMs}ms`, { cause: err });
  if (errName === 'ClientOfflineError') return new RedisCommandError(name, 'the client is offline (not connected to redis)', { cause: err });
  if (errName === 'ClientClosedError') return new RedisCommandError(name, 'the client is closed', { cause: err });
  return new RedisCommandError(name, describeRedisError(err), { cause: err });
}

/** Creates the shared Redis client (not connected yet; see `connectAndPing`). */
export function createRedisClient(options: RedisClientOptions): RedisClient {
  return new RedisClient(options);
}

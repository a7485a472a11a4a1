import type { Server, Socket } from 'node:net';
import { GatewayMetrics, noopLogger, type Logger } from '@edge-gateway/core';

/** How often at most `accept failed` and `connections refused` are logged per listener. */
export const GUARD_LOG_INTERVAL_MS = 10_000;

export interface ListenerGuardOptions {
  /**
   * Open connections allowed across every capped listener together (`GATEWAY_MAX_CONNECTIONS`);
   * one more is closed at accept, before any byte is read. Default: unlimited.
   */
  readonly maxConnections?: number;
  readonly metrics?: GatewayMetrics;
  readonly logger?: Logger;
  /** Default {@link GUARD_LOG_INTERVAL_MS}. */
  readonly logIntervalMs?: number;
}

export interface GuardedListener {
  /** The `listener` label and log field: `public`, `grpc`, `websocket`, `admin`. */
  readonly listener: string;
  /** Counted against `maxConnections` (default true); the admin listener is not, so it always gets a descriptor. */
  readonly capped?: boolean;
  /**
   * A TLS server: a connection whose handshake has not completed this long after it was
   * accepted is destroyed (`GATEWAY_HTTP_HEADERS_TIMEOUT`). Node's own `handshakeTimeout` is an
   * idle timer, which a client sending one byte now and then restarts forever.
   */
  readonly tlsHandshakeTimeoutMs?: number;
}

interface Entry {
  readonly listener: string;
  readonly capped: boolean;
  open: number;
  readonly refusedLog: IntervalLog;
  readonly acceptLog: IntervalLog;
  /** Accept error codes since the last `accept failed` line. */
  readonly acceptCodes: Set<string>;
}

/**
 * A line written for the first occurrence, then at most once per interval with the number of
 * occurrences since the last line (`count`); a count still pending is written when the
 * interval ends (by a timer that keeps no process alive).
 */
class IntervalLog {
  private pending = 0;
  private lastWritten = Number.NEGATIVE_INFINITY;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly intervalMs: number,
    private readonly write: (count: number) => void,
  ) {}

  note(): void {
    this.pending += 1;
    if (this.timer !== undefined) return;
    const wait = this.lastWritten + this.intervalMs - performance.now();
    if (wait <= 0) return this.flush();
    this.timer = setTimeout(() => this.flush(), wait);
    this.timer.unref();
  }

  private flush(): void {
    this.timer = undefined;
    if (this.pending === 0) return;
    this.lastWritten = performance.now();
    const count = this.pending;
    this.pending = 0;
    this.write(count);
  }
}

/**
 * Bounds the connections of a process's listeners: a cap on open connections shared by the
 * public listeners, a time bound on TLS handshakes, and accept errors that are counted and
 * logged (at most once per 10 s per listener) instead of crashing the process (an `error`
 * event on a server without a listener does).
 *
 * The cap uses `net.Server.maxConnections`, so a refused connection is closed by Node before
 * any JavaScript object exists for it (the `drop` event counts it); every listener's limit is
 * kept at the connections it holds plus what the cap leaves free.
 */
export class ListenerGuard {
  readonly maxConnections: number;
  private readonly metrics: GatewayMetrics;
  private readonly logger: Logger;
  private readonly logIntervalMs: number;
  private readonly servers = new Map<Server, Entry>();
  private capped = 0;

  constructor(options: ListenerGuardOptions = {}) {
    this.maxConnections = options.maxConnections ?? Number.POSITIVE_INFINITY;
    if (!(this.maxConnections >= 1)) throw new RangeError('maxConnections must be at least 1');
    this.metrics = options.metrics ?? new GatewayMetrics();
    this.logger = (options.logger ?? noopLogger).child({ component: 'listener' });
    this.logIntervalMs = options.logIntervalMs ?? GUARD_LOG_INTERVAL_MS;
  }

  /** Open connections on the capped listeners. */
  get open(): number {
    return this.capped;
  }

  /** Open connections of one listener (0 when unknown). */
  openOn(listener: string): number {
    let total = 0;
    for (const entry of this.servers.values()) if (entry.listener === listener) total += entry.open;
    return total;
  }

  /**
   * Guards `server`. Call it before the server accepts its first connection (connections
   * accepted before are neither counted nor bounded). It also takes over the server's `error`
   * events: `accept` errors are counted and logged, others logged as `listener error`.
   */
  attach(server: Server, options: GuardedListener): void {
    if (this.servers.has(server)) return;
    const listener = options.listener;
    const entry: Entry = {
      listener,
      capped: options.capped ?? true,
      open: 0,
      refusedLog: new IntervalLog(this.logIntervalMs, (refused) =>
        this.logger.warn('connections refused: GATEWAY_MAX_CONNECTIONS reached', { listener, max_connections: this.maxConnections, refused }),
      ),
      acceptLog: new IntervalLog(this.logIntervalMs, (count) => {
        this.logger.error('accept failed', { listener, code: [...entry.acceptCodes].join(','), count });
        entry.acceptCodes.clear();
      }),
      acceptCodes: new Set(),
    };
    this.servers.set(server, entry);
    const labels = { listener: entry.listener };
    this.metrics.connectionsOpen.add(0, labels);
    if (entry.capped) this.metrics.connectionsRefused.add(0, labels);
    for (const code of ['EMFILE', 'ENFILE']) this.metrics.acceptErrors.add(0, { listener: entry.listener, code });

    // One listener for every socket of the server (a socket closes once): no closure per
    // connection, which an idle device connection would keep (issue 25).
    const closed = (): void => {
      entry.open -= 1;
      if (entry.capped) this.capped -= 1;
      this.metrics.connectionsOpen.add(-1, labels);
      if (entry.capped) this.updateLimits();
    };
    server.on('connection', (socket: Socket) => {
      entry.open += 1;
      if (entry.capped) this.capped += 1;
      this.metrics.connectionsOpen.add(1, labels);
      socket.on('close', closed);
      if (entry.capped) this.updateLimits();
    });
    server.on('drop', () => this.refused(entry));
    server.on('error', (error: NodeJS.ErrnoException) => this.onError(entry, error));
    if (options.tlsHandshakeTimeoutMs !== undefined) boundTlsHandshakes(server, options.tlsHandshakeTimeoutMs);
    if (entry.capped) this.updateLimits();
  }

  /** Stops guarding `server` (its connections no longer count). */
  detach(server: Server): void {
    const entry = this.servers.get(server);
    if (entry === undefined) return;
    this.servers.delete(server);
    if (entry.capped) {
      this.capped -= entry.open;
      this.updateLimits();
    }
  }

  private updateLimits(): void {
    if (this.maxConnections === Number.POSITIVE_INFINITY) return;
    const free = this.maxConnections - this.capped;
    for (const [server, entry] of this.servers) {
      if (!entry.capped) continue;
      const allowed = entry.open + free;
      // Node 20 reads a maxConnections of 0 as "no limit" (later versions as "refuse all");
      // any value at or below the connections held refuses the next one on both.
      server.maxConnections = allowed > 0 ? allowed : -1;
    }
  }

  private refused(entry: Entry): void {
    this.metrics.connectionsRefused.add(1, { listener: entry.listener });
    entry.refusedLog.note();
  }

  private onError(entry: Entry, error: NodeJS.ErrnoException): void {
    if (error.syscall !== 'accept') {
      this.logger.error('listener error', { listener: entry.listener, error: error.message });
      return;
    }
    // Errno names are a closed set; anything else shares one label value.
    const code = typeof error.code === 'string' && /^E[A-Z0-9]{1,31}$/.test(error.code) ? error.code : 'other';
    this.metrics.acceptErrors.add(1, { listener: entry.listener, code });
    entry.acceptCodes.add(code);
    entry.acceptLog.note();
  }
}

/**
 * Destroys a TLS server's connections whose handshake has not completed `timeoutMs` after
 * they were accepted, however the client spreads its bytes.
 */
export function boundTlsHandshakes(server: Server, timeoutMs: number): void {
  // The raw socket and its TLS socket share the peer address; a listener has one connection per peer address and port.
  const pending = new Map<string, NodeJS.Timeout>();
  const key = (socket: Socket): string => `${socket.remoteAddress}|${socket.remotePort}`;
  server.on('connection', (socket: Socket) => {
    const id = key(socket);
    const timer = setTimeout(() => socket.destroy(), timeoutMs);
    pending.set(id, timer);
    socket.once('close', () => {
      clearTimeout(timer);
      if (pending.get(id) === timer) pending.delete(id);
    });
  });
  server.on('secureConnection', (socket: Socket) => {
    const id = key(socket);
    clearTimeout(pending.get(id));
    pending.delete(id);
  });
}

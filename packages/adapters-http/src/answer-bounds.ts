import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { DEFAULT_CONNECTION_MAX_BUFFER_BYTES, MAX_CALLS_PER_CONNECTION, type GatewayMetrics, type Logger } from '@edge-gateway/core';

/** `GATEWAY_HTTP_WRITE_TIMEOUT` default: a connection whose answers make no progress this long is closed. */
export const DEFAULT_HTTP_WRITE_TIMEOUT_MS = 30_000;

export interface AnswerBoundsOptions {
  /** Answer bytes queued on one connection past which its pipelined requests are not parsed (`GATEWAY_CONNECTION_MAX_BUFFER_BYTES`). */
  readonly maxBufferBytes?: number;
  /** A connection with answers waiting whose socket takes no byte for this long is closed (`GATEWAY_HTTP_WRITE_TIMEOUT`). */
  readonly writeTimeoutMs?: number;
  /** The listener's headers timeout, counted again from the moment a held connection is read again. */
  readonly headersTimeoutMs: number;
  readonly metrics?: GatewayMetrics;
  readonly logger: Logger;
}

type Handler = (req: IncomingMessage, res: ServerResponse) => void;

/** One connection's answers: those waiting behind the one being written, and requests held back. */
interface Connection {
  readonly socket: Socket;
  /** Requests parsed on this connection. */
  requests: number;
  /** Answers handed to the app and not finished (sent to the socket) or closed, in request order. */
  readonly answering: ServerResponse[];
  inFlight: number;
  /** The last request parsed: a request timeout while its body is still coming is its own. */
  last: IncomingMessage | undefined;
  /** Bytes of answers written by the app but waiting behind another answer (not on the socket yet). */
  waitingBytes: number;
  readonly waiting: Map<ServerResponse, number>;
  /** Requests parsed while the connection was over its bound: answered once it drains. */
  readonly held: Array<readonly [IncomingMessage, ServerResponse]>;
  paused: boolean;
  /** A request timeout Node reported while the connection was held: the headers are due again after it resumes. */
  timeoutDeferred: boolean;
  headersTimer: NodeJS.Timeout | undefined;
  lastTaken: number;
  lastProgress: number;
  closing: boolean;
}

/** What Node answers a client error with when the server has no `clientError` listener. */
const CLIENT_ERROR_ANSWERS: Record<string, string> = {
  HPE_HEADER_OVERFLOW: '431 Request Header Fields Too Large',
  HPE_CHUNK_EXTENSIONS_OVERFLOW: '413 Payload Too Large',
  ERR_HTTP_REQUEST_TIMEOUT: '408 Request Timeout',
};

/**
 * Bounds what one HTTP connection's answers may cost (issue 22, SPEC §6): a client that
 * pipelines requests and never reads the answers.
 *
 * - Past `maxBufferBytes` of answers not taken by the socket (or {@link MAX_CALLS_PER_CONNECTION}
 *   answers being made), the socket is not read and requests already parsed from its last read are
 *   held unanswered; below half of both they are answered in order and the socket is read again.
 * - A connection with answers waiting whose socket takes no byte for `writeTimeoutMs` is
 *   destroyed and counted in `gateway_connections_closed_total{transport="http",reason="write_timeout"}`.
 * - The headers (and request) timeout does not cut a request whose headers wait behind answers
 *   not yet written; they are due within the headers timeout once the connection has nothing
 *   left to write.
 */
export class AnswerBounds {
  private readonly maxBufferBytes: number;
  private readonly writeTimeoutMs: number;
  private readonly connections = new Map<Socket, Connection>();
  private readonly timer: NodeJS.Timeout;
  private app: Handler = () => undefined;

  constructor(
    server: Server,
    private readonly options: AnswerBoundsOptions,
  ) {
    this.maxBufferBytes = options.maxBufferBytes ?? DEFAULT_CONNECTION_MAX_BUFFER_BYTES;
    this.writeTimeoutMs = options.writeTimeoutMs ?? DEFAULT_HTTP_WRITE_TIMEOUT_MS;
    if (!(this.maxBufferBytes >= 1)) throw new RangeError('maxBufferBytes must be at least 1');
    if (!(this.writeTimeoutMs >= 1)) throw new RangeError('writeTimeoutMs must be at least 1');
    options.metrics?.connectionsClosed.add(0, { transport: 'http', reason: 'write_timeout' });
    // A listener on clientError replaces Node's own answer, so it is written here as Node does.
    server.on('clientError', (error: NodeJS.ErrnoException, socket: Socket) => this.clientError(error, socket));
    this.timer = setInterval(() => this.checkWrites(), Math.max(50, Math.min(1000, Math.floor(this.writeTimeoutMs / 4))));
    this.timer.unref();
    server.once('close', () => clearInterval(this.timer));
  }

  /** Wraps the app: every request goes through the connection's bound first. */
  handler(app: Handler): Handler {
    this.app = app;
    return (req, res) => {
      const conn = this.connection(req.socket);
      conn.requests += 1;
      conn.last = req;
      clearTimeout(conn.headersTimer);
      if (conn.paused) {
        conn.held.push([req, res]);
        return;
      }
      this.answer(conn, req, res, app);
    };
  }

  private connection(socket: Socket): Connection {
    let conn = this.connections.get(socket);
    if (conn !== undefined) return conn;
    conn = {
      socket,
      requests: 0,
      answering: [],
      inFlight: 0,
      last: undefined,
      waitingBytes: 0,
      waiting: new Map(),
      held: [],
      paused: false,
      timeoutDeferred: false,
      headersTimer: undefined,
      lastTaken: 0,
      lastProgress: performance.now(),
      closing: false,
    };
    const c = conn;
    this.connections.set(socket, c);
    socket.once('close', () => {
      this.connections.delete(socket);
      clearTimeout(c.headersTimer);
      // Held requests never reached the app: nobody else ends them.
      for (const [, res] of c.held.splice(0)) res.destroy();
    });
    socket.on('drain', () => this.update(c));
    // Node reads a paused socket again on its own (its pipelining check, a request body being
    // read); a connection over its bound stays unread.
    socket.on('resume', () => {
      if (c.paused) socket.pause();
      else this.timeHeaders(c);
    });
    return c;
  }

  private answer(conn: Connection, req: IncomingMessage, res: ServerResponse, app: Handler): void {
    conn.inFlight += 1;
    conn.answering.push(res);
    let done = false;
    const finished = (): void => {
      if (done) return;
      done = true;
      conn.inFlight -= 1;
      const at = conn.answering.indexOf(res);
      if (at !== -1) conn.answering.splice(at, 1);
      this.release(conn, res);
      this.update(conn);
    };
    res.once('finish', finished);
    res.once('close', finished);
    app(req, res);
    // An answer behind another one waits in the response (Node hands it to the socket later);
    // its bytes as written by now count until it reaches the socket.
    if (!done && res.socket === null) {
      const bytes = res.writableLength;
      conn.waiting.set(res, bytes);
      conn.waitingBytes += bytes;
      res.once('socket', () => {
        this.release(conn, res);
        this.update(conn);
      });
    }
    this.update(conn);
  }

  private release(conn: Connection, res: ServerResponse): void {
    const bytes = conn.waiting.get(res);
    if (bytes === undefined) return;
    conn.waiting.delete(res);
    conn.waitingBytes -= bytes;
  }

  private queuedBytes(conn: Connection): number {
    return conn.socket.writableLength + conn.waitingBytes;
  }

  /** Pauses a connection past its bound; below half, answers what it held and reads it again. */
  private update(conn: Connection): void {
    if (conn.closing || conn.socket.destroyed) return;
    if (!conn.paused) {
      if (this.queuedBytes(conn) > this.maxBufferBytes || conn.inFlight >= MAX_CALLS_PER_CONNECTION) {
        conn.paused = true;
        conn.socket.pause();
      }
      this.timeHeaders(conn);
      return;
    }
    if (this.queuedBytes(conn) > this.maxBufferBytes / 2 || conn.inFlight > MAX_CALLS_PER_CONNECTION / 2) return;
    conn.paused = false;
    while (!conn.paused && conn.held.length > 0) {
      const [req, res] = conn.held.shift() as readonly [IncomingMessage, ServerResponse];
      this.answerHeld(conn, req, res);
    }
    if (conn.paused) return;
    conn.socket.resume();
    this.timeHeaders(conn);
  }

  /** Whether the connection is read and has no answer left to write: a request's headers are due. */
  private idle(conn: Connection): boolean {
    return !conn.paused && conn.inFlight === 0 && conn.held.length === 0 && conn.socket.writableLength === 0 && !conn.socket.isPaused();
  }

  /** Restarts the headers timeout Node gave up on while the connection had answers to write. */
  private timeHeaders(conn: Connection): void {
    if (!conn.timeoutDeferred || !this.idle(conn)) return;
    conn.timeoutDeferred = false;
    clearTimeout(conn.headersTimer);
    const requests = conn.requests;
    // The request Node was timing when its answers waited: its headers are due from now.
    conn.headersTimer = setTimeout(() => {
      if (conn.requests !== requests || conn.socket.destroyed) return;
      if (!this.idle(conn)) {
        conn.timeoutDeferred = true;
        return;
      }
      conn.socket.end(`HTTP/1.1 ${CLIENT_ERROR_ANSWERS['ERR_HTTP_REQUEST_TIMEOUT']}\r\nConnection: close\r\n\r\n`);
      conn.socket.destroySoon();
    }, this.options.headersTimeoutMs);
    conn.headersTimer.unref();
  }

  private answerHeld(conn: Connection, req: IncomingMessage, res: ServerResponse): void {
    if (res.destroyed) return;
    this.answer(conn, req, res, this.app);
  }

  /** Destroys connections whose answers made no progress for the write timeout. */
  private checkWrites(): void {
    const now = performance.now();
    for (const conn of this.connections.values()) {
      const socket = conn.socket;
      const taken = socket.bytesWritten - socket.writableLength;
      const waiting = socket.writableLength > 0 || conn.waitingBytes > 0 || conn.held.length > 0;
      if (!waiting || taken !== conn.lastTaken) {
        conn.lastTaken = taken;
        conn.lastProgress = now;
        continue;
      }
      if (now - conn.lastProgress < this.writeTimeoutMs || conn.closing) continue;
      conn.closing = true;
      this.options.metrics?.connectionsClosed.add(1, { transport: 'http', reason: 'write_timeout' });
      this.options.logger.warn('connection closed', {
        transport: 'http',
        reason: 'write timeout',
        queued_bytes: this.queuedBytes(conn),
        held_requests: conn.held.length,
        write_timeout_ms: this.writeTimeoutMs,
      });
      socket.destroy();
    }
  }

  /** Node's answer to a client error, except a request timeout on a connection held by its bound. */
  private clientError(error: NodeJS.ErrnoException, socket: Socket): void {
    const conn = this.connections.get(socket);
    // The timed-out request is the one whose body is still coming, or else one whose headers are
    // still coming: only the latter can be waiting behind answers.
    const receivingBody = conn?.last !== undefined && !conn.last.complete;
    if (error.code === 'ERR_HTTP_REQUEST_TIMEOUT' && conn !== undefined && !conn.closing && !receivingBody && !this.idle(conn)) {
      // A request behind answers not yet written (held by the bound, or by Node's own pipelining
      // check): its headers are due once the connection has nothing left to answer.
      conn.timeoutDeferred = true;
      return;
    }
    // As Node: an error answer only where no answer has started on the socket.
    const current = conn?.answering[0];
    if (socket.writable && (current === undefined || !current.headersSent)) {
      const status = (error.code !== undefined ? CLIENT_ERROR_ANSWERS[error.code] : undefined) ?? '400 Bad Request';
      socket.write(`HTTP/1.1 ${status}\r\nConnection: close\r\n\r\n`);
    }
    socket.destroy(error);
  }
}

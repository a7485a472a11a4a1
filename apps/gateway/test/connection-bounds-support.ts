import { readFileSync } from 'node:fs';
import { connect, type ClientHttp2Session } from 'node:http2';
import type { Socket } from 'node:net';
import { WebSocket } from 'ws';
import { FrameTypes, WEBSOCKET_PATH, WEBSOCKET_SUBPROTOCOL, decodeFrame, decodeStatus, encodeFrame, type CallStatus, type FrameType } from '@edge-gateway/protocol';

/** How a raw WebSocket connection ended, as its client saw it. */
export interface WsEnd {
  readonly code: number;
  readonly reason: string;
  /** The socket failed (a reset) instead of a close frame. */
  readonly error?: string;
}

/**
 * A bare EdgeGateway WebSocket connection (no client library): frames in, answers counted by
 * call id, the bytes it put on the wire, and how it ended.
 */
export class RawWebSocket {
  readonly ws: WebSocket;
  readonly opened: Promise<void>;
  readonly ended: Promise<WsEnd>;
  /** Answer frames received (result or status), by type. */
  results = 0;
  statuses = 0;
  /** Status frames by `<code> <message>`. */
  readonly statusCounts = new Map<string, number>();
  private waiters: Array<{ count: number; resolve: () => void }> = [];
  private socketError: string | undefined;

  constructor(address: string, options: { readonly maxPayload?: number } = {}) {
    this.ws = new WebSocket(`ws://${address}${WEBSOCKET_PATH}`, WEBSOCKET_SUBPROTOCOL, { perMessageDeflate: false, ...(options.maxPayload === undefined ? {} : { maxPayload: options.maxPayload }) });
    this.ws.binaryType = 'nodebuffer';
    this.opened = new Promise((resolve, reject) => {
      this.ws.once('open', () => resolve());
      this.ws.once('error', reject);
    });
    this.ws.on('error', (error) => (this.socketError = error.message));
    this.ended = new Promise((resolve) => this.ws.once('close', (code, reason) => resolve({ code, reason: reason.toString(), ...(this.socketError === undefined ? {} : { error: this.socketError }) })));
    this.ws.on('message', (data: Buffer) => {
      const frame = decodeFrame(data);
      if (frame.type === FrameTypes.result) this.results += 1;
      if (frame.type === FrameTypes.status) {
        this.statuses += 1;
        const status: CallStatus = decodeStatus(frame.body);
        const key = `${status.code} ${status.details}`;
        this.statusCounts.set(key, (this.statusCounts.get(key) ?? 0) + 1);
      }
      this.notify();
    });
    this.ws.once('close', () => this.notify());
  }

  /** The underlying TCP socket (to pause reading, or count the bytes sent). */
  get socket(): Socket {
    return (this.ws as unknown as { _socket: Socket })._socket;
  }

  /** Bytes this client wrote to the wire so far (upgrade request and frames). */
  get bytesWritten(): number {
    return this.socket.bytesWritten;
  }

  /** Stops reading anything from the connection (ws's own pause: it does not resume the socket behind the test's back). */
  stopReading(): void {
    this.ws.pause();
  }

  resumeReading(): void {
    this.ws.resume();
  }

  get answers(): number {
    return this.results + this.statuses;
  }

  get open(): boolean {
    return this.ws.readyState === WebSocket.OPEN;
  }

  send(type: FrameType, callId: number, body: Uint8Array): void {
    this.ws.send(encodeFrame(type, callId, body));
  }

  /** Resolves once `count` answers arrived in total, or the connection closed. */
  answered(count: number): Promise<void> {
    if (this.answers >= count || this.ws.readyState === WebSocket.CLOSED) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push({ count, resolve }));
  }

  close(): void {
    this.ws.terminate();
  }

  private notify(): void {
    const closed = this.ws.readyState === WebSocket.CLOSED;
    this.waiters = this.waiters.filter((w) => {
      if (!closed && this.answers < w.count) return true;
      w.resolve();
      return false;
    });
  }
}

/** A gRPC call's HTTP/2 DATA: the 5-byte message prefix, then the message. */
export function grpcFrame(message: Uint8Array): Buffer {
  const frame = Buffer.alloc(5 + message.length);
  frame.writeUInt32BE(message.length, 1);
  Buffer.from(message.buffer, message.byteOffset, message.byteLength).copy(frame, 5);
  return frame;
}

/** The GOAWAY a session received. */
export interface GoAway {
  readonly errorCode: number;
  readonly lastStreamId: number;
  readonly data: string;
}

/**
 * One bare HTTP/2 connection making gRPC calls by hand (no client library: it neither retries
 * nor reconnects), so a test sees exactly what the gateway did to this connection.
 */
export class BareGrpcConnection {
  readonly session: ClientHttp2Session;
  readonly goaway: Promise<GoAway>;
  readonly closed: Promise<void>;

  constructor(address: string) {
    this.session = connect(`http://${address}`);
    this.session.on('error', () => undefined);
    this.goaway = new Promise((resolve) => this.session.once('goaway', (errorCode, lastStreamId, data) => resolve({ errorCode, lastStreamId, data: data?.toString() ?? '' })));
    this.closed = new Promise((resolve) => this.session.once('close', () => resolve()));
  }

  get open(): boolean {
    return !this.session.closed && !this.session.destroyed;
  }

  /** One unary call; resolves its status (`-1` with the error text when the stream failed without one). */
  call(path: string, message: Uint8Array): Promise<{ code: number; details: string }> {
    return new Promise((resolve) => {
      let stream;
      try {
        stream = this.session.request({ ':method': 'POST', ':path': path, 'content-type': 'application/grpc', te: 'trailers' });
      } catch (error) {
        resolve({ code: -1, details: error instanceof Error ? error.message : String(error) });
        return;
      }
      let headers: Record<string, unknown> = {};
      stream.on('response', (h) => (headers = { ...h }));
      stream.on('trailers', (t) => (headers = { ...headers, ...t }));
      stream.on('data', () => undefined);
      stream.on('error', () => undefined);
      stream.on('close', () => {
        const code = headers['grpc-status'];
        resolve(code === undefined ? { code: -1, details: `stream closed, rst ${stream.rstCode}` } : { code: Number(code), details: decodeURIComponent(String(headers['grpc-message'] ?? '')) });
      });
      stream.end(grpcFrame(message));
    });
  }

  /**
   * One unary call whose answer this client never consumes: the stream is paused, so HTTP/2
   * flow control lets the gateway send at most the stream's window (64 KiB) of it.
   */
  pausedCall(path: string, message: Uint8Array): void {
    try {
      const stream = this.session.request({ ':method': 'POST', ':path': path, 'content-type': 'application/grpc', te: 'trailers' });
      stream.on('error', () => undefined);
      stream.pause();
      stream.end(grpcFrame(message));
    } catch {
      // The session is gone: nothing more to send.
    }
  }

  close(): void {
    this.session.destroy();
  }
}

/** `INFO commandstats` calls of one Redis command. */
export async function redisCalls(redis: { info(section: string): Promise<string> }, command: string): Promise<number> {
  const match = new RegExp(`^cmdstat_${command}:calls=(\\d+)`, 'm').exec(await redis.info('commandstats'));
  return match === null ? 0 : Number(match[1]);
}

/** The largest TCP send and receive buffers the kernel may give a socket (`tcp_wmem`, `tcp_rmem` maxima). */
export function tcpBufferMaxima(): { send: number; receive: number } {
  const max = (name: string) => Number(readFileSync(`/proc/sys/net/ipv4/${name}`, 'utf8').trim().split(/\s+/)[2]);
  return { send: max('tcp_wmem'), receive: max('tcp_rmem') };
}

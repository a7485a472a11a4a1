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

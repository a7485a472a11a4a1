import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { WebSocket } from 'ws';
import {
  Ed25519ResponseSigner,
  GatewayMetrics,
  StaticRouter,
  createGatewayCore,
  rawPublicKey,
  type CommandDownstream,
  type DownstreamCallContext,
  type DownstreamCommand,
  type DownstreamResult,
  type GatewayCore,
} from '@edge-gateway/core';
import { InMemoryEventStream, InMemoryReplayStore, InMemorySessionStore } from '@edge-gateway/core/memory';
import { WebGatewayClient, importDevicePrivateKey, type WebSocketConstructor } from '@edge-gateway/client-web';
import { WEBSOCKET_PATH, WEBSOCKET_SUBPROTOCOL, clientEventFields, sessionRecordFields } from '@edge-gateway/protocol';
import { startWebSocketServer, type WebSocketServerHandle, type WebSocketServerOptions } from '../src/index.js';

let seq = 0;
export const uniqueId = (label: string): string => `${label}-${process.pid}-${(seq += 1)}`;

export interface Device {
  readonly deviceSessionId: string;
  readonly userId: string;
  readonly privateKey: KeyObject;
}

/** Echoes the payload back with result code `ok`. */
const echo: CommandDownstream = {
  target: 'echo',
  execute: async (command) => ({ resultCode: 'ok', payload: command.payload }),
};

/** A held downstream call: what it got, whether the gateway cut it, and how to answer it. */
export interface HeldCall {
  readonly command: DownstreamCommand;
  readonly deadlineMs: number;
  /** Resolves when the gateway aborts the call (client cancel, deadline). */
  readonly aborted: Promise<void>;
  release(): void;
}

/**
 * A slow business service: `hold.*` commands wait until the test releases them, and keep
 * waiting when the gateway aborts them (as a busy service that does not notice would).
 */
export class HoldDownstream implements CommandDownstream {
  readonly target = 'hold';
  readonly calls: HeldCall[] = [];
  private waiters: Array<() => void> = [];

  execute(command: DownstreamCommand, context: DownstreamCallContext): Promise<DownstreamResult> {
    return new Promise((resolve) => {
      const aborted = new Promise<void>((onAbort) => {
        if (context.signal?.aborted) onAbort();
        else context.signal?.addEventListener('abort', () => onAbort(), { once: true });
      });
      this.calls.push({ command, deadlineMs: context.deadlineMs, aborted, release: () => resolve({ resultCode: 'held', payload: command.payload }) });
      for (const wake of this.waiters.splice(0)) wake();
    });
  }

  /** Resolves once `count` calls arrived. */
  async waitForCalls(count: number): Promise<void> {
    while (this.calls.length < count) await new Promise<void>((resolve) => this.waiters.push(resolve));
  }
}

/** The core on in-memory adapters behind a real WebSocket server on 127.0.0.1:0. */
export class WsFixture {
  readonly signer = new Ed25519ResponseSigner(generateKeyPairSync('ed25519').privateKey);
  readonly sessions = new InMemorySessionStore();
  readonly events = new InMemoryEventStream();
  readonly metrics = new GatewayMetrics();
  readonly held = new HoldDownstream();
  readonly core: GatewayCore;
  /** Every `core.execute` the server made, in order (settled when the core is done with it). */
  readonly executions: Array<Promise<unknown>> = [];
  server!: WebSocketServerHandle;
  private readonly clients: WebGatewayClient[] = [];

  private constructor(bufferSize: number) {
    this.core = createGatewayCore(
      {
        sessions: this.sessions,
        replay: new InMemoryReplayStore(),
        signer: this.signer,
        history: this.events,
        router: new StaticRouter([
          { prefix: 'echo.', downstream: echo },
          { prefix: 'hold.', downstream: this.held },
        ]),
        metrics: this.metrics,
      },
      { pushStreamBuffer: bufferSize },
    );
    this.events.subscribe(this.core.clientEvents);
  }

  static async start(options: Partial<Omit<WebSocketServerOptions, 'core'>> & { bufferSize?: number } = {}): Promise<WsFixture> {
    const fixture = new WsFixture(options.bufferSize ?? 64);
    const core: WebSocketServerOptions['core'] = {
      execute: (request, context) => {
        const execution = fixture.core.execute(request, context);
        fixture.executions.push(execution.catch(() => undefined));
        return execution;
      },
      openStream: (request, sink) => fixture.core.openStream(request, sink),
    };
    fixture.server = await startWebSocketServer({ maxPayloadBytes: 64 * 1024, metrics: fixture.metrics, ...options, core });
    return fixture;
  }

  get url(): string {
    return `ws://${this.server.address}${WEBSOCKET_PATH}`;
  }

  addDevice(userId = uniqueId('user')): Device {
    const device = { deviceSessionId: uniqueId('ds'), userId, privateKey: generateKeyPairSync('ed25519').privateKey };
    this.sessions.set(device.deviceSessionId, this.record(device, 'active'));
    return device;
  }

  record(device: Device, status: 'active' | 'revoked'): Record<string, string> {
    return sessionRecordFields({ ...device, status, clientPublicKey: rawPublicKey(device.privateKey) });
  }

  /** Applies a revoked snapshot as the session-events consumer would. */
  revoke(device: Device): void {
    this.core.sessionEvents.handle({ id: `${Date.now()}-0`, fields: this.record(device, 'revoked') });
  }

  publish(userId: string, eventType: string, payload: Uint8Array, deviceSessionId?: string): string {
    return this.events.append(clientEventFields({ userId, eventType, payload, ...(deviceSessionId === undefined ? {} : { deviceSessionId }) }));
  }

  async client(device: Device): Promise<WebGatewayClient> {
    const client = await WebGatewayClient.connect({
      url: this.url,
      deviceSessionId: device.deviceSessionId,
      privateKey: await importDevicePrivateKey(device.privateKey.export({ format: 'der', type: 'pkcs8' })),
      gatewayPublicKeys: [this.signer.publicKey],
      WebSocket: WebSocket as unknown as WebSocketConstructor,
    });
    this.clients.push(client);
    return client;
  }

  /** A raw `ws` socket speaking the subprotocol, opened. */
  async raw(options: { origin?: string; autoPong?: boolean } = {}): Promise<WebSocket> {
    const ws = new WebSocket(this.url, WEBSOCKET_SUBPROTOCOL, { ...options, perMessageDeflate: false });
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
    });
    return ws;
  }

  async stop(): Promise<void> {
    for (const client of this.clients) client.close();
    this.core.hub.close();
    await this.server.close(1000);
  }
}

/** The close code and reason of a socket. */
export function closeOf(ws: WebSocket): Promise<{ code: number; reason: string }> {
  return new Promise((resolve) => ws.once('close', (code, reason) => resolve({ code, reason: reason.toString() })));
}

/** The HTTP status a refused upgrade answered. */
export function refusedWith(url: string, protocols: string[], headers: Record<string, string> = {}): Promise<number> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, protocols, { headers });
    ws.once('unexpected-response', (_req, res) => {
      resolve(res.statusCode ?? 0);
      ws.terminate();
    });
    ws.once('open', () => reject(new Error('upgrade was accepted')));
    ws.once('error', () => undefined);
  });
}

import {
  type LogFields,
  type Logger,
  type StreamEntry,
  type StreamEntryHandler,
  type StreamHistoryLoss,
  type StreamReconnect,
} from '@edge-gateway/core';
import type { RedisServerHandle } from '@edge-gateway/test-utils';
import { createRedisClient, type RedisClient, type RedisClientOptions } from '../src/index.js';

export { MetricsHarness } from '@edge-gateway/core/testing/metrics';

export interface LogLine {
  readonly level: string;
  readonly message: string;
  readonly fields: LogFields;
}

/** A logger that keeps every line (children share the list). */
export function recordingLogger(lines: LogLine[] = [], base: LogFields = {}): Logger & { lines: LogLine[] } {
  const log = (level: string) => (message: string, fields: LogFields = {}) => {
    lines.push({ level, message, fields: { ...base, ...fields } });
  };
  return {
    lines,
    error: log('error'),
    warn: log('warn'),
    info: log('info'),
    debug: log('debug'),
    child: (fields: LogFields) => recordingLogger(lines, { ...base, ...fields }),
  };
}

/** A handler that records entries (and reconnect notifications) in order. */
export class RecordingHandler implements StreamEntryHandler {
  readonly entries: StreamEntry[] = [];
  readonly losses: StreamHistoryLoss[] = [];
  reconnects = 0;
  /** What the subscriber reported on each reconnect. */
  readonly reconnectInfo: Array<StreamReconnect | undefined> = [];
  constructor(readonly stream: 'session_events' | 'client_events' = 'client_events') {}
  handle(entry: StreamEntry): void {
    this.entries.push(entry);
  }
  onReconnect(reconnect?: StreamReconnect): void {
    this.reconnects += 1;
    this.reconnectInfo.push(reconnect);
  }
  onHistoryLost(loss: StreamHistoryLoss): void {
    this.losses.push({ ...loss, userIds: [...loss.userIds].sort() });
  }
  get ids(): string[] {
    return this.entries.map((e) => e.id);
  }
}

/** A shared client for `server` (fast reconnects so tests stay short). */
export function clientFor(server: RedisServerHandle, extra: Partial<RedisClientOptions> = {}): RedisClient {
  return createRedisClient({
    host: server.host,
    port: server.port,
    password: server.password,
    commandTimeoutMs: 500,
    reconnect: { minDelayMs: 20, maxDelayMs: 200 },
    ...extra,
  });
}

let seq = 0;
/** A stream/key name unique within this test process. */
export const unique = (label: string): string => `${label}:${process.pid}:${Date.now()}:${(seq += 1)}`;

/** Elapsed milliseconds of `fn`, and its settled outcome. */
export async function timed<T>(fn: () => Promise<T>): Promise<{ ms: number; result?: T; error?: unknown }> {
  const started = performance.now();
  try {
    const result = await fn();
    return { ms: performance.now() - started, result };
  } catch (error) {
    return { ms: performance.now() - started, error };
  }
}

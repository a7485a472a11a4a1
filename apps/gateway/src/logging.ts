import { trace } from '@opentelemetry/api';
import type { Logger, LogFields } from '@edge-gateway/core';
import winston from 'winston';
import TransportStream from 'winston-transport';
import type { LogLevel } from './config/config.js';

// Field names that must never reach a log line, whatever a caller passes (SPEC §8.5).
const SECRET_FIELDS = new Set([
  'password',
  'redis_password',
  'payload',
  'payload_base64',
  'signature',
  'private_key',
  'client_public_key',
  'key',
]);

const redact = winston.format((info) => {
  for (const field of Object.keys(info)) {
    if (SECRET_FIELDS.has(field)) delete info[field];
  }
  return info;
});

const traceId = winston.format((info) => {
  const span = trace.getActiveSpan();
  if (span !== undefined) {
    const context = span.spanContext();
    if (trace.isSpanContextValid(context)) info['trace_id'] = context.traceId;
  }
  return info;
});

const MESSAGE = Symbol.for('message');

/**
 * A winston transport that writes the lines logged during one turn of the event loop with one
 * `write` (one syscall for a pipe) at the next turn, instead of one write per line: under
 * load that is most of what a log line costs. Pending lines are written when the logger ends
 * and, synchronously, when the process exits.
 */
export class BatchedStreamTransport extends TransportStream {
  private lines: string[] = [];
  private scheduled = false;

  constructor(private readonly stream: NodeJS.WritableStream) {
    super();
  }

  override log(info: Record<string | symbol, unknown>, callback: () => void): void {
    this.lines.push(String(info[MESSAGE]));
    if (!this.scheduled) {
      this.scheduled = true;
      withPendingLines(this);
      setImmediate(() => this.flush());
    }
    callback();
  }

  /** Writes the pending lines now. */
  flush(): void {
    this.scheduled = false;
    transportsWithPendingLines.delete(this);
    if (this.lines.length === 0) return;
    const text = `${this.lines.join('\n')}\n`;
    this.lines = [];
    this.stream.write(text);
  }

  override _final(callback: (error?: Error | null) => void): void {
    this.flush();
    callback();
  }
}

// One 'exit' hook for every transport, holding only those with lines not yet written.
const transportsWithPendingLines = new Set<BatchedStreamTransport>();
let exitHookInstalled = false;
function withPendingLines(transport: BatchedStreamTransport): void {
  transportsWithPendingLines.add(transport);
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.once('exit', () => {
    for (const pending of [...transportsWithPendingLines]) pending.flush();
  });
}

/** The winston logger of the binary: one JSON object per line on stdout. */
export function createWinstonLogger(level: LogLevel, stream: NodeJS.WritableStream = process.stdout): winston.Logger {
  return winston.createLogger({
    level,
    levels: { error: 0, warn: 1, info: 2, debug: 3 },
    format: winston.format.combine(redact(), traceId(), winston.format.timestamp(), winston.format.json()),
    transports: [new BatchedStreamTransport(stream)],
  });
}

/** Adapts winston to the core's `Logger` port. */
export class WinstonLogger implements Logger {
  constructor(
    private readonly winstonLogger: winston.Logger,
    private readonly fields: LogFields = {},
  ) {}

  error(message: string, fields?: LogFields): void {
    this.winstonLogger.log('error', message, { ...this.fields, ...fields });
  }
  warn(message: string, fields?: LogFields): void {
    this.winstonLogger.log('warn', message, { ...this.fields, ...fields });
  }
  info(message: string, fields?: LogFields): void {
    this.winstonLogger.log('info', message, { ...this.fields, ...fields });
  }
  debug(message: string, fields?: LogFields): void {
    if (!this.winstonLogger.isDebugEnabled()) return;
    this.winstonLogger.log('debug', message, { ...this.fields, ...fields });
  }
  child(fields: LogFields): Logger {
    return new WinstonLogger(this.winstonLogger, { ...this.fields, ...fields });
  }
}

/** Ends the logger and waits until every line reached stdout. */
export async function flushLogger(logger: winston.Logger): Promise<void> {
  await new Promise<void>((resolve) => {
    logger.once('finish', () => resolve());
    logger.end();
  });
  await new Promise<void>((resolve) => process.stdout.write('', () => resolve()));
}

import { trace } from '@opentelemetry/api';
import { type Logger, type LogFields } from '@edge-gateway/core';
import { LOG_PREVIEW_CHARS } from '@edge-gateway/core/internal';
import winston from 'winston';
import TransportStream from 'winston-transport';
import { configure } from 'safe-stable-stringify';
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

const MESSAGE = Symbol.for('message');

/**
 * A string field longer than this is written as its first 64 characters plus
 * `<field>_length`, so no line the binary writes for a request exceeds 4 KiB (issue 12).
 */
export const LOG_FIELD_MAX_CHARS = 1024;

// safe-stable-stringify as logform's `json` format configures it (sorted keys, bigint as a
// string), configured once instead of once per line.
const stringify = configure({});
const bigintAsString = (_key: string, value: unknown): unknown => (typeof value === 'bigint' ? value.toString() : value);

/**
 * The text of one log line from winston's `info` object: secret fields removed, `trace_id` of
 * the active span, `timestamp`, then JSON with sorted keys. Winston's format chain and the
 * direct path of {@link WinstonLogger} both use it, so both write the same bytes.
 */
export function formatLine(info: Record<string | symbol, unknown>): string {
  for (const field of Object.keys(info)) {
    if (SECRET_FIELDS.has(field)) {
      delete info[field];
      continue;
    }
    // A backstop under the core's own bounds (issue 12): no field makes a line long.
    const value = info[field];
    if (typeof value === 'string' && value.length > LOG_FIELD_MAX_CHARS) {
      info[field] = value.slice(0, LOG_PREVIEW_CHARS);
      info[`${field}_length`] = value.length;
    }
  }
  const span = trace.getActiveSpan();
  if (span !== undefined) {
    const context = span.spanContext();
    if (trace.isSpanContextValid(context)) info['trace_id'] = context.traceId;
  }
  info['timestamp'] = isoNow();
  return flatJson(info) ?? stringify(info, bigintAsString) ?? '';
}

let lastMs = NaN;
let lastIso = '';
/** `new Date().toISOString()`, built once per millisecond. */
function isoNow(): string {
  const ms = Date.now();
  if (ms !== lastMs) {
    lastMs = ms;
    lastIso = new Date(ms).toISOString();
  }
  return lastIso;
}

/**
 * What `stringify(info, bigintAsString)` returns, for an object whose values are all strings,
 * numbers, booleans, bigints, null or undefined (every line the gateway logs); undefined for
 * anything nested, which goes to safe-stable-stringify. Keys sorted the same way (UTF-16 code
 * units), strings escaped by JSON.stringify as by safe-stable-stringify, non-finite numbers
 * as null, undefined values left out.
 */
export function flatJson(info: Record<string, unknown>): string | undefined {
  const keys = Object.keys(info).sort();
  let out = '';
  for (const key of keys) {
    const value = info[key];
    let text: string;
    switch (typeof value) {
      case 'string':
        text = JSON.stringify(value);
        break;
      case 'number':
        text = Number.isFinite(value) ? String(value) : 'null';
        break;
      case 'boolean':
        text = value ? 'true' : 'false';
        break;
      case 'bigint':
        text = `"${value.toString()}"`;
        break;
      case 'undefined':
        continue;
      default:
        if (value !== null) return undefined;
        text = 'null';
    }
    out += `${out === '' ? '{' : ','}${quotedKey(key)}${text}`;
  }
  return out === '' ? '{}' : `${out}}`;
}

// Field names come from the gateway's code (a few dozen): each is quoted once. Bounded all the
// same, so no caller can grow it without limit.
const QUOTED_KEYS_MAX = 1024;
const quotedKeys = new Map<string, string>();
/** `JSON.stringify(key) + ':'`, cached. */
function quotedKey(key: string): string {
  let quoted = quotedKeys.get(key);
  if (quoted === undefined) {
    quoted = `${JSON.stringify(key)}:`;
    if (quotedKeys.size < QUOTED_KEYS_MAX) quotedKeys.set(key, quoted);
  }
  return quoted;
}

const lineFormat = winston.format((info) => {
  info[MESSAGE] = formatLine(info);
  return info;
});

/** How long a logged line may wait to be written with the lines logged after it. */
export const LOG_FLUSH_DELAY_MS = 5;
/** Pending bytes (UTF-16 units) that are written at once, without waiting for the delay. */
export const LOG_FLUSH_MAX_PENDING = 64 * 1024;

/**
 * A winston transport that writes the lines logged within {@link LOG_FLUSH_DELAY_MS} of the
 * first pending one with one `write` (one syscall for a pipe), instead of one write per line:
 * at a steady load that is most of what a log line costs (per event-loop turn, the previous
 * rule, still meant about one write per command at 1,500 commands/s). More than
 * {@link LOG_FLUSH_MAX_PENDING} pending is written at once. Pending lines are written when the
 * logger ends and, synchronously, when the process exits.
 */
export class BatchedStreamTransport extends TransportStream {
  private lines: string[] = [];
  private pending = 0;
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly stream: NodeJS.WritableStream) {
    super();
  }

  override log(info: Record<string | symbol, unknown>, callback: () => void): void {
    this.queueLine(String(info[MESSAGE]));
    callback();
  }

  /** Queues one formatted line (the direct path of {@link WinstonLogger}). */
  queueLine(line: string): void {
    this.lines.push(line);
    this.pending += line.length + 1;
    if (this.pending >= LOG_FLUSH_MAX_PENDING) {
      this.flush();
    } else if (this.timer === undefined) {
      withPendingLines(this);
      // Unref'd: pending lines never keep the process alive (the exit hook writes them).
      this.timer = setTimeout(() => this.flush(), LOG_FLUSH_DELAY_MS).unref();
    }
  }

  /** Writes the pending lines now. */
  flush(): void {
    if (this.timer !== undefined) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    transportsWithPendingLines.delete(this);
    if (this.lines.length === 0) return;
    const text = `${this.lines.join('\n')}\n`;
    this.lines = [];
    this.pending = 0;
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

// The batched transport of each logger made by createWinstonLogger (see WinstonLogger.write).
const directTransports = new WeakMap<winston.Logger, BatchedStreamTransport>();

/** The winston logger of the binary: one JSON object per line on stdout. */
export function createWinstonLogger(level: LogLevel, stream: NodeJS.WritableStream = process.stdout): winston.Logger {
  const transport = new BatchedStreamTransport(stream);
  const logger = winston.createLogger({
    level,
    levels: { error: 0, warn: 1, info: 2, debug: 3 },
    format: lineFormat(),
    transports: [transport],
  });
  directTransports.set(logger, transport);
  return logger;
}

// Winston drops the metadata of a message with printf-style tokens (it expects a splat format).
const SPLAT_TOKENS = /%[scdjifoO%]/;

/**
 * The transport a line can be handed to directly, skipping winston's object stream (a
 * Transform piped to the transport, which cost more than formatting the line): only for a
 * logger made by createWinstonLogger that still has just its own transport, is not silenced,
 * and has the level enabled.
 */
function directTransport(logger: winston.Logger): BatchedStreamTransport | undefined {
  const transport = directTransports.get(logger);
  if (transport === undefined || logger.silent || logger.transports.length !== 1 || logger.transports[0] !== transport) return undefined;
  return transport;
}

/** Adapts winston to the core's `Logger` port. */
export class WinstonLogger implements Logger {
  constructor(
    private readonly winstonLogger: winston.Logger,
    private readonly fields: LogFields = {},
  ) {}

  error(message: string, fields?: LogFields): void {
    this.write('error', message, fields);
  }
  warn(message: string, fields?: LogFields): void {
    this.write('warn', message, fields);
  }
  info(message: string, fields?: LogFields): void {
    this.write('info', message, fields);
  }
  debug(message: string, fields?: LogFields): void {
    if (!this.winstonLogger.isDebugEnabled()) return;
    this.write('debug', message, fields);
  }

  /** Through winston, or straight to the batched transport with the same `info` winston builds. */
  private write(level: LogLevel, message: string, fields: LogFields | undefined): void {
    const logger = this.winstonLogger;
    const transport = directTransport(logger);
    if (transport === undefined) {
      logger.log(level, message, { ...this.fields, ...fields });
      return;
    }
    const levels = logger.levels as Record<string, number>;
    if (!((levels[logger.level] ?? -1) >= (levels[level] ?? Infinity))) return;
    // The same `info` as winston's Logger.log(level, message, meta) (key order is irrelevant:
    // the line has its keys sorted).
    const info: Record<string, unknown> = { ...logger.defaultMeta, ...this.fields, ...fields };
    const extra = fields !== undefined && 'message' in fields ? fields['message'] : this.fields['message'];
    if (SPLAT_TOKENS.test(message)) {
      // Winston drops the metadata of a message with printf-style tokens.
      transport.queueLine(formatLine({ ...logger.defaultMeta, level, message }));
      return;
    }
    info['level'] = level;
    info['message'] = extra ? `${message} ${String(extra)}` : message;
    transport.queueLine(formatLine(info));
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

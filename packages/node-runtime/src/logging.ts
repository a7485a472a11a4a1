import { trace } from '@opentelemetry/api';
import { type Logger, type LogFields } from '@edge-gateway/core';
import { LOG_PREVIEW_CHARS } from '@edge-gateway/core/internal';
import winston from 'winston';
import TransportStream from 'winston-transport';
import { configure } from 'safe-stable-stringify';
import { LEVEL, MESSAGE } from 'triple-beam';

/** The levels the logger writes, most severe first (`GATEWAY_LOG_LEVEL`). */
export type LogLevel = 'error' | 'warn' | 'info' | 'debug';

/** The levels of {@link LogLevel}, most severe first. */
export const LOG_LEVELS: readonly LogLevel[] = ['error', 'warn', 'info', 'debug'];

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
 * the active span, `timestamp`, then JSON with sorted keys (the binary's winston format).
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

/** The winston format of the binary: the whole line, as {@link formatLine} writes it, in `info[MESSAGE]`. */
const lineFormat = winston.format((info) => {
  info[MESSAGE] = formatLine(info);
  return info;
});

/** How long a logged line may wait to be written with the lines logged after it. */
export const LOG_FLUSH_DELAY_MS = 5;
/** Pending bytes (UTF-16 units) that are written at once, without waiting for the delay. */
export const LOG_FLUSH_MAX_PENDING = 64 * 1024;

/**
 * A winston transport (winston-transport's `log(info, callback)`) that writes the lines logged
 * within {@link LOG_FLUSH_DELAY_MS} of the first pending one with one `write` (one syscall for a
 * pipe), instead of one write per line: at a steady load that is most of what a log line costs
 * (per event-loop turn, the previous rule, still meant about one write per command at 1,500
 * commands/s). More than {@link LOG_FLUSH_MAX_PENDING} pending is written at once. Pending lines
 * are written when the logger ends and, synchronously, when the process exits.
 */
export class BatchedStreamTransport extends TransportStream {
  private lines: string[] = [];
  private pending = 0;
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly stream: NodeJS.WritableStream) {
    super();
  }

  override log(info: Record<string | symbol, unknown>, callback: () => void): void {
    const line = String(info[MESSAGE]);
    this.lines.push(line);
    this.pending += line.length + 1;
    if (this.pending >= LOG_FLUSH_MAX_PENDING) {
      this.flush();
    } else if (this.timer === undefined) {
      withPendingLines(this);
      // Unref'd: pending lines never keep the process alive (the exit hook writes them).
      this.timer = setTimeout(() => this.flush(), LOG_FLUSH_DELAY_MS).unref();
    }
    callback();
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

/** The winston logger of the binary: one JSON object per line on stdout. */
export function createWinstonLogger(level: LogLevel, stream: NodeJS.WritableStream = process.stdout): winston.Logger {
  return winston.createLogger({
    level,
    levels: { error: 0, warn: 1, info: 2, debug: 3 },
    format: lineFormat(),
    transports: [new BatchedStreamTransport(stream)],
  });
}

const done = (): void => undefined;

/**
 * Adapts winston to the core's `Logger` port through winston's public API, without its object
 * stream: a Transform piped to each transport cost 4 to 8 times what formatting and queueing a
 * line costs (measured A/B in one process, see docs/performance.md). Each line is an `info`
 * object as `logger.log(info)` takes it (`level`, `message`, the logger's `defaultMeta`, the
 * fields); when the level is enabled (`isLevelEnabled`) and the logger is not `silent`, the
 * logger's `format` transforms it (logform's `transform`) and every transport whose own `level`
 * admits it gets it through winston-transport's `log(info, callback)`. A `message` field is
 * appended to the message, as winston's `log(level, message, meta)` does.
 */
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
    this.write('debug', message, fields);
  }

  private write(level: LogLevel, message: string, fields: LogFields | undefined): void {
    const logger = this.winstonLogger;
    if (logger.silent || !logger.isLevelEnabled(level)) return;
    const info: Record<string | symbol, unknown> = { ...logger.defaultMeta, ...this.fields, ...fields };
    const extra = info['message'];
    info['level'] = level;
    info[LEVEL] = level;
    info['message'] = extra ? `${message} ${String(extra)}` : message;
    const formatted = logger.format.transform(info as winston.Logform.TransformableInfo, logger.format.options);
    if (formatted === false) return;
    const rank = logger.levels[level] ?? Infinity;
    for (const transport of logger.transports) {
      if (transport.silent) continue;
      if (transport.level !== undefined && (logger.levels[transport.level] ?? -1) < rank) continue;
      transport.log?.(formatted, done);
    }
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

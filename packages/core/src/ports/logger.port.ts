/** Context fields of a log line. Never put payload bytes, signatures or keys here. */
export type LogFields = Record<string, unknown>;

/** Structured logger the core writes to; the app backs it with winston. */
export interface Logger {
  error(message: string, fields?: LogFields): void;
  warn(message: string, fields?: LogFields): void;
  info(message: string, fields?: LogFields): void;
  debug(message: string, fields?: LogFields): void;
  /** A logger whose lines carry `fields` as well (e.g. `{ component: 'push-hub' }`). */
  child(fields: LogFields): Logger;
}

/** A logger that drops everything: the default for embedders and unit tests. */
export const noopLogger: Logger = {
  error: () => undefined,
  warn: () => undefined,
  info: () => undefined,
  debug: () => undefined,
  child: () => noopLogger,
};

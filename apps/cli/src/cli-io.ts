import { parseArgs, type ParseArgsConfig } from 'node:util';

/** Where a command writes and what it reads; tests and the entry point provide it. */
export interface CliIo {
  readonly env: Readonly<Record<string, string | undefined>>;
  /** One line to stdout. */
  out(line: string): void;
  /** One line to stderr. */
  err(line: string): void;
  /**
   * Aborted on Ctrl-C (SIGINT/SIGTERM) and when stdout's reader has gone (EPIPE);
   * long-running commands stop when it fires.
   */
  readonly signal: AbortSignal;
  /**
   * Long-running commands that may stay quiet call this: `signal` then also fires as soon as
   * the reader of a piped stdout goes away (`… | head -1`), not only at the next write.
   * Returns a function that stops watching.
   */
  watchOutput?(): () => void;
}

/**
 * Exit codes of the CLI. `unconfirmed`: an operation that changes the deployment (a failover)
 * was started but its outcome could not be confirmed, or a write (`sessions create`/`revoke`)
 * was made on the master but no replica acknowledged it; the message says what to check.
 */
export const ExitCode = { ok: 0, failed: 1, usage: 2, unconfirmed: 3 } as const;

/** A wrong invocation: the message and the usage of the command are printed, exit code 2. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
  constructor(
    message: string,
    readonly usage: string,
  ) {
    super(message);
  }
}

/** A command failed for a reason the operator can act on: its message is printed, exit code 1. */
export class CommandError extends Error {
  override readonly name = 'CommandError';
}

/** Checklist marks: pass, fail, warning (does not fail), skipped. */
export const Mark = { ok: '✓', fail: '✗', warn: '!', skip: '-' } as const;

type Options = NonNullable<ParseArgsConfig['options']>;

/**
 * `node:util` `parseArgs` with `--help`, positionals, and `UsageError`s carrying the usage.
 * Returns `undefined` when `--help` was given (the usage was printed).
 */
export function parseCommandArgs(
  io: CliIo,
  argv: readonly string[],
  usage: string,
  options: Options,
  positionals: { min: number; max: number },
): ParsedCommandArgs | undefined {
  let parsed;
  try {
    parsed = parseArgs({ args: [...argv], options: { ...options, help: { type: 'boolean', short: 'h' } }, allowPositionals: true, strict: true });
  } catch (error) {
    throw new UsageError(error instanceof Error ? error.message : String(error), usage);
  }
  if (parsed.values['help'] === true) {
    io.out(usage);
    return undefined;
  }
  if (parsed.positionals.length < positionals.min) throw new UsageError('missing argument', usage);
  if (parsed.positionals.length > positionals.max) {
    throw new UsageError(`unexpected argument "${parsed.positionals[positionals.max] as string}"`, usage);
  }
  const values = parsed.values as Record<string, string | boolean | undefined>;
  return {
    positionals: parsed.positionals,
    string: (name) => (typeof values[name] === 'string' ? values[name] : undefined),
    flag: (name) => values[name] === true,
  };
}

/** Parsed options and positionals of one command. */
export interface ParsedCommandArgs {
  readonly positionals: readonly string[];
  /** The value of a string option, if given. */
  string(name: string): string | undefined;
  /** Whether a boolean option was given. */
  flag(name: string): boolean;
}

import { parseGoDuration } from './duration.js';

/** One invalid or missing variable. */
export interface ConfigProblem {
  readonly variable: string;
  readonly problem: string;
}

/**
 * A configuration error; the message always names the variable. `problems` holds one per
 * variable (the first found for it), and the message joins them with `; `, so one line tells
 * the operator everything.
 */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  /** Always `config_invalid`; {@link ConfigError.problems} says which variables and why. */
  readonly code = 'config_invalid';
  readonly problems: readonly ConfigProblem[];
  constructor(
    readonly variable: string,
    problem: string,
    more: readonly ConfigProblem[] = [],
  ) {
    super([{ variable, problem }, ...more].map((p) => `${p.variable}: ${p.problem}`).join('; '));
    this.problems = [{ variable, problem }, ...more];
  }
}

/** The environment a table is read from (`process.env` by default). */
export type SettingsEnv = Readonly<Record<string, string | undefined>>;

/** A value refused by a row's parser; the message follows the variable's name (`<VARIABLE>: <message>`). */
export class InvalidSetting extends Error {
  override readonly name = 'InvalidSetting';
  /** Always `setting_invalid`. */
  readonly code = 'setting_invalid';
}

/** Reads a variable's trimmed, non-empty text (`variable`: its name, for messages); throws {@link InvalidSetting} or {@link ConfigError}. */
export type SettingParser = (text: string, variable: string) => unknown;

/** Default that is not a value: the variable must be set. */
export const REQUIRED: unique symbol = Symbol('required');
/** Default: the value another (earlier) row's variable got. */
export interface SameAs {
  readonly sameAs: string;
}
/** Default that depends on other settings (the value is `undefined` unless a check sets it); `doc` is how the documentation writes it. */
export interface Described {
  readonly doc: string;
}

/** Every dotted path into `T` (arrays are leaves): a row's target that is not one does not compile. */
export type SettingPath<T> = T extends readonly unknown[]
  ? never
  : T extends object
    ? { [K in keyof T & string]: K | `${K}.${SettingPath<NonNullable<T[K]>>}` }[keyof T & string]
    : never;

/** One environment variable: one row of a settings table for the configuration type `C`. */
export interface Setting<C> {
  readonly env: string;
  /** Where the value goes in `C` (a dotted path). */
  readonly to: SettingPath<C>;
  /** The value when unset or empty; `''` (empty), {@link REQUIRED}, {@link SameAs} or {@link Described}. */
  readonly default: unknown;
  readonly parse: SettingParser;
  /** Empty text is a value, not "use the default" (`PREFIX=` means no prefix). */
  readonly emptyIsValue?: boolean;
}

export interface HostPort {
  readonly host: string;
  readonly port: number;
}

/**
 * True when a value may carry credentials: URL user info (`user:password@`) or a whole URL.
 * Such a value is never echoed in an error (a startup failure line is read by many).
 */
export function mayCarryCredentials(value: string): boolean {
  return value.includes('@') || value.includes('://');
}

/** `"value"` for an error message, or a note that it is withheld (see {@link mayCarryCredentials}). */
export function quoteValue(value: string): string {
  return mayCarryCredentials(value) ? 'the value (not shown: it looks like a URL or holds user:password@)' : `"${value}"`;
}

/** Parses `host:port`, `[v6]:port`, or (when `allowEmptyHost`) `:port`; throws a {@link ConfigError} naming `variable`. */
export function parseHostPort(variable: string, value: string, allowEmptyHost: boolean): HostPort {
  const match = /^(?:\[([^\]]+)\]|([^:[\]]*)):(\d{1,5})$/.exec(value);
  if (match === null) throw new ConfigError(variable, `${quoteValue(value)} is not host:port`);
  const host = match[1] ?? match[2] ?? '';
  const port = Number(match[3]);
  if (port > 65535) throw new ConfigError(variable, `port ${port} is out of range`);
  if (host === '' && !allowEmptyHost) throw new ConfigError(variable, `${quoteValue(value)} has no host`);
  return { host, port };
}

/** The generic row parsers. */
export const parsers = {
  /** The text as it is. */
  text: ((value) => value) as SettingParser,
  /** One of `values`. */
  oneOf:
    (...values: string[]): SettingParser =>
    (value) => {
      if (!values.includes(value)) throw new InvalidSetting(`"${value}" is not one of ${values.join(', ')}`);
      return value;
    },
  /** `true` or `false`. */
  bool: ((value) => {
    if (value !== 'true' && value !== 'false') throw new InvalidSetting(`"${value}" is not true or false`);
    return value === 'true';
  }) as SettingParser,
  /** A decimal integer from `min` to `max` (`unit` follows `max` in the message). */
  integer:
    (min: number, max?: number, unit = ''): SettingParser =>
    (value) => {
      if (!/^\d+$/.test(value)) throw new InvalidSetting(`"${value}" is not an integer`);
      const n = Number(value);
      if (!Number.isSafeInteger(n) || n < min) throw new InvalidSetting(`must be an integer >= ${min}`);
      if (max !== undefined && n > max) throw new InvalidSetting(`must be at most ${max}${unit}`);
      return n;
    },
  /** A Go duration greater than zero, in milliseconds; `bounds` are `[ms, message]`. */
  duration:
    (bounds: { min?: [number, string]; max?: [number, string] } = {}): SettingParser =>
    (value) => {
      const ms = parseGoDuration(value);
      if (ms === undefined) throw new InvalidSetting(`"${value}" is not a valid duration (use Go syntax like 500ms, 10s, 1h30m)`);
      if (ms <= 0) throw new InvalidSetting('must be greater than zero');
      if (bounds.min !== undefined && ms < bounds.min[0]) throw new InvalidSetting(bounds.min[1]);
      if (bounds.max !== undefined && ms > bounds.max[0]) throw new InvalidSetting(bounds.max[1]);
      return ms;
    },
  /** A `host:port` (host may be empty) kept as text. */
  address: ((value, variable) => (parseHostPort(variable, value, true), value)) as SettingParser,
  /** Comma-separated `host:port`s, as {@link HostPort}s. */
  hostPortList: ((value, variable) => value.split(',').map((part) => parseHostPort(variable, part.trim(), false))) as SettingParser,
  /** Wraps a parser of another package: its error (or `message(error, value)`) follows the variable's name. */
  foreign:
    (parse: (value: string) => unknown, message: (error: Error, value: string) => string = (e) => e.message): SettingParser =>
    (value) => {
      try {
        return parse(value);
      } catch (error) {
        throw new InvalidSetting(message(error instanceof Error ? error : new Error(String(error)), value));
      }
    },
};

/** A row's default as a value: `''` when required, `undefined` when described, the other variable's value for `sameAs`. */
export function defaultValue(row: Setting<unknown>, values: ReadonlyMap<string, unknown>): unknown {
  const d = row.default;
  if (d === REQUIRED) return '';
  if (typeof d !== 'object' || d === null || Array.isArray(d)) return d;
  if ('sameAs' in d) return values.get((d as SameAs).sameAs);
  return 'doc' in d ? undefined : d;
}

/** The values read so far (by variable), and the problems found (the first per variable is kept). */
export class SettingsReading {
  readonly problems: ConfigProblem[] = [];
  readonly values = new Map<string, unknown>();
  constructor(readonly env: SettingsEnv) {}

  /** The variable's trimmed text (`''` when unset). */
  text(name: string): string {
    return (this.env[name] ?? '').trim();
  }
  isSet(name: string): boolean {
    return this.text(name) !== '';
  }
  /** Whether a problem was already reported for any of `names`. */
  failed(...names: string[]): boolean {
    return this.problems.some((p) => names.includes(p.variable));
  }
  /** Reports a problem, unless `variable` already has one. */
  fail(variable: string, problem: string): void {
    if (!this.failed(variable)) this.problems.push({ variable, problem });
  }
  get<T>(name: string): T {
    return this.values.get(name) as T;
  }

  /** Reads one row: its value, or its default, or a problem. */
  read(row: Setting<unknown>): void {
    const value = this.env[row.env]?.trim();
    let result = defaultValue(row, this.values);
    if (value !== undefined && (value !== '' || row.emptyIsValue === true)) {
      try {
        result = row.parse(value, row.env);
      } catch (error) {
        if (error instanceof InvalidSetting) this.fail(row.env, error.message);
        else if (error instanceof ConfigError) for (const p of error.problems) this.fail(p.variable, p.problem);
        else throw error;
      }
    } else if (row.default === REQUIRED) {
      this.fail(row.env, 'is required');
    }
    this.values.set(row.env, result);
  }
}

/** Sets `value` at a dotted path, creating the objects on the way. */
export function put(target: Record<string, unknown>, path: string, value: unknown): void {
  const keys = path.split('.');
  const last = keys.pop() as string;
  let node = target;
  for (const key of keys) node = (node[key] ??= {}) as Record<string, unknown>;
  node[last] = value;
}

/** What {@link readSettings} found. */
export interface SettingsResult<C> {
  /** Every row's value at its path; meaningful only when `problems` is empty. */
  readonly values: C;
  /** In table order (variables that are no row first), one per variable. */
  readonly problems: readonly ConfigProblem[];
  /** The reading, for what the table does not say (which variables were set). */
  readonly reading: SettingsReading;
}

/**
 * Reads every row of `table` from `env`, then runs `check` (what one row cannot say: settings that
 * exclude or bound each other; it may also set values), and builds the configuration. Never
 * throws for bad values: every problem is returned (see {@link throwProblems}).
 */
export function readSettings<C>(table: readonly Setting<C>[], env: SettingsEnv = process.env, check?: (reading: SettingsReading) => void): SettingsResult<C> {
  const reading = new SettingsReading(env);
  for (const row of table) reading.read(row as Setting<unknown>);
  check?.(reading);
  const order = (variable: string) => table.findIndex((row) => row.env === variable);
  const problems = [...reading.problems].sort((a, b) => order(a.variable) - order(b.variable));
  const out: Record<string, unknown> = {};
  for (const row of table) put(out, row.to, reading.values.get(row.env));
  return { values: out as C, problems, reading };
}

/** Throws one {@link ConfigError} naming every problem, when there is one. */
export function throwProblems(problems: readonly ConfigProblem[]): void {
  const [first, ...more] = problems;
  if (first !== undefined) throw new ConfigError(first.variable, first.problem, more);
}

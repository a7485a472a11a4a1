import { describe, expect, it } from 'vitest';
import { ConfigError, InvalidSetting, mayCarryCredentials, parseHostPort, parsers, quoteValue, readSettings, REQUIRED, throwProblems, type Setting, type SettingParser } from './settings.js';

interface Tiny {
  readonly name: string;
  readonly limits: { readonly count: number; readonly timeoutMs: number };
}

const TINY: readonly Setting<Tiny>[] = [
  { env: 'TINY_NAME', to: 'name', default: REQUIRED, parse: parsers.text },
  { env: 'TINY_COUNT', to: 'limits.count', default: 3, parse: parsers.integer(1, 10) },
  { env: 'TINY_TIMEOUT', to: 'limits.timeoutMs', default: 5000, parse: parsers.duration() },
];

/** The problem a parser reports for `text` (its message without the variable), or `accepted`. */
function refusal(parse: SettingParser, text: string): string {
  try {
    parse(text, 'V');
  } catch (error) {
    if (error instanceof InvalidSetting) return error.message;
    if (error instanceof ConfigError && error.variable === 'V') return error.problems.map((p) => p.problem).join('; ');
    throw error;
  }
  return 'accepted';
}

describe('readSettings', () => {
  it('puts each default at its path when only the required variable is set', () => {
    const { values, problems } = readSettings(TINY, { TINY_NAME: ' edge ' });
    expect(problems).toEqual([]);
    expect(values).toEqual({ name: 'edge', limits: { count: 3, timeoutMs: 5000 } });
  });

  it('reads set values through their parsers; empty text is the default', () => {
    const { values } = readSettings(TINY, { TINY_NAME: 'a', TINY_COUNT: '7', TINY_TIMEOUT: '' });
    expect(values.limits).toEqual({ count: 7, timeoutMs: 5000 });
  });

  it('reports a missing required variable', () => {
    expect(readSettings(TINY, {}).problems).toEqual([{ variable: 'TINY_NAME', problem: 'is required' }]);
  });

  it('reports a bad value with its variable', () => {
    expect(readSettings(TINY, { TINY_NAME: 'a', TINY_TIMEOUT: '10' }).problems).toEqual([
      { variable: 'TINY_TIMEOUT', problem: '"10" is not a valid duration (use Go syntax like 500ms, 10s, 1h30m)' },
    ]);
  });

  it('reports every problem in table order, the first per variable, checks included', () => {
    const { problems } = readSettings(TINY, { TINY_COUNT: '11', TINY_TIMEOUT: '0s' }, (r) => {
      r.fail('TINY_TIMEOUT', 'a second problem is not kept');
      r.fail('TINY_COUNT', 'not kept either');
      r.fail('OTHER', 'not a row: first');
    });
    expect(problems).toEqual([
      { variable: 'OTHER', problem: 'not a row: first' },
      { variable: 'TINY_NAME', problem: 'is required' },
      { variable: 'TINY_COUNT', problem: 'must be at most 10' },
      { variable: 'TINY_TIMEOUT', problem: 'must be greater than zero' },
    ]);
    let thrown: unknown;
    try {
      throwProblems(problems);
    } catch (error) {
      thrown = error;
    }
    expect(thrown).toBeInstanceOf(ConfigError);
    expect((thrown as ConfigError).message).toBe('OTHER: not a row: first; TINY_NAME: is required; TINY_COUNT: must be at most 10; TINY_TIMEOUT: must be greater than zero');
    expect((thrown as ConfigError).problems).toEqual(problems);
    expect(() => throwProblems([])).not.toThrow();
  });

  it('takes a sameAs default from the earlier row and lets a check see what was set', () => {
    const rows: readonly Setting<{ a: number; b: number }>[] = [
      { env: 'A', to: 'a', default: 1, parse: parsers.integer(0) },
      { env: 'B', to: 'b', default: { sameAs: 'A' }, parse: parsers.integer(0) },
    ];
    const seen: boolean[] = [];
    expect(readSettings(rows, { A: '4' }, (r) => void seen.push(r.isSet('A'), r.isSet('B'))).values).toEqual({ a: 4, b: 4 });
    expect(seen).toEqual([true, false]);
  });

  it('keeps empty text as a value when the row says so; a described default is undefined', () => {
    const rows: readonly Setting<{ prefix: string; max: number | undefined }>[] = [
      { env: 'PREFIX', to: 'prefix', default: 'p:', parse: parsers.text, emptyIsValue: true },
      { env: 'MAX', to: 'max', default: { doc: 'depends' }, parse: parsers.integer(1) },
    ];
    expect(readSettings(rows, { PREFIX: '' }).values).toEqual({ prefix: '', max: undefined });
  });

  it('lets an error that is not a refusal through (a bug, not a bad value)', () => {
    const rows: readonly Setting<{ a: string }>[] = [
      {
        env: 'A',
        to: 'a',
        default: '',
        parse: () => {
          throw new TypeError('bug');
        },
      },
    ];
    expect(() => readSettings(rows, { A: 'x' })).toThrow(TypeError);
  });
});

describe('parsers', () => {
  it('oneOf, bool, integer', () => {
    expect(parsers.oneOf('a', 'b')('b', 'V')).toBe('b');
    expect(refusal(parsers.oneOf('a', 'b'), 'c')).toBe('"c" is not one of a, b');
    expect(parsers.bool('false', 'V')).toBe(false);
    expect(refusal(parsers.bool, 'yes')).toBe('"yes" is not true or false');
    expect(refusal(parsers.integer(0), '1.5')).toBe('"1.5" is not an integer');
    expect(refusal(parsers.integer(2), '1')).toBe('must be an integer >= 2');
    expect(refusal(parsers.integer(0, 5, ' ms'), '6')).toBe('must be at most 5 ms');
  });

  it('duration with bounds', () => {
    const parse = parsers.duration({ min: [1000, 'must be at least 1s'], max: [60_000, 'must be at most 1m'] });
    expect(parse('1m', 'V')).toBe(60_000);
    expect(refusal(parse, '500ms')).toBe('must be at least 1s');
    expect(refusal(parse, '2m')).toBe('must be at most 1m');
  });

  it('host:port forms, and lists', () => {
    const strict: SettingParser = (value, variable) => parseHostPort(variable, value, false);
    expect(parseHostPort('V', '[::1]:6379', false)).toEqual({ host: '::1', port: 6379 });
    expect(parsers.address(':8080', 'V')).toBe(':8080');
    expect(refusal(strict, ':8080')).toBe('":8080" has no host');
    expect(refusal(strict, 'h:70000')).toBe('port 70000 is out of range');
    expect(refusal(strict, 'h')).toBe('"h" is not host:port');
    expect(parsers.hostPortList('a:1, b:2', 'V')).toEqual([
      { host: 'a', port: 1 },
      { host: 'b', port: 2 },
    ]);
    expect(refusal(parsers.hostPortList, 'a:1,b')).toBe('"b" is not host:port');
  });

  it('never quotes a value that may carry credentials', () => {
    expect(mayCarryCredentials('user:pw@host:1')).toBe(true);
    expect(mayCarryCredentials('redis://h')).toBe(true);
    expect(mayCarryCredentials('host:1')).toBe(false);
    expect(quoteValue('host')).toBe('"host"');
    expect(quoteValue('u:secret@h:1')).not.toContain('secret');
    expect(refusal((value, variable) => parseHostPort(variable, value, false), 'u:secret@h')).toBe('the value (not shown: it looks like a URL or holds user:password@) is not host:port');
  });

  it("foreign: another parser's error follows the variable", () => {
    const parse = parsers.foreign((value) => {
      throw new Error(`bad ${value}`);
    });
    expect(refusal(parse, 'x')).toBe('bad x');
    expect(refusal(parsers.foreign(JSON.parse, (_error, value) => `"${value}" is not JSON`), '{')).toBe('"{" is not JSON');
    expect(parsers.foreign(JSON.parse)('[1]', 'V')).toEqual([1]);
  });
});

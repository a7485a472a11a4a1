import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { configure } from 'safe-stable-stringify';
import { MESSAGE } from 'triple-beam';
import TransportStream from 'winston-transport';
import { LOG_FLUSH_MAX_PENDING, WinstonLogger, createWinstonLogger, flatJson } from './logging.js';

/** A stream that records each write it receives; `written()` resolves at the next write. */
function recorder(): { stream: Writable; writes: string[]; written: () => Promise<void> } {
  const writes: string[] = [];
  let waiters: Array<() => void> = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      writes.push(chunk.toString('utf8'));
      for (const wake of waiters) wake();
      waiters = [];
      callback();
    },
  });
  return { stream, writes, written: () => new Promise<void>((resolve) => waiters.push(resolve)) };
}

const lines = (writes: string[]): Array<Record<string, unknown>> =>
  writes
    .join('')
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l) as Record<string, unknown>);

describe('the binary logger', () => {
  it('writes the lines logged within the flush delay with one write, in order, one JSON object per line', async () => {
    const { stream, writes, written } = recorder();
    const logger = new WinstonLogger(createWinstonLogger('info', stream), { component: 'test' });
    for (let i = 0; i < 25; i += 1) logger.info('command', { n: i });
    await new Promise((resolve) => setImmediate(resolve));
    for (let i = 25; i < 50; i += 1) logger.info('command', { n: i });
    expect(writes).toHaveLength(0);
    await written();
    expect(writes).toHaveLength(1);
    expect(lines(writes).map((l) => l['n'])).toEqual(Array.from({ length: 50 }, (_, i) => i));
    expect(lines(writes)[0]).toMatchObject({ level: 'info', message: 'command', component: 'test' });
    logger.info('later', { n: 50 });
    await written();
    expect(writes).toHaveLength(2);
    expect(lines(writes).at(-1)).toMatchObject({ message: 'later', n: 50 });
  });

  it(`writes at once when more than ${LOG_FLUSH_MAX_PENDING} characters are pending`, () => {
    const { stream, writes } = recorder();
    const logger = new WinstonLogger(createWinstonLogger('info', stream));
    const filler = 'x'.repeat(1000);
    for (let i = 0; writes.length === 0 && i < 1000; i += 1) logger.info('big', { filler, n: i });
    expect(writes).toHaveLength(1);
    expect(writes[0]!.length).toBeGreaterThanOrEqual(LOG_FLUSH_MAX_PENDING);
    expect(writes[0]!.length).toBeLessThan(LOG_FLUSH_MAX_PENDING + 2000);
  });

  it('writes pending lines when the logger ends', async () => {
    const { stream, writes } = recorder();
    const winstonLogger = createWinstonLogger('info', stream);
    new WinstonLogger(winstonLogger).warn('last words', { code: 1 });
    const finished = new Promise((resolve) => winstonLogger.once('finish', resolve));
    winstonLogger.end();
    await finished;
    expect(lines(writes)).toEqual([expect.objectContaining({ level: 'warn', message: 'last words', code: 1 })]);
  });

  it('never writes secret fields, whatever a caller passes', async () => {
    const { stream, writes, written } = recorder();
    new WinstonLogger(createWinstonLogger('info', stream)).info('x', { password: 'hunter2', signature: 'c2ln', payload: 'cGF5', user_id: 'u1' });
    await written();
    expect(writes.join('')).not.toMatch(/hunter2|c2ln|cGF5/);
    expect(lines(writes)[0]).toMatchObject({ user_id: 'u1' });
  });

  it('writes the same line as winston itself for the same call (transport.log vs winston.Logger.log)', async () => {
    const { stream, writes, written } = recorder();
    const winstonLogger = createWinstonLogger('info', stream);
    const logger = new WinstonLogger(winstonLogger, { component: 'test' });
    const calls: Array<[string, Record<string, unknown>]> = [
      ['command', { user_id: 'u1', duration_ms: 1.5, n: 3n, none: undefined, nothing: null, ok: true }],
      ['prefixed', { message: 'and more', status: 'ok' }],
      ['nested', { error: { name: 'E', list: [1, 'x'] }, signature: 'c2ln' }],
    ];
    for (const [message, fields] of calls) {
      logger.info(message, fields);
      winstonLogger.log('info', message, { component: 'test', ...fields });
    }
    logger.debug('not at info', { n: 1 });
    await written();
    const parsed = lines(writes).map(({ timestamp, ...rest }) => {
      expect(timestamp).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
      return rest;
    });
    expect(parsed).toHaveLength(2 * calls.length);
    for (let i = 0; i < parsed.length; i += 2) expect(parsed[i]).toEqual(parsed[i + 1]);
    expect(parsed[2]).toMatchObject({ message: 'prefixed and more' });
    expect(parsed[4]).not.toHaveProperty('signature');
  });

  it('keeps the fields of a message with printf-style tokens (no splat: winston.log(level, message, meta) would drop them)', async () => {
    const { stream, writes, written } = recorder();
    new WinstonLogger(createWinstonLogger('info', stream), { component: 'test' }).info('with a token %s', { user_id: 'u1' });
    await written();
    expect(lines(writes)).toEqual([expect.objectContaining({ level: 'info', message: 'with a token %s', component: 'test', user_id: 'u1' })]);
  });

  it("goes through winston's public API: the logger's level, silent, defaultMeta and format, each transport's level and log(info, callback)", async () => {
    const { stream, writes, written } = recorder();
    const winstonLogger = createWinstonLogger('debug', stream);
    winstonLogger.defaultMeta = { service: 'gw' };
    const seen: Array<Record<string | symbol, unknown>> = [];
    class Collecting extends TransportStream {
      override log(info: Record<string | symbol, unknown>, callback: () => void): void {
        seen.push(info);
        callback();
      }
    }
    winstonLogger.add(new Collecting({ level: 'warn' }));
    const logger = new WinstonLogger(winstonLogger);
    logger.debug('fine', { n: 1 });
    logger.error('bad', { n: 2 });
    winstonLogger.silent = true;
    logger.error('silenced', { n: 3 });
    winstonLogger.silent = false;
    winstonLogger.level = 'warn';
    logger.info('below the level', { n: 4 });
    await written();
    expect(lines(writes).map(({ message, service, n }) => ({ message, service, n }))).toEqual([
      { message: 'fine', service: 'gw', n: 1 },
      { message: 'bad', service: 'gw', n: 2 },
    ]);
    expect(seen.map((info) => [info['message'], info[MESSAGE]])).toEqual([['bad', writes.join('').split('\n')[1]]]);
  });

  it('formats flat objects exactly as safe-stable-stringify does, and leaves nested ones to it', () => {
    const stringify = configure({});
    const replacer = (_key: string, value: unknown): unknown => (typeof value === 'bigint' ? value.toString() : value);
    const samples: Array<Record<string, unknown>> = [
      {},
      { b: 'x', a: 1, c: true, d: false, e: null, f: undefined },
      { 'é': 'ünïcödé ✓ 😀', Z: 'upper sorts first', _: 'under', '10': 'digits', '9': 'nine' },
      { q: 'quote " back \\ slash', ctl: '\u0000\u0001\n\t\u001f', lone: '\ud800 and \udfff', pair: '\ud83d\ude00' },
      { n: -0, big: 12345678901234567890n, inf: Infinity, nan: NaN, neg: -1.5e-7, huge: 1e21 },
      { 'key "quoted"': 1, 'key\nnewline': 2 },
    ];
    for (const sample of samples) expect(flatJson(sample)).toBe(stringify(sample, replacer));
    expect(flatJson({ a: { b: 1 } })).toBeUndefined();
    expect(flatJson({ a: [1] })).toBeUndefined();
  });

  it('cuts any string field over 1024 characters to a 64-character preview plus its length (no line over 4 KiB)', async () => {
    const { stream, writes, written } = recorder();
    const huge = 'a'.repeat(2_000_000);
    new WinstonLogger(createWinstonLogger('info', stream)).info('x', { request_id: huge, note: 'n'.repeat(1024), error: huge });
    await written();
    const [line] = lines(writes);
    expect(line).toMatchObject({ request_id: 'a'.repeat(64), request_id_length: 2_000_000, note: 'n'.repeat(1024), error_length: 2_000_000 });
    expect(writes.join('').length).toBeLessThan(4096);
  });
});

import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { WinstonLogger, createWinstonLogger } from './logging.js';

/** A stream that records each write it receives. */
function recorder(): { stream: Writable; writes: string[] } {
  const writes: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      writes.push(chunk.toString('utf8'));
      callback();
    },
  });
  return { stream, writes };
}

const lines = (writes: string[]): Array<Record<string, unknown>> =>
  writes
    .join('')
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l) as Record<string, unknown>);

describe('the binary logger', () => {
  it('writes the lines of one event-loop turn with one write, in order, one JSON object per line', async () => {
    const { stream, writes } = recorder();
    const logger = new WinstonLogger(createWinstonLogger('info', stream), { component: 'test' });
    for (let i = 0; i < 50; i += 1) logger.info('command', { n: i });
    expect(writes).toHaveLength(0);
    await new Promise((resolve) => setImmediate(resolve));
    expect(writes).toHaveLength(1);
    expect(lines(writes).map((l) => l['n'])).toEqual(Array.from({ length: 50 }, (_, i) => i));
    expect(lines(writes)[0]).toMatchObject({ level: 'info', message: 'command', component: 'test' });
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
    const { stream, writes } = recorder();
    new WinstonLogger(createWinstonLogger('info', stream)).info('x', { password: 'hunter2', signature: 'c2ln', payload: 'cGF5', user_id: 'u1' });
    await new Promise((resolve) => setImmediate(resolve));
    expect(writes.join('')).not.toMatch(/hunter2|c2ln|cGF5/);
    expect(lines(writes)[0]).toMatchObject({ user_id: 'u1' });
  });
});

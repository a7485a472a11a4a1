import { describe, expect, it } from 'vitest';
import { rewritePasses } from './rewrite-passes.js';

describe('rewritePasses', () => {
  it('retries only the failed items, counts what was written, skips what is no longer wanted, bounds writes in flight', async () => {
    const failuresLeft = new Map([['b', 2], ['c', 1]]);
    const present = new Set(['d']);
    let inFlight = 0;
    let most = 0;
    const writes: string[] = [];
    const passes: Array<{ written: readonly string[]; failed: readonly string[] }> = [];
    const waits: number[] = [];
    const result = await rewritePasses({
      items: ['a', 'b', 'c', 'd', 'gone'],
      concurrency: 2,
      stopped: () => false,
      wanted: (item) => item !== 'gone',
      write: async (item) => {
        inFlight += 1;
        most = Math.max(most, inFlight);
        writes.push(item);
        await Promise.resolve();
        inFlight -= 1;
        const left = failuresLeft.get(item) ?? 0;
        if (left > 0) {
          failuresLeft.set(item, left - 1);
          throw new Error(`refused ${item}`);
        }
        return !present.has(item);
      },
      onPass: (written, failed) => passes.push({ written: [...written], failed: [...failed] }),
      retryAfter: async (attempt) => {
        waits.push(attempt);
        return true;
      },
    });
    expect(result).toEqual({ written: 3, unfinished: [], error: expect.any(Error) });
    expect(passes.map((p) => p.failed.slice().sort())).toEqual([['b', 'c'], ['b'], []]);
    expect(passes.flatMap((p) => p.written).sort()).toEqual(['a', 'b', 'c']);
    expect(waits).toEqual([0, 1]);
    expect(writes).not.toContain('gone');
    expect(most).toBe(2);
  });

  it('gives up when retryAfter says so (the failed items are unfinished), and writes nothing more once the owner stops', async () => {
    const refused = async (): Promise<boolean> => {
      throw new Error('READONLY');
    };
    const gaveUp = await rewritePasses({ items: [1, 2], concurrency: 4, stopped: () => false, wanted: () => true, write: refused, retryAfter: async () => false });
    expect(gaveUp.unfinished).toEqual([1, 2]);
    expect(String(gaveUp.error)).toContain('READONLY');
    let stop = false;
    const stopped = await rewritePasses({
      items: [1, 2, 3],
      concurrency: 1,
      stopped: () => stop,
      wanted: () => true,
      write: async (n) => {
        if (n === 1) stop = true;
        return true;
      },
      retryAfter: async () => true,
    });
    expect(stopped).toEqual({ written: 1, unfinished: [], error: undefined });
  });
});

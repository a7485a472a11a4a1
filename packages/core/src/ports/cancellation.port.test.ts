import { describe, expect, it } from 'vitest';
import { CancellationSource, abortSignalOf } from './cancellation.port.js';

describe('CancellationSource', () => {
  it('runs each listener once on cancel, and a later cancel does nothing', () => {
    const source = new CancellationSource();
    const seen: string[] = [];
    source.onCancel(() => seen.push('a'));
    source.onCancel(() => seen.push('b'));
    expect(source.cancelled).toBe(false);
    source.cancel();
    source.cancel();
    expect(source.cancelled).toBe(true);
    expect(seen).toEqual(['a', 'b']);
  });

  it('a removed listener is not called; one added after the cancel runs at once', () => {
    const source = new CancellationSource();
    const seen: string[] = [];
    const stopA = source.onCancel(() => seen.push('a'));
    const stopB = source.onCancel(() => seen.push('b'));
    stopA();
    stopA();
    source.onCancel(() => seen.push('c'));
    stopB();
    source.cancel();
    expect(seen).toEqual(['c']);
    source.onCancel(() => seen.push('late'));
    expect(seen).toEqual(['c', 'late']);
  });

  it('a single listener removed before the cancel is not called', () => {
    const source = new CancellationSource();
    let called = false;
    source.onCancel(() => (called = true))();
    source.cancel();
    expect(called).toBe(false);
  });

  it('abortSignalOf aborts with the cancellation, and is born aborted after it', () => {
    const source = new CancellationSource();
    const signal = abortSignalOf(source);
    expect(signal.aborted).toBe(false);
    source.cancel();
    expect(signal.aborted).toBe(true);
    expect(abortSignalOf(source).aborted).toBe(true);
  });
});

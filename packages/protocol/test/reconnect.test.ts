import { describe, expect, it } from 'vitest';
import { GatewayStatusError, StatusCodes, reconnectingStream, type ReconnectingStreamOptions } from '@edge-gateway/protocol';

interface FakeEvent {
  readonly eventId: string;
}

/** One scripted stream: the events it yields, then how it ends (undefined: normally). */
interface Script {
  readonly events: readonly string[];
  readonly end?: Error;
}

const unavailable = (details = 'gateway is shutting down') => new GatewayStatusError(StatusCodes.UNAVAILABLE, details);
const revoked = () => new GatewayStatusError(StatusCodes.FAILED_PRECONDITION, 'device session is revoked');
const isUnavailable = (error: unknown) => error instanceof GatewayStatusError && error.code === StatusCodes.UNAVAILABLE;

/**
 * A fake transport: each `open` plays the next script (an empty id is a bootstrap), teaching a
 * fake session state the resume point as a real client does; records what each open resumed
 * after, and every sleep asked for (sleeps resolve at once unless `sleep` is overridden).
 */
function fake(scripts: readonly Script[], over: Partial<ReconnectingStreamOptions<FakeEvent>> = {}) {
  const state = { lastEventId: '' };
  const opened: string[] = [];
  const sleeps: number[] = [];
  const options: ReconnectingStreamOptions<FakeEvent> = {
    open: async function* (resumeAfterEventId) {
      opened.push(resumeAfterEventId);
      const script = scripts[opened.length - 1];
      if (script === undefined) throw new Error(`open #${opened.length} was not scripted`);
      for (const eventId of script.events) {
        if (eventId !== '') state.lastEventId = eventId;
        yield { eventId };
        await Promise.resolve();
      }
      if (script.end !== undefined) throw script.end;
    },
    isRetryable: isUnavailable,
    state,
    sleep: async (ms) => {
      sleeps.push(ms);
      return true;
    },
    random: () => 0.5,
    ...over,
  };
  return { options, opened, sleeps, state };
}

/** Runs the iteration to its end: the events, and the error it threw (if any). */
async function drain(iterable: AsyncIterable<FakeEvent>): Promise<{ ids: string[]; error: unknown }> {
  const ids: string[] = [];
  try {
    for await (const event of iterable) ids.push(event.eventId);
    return { ids, error: undefined };
  } catch (error) {
    return { ids, error };
  }
}

describe('reconnectingStream', () => {
  it('reopens after a retryable end, resuming after the last event, and ends when a stream ends normally', async () => {
    const f = fake([{ events: ['', 'e1', 'e2'], end: unavailable() }, { events: ['', 'e3'], end: unavailable('connection closed (1006)') }, { events: ['', 'e4'] }]);
    const { ids, error } = await drain(reconnectingStream({ ...f.options, resumeAfterEventId: 'e0' }));
    expect(error).toBeUndefined();
    expect(ids).toEqual(['', 'e1', 'e2', '', 'e3', '', 'e4']);
    expect(f.opened).toEqual(['e0', 'e2', 'e3']);
  });

  it('keeps the given resume point while no event arrived', async () => {
    const f = fake([{ events: [], end: unavailable() }, { events: [], end: unavailable() }, { events: ['', 'e8'] }]);
    const { ids } = await drain(reconnectingStream({ ...f.options, resumeAfterEventId: 'e7' }));
    expect(ids).toEqual(['', 'e8']);
    expect(f.opened).toEqual(['e7', 'e7', 'e7']);
  });

  it('throws a non-retryable end at once, without reopening or waiting', async () => {
    const f = fake([{ events: ['', 'e1'], end: revoked() }]);
    const { ids, error } = await drain(reconnectingStream(f.options));
    expect(ids).toEqual(['', 'e1']);
    expect(error).toMatchObject({ code: StatusCodes.FAILED_PRECONDITION, details: 'device session is revoked' });
    expect(f.opened).toEqual(['']);
    expect(f.sleeps).toEqual([]);
  });

  it('a non-retryable end after some retries is thrown as well', async () => {
    const f = fake([{ events: [], end: unavailable() }, { events: ['', 'e1'], end: revoked() }]);
    const { error } = await drain(reconnectingStream(f.options));
    expect(error).toMatchObject({ code: StatusCodes.FAILED_PRECONDITION });
    expect(f.opened).toHaveLength(2);
  });

  it('grows the delay by the multiplier up to maxMs, jittered between half and all of it', async () => {
    const failures = Array.from({ length: 6 }, () => ({ events: [], end: unavailable() }));
    const backoff = { initialMs: 100, maxMs: 1000, multiplier: 3 };
    const low = fake([...failures, { events: [''] }], { backoff, random: () => 0 });
    await drain(reconnectingStream(low.options));
    expect(low.sleeps).toEqual([50, 150, 450, 500, 500, 500]);
    const high = fake([...failures, { events: [''] }], { backoff, random: () => 0.999_999 });
    await drain(reconnectingStream(high.options));
    expect(high.sleeps).toEqual([100, 300, 900, 1000, 1000, 1000]);
  });

  it('uses 250 ms growing by 2 up to 10 s by default', async () => {
    const failures = Array.from({ length: 8 }, () => ({ events: [], end: unavailable() }));
    const f = fake([...failures, { events: [''] }], { random: () => 0.999_999 });
    await drain(reconnectingStream(f.options));
    expect(f.sleeps).toEqual([250, 500, 1000, 2000, 4000, 8000, 10_000, 10_000]);
  });

  it('resets the delay and the attempt count once a stream delivered its bootstrap', async () => {
    const f = fake(
      [
        { events: [], end: unavailable() },
        { events: [], end: unavailable() },
        { events: ['', 'e1'], end: unavailable() },
        { events: [], end: unavailable() },
        { events: ['', 'e2'] },
      ],
      { backoff: { initialMs: 100, maxMs: 10_000, maxAttempts: 2 }, random: () => 0.999_999 },
    );
    const { ids, error } = await drain(reconnectingStream(f.options));
    expect(error).toBeUndefined();
    expect(ids).toEqual(['', 'e1', '', 'e2']);
    // Without the reset, the 4th consecutive failure would exceed maxAttempts and the waits keep growing.
    expect(f.sleeps).toEqual([100, 200, 100, 200]);
  });

  it('gives up after maxAttempts consecutive failures with the last error', async () => {
    const f = fake(
      [
        { events: [], end: unavailable('one') },
        { events: [], end: unavailable('two') },
        { events: [], end: unavailable('three') },
        { events: [''] },
      ],
      { backoff: { initialMs: 10, maxAttempts: 2 } },
    );
    const { error } = await drain(reconnectingStream(f.options));
    expect(error).toMatchObject({ code: StatusCodes.UNAVAILABLE, details: 'three' });
    expect(f.opened).toHaveLength(3);
    expect(f.sleeps).toHaveLength(2);
  });

  it('maxAttempts 0 never retries', async () => {
    const f = fake([{ events: ['', 'e1'], end: unavailable() }], { backoff: { maxAttempts: 0 } });
    const { error } = await drain(reconnectingStream(f.options));
    expect(error).toMatchObject({ code: StatusCodes.UNAVAILABLE });
    expect(f.opened).toHaveLength(1);
  });

  it('an abort during the wait ends the iteration quietly, opening nothing more', async () => {
    const controller = new AbortController();
    let waiting!: () => void;
    const asleep = new Promise<void>((resolve) => (waiting = resolve));
    // The sleep a real client uses would resolve false on abort; this one waits for the abort.
    const f = fake([{ events: ['', 'e1'], end: unavailable() }], {
      signal: controller.signal,
      sleep: (_ms, signal) =>
        new Promise<boolean>((resolve) => {
          signal?.addEventListener('abort', () => resolve(false), { once: true });
          waiting();
        }),
    });
    const result = drain(reconnectingStream(f.options));
    await asleep;
    controller.abort();
    const { ids, error } = await result;
    expect(error).toBeUndefined();
    expect(ids).toEqual(['', 'e1']);
    expect(f.opened).toHaveLength(1);
  });

  it('the default sleep ends the iteration quietly for a signal already aborted, and when it aborts mid-wait', async () => {
    const aborted = new AbortController();
    aborted.abort();
    const f = fake([{ events: [''], end: unavailable() }], { signal: aborted.signal, backoff: { initialMs: 3_600_000 } });
    const { sleep: _fakeSleep, ...preAborted } = f.options;
    expect(await drain(reconnectingStream(preAborted))).toEqual({ ids: [''], error: undefined });
    expect(f.opened).toHaveLength(1);

    // An hour-long wait that an abort cuts short: the iteration ends without a second open.
    const later = new AbortController();
    let reached!: () => void;
    const waitStarts = new Promise<void>((resolve) => (reached = resolve));
    const g = fake([{ events: [''], end: unavailable() }], {
      signal: later.signal,
      backoff: { initialMs: 3_600_000 },
      // Drawn right before the wait starts.
      random: () => {
        reached();
        return 0.5;
      },
    });
    const { sleep: _alsoFake, ...midWait } = g.options;
    const result = drain(reconnectingStream(midWait));
    await waitStarts;
    later.abort();
    expect(await result).toEqual({ ids: [''], error: undefined });
    expect(g.opened).toHaveLength(1);
  });

  it('leaving early closes the current stream', async () => {
    let closed = false;
    const f = fake([]);
    const iterator = reconnectingStream({
      ...f.options,
      open: async function* () {
        try {
          yield { eventId: '' };
          yield { eventId: 'e1' };
        } finally {
          closed = true;
        }
      },
    })[Symbol.asyncIterator]();
    await iterator.next();
    await iterator.return?.(undefined);
    expect(closed).toBe(true);
  });
});

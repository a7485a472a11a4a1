import { describe, expect, it } from 'vitest';
import type { StreamEntry } from '../domain.js';
import type { HistoryPosition, SequencedEvent, UserHistoryReader } from '../ports/user-history.port.js';
import { compareStreamIds } from '../validation.js';
import { UserSequencer } from './user-sequencer.js';

/** One user's history as the publish function keeps it (SPEC §9.2), in memory. */
class FakeHistory implements UserHistoryReader {
  events: SequencedEvent[] = [];
  epoch = 'E1';
  offset = 0;
  private ms = 1000;
  failNext = false;
  reads = 0;

  /** Appends one event (as a publish would) and returns it. */
  publish(type = 'e.x'): SequencedEvent {
    this.offset += 1;
    this.ms += 1;
    const id = `${this.ms}-0`;
    const event = { id, offset: this.offset, epoch: this.epoch, entry: { id, fields: { user_id: 'u', event_type: type } } };
    this.events.push(event);
    return event;
  }

  position(): Promise<HistoryPosition> {
    this.reads += 1;
    if (this.failNext) {
      this.failNext = false;
      return Promise.reject(new Error('CLUSTERDOWN'));
    }
    const last = this.events[this.events.length - 1];
    return Promise.resolve({ epoch: this.events.length === 0 ? '' : this.epoch, offset: this.offset, lastId: last?.id ?? '0-0' });
  }

  eventsAfter(_userId: string, afterId: string, count: number): Promise<SequencedEvent[]> {
    return Promise.resolve(this.events.filter((e) => compareStreamIds(e.id, afterId) > 0).slice(0, count));
  }
}

function setup(page = 500) {
  const history = new FakeHistory();
  const delivered: string[] = [];
  const notices: string[] = [];
  const failures: unknown[] = [];
  const sequencer = new UserSequencer({
    history,
    page,
    delivery: {
      handleBatch: (entries: readonly StreamEntry[]) => {
        for (const e of entries) delivered.push(e.fields['event_type'] ?? '?');
        return Promise.resolve();
      },
      discontinuity: (userId) => {
        notices.push(userId);
        return 1;
      },
    },
    onReadFailure: (e) => failures.push(e),
  });
  const settle = () => new Promise((resolve) => setTimeout(resolve, 0));
  return { history, delivered, notices, failures, sequencer, settle };
}

describe('UserSequencer (SPEC §9.3)', () => {
  it('holds live events until the baseline, drops those at or before it, delivers the rest in id order', async () => {
    const { history, delivered, sequencer, settle } = setup();
    history.publish('e.old');
    sequencer.add('u');
    const a = history.publish('e.a');
    const b = history.publish('e.b');
    sequencer.receive('u', b);
    // The baseline is read after a and b were published: both are history, not new.
    await sequencer.baseline('u');
    const c = history.publish('e.c');
    sequencer.receive('u', c);
    sequencer.receive('u', a);
    await settle();
    expect(delivered).toEqual(['e.c']);
  });

  it('delivers in-order events and drops duplicates', async () => {
    const { history, delivered, sequencer, settle } = setup();
    sequencer.add('u');
    await sequencer.baseline('u');
    const [a, b] = [history.publish('e.a'), history.publish('e.b')];
    sequencer.receive('u', a);
    sequencer.receive('u', b);
    sequencer.receive('u', a);
    await settle();
    expect(delivered).toEqual(['e.a', 'e.b']);
    expect(history.reads).toBe(1);
  });

  it('fills a gap from the history before the event after it, without duplicates', async () => {
    const { history, delivered, notices, sequencer, settle } = setup(2);
    sequencer.add('u');
    await sequencer.baseline('u');
    sequencer.receive('u', history.publish('e.1'));
    history.publish('e.2');
    history.publish('e.3');
    history.publish('e.4');
    const five = history.publish('e.5');
    sequencer.receive('u', five);
    await settle();
    expect(delivered).toEqual(['e.1', 'e.2', 'e.3', 'e.4', 'e.5']);
    expect(notices).toEqual([]);
  });

  it('a new epoch ends continuity once, then delivers the new epoch from its start', async () => {
    const { history, delivered, notices, sequencer, settle } = setup();
    sequencer.add('u');
    await sequencer.baseline('u');
    sequencer.receive('u', history.publish('e.before'));
    history.epoch = 'E2';
    history.offset = 0;
    history.publish('e.new1');
    sequencer.receive('u', history.publish('e.new2'));
    await settle();
    expect(delivered).toEqual(['e.before', 'e.new1', 'e.new2']);
    expect(notices).toEqual(['u']);
  });

  it('events trimmed away before they were read end continuity; the rest is delivered', async () => {
    const { history, delivered, notices, sequencer, settle } = setup();
    sequencer.add('u');
    await sequencer.baseline('u');
    sequencer.receive('u', history.publish('e.1'));
    history.publish('e.2');
    history.publish('e.3');
    history.events = history.events.filter((e) => e.offset !== 2);
    sequencer.receive('u', history.publish('e.4'));
    await settle();
    expect(delivered).toEqual(['e.1', 'e.3', 'e.4']);
    expect(notices).toEqual(['u']);
  });

  it('after a failover lost delivered writes (offsets reused with newer ids), later events are still delivered', async () => {
    const { history, delivered, notices, sequencer, settle } = setup();
    sequencer.add('u');
    await sequencer.baseline('u');
    for (const t of ['e.1', 'e.2', 'e.3']) sequencer.receive('u', history.publish(t));
    // The promoted replica had only e.1: offset 2 and 3 are written again, with newer ids.
    history.events = history.events.slice(0, 1);
    history.offset = 1;
    history.publish('e.2b');
    sequencer.receive('u', history.publish('e.3b'));
    sequencer.receive('u', history.publish('e.4b'));
    await settle();
    expect(delivered).toEqual(['e.1', 'e.2', 'e.3', 'e.2b', 'e.3b', 'e.4b']);
    expect(notices).toEqual([]);
  });

  it('resyncAll delivers what was published while live events were lost; a failed read is reported and retried', async () => {
    const { history, delivered, failures, sequencer, settle } = setup();
    sequencer.add('u');
    await sequencer.baseline('u');
    history.publish('e.missed');
    history.failNext = true;
    await sequencer.resyncAll();
    expect(failures).toHaveLength(1);
    expect(delivered).toEqual([]);
    await sequencer.resyncAll();
    await settle();
    expect(delivered).toEqual(['e.missed']);
  });

  it('forgets a removed user: its events are no longer delivered', async () => {
    const { history, delivered, sequencer, settle } = setup();
    sequencer.add('u');
    await sequencer.baseline('u');
    sequencer.remove('u');
    sequencer.receive('u', history.publish('e.late'));
    await sequencer.resyncAll();
    await settle();
    expect(delivered).toEqual([]);
    expect(sequencer.size).toBe(0);
  });
});

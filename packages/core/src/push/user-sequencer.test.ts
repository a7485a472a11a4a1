import { describe, expect, it } from 'vitest';
import type { StreamEntry } from '../domain.js';
import type { EpochLink, HistoryPosition, SequencedEvent, UserHistoryReader } from '../ports/user-history.port.js';
import { compareStreamIds } from '../validation.js';
import { CapturingLogger, MetricsHarness } from '../../test/helpers.js';
import { UserSequencer } from './user-sequencer.js';

/** One user's history as the publish function keeps it (SPEC §9.2), in memory. */
class FakeHistory implements UserHistoryReader {
  events: SequencedEvent[] = [];
  epoch = 'E1';
  offset = 0;
  previous: EpochLink | undefined;
  private epochs = 1;
  private masterChanged = false;
  ms = 1000;
  /** Milliseconds between two publishes. */
  step = 10;
  failNext = false;
  reads = 0;

  /** Appends one event (as a publish would) and returns it. */
  publish(type = 'e.x'): SequencedEvent {
    let previous: EpochLink | undefined;
    if (this.masterChanged) {
      // The first publish on a new master: a new epoch that continues where the history stands.
      this.masterChanged = false;
      previous = { epoch: this.epoch, offset: this.offset, lastId: this.events[this.events.length - 1]?.id ?? '0-0' };
      this.previous = previous;
      this.epochs += 1;
      this.epoch = `E${this.epochs}`;
      this.offset = 0;
    }
    this.offset += 1;
    this.ms += this.step;
    const id = `${this.ms}-0`;
    const event = { id, offset: this.offset, epoch: this.epoch, entry: { id, fields: { user_id: 'u', event_type: type } }, ...(previous === undefined ? {} : { previous }) };
    this.events.push(event);
    return event;
  }

  /**
   * A failover to a replica that had the first `kept` events only: the rest are gone, and the
   * next publish (on the new master) starts an epoch continuing the replica's position. The new
   * master's clock may be behind (`clockMs`).
   */
  failover(kept: number, clockMs = this.ms): void {
    this.events = this.events.slice(0, kept);
    this.offset = this.events[this.events.length - 1]?.offset ?? 0;
    this.masterChanged = true;
    this.ms = clockMs;
  }

  position(): Promise<HistoryPosition> {
    this.reads += 1;
    if (this.failNext) {
      this.failNext = false;
      return Promise.reject(new Error('CLUSTERDOWN'));
    }
    const last = this.events[this.events.length - 1];
    if (this.events.length === 0) return Promise.resolve({ epoch: '', offset: 0, lastId: '0-0' });
    return Promise.resolve({ epoch: this.epoch, offset: this.offset, lastId: last?.id ?? '0-0', ...(this.previous === undefined ? {} : { previous: this.previous }) });
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
  const harness = new MetricsHarness();
  const logger = new CapturingLogger();
  const sequencer = new UserSequencer({
    history,
    page,
    metrics: harness.metrics,
    logger,
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
  const diverged = () => harness.value('gateway_stream_history_diverged_total', { stream: 'client_events' });
  const lossNotices = () => harness.value('gateway_push_loss_notices_total', { reason: 'history_diverged' });
  return { history, delivered, notices, failures, sequencer, settle, diverged, lossNotices, logger };
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

  it('offsets written again with newer ids in the same epoch (a restart lost delivered writes): told once, later events delivered', async () => {
    const { history, delivered, notices, sequencer, settle } = setup();
    sequencer.add('u');
    await sequencer.baseline('u');
    for (const t of ['e.1', 'e.2', 'e.3']) sequencer.receive('u', history.publish(t));
    // The node came back with e.1 only and the same epoch: offsets 2 and 3 are written again.
    history.events = history.events.slice(0, 1);
    history.offset = 1;
    history.publish('e.2b');
    sequencer.receive('u', history.publish('e.3b'));
    sequencer.receive('u', history.publish('e.4b'));
    await settle();
    expect(delivered).toEqual(['e.1', 'e.2', 'e.3', 'e.2b', 'e.3b', 'e.4b']);
    expect(notices).toEqual(['u']);
  });

  describe('a master change (the new master starts an epoch that continues its position)', () => {
    async function threeDelivered() {
      const t = setup();
      t.sequencer.add('u');
      await t.sequencer.baseline('u');
      for (const type of ['e.1', 'e.2', 'e.3']) t.sequencer.receive('u', t.history.publish(type));
      await t.settle();
      return t;
    }

    it('that lost nothing goes on without a notice', async () => {
      const { history, delivered, notices, sequencer, settle, diverged } = await threeDelivered();
      history.failover(3);
      const first = history.publish('e.4');
      expect(first.previous).toEqual({ epoch: 'E1', offset: 3, lastId: history.events[2]!.id });
      sequencer.receive('u', first);
      sequencer.receive('u', history.publish('e.5'));
      await sequencer.resyncAll();
      await settle();
      expect(delivered).toEqual(['e.1', 'e.2', 'e.3', 'e.4', 'e.5']);
      expect(notices).toEqual([]);
      expect(history.reads).toBe(2);
      expect(await diverged()).toBe(0);
    });

    it('that lost delivered events: the next live event tells the streams once, then the new epoch is delivered', async () => {
      const { history, delivered, notices, sequencer, settle } = await threeDelivered();
      history.failover(1);
      sequencer.receive('u', history.publish('e.2b'));
      sequencer.receive('u', history.publish('e.3b'));
      await settle();
      await sequencer.resyncAll();
      expect(delivered).toEqual(['e.1', 'e.2', 'e.3', 'e.2b', 'e.3b']);
      expect(notices).toEqual(['u']);
    });

    it('that lost delivered events, found by the re-sync before anything new is published', async () => {
      const { history, delivered, notices, sequencer, settle, diverged, lossNotices, logger } = await threeDelivered();
      history.failover(2);
      await sequencer.resyncAll();
      expect(notices).toEqual(['u']);
      expect(await diverged()).toBe(1);
      expect(await lossNotices()).toBe(1);
      expect(logger.find('user history lost delivered events (failover); streams told gateway.resume_incomplete')).toEqual([
        expect.objectContaining({
          level: 'error',
          fields: expect.objectContaining({ user_id: 'u', reason: 'lost', last_delivered: '1030-0', history_last_id: '1020-0', sessions_told: 1 }),
        }),
      ]);
      // The new epoch continues the kept position: no second notice.
      sequencer.receive('u', history.publish('e.3b'));
      await sequencer.resyncAll();
      await settle();
      expect(delivered).toEqual(['e.1', 'e.2', 'e.3', 'e.3b']);
      expect(notices).toEqual(['u']);
    });

    it('with the new master\'s clock behind (ids below the delivered ones): told, and its events still delivered', async () => {
      const { history, delivered, notices, sequencer, settle } = await threeDelivered();
      // e.2 and e.3 are lost; the new master writes ids between e.1's and e.2's.
      history.failover(1, 1010);
      history.step = 1;
      const ids = [history.publish('e.2b'), history.publish('e.3b')].map((e) => e.id);
      expect(compareStreamIds(ids[1]!, history.events[0]!.id)).toBeGreaterThan(0);
      expect(compareStreamIds(ids[1]!, '1020-0')).toBeLessThan(0);
      sequencer.receive('u', history.events[2]!);
      await settle();
      await sequencer.resyncAll();
      expect(delivered).toEqual(['e.1', 'e.2', 'e.3', 'e.2b', 'e.3b']);
      expect(notices).toEqual(['u']);
    });

    it('that followed events this process missed: they are read from the history first, no notice', async () => {
      const { history, delivered, notices, sequencer, settle } = await threeDelivered();
      history.publish('e.4 (missed live)');
      history.failover(4);
      sequencer.receive('u', history.publish('e.5'));
      await settle();
      expect(delivered).toEqual(['e.1', 'e.2', 'e.3', 'e.4 (missed live)', 'e.5']);
      expect(notices).toEqual([]);
    });

    it('two master changes while this process missed the live events: the history walks the epochs', async () => {
      const { history, delivered, notices, sequencer, settle } = await threeDelivered();
      history.failover(3);
      history.publish('e.4');
      history.failover(4);
      history.publish('e.5');
      await sequencer.resyncAll();
      await settle();
      expect(delivered).toEqual(['e.1', 'e.2', 'e.3', 'e.4', 'e.5']);
      expect(notices).toEqual([]);
    });
  });

  it('a history gone after events were delivered (expired or lost with its master) is told once; the next one starts clean', async () => {
    const { history, delivered, notices, sequencer, settle } = setup();
    sequencer.add('u');
    await sequencer.baseline('u');
    sequencer.receive('u', history.publish('e.1'));
    await settle();
    history.events = [];
    history.offset = 0;
    await sequencer.resyncAll();
    await sequencer.resyncAll();
    expect(notices).toEqual(['u']);
    history.epoch = 'E9';
    sequencer.receive('u', history.publish('e.again'));
    await settle();
    expect(delivered).toEqual(['e.1', 'e.again']);
    expect(notices).toEqual(['u']);
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

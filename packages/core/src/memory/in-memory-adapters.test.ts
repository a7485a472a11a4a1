import { describe, expect, it } from 'vitest';
import { FakeClock } from './fake-clock.js';
import { InMemoryEventStream } from './in-memory-event-stream.js';
import { InMemoryReplayStore } from './in-memory-replay-store.js';
import { InMemoryRevocationStore } from './in-memory-revocation-store.js';
import { InMemorySessionStore } from './in-memory-session-store.js';
import { replayStoreContract, sessionStoreContract } from '../testing/contracts.js';
import { revocationStoreContract } from '../testing/revocation-contract.js';
import type { StreamEntry } from '../domain.js';

sessionStoreContract('InMemorySessionStore', () => {
  const store = new InMemorySessionStore();
  return {
    store,
    seed: async (id, fields) => store.set(id, fields),
    breakStore: async () => {
      store.failing = true;
    },
    repairStore: async () => {
      store.failing = false;
    },
  };
});

replayStoreContract('InMemoryReplayStore', () => {
  const clock = new FakeClock();
  const store = new InMemoryReplayStore(clock);
  return {
    store,
    elapse: async (ms) => clock.advance(ms),
    breakStore: async () => {
      store.failing = true;
    },
    repairStore: async () => {
      store.failing = false;
    },
    breakReplication: async () => {
      store.unreplicated = true;
    },
    repairReplication: async () => {
      store.unreplicated = false;
    },
  };
});

revocationStoreContract('InMemoryRevocationStore', () => {
  const sessions = new InMemorySessionStore();
  const stream = new InMemoryEventStream();
  return {
    store: new InMemoryRevocationStore(sessions, stream),
    seed: async (id, fields) => sessions.set(id, fields),
    record: async (id) => sessions.peekRecord(id),
    snapshots: async (id) => (await stream.readAfter('0-0', 1000)).entries.map((e) => e.fields).filter((f) => f['device_session_id'] === id),
    expires: false,
  };
});

describe('InMemoryEventStream', () => {
  it('assigns increasing <ms>-<seq> ids, hands entries to subscribers in order, and reads history after an id', async () => {
    const clock = new FakeClock(1000);
    const stream = new InMemoryEventStream(clock);
    const seen: StreamEntry[] = [];
    const unsubscribe = stream.subscribe({ stream: 'client_events', handle: (e) => seen.push(e) });
    const a = stream.append({ n: '1' });
    const b = stream.append({ n: '2' });
    clock.advance(5);
    const c = stream.append({ n: '3' });
    expect([a, b, c]).toEqual(['1000-0', '1000-1', '1005-0']);
    expect(seen.map((e) => e.id)).toEqual([a, b, c]);
    unsubscribe();
    stream.append({ n: '4' });
    expect(seen).toHaveLength(3);
    expect(await stream.readAfter(a, 10)).toEqual({ entries: [{ id: b, fields: { n: '2' } }, { id: c, fields: { n: '3' } }, expect.objectContaining({ id: '1005-1' })], truncated: false });
    expect((await stream.readAfter('0-0', 2)).entries.map((e) => e.id)).toEqual([a, b]);
    expect(stream.lastId).toBe('1005-1');
  });

  it('reports truncation when the requested id is older than the trim point', async () => {
    const stream = new InMemoryEventStream(new FakeClock(), 3);
    const ids = [1, 2, 3, 4, 5].map((n) => stream.append({ n: String(n) }));
    expect(stream.length).toBe(3);
    expect((await stream.readAfter(ids[0] as string, 10)).truncated).toBe(true);
    expect(await stream.readAfter(ids[1] as string, 10)).toMatchObject({ truncated: false, entries: [{ id: ids[2] }, { id: ids[3] }, { id: ids[4] }] });
  });
});

import type { RawFields, StreamEntry } from '../domain.js';
import type { StreamEntryHandler } from '../handlers/stream-entry-handler.js';
import type { EventHistory, EventHistoryPage } from '../ports/event-history.port.js';
import { systemClock, type Clock } from '../ports/clock.port.js';
import { compareStreamIds } from '../validation.js';

/**
 * An in-memory stand-in for a Redis stream: `append` assigns `<ms>-<seq>` ids, hands the
 * entry to subscribed handlers synchronously, and keeps history for resume (with `trim`).
 */
export class InMemoryEventStream implements EventHistory {
  private entries: StreamEntry[] = [];
  private readonly handlers = new Set<StreamEntryHandler>();
  private lastMs = 0;
  private lastSeq = 0;
  private maxDeleted = '0-0';

  constructor(
    private readonly clock: Clock = systemClock,
    private readonly maxLength = 100_000,
  ) {}

  /** Hands every future entry to `handler`; returns an unsubscribe function. */
  subscribe(handler: StreamEntryHandler): () => void {
    this.handlers.add(handler);
    return () => this.handlers.delete(handler);
  }

  append(fields: RawFields): string {
    const now = this.clock.now();
    if (now > this.lastMs) {
      this.lastMs = now;
      this.lastSeq = 0;
    } else {
      this.lastSeq += 1;
    }
    const entry: StreamEntry = { id: `${this.lastMs}-${this.lastSeq}`, fields: { ...fields } };
    this.entries.push(entry);
    if (this.entries.length > this.maxLength) this.trim(this.maxLength);
    for (const handler of this.handlers) handler.handle(entry);
    return entry.id;
  }

  /** Keeps only the newest `maxLength` entries. */
  trim(maxLength: number): void {
    const drop = this.entries.length - maxLength;
    if (drop <= 0) return;
    this.maxDeleted = (this.entries[drop - 1] as StreamEntry).id;
    this.entries = this.entries.slice(drop);
  }

  get length(): number {
    return this.entries.length;
  }

  get lastId(): string {
    return this.entries.at(-1)?.id ?? '0-0';
  }

  async newestId(): Promise<string | undefined> {
    return this.entries.at(-1)?.id;
  }

  async readAfter(afterId: string, count: number): Promise<EventHistoryPage> {
    const truncated = compareStreamIds(afterId, this.maxDeleted) < 0;
    const out: StreamEntry[] = [];
    for (const entry of this.entries) {
      if (out.length >= count) break;
      if (compareStreamIds(entry.id, afterId) > 0) out.push(entry);
    }
    return { entries: out, truncated };
  }
}

import type { RawFields } from '../domain.js';
import type { SessionStore } from '../ports/session-store.port.js';

/** In-memory session records; `failing` makes every read reject like an unreachable store. */
export class InMemorySessionStore implements SessionStore {
  private readonly records = new Map<string, RawFields>();
  failing = false;
  reads = 0;

  set(deviceSessionId: string, fields: RawFields): void {
    this.records.set(deviceSessionId, { ...fields });
  }

  delete(deviceSessionId: string): void {
    this.records.delete(deviceSessionId);
  }

  /** The stored record, without counting a read. */
  peekRecord(deviceSessionId: string): RawFields | undefined {
    const record = this.records.get(deviceSessionId);
    return record === undefined ? undefined : { ...record };
  }

  async getRecord(deviceSessionId: string): Promise<RawFields | undefined> {
    this.reads += 1;
    if (this.failing) throw new Error('session store unreachable');
    const record = this.records.get(deviceSessionId);
    return record === undefined ? undefined : { ...record };
  }
}

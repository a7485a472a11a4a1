import type { RawFields } from '../domain.js';

/**
 * Read access to device-session records owned by the auth/session service (SPEC §5.1).
 * The gateway never writes records.
 */
export interface SessionStore {
  /**
   * Returns the raw fields of the record for `deviceSessionId`, or `undefined` when there is
   * no record. Parsing and validation happen in the core (`parseSessionFields`).
   *
   * Must reject (never resolve `undefined`) when the store cannot answer, within a bounded
   * time: the core turns that into `UNAVAILABLE` `session store unavailable`.
   */
  getRecord(deviceSessionId: string): Promise<RawFields | undefined>;
}

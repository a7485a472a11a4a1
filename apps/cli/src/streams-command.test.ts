import { describe, expect, it } from 'vitest';
import { describeEntry } from './streams-command.js';

describe('streams tail: how the gateway judges a session snapshot', () => {
  it('a revoked snapshot with a broken key is flagged, and says the gateway revokes anyway (fail closed)', () => {
    const judged = describeEntry('session-events', { id: '5-0', fields: { device_session_id: 'ds-1', user_id: 'u', status: 'revoked' } });
    expect(judged.ok).toBe(false);
    expect(judged.line).toContain('INCOMPLETE revoked snapshot, the gateway revokes ds-1 anyway: client_public_key is missing');
  });

  it('an active snapshot with a broken key is still dropped', () => {
    const judged = describeEntry('session-events', { id: '5-1', fields: { device_session_id: 'ds-1', user_id: 'u', status: 'active' } });
    expect(judged.line).toContain('MALFORMED, the gateway drops it: client_public_key is missing');
  });
});

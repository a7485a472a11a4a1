import { describe, expect, it } from 'vitest';
import * as core from '@edge-gateway/core';
import * as internal from '@edge-gateway/core/internal';

// The main entry is the documented surface (packages/core/api/index.api.md); internals only the
// core uses are not exported, and what our adapters and binary need is in `./internal`.
describe('@edge-gateway/core public surface', () => {
  it('does not export the core-only helpers', () => {
    const exported = new Set(Object.keys(core));
    for (const name of [
      'i64',
      'canonical',
      'boundedText',
      'clientField',
      'LOG_PREVIEW_CHARS',
      'LOG_TEXT_MAX_CHARS',
      'gcra',
      'RATE_LIMIT_LOG_INTERVAL_MS',
      'RATE_LIMIT_LOG_MAX_KEYS',
      'routeLabel',
      'statusNameOf',
      'UNNAMED_TRANSPORT',
      'FAILURE_LINES_PER_SECOND',
      'SUPPRESSED_SUMMARY_INTERVAL_MS',
      'UserSequencer',
      'SessionCache',
      'PushStream',
    ]) {
      expect(exported.has(name), name).toBe(false);
    }
  });

  it('keeps what embedders and adapters use, and ./internal has what our adapters need', () => {
    for (const name of ['createGatewayCore', 'PushHub', 'RequestLogLimiter', 'ConnectionBudgets', 'UserEventIndex', 'keyId', 'sha256', 'DEFAULT_CLOSE_BUDGET_MS']) {
      expect(core, name).toHaveProperty(name);
    }
    expect(Object.keys(internal).sort()).toEqual(['LOG_PREVIEW_CHARS', 'PushStream', 'SessionCache', 'UserSequencer', 'rewritePasses']);
  });
});

import { describe, expect, it } from 'vitest';
import { formatRateLimitRules, parseRateLimitRules, RateLimitRuleError } from './rate-limit-rules.js';

describe('parseRateLimitRules (GATEWAY_RATE_LIMITS)', () => {
  it('parses the documented examples, burst defaulting to the count', () => {
    const rules = parseRateLimitRules('session=20/s:40, user=100/s,session:payments.=1/s:3 , session_streams=10/m');
    expect(rules).toEqual([
      { id: 'session=20/s:40', scope: 'session', routePrefix: '', count: 20, unit: 's', burst: 40, intervalMs: 50 },
      { id: 'user=100/s:100', scope: 'user', routePrefix: '', count: 100, unit: 's', burst: 100, intervalMs: 10 },
      { id: 'session:payments.=1/s:3', scope: 'session', routePrefix: 'payments.', count: 1, unit: 's', burst: 3, intervalMs: 1000 },
      { id: 'session_streams=10/m:10', scope: 'session_streams', routePrefix: '', count: 10, unit: 'm', burst: 10, intervalMs: 6000 },
    ]);
    expect(formatRateLimitRules(rules)).toBe('session=20/s:40,user=100/s:100,session:payments.=1/s:3,session_streams=10/m:10');
  });

  it('empty (or blank) means no rules', () => {
    expect(parseRateLimitRules('')).toEqual([]);
    expect(parseRateLimitRules('   ')).toEqual([]);
  });

  it('hours, a user route rule, and the largest rate', () => {
    expect(parseRateLimitRules('user:orders.create=500/h:50,session=1000000000/s')).toMatchObject([
      { scope: 'user', routePrefix: 'orders.create', intervalMs: 7200, burst: 50 },
      { scope: 'session', intervalMs: 0.000001, burst: 1_000_000_000 },
    ]);
  });

  const bad: Array<[string, string, string]> = [
    ['device=1/s', 'device=1/s', 'scope must be one of session, user, session_streams'],
    ['session=20/d', 'session=20/d', 'the unit must be s, m or h'],
    ['session=0/s', 'session=0/s', 'the rate must be 1-1000000000'],
    ['session=2000000000/s', 'session=2000000000/s', 'the rate must be 1-1000000000'],
    ['session=5/s:0', 'session=5/s:0', 'the burst must be 1-1000000000'],
    ['session=5/s:', 'session=5/s:', 'is not <scope>[:<route prefix>]=<rate>/<s|m|h>[:burst] (e.g. session=20/s:40)'],
    ['session=-1/s', 'session=-1/s', 'is not <scope>[:<route prefix>]=<rate>/<s|m|h>[:burst] (e.g. session=20/s:40)'],
    ['session=1.5/s', 'session=1.5/s', 'is not <scope>[:<route prefix>]=<rate>/<s|m|h>[:burst] (e.g. session=20/s:40)'],
    ['session = 20/s', 'session = 20/s', 'is not <scope>[:<route prefix>]=<rate>/<s|m|h>[:burst] (e.g. session=20/s:40)'],
    ['session:Pay=1/s', 'session:Pay=1/s', 'the route prefix must be 1-128 characters of [a-z0-9._-] (as in GATEWAY_DOWNSTREAM_ROUTES)'],
    ['session:=1/s', 'session:=1/s', 'the route prefix must be 1-128 characters of [a-z0-9._-] (as in GATEWAY_DOWNSTREAM_ROUTES)'],
    ['session_streams:a.=1/s', 'session_streams:a.=1/s', 'session_streams takes no route prefix (it counts stream opens)'],
    ['session=1/s,,user=1/s', '', 'is empty (a stray comma?)'],
    ['session=1/s,', '', 'is empty (a stray comma?)'],
    ['session=20/s,session=20/s:20', 'session=20/s:20', 'is given twice'],
  ];
  for (const [text, rule, problem] of bad) {
    it(`refuses ${JSON.stringify(text)}: ${problem}`, () => {
      let error: unknown;
      try {
        parseRateLimitRules(text);
      } catch (e) {
        error = e;
      }
      expect(error).toBeInstanceOf(RateLimitRuleError);
      expect(error).toMatchObject({ rule, problem, message: `rule "${rule}": ${problem}` });
    });
  }
});

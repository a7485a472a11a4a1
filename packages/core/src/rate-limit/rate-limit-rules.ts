/** What a rule counts (SPEC §7 `GATEWAY_RATE_LIMITS`). */
export type RateLimitScope = 'session' | 'user' | 'session_streams';

/** The scopes, in the order the docs list them. */
export const RATE_LIMIT_SCOPES: readonly RateLimitScope[] = ['session', 'user', 'session_streams'];

/** One parsed rule of `GATEWAY_RATE_LIMITS`. */
export interface RateLimitRule {
  /** Canonical text (burst always written), e.g. `session:payments.=1/s:3`; names the rule's buckets. */
  readonly id: string;
  readonly scope: RateLimitScope;
  /**
   * Commands whose message type starts with this (empty: every command). Always empty for
   * `session_streams`. It need not name a configured route.
   */
  readonly routePrefix: string;
  /** Requests per `unit`. */
  readonly count: number;
  readonly unit: 's' | 'm' | 'h';
  /** Requests admitted at once (default `count`). */
  readonly burst: number;
  /** The emission interval in ms: the unit's length divided by `count`. */
  readonly intervalMs: number;
}

/** A malformed rule: `message` names the rule and what is wrong with it. */
export class RateLimitRuleError extends Error {
  override readonly name = 'RateLimitRuleError';
  readonly code = 'invalid_rate_limit_rule';
  constructor(
    /** The rule as written (trimmed). */
    readonly rule: string,
    /** What is wrong, without the rule. */
    readonly problem: string,
  ) {
    super(`rule "${rule}": ${problem}`);
  }
}

const UNIT_MS = { s: 1000, m: 60_000, h: 3_600_000 } as const;
/** Largest count or burst: beyond it a rule is not a limit any more (and float precision suffers). */
export const MAX_RATE_LIMIT_COUNT = 1_000_000_000;
const RULE = /^(session_streams|session|user)(?::([^=]*))?=(\d+)\/([a-z]+)(?::(\d+))?$/;
const PREFIX = /^[a-z0-9._-]{1,128}$/;

/**
 * Parses `GATEWAY_RATE_LIMITS`: comma-separated rules `<scope>[:<route prefix>]=<rate>/<s|m|h>[:burst]`
 * (`session=20/s:40`, `user=100/s`, `session:payments.=1/s:3`, `session_streams=10/m`). Empty:
 * no rules. Strict: any malformed or repeated rule throws {@link RateLimitRuleError} naming it.
 */
export function parseRateLimitRules(text: string): RateLimitRule[] {
  const trimmed = text.trim();
  if (trimmed === '') return [];
  const rules: RateLimitRule[] = [];
  const seen = new Set<string>();
  for (const part of trimmed.split(',')) {
    const rule = parseRule(part.trim());
    if (seen.has(rule.id)) throw new RateLimitRuleError(part.trim(), 'is given twice');
    seen.add(rule.id);
    rules.push(rule);
  }
  return rules;
}

function parseRule(text: string): RateLimitRule {
  if (text === '') throw new RateLimitRuleError(text, 'is empty (a stray comma?)');
  const match = RULE.exec(text);
  if (match === null) {
    const scope = /^([^:= ]*)/.exec(text)?.[1] ?? '';
    if (!(RATE_LIMIT_SCOPES as readonly string[]).includes(scope)) {
      throw new RateLimitRuleError(text, `scope must be one of ${RATE_LIMIT_SCOPES.join(', ')}`);
    }
    throw new RateLimitRuleError(text, 'is not <scope>[:<route prefix>]=<rate>/<s|m|h>[:burst] (e.g. session=20/s:40)');
  }
  const scope = match[1] as RateLimitScope;
  const routePrefix = match[2];
  const unit = match[4] as string;
  if (routePrefix !== undefined) {
    if (scope === 'session_streams') throw new RateLimitRuleError(text, 'session_streams takes no route prefix (it counts stream opens)');
    if (!PREFIX.test(routePrefix)) throw new RateLimitRuleError(text, 'the route prefix must be 1-128 characters of [a-z0-9._-] (as in GATEWAY_DOWNSTREAM_ROUTES)');
  }
  if (unit !== 's' && unit !== 'm' && unit !== 'h') throw new RateLimitRuleError(text, 'the unit must be s, m or h');
  const count = bounded(text, 'the rate', match[3] as string);
  const burst = match[5] === undefined ? count : bounded(text, 'the burst', match[5]);
  const prefix = routePrefix === undefined ? '' : `:${routePrefix}`;
  return {
    id: `${scope}${prefix}=${count}/${unit}:${burst}`,
    scope,
    routePrefix: routePrefix ?? '',
    count,
    unit,
    burst,
    intervalMs: UNIT_MS[unit] / count,
  };
}

function bounded(rule: string, what: string, digits: string): number {
  const value = Number(digits);
  if (!(value >= 1 && value <= MAX_RATE_LIMIT_COUNT)) throw new RateLimitRuleError(rule, `${what} must be 1-${MAX_RATE_LIMIT_COUNT}`);
  return value;
}

/** `session=20/s:40` style text of the rules, comma-separated (for logs and `doctor`). */
export function formatRateLimitRules(rules: readonly RateLimitRule[]): string {
  return rules.map((rule) => rule.id).join(',');
}

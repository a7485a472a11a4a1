// Its own module, free of adapter imports: the process runner loads it before telemetry is set
// up, and anything that loads @edge-gateway/adapters-redis (and with it node-redis) that early
// keeps the Redis instrumentation from patching node-redis (no redis-<COMMAND> spans).

export interface ConfigProblem {
  readonly variable: string;
  readonly problem: string;
}

/**
 * A configuration error; the message always names the variable. `loadConfig` reports every
 * problem at once: `problems` holds one per variable (the first found for it), and the
 * message joins them with `; `, so one `startup failed` line tells the operator everything.
 */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  readonly problems: readonly ConfigProblem[];
  constructor(
    readonly variable: string,
    problem: string,
    more: readonly ConfigProblem[] = [],
  ) {
    super([{ variable, problem }, ...more].map((p) => `${p.variable}: ${p.problem}`).join('; '));
    this.problems = [{ variable, problem }, ...more];
  }
}

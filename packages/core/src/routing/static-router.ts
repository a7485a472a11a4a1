import type { CommandDownstream, CommandRouter } from '../ports/command-router.port.js';

export interface StaticRoute {
  /** Message-type prefix, e.g. `billing.`; matched as a plain string prefix. */
  readonly prefix: string;
  readonly downstream: CommandDownstream;
}

/** Routes a message type to the downstream of its longest matching prefix. */
export class StaticRouter implements CommandRouter {
  private readonly routes: readonly StaticRoute[];

  constructor(routes: readonly StaticRoute[] = []) {
    const seen = new Set<string>();
    for (const route of routes) {
      if (seen.has(route.prefix)) throw new Error(`duplicate route prefix "${route.prefix}"`);
      seen.add(route.prefix);
    }
    this.routes = [...routes].sort((a, b) => b.prefix.length - a.prefix.length);
  }

  /** Configured routes, longest prefix first. */
  get size(): number {
    return this.routes.length;
  }

  route(messageType: string): CommandDownstream | undefined {
    for (const route of this.routes) {
      if (messageType.startsWith(route.prefix)) return route.downstream;
    }
    return undefined;
  }
}

/** A parsed listen address. `host` is `''` for "all interfaces". */
export interface ListenAddress {
  readonly host: string;
  readonly port: number;
}

const ADDRESS = /^(?:\[([^\]]+)\]|([^:[\]]*)):(\d{1,5})$/;

/**
 * Parses `host:port`, `[ipv6]:port` or `:port` (all interfaces, returned as host `''`).
 * Port 0 asks the OS for a free port. Throws an `Error` naming the problem.
 */
export function parseListenAddress(value: string): ListenAddress {
  const match = ADDRESS.exec(value);
  if (match === null) {
    const hint = /^[^[].*:.*:/.test(value) ? ' (write IPv6 hosts in brackets, e.g. [::1]:8080)' : '';
    throw new Error(`invalid listen address ${JSON.stringify(value)}: expected host:port or :port${hint}`);
  }
  const host = match[1] ?? match[2] ?? '';
  const port = Number(match[3]);
  if (port > 65535) {
    throw new Error(`invalid listen address ${JSON.stringify(value)}: port must be between 0 and 65535`);
  }
  return { host, port };
}

/** Formats a host and port as an address string, bracketing IPv6 hosts. */
export function formatListenAddress(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

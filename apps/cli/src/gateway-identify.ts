import { parseHostPort } from '@edge-gateway/gateway/config';

/** Which listener of a gateway an address is configured for. */
export type ListenerKind = 'public http' | 'authenticated grpc' | 'admin http';

/** The loopback-reachable host of a listen address (`:port` and wildcard hosts: loopback). */
export function reachableHost(address: string): { host: string; port: number } {
  const { host, port } = parseHostPort('address', address, true);
  const target = host === '' || host === '0.0.0.0' ? '127.0.0.1' : host === '::' ? '::1' : host;
  return { host: target, port };
}

/** `http://host:port/path` for a listen address. */
export function probeUrl(address: string, path: string): string {
  const { host, port } = reachableHost(address);
  return `http://${host.includes(':') ? `[${host}]` : host}:${port}${path}`;
}

const TIMEOUT_MS = 2000;

async function httpAnswers(url: string, expect: (status: number, body: string) => boolean): Promise<boolean> {
  try {
    const response = await fetch(url, { signal: AbortSignal.timeout(TIMEOUT_MS) });
    return expect(response.status, await response.text());
  } catch {
    return false;
  }
}

/** `grpc.health.v1.Health/Check` with an empty service name; true when it answers SERVING. */
async function grpcServing(address: string): Promise<boolean> {
  const { Client, credentials } = await import('@grpc/grpc-js');
  const { host, port } = reachableHost(address);
  const client = new Client(`${host.includes(':') ? `[${host}]` : host}:${port}`, credentials.createInsecure());
  try {
    return await new Promise<boolean>((resolve) => {
      client.makeUnaryRequest(
        '/grpc.health.v1.Health/Check',
        // HealthCheckRequest{service: ""} is the empty message.
        () => Buffer.alloc(0),
        (bytes: Buffer) => bytes,
        {},
        { deadline: Date.now() + TIMEOUT_MS },
        (error, reply) => {
          // HealthCheckResponse{status: SERVING} is field 1 (varint) = 1: bytes 0x08 0x01.
          resolve(error === null && reply !== undefined && reply.length === 2 && reply[0] === 0x08 && reply[1] === 0x01);
        },
      );
    });
  } finally {
    client.close();
  }
}

/**
 * Whether the process holding `address` is an edge gateway's `kind` listener: the public
 * listener answers `GET /healthz` with `{"status":"ok"}`, the gRPC listener answers the
 * standard health check with SERVING, the admin listener serves `gateway_*` metrics.
 * Returns how it was recognised, or `undefined` when it was not.
 */
export async function identifyGatewayListener(kind: ListenerKind, address: string): Promise<string | undefined> {
  switch (kind) {
    case 'public http': {
      const url = probeUrl(address, '/healthz');
      return (await httpAnswers(url, (status, body) => status === 200 && body.includes('"ok"'))) ? `GET ${url} answered {"status":"ok"}` : undefined;
    }
    case 'authenticated grpc':
      return (await grpcServing(address)) ? 'grpc.health.v1.Health/Check answered SERVING' : undefined;
    case 'admin http': {
      const url = probeUrl(address, '/metrics');
      return (await httpAnswers(url, (status, body) => status === 200 && body.includes('gateway_http_requests_total')))
        ? `GET ${url} serves the gateway's metrics`
        : undefined;
    }
  }
}

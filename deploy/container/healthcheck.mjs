// Container health check: exit 0 when the gateway's public listener answers GET /readyz with
// 200, 1 otherwise. The port comes from GATEWAY_PUBLIC_HTTP_ADDR (default :8080), the same
// variable the gateway reads. Dependency-free, so it runs in the runtime image as is.
const address = (process.env.GATEWAY_PUBLIC_HTTP_ADDR ?? '').trim() || ':8080';
const match = /^(?:\[([^\]]+)\]|([^:[\]]*)):(\d{1,5})$/.exec(address);
if (match === null) {
  process.stderr.write(`healthcheck: GATEWAY_PUBLIC_HTTP_ADDR "${address}" is not host:port\n`);
  process.exit(1);
}
const host = match[1] ?? match[2] ?? '';
const target = host === '' || host === '0.0.0.0' ? '127.0.0.1' : host === '::' ? '[::1]' : host.includes(':') ? `[${host}]` : host;
const path = process.argv[2] ?? '/readyz';
try {
  const response = await fetch(`http://${target}:${match[3]}${path}`, { signal: AbortSignal.timeout(2000) });
  process.stdout.write(`${path} ${response.status} ${await response.text()}\n`);
  process.exit(response.status === 200 ? 0 : 1);
} catch (error) {
  process.stderr.write(`healthcheck: ${path} failed: ${error instanceof Error ? (error.cause?.code ?? error.cause?.message ?? error.message) : String(error)}\n`);
  process.exit(1);
}

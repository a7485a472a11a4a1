// Container health check: exit 0 when the gateway's public listener answers GET /readyz (or
// the path given as the first argument) with 200, 1 otherwise. Reads the same variables as
// the gateway: GATEWAY_PUBLIC_HTTP_ADDR (default :8080) for the port, and HTTPS when
// GATEWAY_PUBLIC_HTTP_TLS_CERT_PATH is set. Dependency-free, so it runs in the runtime image.
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';

const address = (process.env.GATEWAY_PUBLIC_HTTP_ADDR ?? '').trim() || ':8080';
const match = /^(?:\[([^\]]+)\]|([^:[\]]*)):(\d{1,5})$/.exec(address);
if (match === null) {
  process.stderr.write(`healthcheck: GATEWAY_PUBLIC_HTTP_ADDR "${address}" is not host:port\n`);
  process.exit(1);
}
const host = match[1] ?? match[2] ?? '';
const target = host === '' || host === '0.0.0.0' ? '127.0.0.1' : host === '::' ? '::1' : host;
const tls = (process.env.GATEWAY_PUBLIC_HTTP_TLS_CERT_PATH ?? '').trim() !== '';
const path = process.argv[2] ?? '/readyz';

// Over loopback to its own process the check asks whether it serves, not who it is: the
// certificate is not verified (its name is the public one, not 127.0.0.1).
const request = (tls ? httpsRequest : httpRequest)(
  { host: target, port: Number(match[3]), path, method: 'GET', timeout: 2000, ...(tls ? { rejectUnauthorized: false } : {}) },
  (response) => {
    let body = '';
    response.setEncoding('utf8').on('data', (chunk) => (body += chunk));
    response.on('end', () => {
      process.stdout.write(`${path} ${response.statusCode} ${body}\n`);
      process.exit(response.statusCode === 200 ? 0 : 1);
    });
  },
);
request.on('timeout', () => request.destroy(new Error('timed out')));
request.on('error', (error) => {
  process.stderr.write(`healthcheck: ${path} failed: ${error.code ?? error.message}\n`);
  process.exit(1);
});
request.end();

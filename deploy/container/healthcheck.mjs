// Container health check: exit 0 when the gateway answers with 200, 1 otherwise. Without an
// argument it asks the admin listener's GET /healthz (liveness; that listener is not counted
// against GATEWAY_MAX_CONNECTIONS, so a full gateway is still healthy) when
// GATEWAY_ADMIN_HTTP_ADDR is set (the image sets :9100), else the public listener's GET /readyz.
// With a path argument it asks the public listener for that path. Reads the same variables as
// the gateway: GATEWAY_PUBLIC_HTTP_ADDR (default :8080), HTTPS when
// GATEWAY_PUBLIC_HTTP_TLS_CERT_PATH is set; the admin listener is plain HTTP. Dependency-free,
// so it runs in the runtime image.
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';

const adminAddress = (process.env.GATEWAY_ADMIN_HTTP_ADDR ?? '').trim();
const admin = process.argv[2] === undefined && adminAddress !== '';
const variable = admin ? 'GATEWAY_ADMIN_HTTP_ADDR' : 'GATEWAY_PUBLIC_HTTP_ADDR';
const address = admin ? adminAddress : (process.env.GATEWAY_PUBLIC_HTTP_ADDR ?? '').trim() || ':8080';
const match = /^(?:\[([^\]]+)\]|([^:[\]]*)):(\d{1,5})$/.exec(address);
if (match === null) {
  process.stderr.write(`healthcheck: ${variable} "${address}" is not host:port\n`);
  process.exit(1);
}
const host = match[1] ?? match[2] ?? '';
const target = host === '' || host === '0.0.0.0' ? '127.0.0.1' : host === '::' ? '::1' : host;
const tls = !admin && (process.env.GATEWAY_PUBLIC_HTTP_TLS_CERT_PATH ?? '').trim() !== '';
const path = admin ? '/healthz' : (process.argv[2] ?? '/readyz');
const label = admin ? `admin ${path}` : path;

// Over loopback to its own process the check asks whether it serves, not who it is: the
// certificate is not verified (its name is the public one, not 127.0.0.1).
const request = (tls ? httpsRequest : httpRequest)(
  { host: target, port: Number(match[3]), path, method: 'GET', timeout: 2000, ...(tls ? { rejectUnauthorized: false } : {}) },
  (response) => {
    let body = '';
    response.setEncoding('utf8').on('data', (chunk) => (body += chunk));
    response.on('end', () => {
      process.stdout.write(`${label} ${response.statusCode} ${body}\n`);
      process.exit(response.statusCode === 200 ? 0 : 1);
    });
  },
);
request.on('timeout', () => request.destroy(new Error('timed out')));
request.on('error', (error) => {
  process.stderr.write(`healthcheck: ${label} failed: ${error.code ?? error.message}\n`);
  process.exit(1);
});
request.end();

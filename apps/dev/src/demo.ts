import { devDir, readRunningDevGateway } from './dev-files.js';
import { runDemo } from './demo-tour.js';

// Entry of `npm run demo`. Addresses: GATEWAY_DEMO_GRPC_ADDR / GATEWAY_DEMO_ADMIN_URL, else
// those the running development gateway wrote to its folder, else the development defaults.
const dir = devDir(process.env);
const running = readRunningDevGateway(dir);
const loopback = (address: string): string => `127.0.0.1:${address.slice(address.lastIndexOf(':') + 1)}`;
const grpcAddress =
  process.env['GATEWAY_DEMO_GRPC_ADDR'] || (running === undefined ? '127.0.0.1:9090' : loopback(running.authenticated_grpc_addr));
const adminUrl =
  process.env['GATEWAY_DEMO_ADMIN_URL'] || `http://${running === undefined ? '127.0.0.1:9100' : loopback(running.admin_http_addr)}`;

const ok = await runDemo({ grpcAddress, adminUrl, devDir: dir });
process.exitCode = ok ? 0 : 1;

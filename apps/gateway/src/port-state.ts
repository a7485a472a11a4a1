import { createServer } from 'node:net';
import { parseHostPort } from './config/config.js';

/** Whether `address` could be bound here: `free`, `in use`, or the reason it cannot. */
export async function portState(address: string): Promise<{ state: 'free' | 'in-use' | 'error'; detail: string }> {
  const { host, port } = parseHostPort('address', address, true);
  if (port === 0) return { state: 'free', detail: 'port 0: the OS picks a free port' };
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', (error: NodeJS.ErrnoException) => {
      if (error.code === 'EADDRINUSE') resolve({ state: 'in-use', detail: `port ${port} is in use here` });
      else resolve({ state: 'error', detail: `cannot listen on ${address} here (${error.code ?? error.message})` });
    });
    server.listen({ host: host === '' ? undefined : host, port, exclusive: true }, () => {
      server.close(() => resolve({ state: 'free', detail: `port ${port} is free here` }));
    });
  });
}

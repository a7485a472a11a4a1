import { createServer, type Server as NetServer } from 'node:net';
import { Server, ServerCredentials, experimental, logVerbosity as LogVerbosity, setLogVerbosity, setLogger } from '@grpc/grpc-js';
import { afterEach, describe, expect, it } from 'vitest';
import type { LogFields, Logger } from '@edge-gateway/core';
import { routeGrpcJsLogs } from './grpc-js-logs.js';

interface Line {
  readonly level: string;
  readonly message: string;
  readonly fields: LogFields;
}

function capturing(lines: Line[], context: LogFields = {}): Logger {
  const at = (level: string) => (message: string, fields: LogFields = {}) => void lines.push({ level, message, fields: { ...context, ...fields } });
  return { error: at('error'), warn: at('warn'), info: at('info'), debug: at('debug'), child: (fields) => capturing(lines, { ...context, ...fields }) };
}

describe('routeGrpcJsLogs', () => {
  afterEach(() => setLogger(console));

  it("turns grpc-js's own error line for a taken port into a warn line of component grpc-js", async () => {
    const lines: Line[] = [];
    routeGrpcJsLogs(capturing(lines));
    const taken: NetServer = createServer();
    await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
    const port = (taken.address() as { port: number }).port;
    const server = new Server();
    try {
      const error = await new Promise<Error | null>((resolve) => server.bindAsync(`127.0.0.1:${port}`, ServerCredentials.createInsecure(), (e) => resolve(e)));
      expect(error?.message).toMatch(/No address added out of total 1 resolved/);
    } finally {
      server.forceShutdown();
      await new Promise<void>((resolve) => taken.close(() => resolve()));
    }
    const diagnostics = lines.filter((line) => line.message === 'grpc-js diagnostic');
    expect(diagnostics.length).toBeGreaterThan(0);
    expect(diagnostics.every((line) => line.level === 'warn' && line.fields['component'] === 'grpc-js')).toBe(true);
    expect(diagnostics.some((line) => String(line.fields['detail']).includes('No address added out of total 1 resolved'))).toBe(true);
  });

  it('keeps info and debug lines at debug and joins the arguments with spaces', () => {
    const lines: Line[] = [];
    routeGrpcJsLogs(capturing(lines));
    setLogVerbosity(LogVerbosity.DEBUG);
    try {
      experimental.log(LogVerbosity.INFO, 'subchannel', 42);
      experimental.log(LogVerbosity.DEBUG, 'resolver');
    } finally {
      setLogVerbosity(LogVerbosity.ERROR);
    }
    expect(lines.map(({ level, message, fields }) => ({ level, message, component: fields['component'] }))).toEqual([
      { level: 'debug', message: 'grpc-js diagnostic', component: 'grpc-js' },
      { level: 'debug', message: 'grpc-js diagnostic', component: 'grpc-js' },
    ]);
    expect(String(lines[0]?.fields['detail'])).toMatch(/subchannel 42$/);
    expect(String(lines[1]?.fields['detail'])).toMatch(/resolver$/);
  });
});

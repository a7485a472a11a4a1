import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from './config.js';

function failure(env: Record<string, string>): ConfigError {
  try {
    loadConfig(env);
  } catch (error) {
    if (error instanceof ConfigError) return error;
    throw error;
  }
  throw new Error('expected a ConfigError');
}

describe('config errors are reported all at once (issue 16)', () => {
  it('an empty environment names every required variable in one error', () => {
    const error = failure({});
    expect(error.problems.map((p) => p.variable)).toEqual([
      'GATEWAY_REDIS_MASTER_ADDR',
      'GATEWAY_REDIS_PASSWORD',
      'GATEWAY_RESPONSE_SIGNER_PRIVATE_KEY_PEM_PATH',
    ]);
    expect(error.message).toBe(
      'GATEWAY_REDIS_MASTER_ADDR: is required; GATEWAY_REDIS_PASSWORD: is required; GATEWAY_RESPONSE_SIGNER_PRIVATE_KEY_PEM_PATH: is required',
    );
  });

  it('invalid values of several kinds are all listed, each once, with its variable', () => {
    const error = failure({
      GATEWAY_REDIS_TLS_ENABLED: 'false',
      GATEWAY_REDIS_MASTER_ADDR: 'no-port',
      GATEWAY_REDIS_PASSWORD: 'pw',
      GATEWAY_RESPONSE_SIGNER_PRIVATE_KEY_PEM_PATH: '/k.pem',
      GATEWAY_SHUTDOWN_TIMEOUT: '15 seconds',
      GATEWAY_REDIS_DB: '-1',
      GATEWAY_PUBLIC_HTTP_ADDR: 'localhost',
      GATEWAY_LOG_LEVEL: 'loud',
      GATEWAY_AUTH_UPSTREAM_URL: 'ftp://auth',
      GATEWAY_DOWNSTREAM_ROUTES: 'echo',
    });
    expect(error.problems.map((p) => p.variable).sort()).toEqual(
      [
        'GATEWAY_REDIS_TLS_ENABLED',
        'GATEWAY_REDIS_MASTER_ADDR',
        'GATEWAY_SHUTDOWN_TIMEOUT',
        'GATEWAY_REDIS_DB',
        'GATEWAY_PUBLIC_HTTP_ADDR',
        'GATEWAY_LOG_LEVEL',
        'GATEWAY_AUTH_UPSTREAM_URL',
        'GATEWAY_DOWNSTREAM_ROUTES',
      ].sort(),
    );
    for (const p of error.problems) expect(error.message).toContain(`${p.variable}: ${p.problem}`);
  });

  it('a bad GATEWAY_DOWNSTREAM_ROUTES names the variable and the pair', () => {
    const error = failure({
      GATEWAY_REDIS_MASTER_ADDR: '127.0.0.1:6379',
      GATEWAY_REDIS_PASSWORD: 'pw',
      GATEWAY_RESPONSE_SIGNER_PRIVATE_KEY_PEM_PATH: '/k.pem',
      GATEWAY_DOWNSTREAM_ROUTES: 'echo',
    });
    expect(error.message).toBe('GATEWAY_DOWNSTREAM_ROUTES: invalid route "echo": expected prefix=host:port or prefix=tls://host:port');
    expect(error.variable).toBe('GATEWAY_DOWNSTREAM_ROUTES');
  });
});

describe('TLS file pairs: both or neither (issue 16)', () => {
  const base = {
    GATEWAY_REDIS_MASTER_ADDR: '127.0.0.1:6379',
    GATEWAY_REDIS_PASSWORD: 'pw',
    GATEWAY_RESPONSE_SIGNER_PRIVATE_KEY_PEM_PATH: '/k.pem',
  };

  it('plaintext by default; both set enables TLS on that listener only', () => {
    expect(loadConfig(base)).toMatchObject({ grpcTls: undefined, publicHttpTls: undefined, downstreamTlsCaPath: '' });
    const config = loadConfig({ ...base, GATEWAY_AUTHENTICATED_GRPC_TLS_CERT_PATH: '/tls/grpc.crt', GATEWAY_AUTHENTICATED_GRPC_TLS_KEY_PATH: '/tls/grpc.key' });
    expect(config.grpcTls).toMatchObject({ certPath: '/tls/grpc.crt', keyPath: '/tls/grpc.key' });
    expect(config.publicHttpTls).toBeUndefined();
  });

  it('one without the other names the missing variable, for both listeners at once', () => {
    const error = failure({ ...base, GATEWAY_AUTHENTICATED_GRPC_TLS_CERT_PATH: '/tls/grpc.crt', GATEWAY_PUBLIC_HTTP_TLS_KEY_PATH: '/tls/http.key' });
    expect(error.problems).toEqual([
      { variable: 'GATEWAY_AUTHENTICATED_GRPC_TLS_KEY_PATH', problem: 'is required when GATEWAY_AUTHENTICATED_GRPC_TLS_CERT_PATH is set (set both or neither)' },
      { variable: 'GATEWAY_PUBLIC_HTTP_TLS_CERT_PATH', problem: 'is required when GATEWAY_PUBLIC_HTTP_TLS_KEY_PATH is set (set both or neither)' },
    ]);
  });

  it('the WebSocket listener: both for wss://, one alone names the other, and only with GATEWAY_WEBSOCKET_ADDR', () => {
    const ws = { ...base, GATEWAY_WEBSOCKET_ADDR: '127.0.0.1:8443' };
    expect(loadConfig(ws).websocketTls).toBeUndefined();
    expect(loadConfig({ ...ws, GATEWAY_WEBSOCKET_TLS_CERT_PATH: '/tls/ws.crt', GATEWAY_WEBSOCKET_TLS_KEY_PATH: '/tls/ws.key' }).websocketTls).toMatchObject({
      certPath: '/tls/ws.crt',
      keyPath: '/tls/ws.key',
      certVariable: 'GATEWAY_WEBSOCKET_TLS_CERT_PATH',
    });
    expect(failure({ ...ws, GATEWAY_WEBSOCKET_TLS_KEY_PATH: '/tls/ws.key' }).problems).toEqual([
      { variable: 'GATEWAY_WEBSOCKET_TLS_CERT_PATH', problem: 'is required when GATEWAY_WEBSOCKET_TLS_KEY_PATH is set (set both or neither)' },
    ]);
    expect(failure({ ...base, GATEWAY_WEBSOCKET_TLS_CERT_PATH: '/tls/ws.crt', GATEWAY_WEBSOCKET_TLS_KEY_PATH: '/tls/ws.key' }).problems).toEqual([
      { variable: 'GATEWAY_WEBSOCKET_TLS_CERT_PATH', problem: 'is set but GATEWAY_WEBSOCKET_ADDR is not (the certificate is for the WebSocket listener)' },
    ]);
  });
});

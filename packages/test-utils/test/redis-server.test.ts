import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startRedisServer, type RedisServerHandle } from '../src/redis-server.js';
import { waitFor } from '../src/wait-for.js';

/** Sends raw RESP commands and resolves with the raw reply text once `expectReplies` replies arrived. */
function raw(port: number, commands: string[][], timeoutMs = 2000): Promise<string> {
  const encode = (args: string[]): string =>
    `*${args.length}\r\n` + args.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join('');
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    let reply = '';
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`timeout; got ${JSON.stringify(reply)}`));
    }, timeoutMs);
    socket.setEncoding('utf8');
    socket.on('data', (d: string) => {
      reply += d;
      if (reply.split('\r\n').filter((l) => /^[+\-:$*]/.test(l)).length >= commands.length) {
        clearTimeout(timer);
        socket.end();
        resolve(reply);
      }
    });
    socket.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    socket.once('connect', () => socket.write(commands.map(encode).join('')));
  });
}

describe('startRedisServer', () => {
  let server: RedisServerHandle;
  beforeAll(async () => {
    server = await startRedisServer();
  });
  afterAll(async () => {
    await server.stop();
  });

  it('requires the password and answers PING with it', async () => {
    expect(server.url).toBe(`redis://:${server.password}@127.0.0.1:${server.port}`);
    expect(await raw(server.port, [['PING']])).toMatch(/^-NOAUTH/);
    expect(await raw(server.port, [['AUTH', server.password], ['PING']])).toBe('+OK\r\n+PONG\r\n');
  });

  it('pause() stops answering and resume() answers again', async () => {
    server.pause();
    await expect(raw(server.port, [['AUTH', server.password]], 300)).rejects.toThrow(/timeout/);
    server.resume();
    expect(await raw(server.port, [['AUTH', server.password], ['PING']])).toBe('+OK\r\n+PONG\r\n');
  });

  it('keeps data across shutdownSave() + restart() on the same port, loses it across stop()', async () => {
    const pid = server.pid;
    await raw(server.port, [['AUTH', server.password], ['SET', 'k', 'v']]);
    await server.shutdownSave();
    expect(server.running).toBe(false);
    await server.restart();
    expect(server.pid).not.toBe(pid);
    expect(await raw(server.port, [['AUTH', server.password], ['GET', 'k']])).toBe('+OK\r\n$1\r\nv\r\n');

    await raw(server.port, [['AUTH', server.password], ['SET', 'other', 'x']]);
    await server.stop();
    await server.restart();
    // `other` was never saved; `k` is still in the earlier dump.rdb.
    expect(await raw(server.port, [['AUTH', server.password], ['EXISTS', 'other']])).toBe('+OK\r\n:0\r\n');
  });

  it('kill() ends the process and connections are refused', async () => {
    await server.kill();
    expect(server.running).toBe(false);
    await expect(raw(server.port, [['PING']])).rejects.toThrow(/ECONNREFUSED/);
    await server.restart();
    await waitFor(() => server.running);
  });
});

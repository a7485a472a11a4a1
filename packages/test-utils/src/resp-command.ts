import { connect } from 'node:net';

/** A parsed RESP2 reply: status and bulk strings as strings, integers as numbers, nil as null. */
export type RespReply = string | number | null | RespReply[];

/** An error reply (`-ERR …`) of {@link redisCommand}. */
export class RespError extends Error {
  override readonly name = 'RespError';
}

/** Parses one reply starting at `at`; undefined when the buffer does not hold all of it yet. */
function parse(buf: string, at: number): { value: RespReply | RespError; next: number } | undefined {
  const eol = buf.indexOf('\r\n', at);
  if (eol < 0) return undefined;
  const type = buf[at];
  const line = buf.slice(at + 1, eol);
  switch (type) {
    case '+':
      return { value: line, next: eol + 2 };
    case '-':
      return { value: new RespError(line), next: eol + 2 };
    case ':':
      return { value: Number(line), next: eol + 2 };
    case '$': {
      const len = Number(line);
      if (len < 0) return { value: null, next: eol + 2 };
      // Lengths are bytes; the buffer is latin1 so characters are bytes.
      if (buf.length < eol + 2 + len + 2) return undefined;
      return { value: Buffer.from(buf.slice(eol + 2, eol + 2 + len), 'latin1').toString('utf8'), next: eol + 2 + len + 2 };
    }
    case '*': {
      const count = Number(line);
      if (count < 0) return { value: null, next: eol + 2 };
      const items: RespReply[] = [];
      let next = eol + 2;
      for (let i = 0; i < count; i++) {
        const item = parse(buf, next);
        if (item === undefined) return undefined;
        if (item.value instanceof RespError) throw item.value;
        items.push(item.value);
        next = item.next;
      }
      return { value: items, next };
    }
    default:
      throw new Error(`unexpected RESP type byte ${JSON.stringify(type)}`);
  }
}

/**
 * Sends `AUTH password` (when given) and one command over a fresh raw connection to
 * 127.0.0.1-style addresses and resolves with the command's parsed reply; rejects with a
 * {@link RespError} on an error reply, or after `timeoutMs` (default 5000). Only Node
 * built-ins, so the harness works without node-redis.
 */
export function redisCommand(
  host: string,
  port: number,
  password: string | undefined,
  args: readonly string[],
  timeoutMs = 5000,
): Promise<RespReply> {
  const encode = (parts: readonly string[]): string =>
    `*${parts.length}\r\n` + parts.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join('');
  const commands = password === undefined ? [args] : [['AUTH', password], args];
  return new Promise((resolve, reject) => {
    const socket = connect(port, host);
    let buf = '';
    let settled = false;
    const finish = (err: Error | undefined, value?: RespReply): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      if (err !== undefined) reject(err);
      else resolve(value ?? null);
    };
    const timer = setTimeout(() => finish(new Error(`redisCommand ${args[0] ?? ''} to ${host}:${port} timed out after ${timeoutMs}ms`)), timeoutMs);
    socket.setEncoding('latin1');
    socket.on('data', (data: string) => {
      buf += data;
      try {
        let at = 0;
        const replies: Array<RespReply | RespError> = [];
        while (at < buf.length) {
          const item = parse(buf, at);
          if (item === undefined) break;
          replies.push(item.value);
          at = item.next;
        }
        if (replies.length < commands.length) return;
        const failed = replies.find((r): r is RespError => r instanceof RespError);
        if (failed !== undefined) finish(failed);
        else finish(undefined, replies[commands.length - 1] as RespReply);
      } catch (err) {
        finish(err as Error);
      }
    });
    socket.once('error', (err) => finish(err));
    socket.once('connect', () => socket.write(commands.map(encode).join('')));
  });
}

import { base64DecodedLength, isStandardBase64, isValidId, isValidType, isValidUserId } from '@edge-gateway/core';
import { startRedisCluster, waitFor, type RedisClusterHandle } from '@edge-gateway/test-utils';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  ROUTED_MAX_EVENT_BYTES_LIMIT,
  ROUTED_PUBLISH_FUNCTION,
  ROUTED_PUBLISH_FUNCTION_V1,
  RedisCommandError,
  RedisRoutedPublisher,
  RedisUserHistory,
  RoutedEventError,
  connectAndPing,
  createRedisClusterClient,
  isRoutedPublishRefusal,
  partitionTag,
  routedUserKeys,
  userPartition,
  type RedisClusterClient,
} from '../src/index.js';
import { MetricsHarness, recordingLogger, unique } from './helpers.js';

/**
 * The publish function defends itself (SPEC §9.2, issue 21): every argument is checked before
 * the first write, a refusal names the argument and writes nothing (no offset, no history
 * entry, no channel message), and the keys must be those of `user_id`.
 */

const prefix = 'fn:';
let cluster: RedisClusterHandle;
let client: RedisClusterClient;
/** Every sharded message seen on the channels of {@link watch}ed users. */
const messages: Array<{ channel: string; message: string }> = [];

const b64 = (text: string) => Buffer.from(text).toString('base64');

/** FCALL of v2 with `keys` and the arguments after them. */
function fcall(keys: readonly string[], args: readonly string[], fn = ROUTED_PUBLISH_FUNCTION): Promise<unknown> {
  return client.command(['FCALL', fn, String(keys.length), ...keys, ...args]);
}

/** Valid v2 arguments for `user`: maxlen, ttl_ms, max_event_bytes, user_id, device_session_id, event_type, payload_base64. */
function validArgs(user: string, payload = b64('hi')): string[] {
  return ['10', '60000', '1048576', user, '', 'chat.message', payload];
}

function keysOf(user: string): string[] {
  const k = routedUserKeys(prefix, user);
  return [k.history, k.meta, k.channel];
}

/** Everything a publish would change for `user`: meta hash, history entries, TTLs. */
async function state(user: string): Promise<unknown> {
  const k = routedUserKeys(prefix, user);
  return {
    meta: await client.command(['HGETALL', k.meta]),
    history: await client.command(['XRANGE', k.history, '-', '+']),
    types: [await client.command(['TYPE', k.history]), await client.command(['TYPE', k.meta])],
  };
}

async function watch(...users: string[]): Promise<void> {
  for (const user of users) {
    await client.raw.sSubscribe(routedUserKeys(prefix, user).channel, (message, channel) => messages.push({ channel, message }));
  }
}

/** Publishes a valid event for `user` and waits for its channel message: every message before it has arrived. */
async function fence(user: string): Promise<void> {
  const [id] = (await fcall(keysOf(user), validArgs(user, b64('fence')))) as [string];
  await waitFor(() => messages.some((m) => m.message.includes(`"id":"${id}"`)), { message: 'fence message' });
}

beforeAll(async () => {
  cluster = await startRedisCluster();
  client = createRedisClusterClient({ nodes: [{ host: cluster.host, port: cluster.nodes[0]!.port }], password: cluster.password, commandTimeoutMs: 5000 });
  await connectAndPing(client, 5000);
  await new RedisRoutedPublisher(client, { keyPrefix: prefix }).loadFunction();
});

afterAll(async () => {
  client?.destroy();
  await cluster?.stop();
});

describe('the publish function refuses before its first write (SPEC §9.2)', () => {
  const alice = unique('alice');
  const bob = unique('bob');
  /** [argument named, keys, args] of each refused call (alice's history exists beforehand). */
  const tooLong = (n: number) => 'x'.repeat(n);
  const cases: Array<[string, string, () => { keys: string[]; args: string[]; fn?: string }]> = [
    ['keys', "alice's keys with user_id=bob", () => ({ keys: keysOf(alice), args: validArgs(bob) })],
    ['keys', "bob's history key with alice's meta and channel keys (another slot or not: refused)", () => {
      // Bob's keys but alice's partition tag, so they share a slot with each other (not with bob's own).
      const tag = partitionTag(userPartition(alice));
      return { keys: ['h', 'm', 'c'].map((t) => `${prefix}push:{${tag}}:${t}:${bob}`), args: validArgs(bob) };
    }],
    ['keys', 'the meta key is not the history key\'s', () => {
      const [h, , c] = keysOf(alice);
      return { keys: [h!, `${h!}x`, c!], args: validArgs(alice) };
    }],
    ['keys', 'the channel and meta swapped', () => {
      const [h, m, c] = keysOf(alice);
      return { keys: [h!, c!, m!], args: validArgs(alice) };
    }],
    ['keys', 'a key prefix holding {', () => {
      const tail = routedUserKeys('', alice);
      return { keys: [tail.history, tail.meta, tail.channel].map((k) => `{p}${k}`), args: validArgs(alice) };
    }],
    ['arguments', 'two keys', () => ({ keys: keysOf(alice).slice(0, 2), args: validArgs(alice) })],
    ['arguments', 'six arguments to v2', () => ({ keys: keysOf(alice), args: validArgs(alice).slice(0, 6) })],
    ['arguments', 'seven arguments to v1', () => ({ keys: keysOf(alice), args: validArgs(alice), fn: ROUTED_PUBLISH_FUNCTION_V1 })],
    ...['1e400', 'inf', 'nan', '-1', '0', '1.5', '', ' 5', '0x10', '007', '1000000000000000'].flatMap((bad): typeof cases => [
      ['maxlen', `maxlen ${JSON.stringify(bad)}`, () => ({ keys: keysOf(alice), args: [bad, ...validArgs(alice).slice(1)] })],
      ['ttl_ms', `ttl_ms ${JSON.stringify(bad)}`, () => ({ keys: keysOf(alice), args: ['10', bad, ...validArgs(alice).slice(2)] })],
    ]),
    ...['-1', '1e3', '', 'x', String(ROUTED_MAX_EVENT_BYTES_LIMIT + 1), '01'].map((bad): (typeof cases)[number] => [
      'max_event_bytes',
      `max_event_bytes ${JSON.stringify(bad)}`,
      () => ({ keys: keysOf(alice), args: [...validArgs(alice).slice(0, 2), bad, ...validArgs(alice).slice(3)] }),
    ]),
    ...['', 'a\tb', 'a\u0000b', 'a\u007f', 'x'.repeat(257), 'é'.repeat(257), '😀'.repeat(129)].map((bad): (typeof cases)[number] => [
      'user_id',
      `user_id of ${bad.length} UTF-16 units ${JSON.stringify(bad.slice(0, 8))}`,
      () => ({ keys: keysOf(bad === '' ? alice : bad), args: [...validArgs(alice).slice(0, 3), bad, ...validArgs(alice).slice(4)] }),
    ]),
    ...['bad id', tooLong(129), 'é'].map((bad): (typeof cases)[number] => [
      'device_session_id',
      `device_session_id ${JSON.stringify(bad.slice(0, 8))}`,
      () => ({ keys: keysOf(alice), args: [...validArgs(alice).slice(0, 4), bad, ...validArgs(alice).slice(5)] }),
    ]),
    ...['gateway.forged', 'Chat', '1abc', '', tooLong(129), 'a b'].map((bad): (typeof cases)[number] => [
      'event_type',
      `event_type ${JSON.stringify(bad.slice(0, 16))}`,
      () => ({ keys: keysOf(alice), args: [...validArgs(alice).slice(0, 5), bad, ...validArgs(alice).slice(6)] }),
    ]),
    ...['aGk', 'a===', '====', '!!!!', 'aG k', 'aGk=\n', 'aG=k'].map((bad): (typeof cases)[number] => [
      'payload_base64',
      `payload_base64 ${JSON.stringify(bad)}`,
      () => ({ keys: keysOf(alice), args: [...validArgs(alice).slice(0, 6), bad] }),
    ]),
    ['payload_base64', 'a payload one byte over max_event_bytes', () => ({
      keys: keysOf(alice),
      args: ['10', '60000', '10', alice, '', 'chat.message', Buffer.alloc(11).toString('base64')],
    })],
    ['payload_base64', 'a 3 MB payload with max_event_bytes 1048576', () => ({
      keys: keysOf(alice),
      args: [...validArgs(alice).slice(0, 6), Buffer.alloc(3_000_000, 7).toString('base64')],
    })],
    ['payload_base64', 'a 17 MiB payload to v1 (the limit is its bound)', () => ({
      keys: keysOf(alice),
      args: ['10', '60000', alice, '', 'chat.message', Buffer.alloc(ROUTED_MAX_EVENT_BYTES_LIMIT + 1).toString('base64')],
      fn: ROUTED_PUBLISH_FUNCTION_V1,
    })],
  ];

  beforeAll(async () => {
    await watch(alice, bob);
    await fence(alice);
  });

  it.each(cases)('refuses (%s): %s, writing nothing', async (argument, _what, call) => {
    const before = [await state(alice), await state(bob)];
    const seen = messages.length;
    const { keys, args, fn } = call();
    const error = await fcall(keys, args, fn).then(
      () => undefined,
      (err: unknown) => err,
    );
    expect(error).toBeInstanceOf(RedisCommandError);
    const message = (error as Error).message;
    expect(message).toMatch(new RegExp(`ERR invalid ${argument}: `));
    expect(isRoutedPublishRefusal(message)).toBe(true);
    expect([await state(alice), await state(bob)]).toEqual(before);
    // No message was published: the next one seen on alice's channel is the fence.
    await fence(alice);
    expect(messages.slice(seen).map((m) => JSON.parse(m.message).payload_base64)).toEqual([b64('fence')]);
  });

  it('refuses invalid UTF-8 in user_id (a byte string no JavaScript string can be), writing nothing', async () => {
    const before = await state(alice);
    const bytes = Buffer.concat([Buffer.from('al'), Buffer.from([0xc3, 0x28]), Buffer.from('ice')]);
    const keys = keysOf(alice);
    const args = [...validArgs(alice)];
    const reply = client.raw.sendCommand(keys[0], false, ['FCALL', ROUTED_PUBLISH_FUNCTION, '3', ...keys, ...args.slice(0, 3), bytes, ...args.slice(4)]);
    await expect(reply).rejects.toThrow(/^ERR invalid user_id: /);
    expect(await state(alice)).toEqual(before);
  });

  it('accepts the edges of every rule (and v1 with six arguments)', async () => {
    const user = '😀'.repeat(128); // 256 UTF-16 code units, 512 bytes
    const edge = [
      ['1', '1', '0', user, 'A'.repeat(128), `a${'.'.repeat(127)}`, ''],
      ['999999999999999', '999999999999999', String(ROUTED_MAX_EVENT_BYTES_LIMIT), 'é'.repeat(256), 's:1', 'gatewayx.y', b64('x')],
      ['5', '60000', '2', 'ü', '', 'a', 'AAA='],
    ];
    for (const args of edge) {
      const reply = (await fcall(keysOf(args[3]!), args)) as [string, number, string];
      expect(reply[1]).toBe(1);
    }
    const v1 = (await fcall(keysOf(alice), ['10', '60000', alice, '', 'chat.v1', b64('v1')], ROUTED_PUBLISH_FUNCTION_V1)) as [string, number, string];
    expect(v1[1]).toBeGreaterThan(1);
  });

  it('the mis-keyed publish (alice\'s keys, user_id=bob) reaches neither history nor channel; the publisher maps a refusal to RoutedEventError', async () => {
    await fence(alice);
    const seen = messages.length;
    const before = [await state(alice), await state(bob)];
    await expect(fcall(keysOf(alice), validArgs(bob))).rejects.toThrow(/ERR invalid keys: the history key is not/);
    expect([await state(alice), await state(bob)]).toEqual(before);
    await fence(bob);
    await fence(alice);
    expect(messages.slice(seen).map((m) => [m.channel === keysOf(alice)[2] ? 'alice' : 'bob', JSON.parse(m.message).user_id === (m.channel === keysOf(alice)[2] ? alice : bob)])).toEqual([
      ['bob', true],
      ['alice', true],
    ]);
    // The TypeScript publisher passes its bound to the function, checks the same rules before
    // sending, and reports a refusal of the function itself as a RoutedEventError (here a
    // client that corrupts maxlen on the way).
    const publisher = new RedisRoutedPublisher(client, { keyPrefix: prefix, maxEventBytes: ROUTED_MAX_EVENT_BYTES_LIMIT });
    await expect(publisher.publish({ userId: alice, eventType: 'chat.x', payload: Buffer.alloc(1_048_577) })).resolves.toMatchObject({ offset: expect.any(Number) });
    expect(() => new RedisRoutedPublisher(client, { maxEventBytes: ROUTED_MAX_EVENT_BYTES_LIMIT + 1 })).toThrow(RangeError);
    expect(() => new RedisRoutedPublisher(client, { keyPrefix: 'a{b}:' })).toThrow(RangeError);
    await expect(publisher.publish({ userId: alice, eventType: 'gateway.x', payload: Buffer.alloc(0) })).rejects.toThrow(RoutedEventError);
    const corrupting = new Proxy(client, {
      get: (target, name, receiver) =>
        name === 'command' ? (args: readonly string[]) => target.command(args.map((a, i) => (i === 6 ? '1e400' : a))) : Reflect.get(target, name, receiver),
    });
    const before2 = await state(alice);
    const refusal = await new RedisRoutedPublisher(corrupting, { keyPrefix: prefix }).publish({ userId: alice, eventType: 'chat.x', payload: Buffer.alloc(1) }).catch((e: unknown) => e);
    expect(refusal).toBeInstanceOf(RoutedEventError);
    expect((refusal as Error).message).toMatch(/^refused by the publish function \(ERR invalid maxlen: /);
    expect(await state(alice)).toEqual(before2);
  });

  it('rolling upgrade: after an old process loaded the first library (v1 only), a new publisher loads its own again and publishes', async () => {
    // The first library as an old gateway loads it: only edgegateway_publish_v1, unchecked.
    const oldLibrary = `#!lua name=edgegateway
redis.register_function('edgegateway_publish_v1', function(keys, args)
  local offset = redis.call('HINCRBY', keys[2], 'offset', 1)
  local id = redis.call('XADD', keys[1], 'MAXLEN', args[1], '*', 'user_id', args[3], 'offset', offset, 'epoch', 'old')
  redis.call('HSET', keys[2], 'epoch', 'old', 'last_id', id)
  return {id, offset, 'old'}
end)`;
    await client.onEveryMaster(['FUNCTION', 'LOAD', 'REPLACE', oldLibrary]);
    await expect(fcall(keysOf(alice), validArgs(alice))).rejects.toThrow(/Function not found/i);
    const user = unique('upgrader');
    const result = await new RedisRoutedPublisher(client, { keyPrefix: prefix }).publish({ userId: user, eventType: 'chat.x', payload: Buffer.from('x') });
    expect(result.offset).toBe(1);
    const listed = (await client.onEveryMaster(['FUNCTION', 'LIST', 'LIBRARYNAME', 'edgegateway'])).map((reply) => JSON.stringify(reply));
    for (const library of listed) expect(library).toMatch(/edgegateway_publish_v2.*edgegateway_publish_v1|edgegateway_publish_v1.*edgegateway_publish_v2/);
  });

  it('the history read drops and counts an entry whose user_id is not the key\'s user (written around the function)', async () => {
    const user = unique('carol');
    const k = routedUserKeys(prefix, user);
    const [first] = (await fcall(keysOf(user), validArgs(user))) as [string];
    const forged = String(await client.command(['XADD', k.history, '*', 'user_id', 'mallory', 'device_session_id', '', 'event_type', 'chat.forged', 'payload_base64', '', 'offset', '2', 'epoch', 'x']));
    await fcall(keysOf(user), validArgs(user));
    const harness = new MetricsHarness();
    const logger = recordingLogger();
    const history = new RedisUserHistory(client, prefix, { metrics: harness.metrics, logger });
    const events = await history.eventsAfter(user, '0-0', 10);
    expect(events.map((e) => [e.id === forged, e.epoch === ''])).toEqual([
      [false, false],
      [true, true],
      [false, false],
    ]);
    expect(events[0]!.id).toBe(first);
    expect(await harness.value('gateway_stream_entries_malformed_total', { stream: 'client_events' })).toBe(1);
    expect(logger.lines.filter((l) => l.message === 'malformed stream entry dropped').map((l) => l.fields)).toEqual([
      { stream: 'client_events', entry_id: forged, reason: "user_id is not the history's user" },
    ]);
  });
});

describe('the publish function agrees with the gateway\'s rules (property)', () => {
  /** The argument the function must name for these inputs, in its order of checks; undefined: accepted. */
  function expectedRefusal(keys: readonly string[], a: readonly string[]): string | undefined {
    const positive = (s: string) => /^[1-9][0-9]{0,14}$/.test(s);
    const [maxlen, ttl, maxBytes, user, session, type, payload] = a as [string, string, string, string, string, string, string];
    if (!positive(maxlen)) return 'maxlen';
    if (!positive(ttl)) return 'ttl_ms';
    if (!/^(0|[1-9][0-9]{0,8})$/.test(maxBytes) || Number(maxBytes) > ROUTED_MAX_EVENT_BYTES_LIMIT) return 'max_event_bytes';
    // node-redis sends a lone surrogate as U+FFFD: one UTF-16 unit either way.
    if (!isValidUserId(user)) return 'user_id';
    if (session !== '' && !isValidId(session)) return 'device_session_id';
    if (!isValidType(type) || type.startsWith('gateway.')) return 'event_type';
    if (!isStandardBase64(payload) || base64DecodedLength(payload) > Number(maxBytes)) return 'payload_base64';
    const own = keysOf(Buffer.from(user, 'utf8').toString('utf8'));
    if (keys.some((k, i) => k !== own[i])) return 'keys';
    return undefined;
  }

  const integerText = fc.oneof(
    fc.integer({ min: 1, max: 1_000_000 }).map(String),
    fc.constantFrom('0', '-1', '1e400', 'inf', 'nan', '1.5', '', ' 5', '0x10', '007', '999999999999999', '1000000000000000'),
    fc.string({ maxLength: 6 }),
  );
  const maxBytesText = fc.oneof(fc.integer({ min: 0, max: 64 }).map(String), fc.constantFrom(String(ROUTED_MAX_EVENT_BYTES_LIMIT), String(ROUTED_MAX_EVENT_BYTES_LIMIT + 1), '-1', '1e2', '01'), fc.string({ maxLength: 4 }));
  const userText = fc.oneof(
    fc.string({ minLength: 1, maxLength: 20 }),
    fc.string({ unit: 'binary', maxLength: 40 }),
    fc.string({ unit: 'grapheme', minLength: 250, maxLength: 270 }),
    fc.constantFrom('alice', 'a\u0000', 'a\u001f', 'a\u007f', '😀'.repeat(128), '😀'.repeat(129), ''),
  );
  const sessionText = fc.oneof(fc.constant(''), fc.stringMatching(/^[A-Za-z0-9._:-]{1,130}$/), fc.string({ maxLength: 10 }));
  const typeText = fc.oneof(fc.stringMatching(/^[a-z][a-z0-9._-]{0,130}$/), fc.constantFrom('gateway.x', 'gateway.', 'gatewayx'), fc.string({ maxLength: 10 }));
  const payloadText = fc.oneof(
    fc.uint8Array({ maxLength: 70 }).map((b) => Buffer.from(b).toString('base64')),
    fc.stringMatching(/^[A-Za-z0-9+/=]{0,12}$/),
    fc.string({ maxLength: 12 }),
  );
  const keyChoice = fc.constantFrom('own', 'other', 'swapped', 'braced');

  it('refuses exactly what the TypeScript rules refuse, naming the first bad argument, and a refusal writes nothing', async () => {
    await fc.assert(
      fc.asyncProperty(integerText, integerText, maxBytesText, userText, sessionText, typeText, payloadText, keyChoice, async (maxlen, ttl, maxBytes, user, session, type, payload, choice) => {
        const owner = isValidUserId(user) || user.length > 256 ? user : 'someone';
        const own = keysOf(Buffer.from(owner, 'utf8').toString('utf8'));
        const keys =
          choice === 'own' ? own : choice === 'other' ? keysOf(`${owner}-x`) : choice === 'swapped' ? [own[0]!, own[2]!, own[1]!] : own.map((k) => `{b}${k}`);
        const args = [maxlen, ttl, maxBytes, user, session, type, payload];
        const expected = expectedRefusal(keys, args);
        const before = await Promise.all(keys.map(async (k) => [await client.command(['TYPE', k]), await client.command(['DUMP', k])]));
        const outcome = await fcall(keys, args).then(
          (reply) => ({ ok: true as const, reply }),
          (err: unknown) => ({ ok: false as const, message: (err as Error).message }),
        );
        if (expected === undefined) {
          expect(outcome).toMatchObject({ ok: true });
        } else {
          expect(outcome.ok).toBe(false);
          expect(outcome.ok === false && outcome.message).toMatch(new RegExp(`ERR invalid ${expected}: `));
          const after = await Promise.all(keys.map(async (k) => [await client.command(['TYPE', k]), await client.command(['DUMP', k])]));
          expect(after).toEqual(before);
        }
      }),
      { numRuns: 300 },
    );
  });
});

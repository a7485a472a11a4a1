import { describe, expect, it } from 'vitest';
import type { CommandRequest, SubscribeRequest } from './domain.js';
import { GatewayError } from './errors.js';
import { DEFAULT_MAX_PAYLOAD_BYTES } from './services/command-service.js';
import {
  FieldReasons,
  compareStreamIds,
  isStreamId,
  isValidId,
  isValidType,
  isValidUserId,
  USER_ID_MAX_CHARS,
  validateCommandRequest,
  validateSubscribeRequest,
} from './validation.js';

const ID_MESSAGE = 'must be 1-128 characters of [A-Za-z0-9._:-]';
const TYPE_MESSAGE = 'must be 1-128 characters of [a-z0-9._-] starting with a letter';

const command = (overrides: Partial<CommandRequest> = {}): CommandRequest => ({
  deviceSessionId: 'ds_01HZX3Q7',
  messageType: 'profile.get',
  requestId: 'req-0001',
  timestampMs: 1,
  payload: new Uint8Array(4),
  signature: new Uint8Array(64),
  ...overrides,
});

const subscribe = (overrides: Partial<SubscribeRequest> = {}): SubscribeRequest => ({
  deviceSessionId: 'ds_01HZX3Q7',
  requestId: 'sub-0001',
  timestampMs: 1,
  resumeAfterEventId: '',
  signature: new Uint8Array(64),
  ...overrides,
});

function failure(run: () => void): GatewayError {
  try {
    run();
  } catch (error) {
    expect(error).toBeInstanceOf(GatewayError);
    return error as GatewayError;
  }
  throw new Error('expected a validation failure');
}

function expectInvalid(run: () => void, message: string): void {
  const error = failure(run);
  expect(error.code).toBe('invalid_argument');
  expect(error.message).toBe(message);
}

describe('field rules (SPEC §2.2)', () => {
  it('uses the exact reasons of the spec', () => {
    expect(FieldReasons.id).toBe(ID_MESSAGE);
    expect(FieldReasons.type).toBe(TYPE_MESSAGE);
    expect(FieldReasons.signature).toBe('must be exactly 64 bytes');
  });

  it('accepts a valid command and a valid subscribe request', () => {
    expect(() => validateCommandRequest(command(), 1024)).not.toThrow();
    expect(() => validateSubscribeRequest(subscribe())).not.toThrow();
    expect(() => validateSubscribeRequest(subscribe({ resumeAfterEventId: '1764201599000-3' }))).not.toThrow();
  });

  describe.each([
    ['device_session_id', 'deviceSessionId'],
    ['request_id', 'requestId'],
  ] as const)('%s', (field, key) => {
    it('accepts 1 and 128 characters of the full alphabet', () => {
      for (const value of ['a', 'x'.repeat(128), 'AZaz09._:-', 'ds_01HZX3Q7', '-', ':']) {
        expect(() => validateCommandRequest(command({ [key]: value }), 1024)).not.toThrow();
        expect(() => validateSubscribeRequest(subscribe({ [key]: value }))).not.toThrow();
      }
    });

    it.each([
      ['empty', ''],
      ['129 characters', 'x'.repeat(129)],
      ['a space', 'a b'],
      ['a slash', 'a/b'],
      ['non-ascii', 'ü-unicode-id'],
      ['a newline', 'abc\n'],
      ['a plus', 'a+b'],
    ])('rejects %s naming the field', (_label, value) => {
      expectInvalid(() => validateCommandRequest(command({ [key]: value }), 1024), `${field}: ${ID_MESSAGE}`);
      expectInvalid(() => validateSubscribeRequest(subscribe({ [key]: value })), `${field}: ${ID_MESSAGE}`);
    });
  });

  describe('message_type', () => {
    it('accepts 1 and 128 characters starting with a letter', () => {
      for (const value of ['a', `a${'b'.repeat(127)}`, 'profile.get', 'chat.message_created', 'a-b.c_d9']) {
        expect(() => validateCommandRequest(command({ messageType: value }), 1024)).not.toThrow();
      }
    });

    it.each([
      ['empty', ''],
      ['129 characters', `a${'b'.repeat(128)}`],
      ['a leading digit', '9chat.send'],
      ['a leading dot', '.chat'],
      ['upper case', 'Chat.send'],
      ['a colon', 'chat:send'],
      ['a space', 'chat send'],
    ])('rejects %s', (_label, value) => {
      expectInvalid(() => validateCommandRequest(command({ messageType: value }), 1024), `message_type: ${TYPE_MESSAGE}`);
    });

    it('isValidType applies the same rule to event types', () => {
      expect(isValidType('chat.message_created')).toBe(true);
      expect(isValidType('Chat')).toBe(false);
      expect(isValidType('')).toBe(false);
    });
  });

  describe('signature', () => {
    it.each([0, 63, 65, 128])('rejects %i bytes', (length) => {
      expectInvalid(() => validateCommandRequest(command({ signature: new Uint8Array(length) }), 1024), 'signature: must be exactly 64 bytes');
      expectInvalid(() => validateSubscribeRequest(subscribe({ signature: new Uint8Array(length) })), 'signature: must be exactly 64 bytes');
    });
  });

  describe('payload', () => {
    it('accepts exactly the maximum and rejects one byte more', () => {
      expect(() => validateCommandRequest(command({ payload: new Uint8Array(100) }), 100)).not.toThrow();
      expectInvalid(() => validateCommandRequest(command({ payload: new Uint8Array(101) }), 100), 'payload: must be at most 100 bytes');
    });

    it('with the default limit: 1 MiB ok, 1 MiB + 1 fails', () => {
      expect(DEFAULT_MAX_PAYLOAD_BYTES).toBe(1048576);
      expect(() => validateCommandRequest(command({ payload: new Uint8Array(1048576) }), DEFAULT_MAX_PAYLOAD_BYTES)).not.toThrow();
      expectInvalid(
        () => validateCommandRequest(command({ payload: new Uint8Array(1048577) }), DEFAULT_MAX_PAYLOAD_BYTES),
        'payload: must be at most 1048576 bytes',
      );
    });

    it('accepts an empty payload', () => {
      expect(() => validateCommandRequest(command({ payload: new Uint8Array(0) }), 100)).not.toThrow();
    });
  });

  describe('resume_after_event_id', () => {
    it.each(['', '0-0', '1764201599000-3', '1-18446744073709551615'])('accepts %j', (value) => {
      expect(() => validateSubscribeRequest(subscribe({ resumeAfterEventId: value }))).not.toThrow();
    });

    it.each(['abc', '1764201599000', '-1', '1-', '1-2-3', '1.5-0', ' 1-0', '1-0 ', '$', '*', '+'])('rejects %j', (value) => {
      expectInvalid(
        () => validateSubscribeRequest(subscribe({ resumeAfterEventId: value })),
        'resume_after_event_id: must be empty or a stream id <ms>-<seq>',
      );
    });
  });

  it('reports the first invalid field in wire order', () => {
    const bad = command({ deviceSessionId: '', messageType: 'Bad', requestId: '', signature: new Uint8Array(1) });
    expectInvalid(() => validateCommandRequest(bad, 10), `device_session_id: ${ID_MESSAGE}`);
    expectInvalid(() => validateCommandRequest({ ...bad, deviceSessionId: 'ok' }, 10), `message_type: ${TYPE_MESSAGE}`);
    expectInvalid(() => validateCommandRequest({ ...bad, deviceSessionId: 'ok', messageType: 'ok' }, 10), `request_id: ${ID_MESSAGE}`);
  });
});

describe('stream ids', () => {
  it('isStreamId / isValidId', () => {
    expect(isStreamId('0-0')).toBe(true);
    expect(isStreamId('12-')).toBe(false);
    expect(isValidId('a'.repeat(128))).toBe(true);
    expect(isValidId('a'.repeat(129))).toBe(false);
  });

  it('compareStreamIds orders numerically by ms, then seq', () => {
    expect(compareStreamIds('2-0', '10-0')).toBe(-1);
    expect(compareStreamIds('10-0', '2-0')).toBe(1);
    expect(compareStreamIds('5-2', '5-10')).toBe(-1);
    expect(compareStreamIds('5-10', '5-10')).toBe(0);
    expect(compareStreamIds('18446744073709551615-1', '18446744073709551615-0')).toBe(1);
  });
});

describe('isValidUserId (SPEC §5.1)', () => {
  it('keeps what auth services use (emails, UUIDs, any printable text) up to 256 characters', () => {
    for (const id of ['u', 'alice@example.com', '3f2504e0-4f89-11d3-9a0c-0305e82c3301', 'Zoë Ünal', 'u'.repeat(USER_ID_MAX_CHARS)]) {
      expect(isValidUserId(id), id).toBe(true);
    }
  });

  it('refuses empty, over-long and control characters (a forged log line, a NUL)', () => {
    for (const id of ['', 'u'.repeat(USER_ID_MAX_CHARS + 1), 'u-1\nforged', 'tab\there', 'nul\u0000', 'del\u007f']) {
      expect(isValidUserId(id), JSON.stringify(id)).toBe(false);
    }
  });
});

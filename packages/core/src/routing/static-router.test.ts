import { describe, expect, it } from 'vitest';
import { FakeDownstream } from '../../test/helpers.js';
import { StaticRouter } from './static-router.js';

describe('StaticRouter', () => {
  const chat = new FakeDownstream('chat:1');
  const chatAdmin = new FakeDownstream('chat-admin:1');
  const profile = new FakeDownstream('profile:1');
  const router = new StaticRouter([
    { prefix: 'chat.', downstream: chat },
    { prefix: 'chat.admin.', downstream: chatAdmin },
    { prefix: 'profile', downstream: profile },
  ]);

  it('routes to the longest matching prefix, whatever the configuration order', () => {
    expect(router.route('chat.send')).toBe(chat);
    expect(router.route('chat.admin.ban')).toBe(chatAdmin);
    expect(router.route('chat.admin')).toBe(chat);
    expect(router.route('profile.get')).toBe(profile);
    expect(router.route('profiles')).toBe(profile);
    expect(new StaticRouter([{ prefix: 'chat.admin.', downstream: chatAdmin }, { prefix: 'chat.', downstream: chat }]).route('chat.admin.x')).toBe(chatAdmin);
  });

  it('has no route for an unmatched message type', () => {
    expect(router.route('billing.pay')).toBeUndefined();
    expect(router.route('chat')).toBeUndefined();
    expect(new StaticRouter().route('chat.send')).toBeUndefined();
    expect(new StaticRouter().size).toBe(0);
    expect(router.size).toBe(3);
  });

  it('an empty prefix is a catch-all that loses to any longer prefix', () => {
    const fallback = new FakeDownstream('fallback:1');
    const r = new StaticRouter([{ prefix: '', downstream: fallback }, { prefix: 'chat.', downstream: chat }]);
    expect(r.route('billing.pay')).toBe(fallback);
    expect(r.route('chat.send')).toBe(chat);
  });

  it('rejects duplicate prefixes', () => {
    expect(() => new StaticRouter([{ prefix: 'chat.', downstream: chat }, { prefix: 'chat.', downstream: profile }])).toThrow(
      'duplicate route prefix "chat."',
    );
  });
});

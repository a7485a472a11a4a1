import { describe, expect, it } from 'vitest';
import { createDownstreamRouter, parseDownstreamRoutes } from './downstream-routes.js';

describe('parseDownstreamRoutes (GATEWAY_DOWNSTREAM_ROUTES)', () => {
  it('parses comma-separated prefix=host:port pairs, trimming whitespace', () => {
    expect(parseDownstreamRoutes(' billing.=billing:9000 ,chat.= 10.0.0.5:7000,x.=[::1]:81')).toEqual([
      { prefix: 'billing.', target: 'billing:9000', tls: false },
      { prefix: 'chat.', target: '10.0.0.5:7000', tls: false },
      { prefix: 'x.', target: '[::1]:81', tls: false },
    ]);
  });

  it('is empty for an empty or blank value', () => {
    expect(parseDownstreamRoutes('')).toEqual([]);
    expect(parseDownstreamRoutes('   ')).toEqual([]);
  });

  it.each([
    ['x', 'invalid route "x": expected prefix=host:port or prefix=tls://host:port'],
    ['billing.=', 'invalid route "billing.=": expected prefix=host:port or prefix=tls://host:port'],
    ['=host:1', 'invalid route "=host:1": expected prefix=host:port or prefix=tls://host:port'],
    ['billing.=host', 'invalid route "billing.=host": expected prefix=host:port or prefix=tls://host:port'],
    ['billing.=host:port', 'invalid route "billing.=host:port": expected prefix=host:port or prefix=tls://host:port'],
    ['a.=h:1,,b.=h:2', 'invalid route "": expected prefix=host:port or prefix=tls://host:port'],
    ['a.=h:1,', 'invalid route "": expected prefix=host:port or prefix=tls://host:port'],
    ['Billing.=h:1', 'invalid route "Billing.=h:1": prefix must be 1-128 characters of [a-z0-9._-]'],
    ['a.=h:0', 'invalid route "a.=h:0": port must be 1-65535'],
    ['a.=h:70000', 'invalid route "a.=h:70000": port must be 1-65535'],
    ['a.=h:1, a.=h:2', 'invalid route "a.=h:2": duplicate prefix "a."'],
  ])('rejects %j', (value, message) => {
    expect(() => parseDownstreamRoutes(value)).toThrow(new Error(message));
  });

  it('parses tls:// targets (TLS to that downstream) next to plaintext ones', () => {
    expect(parseDownstreamRoutes('pay.=tls://payments.internal:443,chat.=chat:7000,x.=tls://[::1]:8443')).toEqual([
      { prefix: 'pay.', target: 'payments.internal:443', tls: true },
      { prefix: 'chat.', target: 'chat:7000', tls: false },
      { prefix: 'x.', target: '[::1]:8443', tls: true },
    ]);
    expect(() => parseDownstreamRoutes('a.=tls://h')).toThrow(new Error('invalid route "a.=tls://h": expected prefix=host:port or prefix=tls://host:port'));
    expect(() => parseDownstreamRoutes('a.=http://h:1')).toThrow(new Error('invalid route "a.=http://h:1": expected prefix=host:port or prefix=tls://host:port'));
  });

  it('keeps a plaintext and a tls:// route to the same host:port apart', () => {
    const { router, close } = createDownstreamRouter(parseDownstreamRoutes('a.=h:1,b.=tls://h:1'));
    try {
      expect(router.route('a.x')).not.toBe(router.route('b.x'));
    } finally {
      close();
    }
  });

  it('creates one downstream per distinct target', () => {
    const { router, close } = createDownstreamRouter(parseDownstreamRoutes('a.=h:1,b.=h:1,c.=h:2'));
    try {
      expect(router.size).toBe(3);
      expect(router.route('a.x')).toBe(router.route('b.x'));
      expect(router.route('c.x')).not.toBe(router.route('a.x'));
      expect(router.route('c.x')?.target).toBe('h:2');
    } finally {
      close();
    }
  });
});

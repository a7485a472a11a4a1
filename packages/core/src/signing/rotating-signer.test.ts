import { generateKeyPairSync } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { RecordingSink, clientEventFields, eventVerifies } from '../../test/helpers.js';
import { ClientEventsHandler } from '../handlers/client-events-handler.js';
import type { ResponseSigner } from '../ports/response-signer.port.js';
import { PushHub } from '../push/push-hub.js';
import { RotatingResponseSigner } from './rotating-signer.js';
import { Ed25519ResponseSigner } from './signer.js';

const newSigner = () => new Ed25519ResponseSigner(generateKeyPairSync('ed25519').privateKey);

/** Signs with `inner`, but holds every asynchronous signature until `release()`. */
class HeldSigner implements ResponseSigner {
  private held: Array<() => void> = [];
  constructor(private readonly inner: Ed25519ResponseSigner) {}
  get keyId(): string {
    return this.inner.keyId;
  }
  get publicKey(): Uint8Array {
    return this.inner.publicKey;
  }
  sign(data: Uint8Array): Uint8Array {
    return this.inner.sign(data);
  }
  signAsync(data: Uint8Array): Promise<Uint8Array> {
    const signature = this.inner.sign(data);
    return new Promise((resolve) => this.held.push(() => resolve(signature)));
  }
  get pending(): number {
    return this.held.length;
  }
  release(): void {
    for (const resolve of this.held.splice(0)) resolve();
  }
}

describe('RotatingResponseSigner', () => {
  it('signs with the key in use and reports its id; rotate returns the previous signer', async () => {
    const first = newSigner();
    const second = newSigner();
    const signer = new RotatingResponseSigner(first);
    expect(signer.keyId).toBe(first.keyId);
    expect(signer.rotate(second)).toBe(first);
    expect(signer.keyId).toBe(second.keyId);
    expect(signer.publicKey).toEqual(second.publicKey);
    const data = Buffer.from('bytes');
    expect(Buffer.from(signer.sign(data))).toEqual(Buffer.from(second.sign(data)));
    expect(Buffer.from(await signer.signAsync(data))).toEqual(Buffer.from(second.sign(data)));
  });

  it('a batch being signed while the key rotates keeps the key id of the key that signed it', async () => {
    const old = new HeldSigner(newSigner());
    const next = newSigner();
    const signer = new RotatingResponseSigner(old);
    const hub = new PushHub({ bufferSize: 16 });
    const sink = new RecordingSink();
    hub.register({ userId: 'u-1', deviceSessionId: 'ds-1', sink }).start([]);
    const handler = new ClientEventsHandler({ hub, signer, asyncSignMinBatch: 1 });

    const batch = handler.handleBatch([
      { id: '1-0', fields: clientEventFields('u-1', 'chat.a', 'a') },
      { id: '2-0', fields: clientEventFields('u-1', 'chat.b', 'b') },
    ]);
    for (let i = 0; i < 10 && old.pending < 2; i += 1) await Promise.resolve();
    expect(old.pending).toBe(2);
    signer.rotate(next);
    old.release();
    await batch;

    expect(sink.events.map((e) => e.signerKeyId)).toEqual([old.keyId, old.keyId]);
    for (const event of sink.events) expect(eventVerifies(old.publicKey, event)).toBe(true);
    await handler.handleBatch([{ id: '3-0', fields: clientEventFields('u-1', 'chat.c', 'c') }]);
    expect(sink.events[2]?.signerKeyId).toBe(next.keyId);
    expect(eventVerifies(next.publicKey, sink.events[2] as (typeof sink.events)[number])).toBe(true);
  });
});

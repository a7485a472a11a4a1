import type { Logger } from '../ports/logger.port.js';
import { RotatingResponseSigner } from '../signing/rotating-signer.js';
import type { Ed25519ResponseSigner } from '../signing/signer.js';
import { SIGNER_KEY_VARIABLE, loadSignerKey } from './signer-key-file.js';
import { warnIfKeyExposed } from './signer-key-mode.js';

/** How one reload of the signer key file ended. */
export type SignerReloadOutcome = 'rotated' | 'unchanged' | 'failed';

/** The response signer of a running gateway and the way to re-read its key file (SIGHUP). */
export interface SignerRotation {
  /** The signer every service signs with; its key changes on a successful reload. */
  readonly signer: RotatingResponseSigner;
  /**
   * Re-reads the key file (e.g. on `SIGHUP`). A new valid key is used from the
   * next signature on and logged with the old and new key ids; a key that does not load keeps
   * the current one and logs why. Reloads run one at a time.
   */
  reload(): Promise<SignerReloadOutcome>;
}

/**
 * Wraps the key loaded at startup ({@link loadSignerKey}) in a `RotatingResponseSigner` that
 * `reload()` re-reads from `path` (rotation without a restart, SPEC §8.6): `signer key rotated`
 * (`old_signer_key_id`, `new_signer_key_id`), `signer key unchanged`, or `signer key reload failed:
 * keeping the current key` (error naming `variable`, default {@link SIGNER_KEY_VARIABLE}), all with
 * `component: signer`; a rotated key file readable beyond the gateway also gets the warning of
 * {@link warnIfKeyExposed}.
 */
export function createSignerRotation(initial: Ed25519ResponseSigner, path: string, logger: Logger, options: { readonly variable?: string } = {}): SignerRotation {
  const signer = new RotatingResponseSigner(initial);
  const log = logger.child({ component: 'signer' });
  let queue: Promise<unknown> = Promise.resolve();

  const reloadOnce = async (): Promise<SignerReloadOutcome> => {
    let next: Ed25519ResponseSigner;
    try {
      next = await loadSignerKey(path, options.variable ?? SIGNER_KEY_VARIABLE);
    } catch (error) {
      log.error('signer key reload failed: keeping the current key', {
        signer_key_id: signer.keyId,
        error: error instanceof Error ? error.message : String(error),
      });
      return 'failed';
    }
    if (next.keyId === signer.keyId) {
      log.info('signer key unchanged', { signer_key_id: signer.keyId });
      return 'unchanged';
    }
    const previous = signer.rotate(next);
    log.info('signer key rotated', { old_signer_key_id: previous.keyId, new_signer_key_id: next.keyId });
    await warnIfKeyExposed(path, log);
    return 'rotated';
  };

  return {
    signer,
    reload() {
      const run = queue.then(reloadOnce);
      queue = run.catch(() => undefined);
      return run;
    },
  };
}

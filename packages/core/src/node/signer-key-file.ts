import { KeyFormatError } from '../signing/keys.js';
import { Ed25519ResponseSigner } from '../signing/signer.js';
import { BoundedFileError, readBoundedFile } from './bounded-file.js';

/** The gateway binary's setting for the signer key file (SPEC §7): the default name in messages. */
export const SIGNER_KEY_VARIABLE = 'GATEWAY_RESPONSE_SIGNER_PRIVATE_KEY_PEM_PATH';

/** The signer key could not be loaded; `message` names the variable and never holds key material. */
export class SignerKeyError extends Error {
  override readonly name = 'SignerKeyError';
  readonly code = 'signer_key_invalid';
}

/**
 * Reads and parses a PKCS#8 PEM Ed25519 signer key file (the gateway's startup step 2, `SIGHUP`,
 * and `doctor`): a regular file of at most 1 MiB read within a time bound (`readBoundedFile`).
 *
 * @param variable - names the file in messages; default {@link SIGNER_KEY_VARIABLE}.
 * @throws SignerKeyError `<variable>: <reason>` (unreadable, not a regular file, too large,
 *   not an Ed25519 key), never key material.
 */
export async function loadSignerKey(path: string, variable: string = SIGNER_KEY_VARIABLE): Promise<Ed25519ResponseSigner> {
  let pem: Buffer;
  try {
    pem = await readBoundedFile(path);
  } catch (error) {
    if (!(error instanceof BoundedFileError)) throw error;
    throw new SignerKeyError(`${variable}: ${error.message.replace(/^cannot read /, 'cannot read signer key file ')}`);
  }
  try {
    return Ed25519ResponseSigner.fromPem(pem);
  } catch (error) {
    if (error instanceof KeyFormatError) throw new SignerKeyError(`${variable}: ${error.message}`);
    throw error;
  }
}

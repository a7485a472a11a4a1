import { generateEd25519Key } from '@edge-gateway/core';
import { ExitCode, parseCommandArgs, UsageError, type CliIo } from './cli-io.js';
import { writePrivateKeyFile } from './key-file.js';

export const KEYGEN_USAGE = `Usage: edge-gateway keygen --out <path> [--force]

Writes a new Ed25519 response-signer key as a PKCS#8 PEM file (mode 0600), the format
GATEWAY_RESPONSE_SIGNER_PRIVATE_KEY_PEM_PATH expects, and prints its public key (standard
base64 of the raw 32 bytes, what clients trust) and its signer_key_id (SPEC §3).

Options:
  --out <path>  where to write the key (required)
  --force       replace an existing file
  -h, --help    show this help`;

/** `edge-gateway keygen`. */
export async function keygenCommand(io: CliIo, argv: readonly string[]): Promise<number> {
  const args = parseCommandArgs(io, argv, KEYGEN_USAGE, { out: { type: 'string' }, force: { type: 'boolean' } }, { min: 0, max: 0 });
  if (args === undefined) return ExitCode.ok;
  const out = args.string('out');
  if (out === undefined || out === '') throw new UsageError('--out <path> is required', KEYGEN_USAGE);
  const key = generateEd25519Key();
  const path = writePrivateKeyFile(out, key.pem, args.flag('force'));
  io.out(`wrote ${path} (PKCS#8 PEM Ed25519 private key, mode 0600)`);
  io.out(`public key (base64 of the raw 32 bytes): ${key.publicKeyRaw.toString('base64')}`);
  io.out(`key id: ${key.keyId}`);
  return ExitCode.ok;
}

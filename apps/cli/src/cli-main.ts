import { readFileSync } from 'node:fs';
import { CommandError, ExitCode, Mark, UsageError, type CliIo } from './cli-io.js';

/** The version of this CLI (the `@edge-gateway/cli` package). */
export function cliVersion(): string {
  // dist/ and src/ are both one level below the package root.
  const manifest = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version?: unknown };
  return String(manifest.version);
}

export const USAGE = `Usage: edge-gateway <command> [options]

Operator tool of the edge gateway. Reads the same GATEWAY_* environment variables as the
gateway binary (see README, Configuration); the Redis password is never printed.

Commands:
  keygen --out <path> [--force]      write a new Ed25519 signer key (PKCS#8 PEM, 0600),
                                     print its public key and key id
  doctor [--probe]                   the runbook's startup and readiness checks (✓/✗)
  sessions show <id>                 print a device-session record, flag it if malformed
  sessions revoke <id>               revoke a session: record, then revoked snapshot
  sessions create --user U [--id S] [--out device.pem]
                                     create a device session (new device key, record,
                                     then active snapshot); print its id and key path
  events publish --user U [--session S] --type T (--payload-file F | --payload S)
                                     append a push event to the client-events stream
  streams tail <session-events|client-events> [--from-start] [--count N]
                                     watch a stream, flagging entries the gateway drops
  redis failover [--node N] [--pause D] [--timeout D]
                                     a planned failover that loses no acknowledged write
                                     (Sentinel: pause writes, replicas caught up, SENTINEL
                                     FAILOVER; Cluster: CLUSTER FAILOVER on a replica of N)

Run "edge-gateway <command> --help" for the details of a command; "edge-gateway --version"
prints the version.`;

type Command = (io: CliIo, argv: readonly string[]) => Promise<number>;

// Loaded on demand: a command only pays for the drivers it uses (startup time matters for a CLI).
const COMMANDS: Record<string, () => Promise<Command>> = {
  keygen: async () => (await import('./keygen-command.js')).keygenCommand,
  doctor: async () => (await import('./doctor-command.js')).doctorCommand,
  sessions: async () => (await import('./sessions-command.js')).sessionsCommand,
  events: async () => (await import('./events-command.js')).eventsCommand,
  streams: async () => (await import('./streams-command.js')).streamsCommand,
  redis: async () => (await import('./redis-command.js')).redisCommand,
};

/** Runs the CLI with `argv` (without node and the script) and resolves with the exit code. */
export async function runCli(io: CliIo, argv: readonly string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined) {
    io.err(USAGE);
    return ExitCode.usage;
  }
  if (name === '--help' || name === '-h' || name === 'help') {
    io.out(USAGE);
    return ExitCode.ok;
  }
  if (name === '--version' || name === '-V' || name === 'version') {
    io.out(`edge-gateway ${cliVersion()}`);
    return ExitCode.ok;
  }
  const load = Object.hasOwn(COMMANDS, name) ? COMMANDS[name] : undefined;
  if (load === undefined) {
    io.err(`edge-gateway: unknown command "${name}"`);
    io.err(USAGE);
    return ExitCode.usage;
  }
  try {
    const command = await load();
    return await command(io, rest);
  } catch (error) {
    if (error instanceof UsageError) {
      io.err(`edge-gateway ${name}: ${error.message}`);
      io.err(error.usage);
      return ExitCode.usage;
    }
    if (error instanceof CommandError) {
      io.err(`${Mark.fail} edge-gateway ${name}: ${error.message}`);
      return ExitCode.failed;
    }
    io.err(`edge-gateway ${name}: ${error instanceof Error ? `${error.name}: ${error.message}` : String(error)}`);
    return ExitCode.failed;
  }
}

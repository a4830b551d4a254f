/**
 * What running any command shares, for main.ts and for `keyward ssh`'s own entry (ssh-run.ts): the
 * process's streams, the API client made on first use, and errors turned into a one-line message and an
 * exit code (0 ok, 1 failed, 2 usage). API errors print their code and message.
 */
import { RpcClient, RpcError } from '../../client/index.js';
import { CliFailure, println, UsageError, type CliIo } from './cli-io.js';
import { resolveCallTimeoutMs, resolveClientSettings } from './client-settings.js';

/** The API client of the settings in `io.env`, made when a command first asks for it. */
export interface Connector {
  readonly connect: () => { client: RpcClient; regionId: string };
  /** Closes the client, if one was made. */
  readonly close: () => void;
}

export function connector(io: CliIo): Connector {
  let client: RpcClient | undefined;
  return {
    connect() {
      const settings = resolveClientSettings(io.env);
      client ??= new RpcClient({
        endpoint: settings.endpoint,
        accessKeyId: settings.accessKeyId,
        accessKeySecret: settings.accessKeySecret,
        timeoutMs: resolveCallTimeoutMs(io.env),
      });
      return { client, regionId: settings.regionId };
    },
    close() {
      client?.close();
    },
  };
}

/**
 * Prints `err` as a command's failure and returns its exit code. `helpFor`: the command whose help a
 * usage error points to (else the main help).
 */
export function reportError(err: unknown, io: CliIo, helpFor: string | undefined): number {
  if (err instanceof UsageError) {
    println(io.stderr, `keyward: ${err.message}`);
    println(io.stderr, `Run 'keyward ${helpFor === undefined ? '' : `${helpFor} `}--help' for usage.`);
    return 2;
  }
  if (err instanceof RpcError) {
    const id = err.requestId === undefined ? '' : ` (request ${err.requestId})`;
    println(io.stderr, `keyward: ${err.code}: ${err.message}${id}`);
    return 1;
  }
  if (err instanceof CliFailure) {
    println(io.stderr, `keyward: ${err.code === undefined ? '' : `${err.code}: `}${err.message}`);
    return 1;
  }
  println(
    io.stderr,
    `keyward: unexpected error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`,
  );
  return 1;
}

export function processIo(): CliIo {
  return {
    stdout: process.stdout,
    stderr: process.stderr,
    stdin: process.stdin,
    env: process.env,
    cwd: process.cwd(),
  };
}

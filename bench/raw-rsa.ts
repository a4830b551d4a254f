/**
 * The baseline of the CreateKeyPair benchmark: raw `crypto.generateKeyPair('rsa', { modulusLength: 2048 })`
 * in a process of its own, forked by run.ts with an IPC channel.
 *
 * It runs in its own process so that it has its own libuv thread pool (default 4 threads, as the server's)
 * and does not share it with the server; while it generates, the server is idle, and while the server
 * generates, this process is idle waiting for its next command. Each `run` command generates `count` key
 * pairs with `concurrency` generations in flight (the same numbers the API side uses) and answers with the
 * elapsed wall time. It generates exactly what the server's generator asks node:crypto for (RSA-2048,
 * e = 65537, KeyObjects out); the server's extra work (PEM export, SSH encoding, storage, HTTP) is what the
 * comparison is meant to expose.
 */
import { generateKeyPair } from 'node:crypto';
import { promisify } from 'node:util';

const generateKeyPairAsync = promisify(generateKeyPair);

/** A command from run.ts. */
export interface RawRsaRunRequest {
  readonly kind: 'run';
  readonly count: number;
  readonly concurrency: number;
  /** Start no new generation after this many milliseconds (a bound; normally `count` is reached first). */
  readonly timeLimitMs: number;
}

/** The answer to a `run` command. */
export interface RawRsaRunResult {
  readonly kind: 'result';
  /** Key pairs generated (less than asked only when the time limit was reached). */
  readonly count: number;
  readonly elapsedMs: number;
}

/** A failure, reported instead of a result. */
export interface RawRsaError {
  readonly kind: 'error';
  readonly message: string;
}

/** Message the child sends once it is listening for commands. */
export interface RawRsaReady {
  readonly kind: 'ready';
  readonly threadPoolSize: string;
}

export type RawRsaMessage = RawRsaRunResult | RawRsaError | RawRsaReady;

/** Type guard for a `run` command received over IPC. */
export function isRunRequest(msg: unknown): msg is RawRsaRunRequest {
  if (typeof msg !== 'object' || msg === null) return false;
  const m = msg as Record<string, unknown>;
  return (
    m['kind'] === 'run' &&
    typeof m['count'] === 'number' &&
    Number.isSafeInteger(m['count']) &&
    m['count'] > 0 &&
    m['count'] <= 10_000 &&
    typeof m['concurrency'] === 'number' &&
    Number.isSafeInteger(m['concurrency']) &&
    m['concurrency'] > 0 &&
    m['concurrency'] <= 256 &&
    typeof m['timeLimitMs'] === 'number' &&
    m['timeLimitMs'] > 0
  );
}

/** Type guard for a message from the child. */
export function isRawRsaMessage(msg: unknown): msg is RawRsaMessage {
  if (typeof msg !== 'object' || msg === null) return false;
  const kind = (msg as Record<string, unknown>)['kind'];
  return kind === 'result' || kind === 'error' || kind === 'ready';
}

/**
 * Generates up to `count` RSA-2048 key pairs with `concurrency` in flight, starting none after
 * `timeLimitMs`; resolves to how many were generated and the elapsed wall time.
 */
export async function generateRsaKeys(
  count: number,
  concurrency: number,
  timeLimitMs: number,
): Promise<{ count: number; elapsedMs: number }> {
  let started = 0;
  let done = 0;
  const t0 = performance.now();
  const worker = async (): Promise<void> => {
    while (started < count && performance.now() - t0 < timeLimitMs) {
      started++;
      await generateKeyPairAsync('rsa', { modulusLength: 2048, publicExponent: 0x10001 });
      done++;
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, worker));
  return { count: done, elapsedMs: performance.now() - t0 };
}

function send(msg: RawRsaMessage): void {
  process.send?.(msg);
}

// Only act as the child when forked with an IPC channel (importing this module for its types does nothing).
if (process.send !== undefined && process.argv.includes('--raw-rsa-child')) {
  process.on('message', (msg: unknown) => {
    if (!isRunRequest(msg)) {
      send({ kind: 'error', message: `unexpected message: ${JSON.stringify(msg).slice(0, 200)}` });
      return;
    }
    generateRsaKeys(msg.count, msg.concurrency, msg.timeLimitMs).then(
      ({ count, elapsedMs }) => {
        send({ kind: 'result', count, elapsedMs });
      },
      (err: unknown) => {
        send({ kind: 'error', message: err instanceof Error ? err.message : String(err) });
      },
    );
  });
  // Exit with the parent: run.ts disconnects (or dies) when it is done.
  process.on('disconnect', () => {
    process.exit(0);
  });
  send({ kind: 'ready', threadPoolSize: process.env['UV_THREADPOOL_SIZE'] ?? '4 (default)' });
}

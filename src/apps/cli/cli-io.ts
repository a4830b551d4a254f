/**
 * What every CLI command shares: where output goes, how errors look, and option parsing with
 * `node:util` parseArgs in strict mode (unknown flags are errors).
 */
import { parseArgs, type ParseArgsConfig } from 'node:util';

/** Streams and environment a command runs with (injected so tests can capture them). */
export interface CliIo {
  readonly stdout: NodeJS.WritableStream;
  readonly stderr: NodeJS.WritableStream;
  readonly stdin: NodeJS.ReadableStream;
  readonly env: Readonly<Record<string, string | undefined>>;
  readonly cwd: string;
}

/** A mistake in how the command was called: printed with a pointer to `--help`, exit code 2. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

/**
 * A failure to report as-is (no stack), exit code 1. With a `code` (a stable name such as
 * `Backup.TargetExists`, listed in docs/errors.md) it prints as `keyward: CODE: message`, like API errors.
 */
export class CliFailure extends Error {
  constructor(
    message: string,
    readonly code?: string,
  ) {
    super(message);
    this.name = 'CliFailure';
  }
}

type Options = NonNullable<ParseArgsConfig['options']>;

/** parseArgs in strict mode, with its errors turned into UsageErrors. */
export function parseCommandArgs(
  args: readonly string[],
  options: Options,
  allowPositionals = true,
): { values: Record<string, string | boolean | string[] | undefined>; positionals: string[] } {
  try {
    const parsed = parseArgs({ args: [...args], options, strict: true, allowPositionals });
    return {
      values: parsed.values as Record<string, string | boolean | string[] | undefined>,
      positionals: parsed.positionals,
    };
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
}

/** Reads a string flag (undefined when absent). */
export function stringFlag(values: Record<string, unknown>, name: string): string | undefined {
  const v = values[name];
  return typeof v === 'string' ? v : undefined;
}

/** Reads a repeatable string flag. */
export function listFlag(values: Record<string, unknown>, name: string): string[] {
  const v = values[name];
  return Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : [];
}

/** Writes a line. */
export function println(stream: NodeJS.WritableStream, text = ''): void {
  stream.write(`${text}\n`);
}

/** Prints rows as aligned columns under a header. */
export function printTable(
  stream: NodeJS.WritableStream,
  header: readonly string[],
  rows: readonly string[][],
): void {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]): string =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i] ?? 0)))
      .join('  ')
      .trimEnd();
  println(stream, line(header));
  for (const r of rows) println(stream, line(r));
}

/** Reads all of stdin as text, bounded. */
export async function readAll(stream: NodeJS.ReadableStream, maxBytes: number): Promise<string> {
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of stream) {
    const b = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
    total += b.length;
    if (total > maxBytes) throw new CliFailure(`standard input is larger than ${maxBytes} bytes`);
    chunks.push(b);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/** Parses `key=value` (value may be empty, `key` alone means an empty value) for --tag flags. */
export function parseTagFlag(text: string): { key: string; value: string } {
  const eq = text.indexOf('=');
  return eq === -1 ? { key: text, value: '' } : { key: text.slice(0, eq), value: text.slice(eq + 1) };
}

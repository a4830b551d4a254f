/**
 * Shared helpers for the public key tests (not used at run time): the repository root and fixture
 * directory, and running the real ssh-keygen — a missing ssh-keygen fails the test with the command that
 * installs it, it never skips.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { repoRoot } from '../../../test/helpers/repo-root.js';

export { repoRoot };

/** test/fixtures/public-keys (made by scripts/make-key-fixtures.sh). */
export function fixturesDir(): string {
  return join(repoRoot(), 'test', 'fixtures', 'public-keys');
}

/** What expected.json says of one golden fixture. */
export interface GoldenExpectation {
  readonly type: string;
  readonly bits: number;
  readonly fingerprintMd5: string;
  readonly fingerprintSha256: string;
}

/** What malformed/expected.json says of one malformed fixture. */
export interface MalformedExpectation {
  readonly code: string;
  readonly case: string;
}

/** Reads and parses a JSON fixture index. */
export function readJson<T>(path: string): Readonly<Record<string, T>> {
  return JSON.parse(readFileSync(path, 'utf8')) as Record<string, T>;
}

/** The message a test fails with when ssh-keygen is not installed. */
export const SSH_KEYGEN_MISSING = 'ssh-keygen not found: apt-get install -y openssh-client';

/** Runs ssh-keygen and returns its stdout; throws (failing the test) when it is missing or fails. */
export function sshKeygen(args: readonly string[], cwd?: string): string {
  const result = spawnSync('ssh-keygen', [...args], {
    encoding: 'utf8',
    cwd,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  if (result.error !== undefined) {
    if ((result.error as NodeJS.ErrnoException).code === 'ENOENT') throw new Error(SSH_KEYGEN_MISSING);
    throw result.error;
  }
  if (result.status !== 0) {
    throw new Error(
      `ssh-keygen ${args.join(' ')} failed (${String(result.status)}): ${result.stderr.trim()}`,
    );
  }
  return result.stdout;
}

/** What `ssh-keygen -l` and `ssh-keygen -E md5 -l` print for `file`. */
export interface SshKeygenFingerprint {
  readonly bits: number;
  readonly fingerprintSha256: string;
  readonly fingerprintMd5: string;
}

/** Runs `ssh-keygen -l` twice (SHA-256 and MD5) on `file` and parses the first line of each. */
export function sshKeygenFingerprint(file: string): SshKeygenFingerprint {
  const sha = sshKeygen(['-l', '-f', file]).trim().split(/\s+/);
  const md5 = sshKeygen(['-E', 'md5', '-l', '-f', file]).trim().split(/\s+/);
  return {
    bits: Number(sha[0]),
    fingerprintSha256: sha[1] ?? '',
    fingerprintMd5: (md5[1] ?? '').replace(/^MD5:/, ''),
  };
}

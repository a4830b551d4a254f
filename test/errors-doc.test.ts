/**
 * Keeps docs/errors.md and the error registry (src/platform/errors.ts) in step: the same codes with the
 * same HTTP statuses, and the client-side codes of the RpcClient and the codes of `keyward backup` and
 * `keyward migrate-storage` and `keyward audit archive`/`verify --segment` listed too.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { ARCHIVE_ERROR_CODES } from '../src/apps/server/audit-archive.js';
import { SEGMENT_ERROR_CODES } from '../src/audit/index.js';
import { BACKUP_ERROR_CODES } from '../src/apps/server/database-backup.js';
import { MIGRATE_ERROR_CODES } from '../src/apps/server/storage-migration.js';
import { RPC_CLIENT_ERROR_CODES } from '../src/client/index.js';
import { SSH_TOOL_ERROR_CODES } from '../src/apps/cli/ssh-tools.js';
import { ERROR_CODES } from '../src/platform/errors.js';
import { repoRoot } from './helpers/repo-root.js';

const doc = readFileSync(`${repoRoot()}/docs/errors.md`, 'utf8');

test('docs/errors.md lists every server error code with its HTTP status, and no other', () => {
  const documented = new Map<string, number>();
  for (const m of doc.matchAll(/^\|\s*`([A-Za-z.]+)`\s*\|\s*(\d{3})\s*\|/gm)) {
    const [, code, status] = m;
    if (code !== undefined && status !== undefined) documented.set(code, Number(status));
  }
  const registered = new Map(Object.entries(ERROR_CODES).map(([code, spec]) => [code, spec.status]));
  assert.deepEqual([...documented.entries()].sort(), [...registered.entries()].sort());
});

/** The codes in the first column of the table under the heading `title`. */
function codesUnder(title: string): string[] {
  const start = doc.indexOf(`## ${title}`);
  assert.notEqual(start, -1, `docs/errors.md has no "## ${title}" section`);
  const end = doc.indexOf('\n## ', start + 1);
  const section = doc.slice(start, end === -1 ? undefined : end);
  return [...section.matchAll(/^\|\s*`([A-Za-z.]+)`\s*\|/gm)].map((m) => m[1] ?? '');
}

test('docs/errors.md lists every client-side error code', () => {
  const documented = codesUnder('Client-side codes');
  assert.deepEqual(documented.sort(), [...RPC_CLIENT_ERROR_CODES].sort());
});

test('docs/errors.md lists every code of keyward backup', () => {
  assert.deepEqual(codesUnder('Backup codes').sort(), [...BACKUP_ERROR_CODES].sort());
});

test('docs/errors.md lists every code of keyward migrate-storage', () => {
  assert.deepEqual(codesUnder('Storage migration codes').sort(), [...MIGRATE_ERROR_CODES].sort());
});

test('docs/errors.md lists every code of keyward audit archive and audit verify --segment', () => {
  assert.deepEqual(
    codesUnder('Audit archive codes').sort(),
    [...ARCHIVE_ERROR_CODES, ...SEGMENT_ERROR_CODES].sort(),
  );
});

test('docs/errors.md lists every code of keyward proxy and keyward ssh-config', () => {
  assert.deepEqual(codesUnder('SSH tool codes').sort(), [...SSH_TOOL_ERROR_CODES].sort());
});

test('docs/errors.md lists every per-instance code the agent can report', async () => {
  const { HOST_RESULT_CODES } = await import('../src/agent/host/index.js');
  const { APPLY_CODES } = await import('../src/agent/agent-error.js');
  const documented = codesUnder('Per-instance result codes from the host');
  assert.deepEqual(documented.sort(), [...HOST_RESULT_CODES, ...Object.values(APPLY_CODES)].sort());
});

/**
 * Keeps docs/errors.md and the error registry (src/platform/errors.ts) in step: the same codes with the
 * same HTTP statuses, and the client-side codes of the RpcClient listed too.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { RPC_CLIENT_ERROR_CODES } from '../src/client/index.js';
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

test('docs/errors.md lists every client-side error code', () => {
  const documented = [...doc.matchAll(/^\|\s*`([A-Za-z.]+)`\s*\|\s*[^0-9\s]/gm)].map((m) => m[1]);
  assert.deepEqual(documented.sort(), [...RPC_CLIENT_ERROR_CODES].sort());
});

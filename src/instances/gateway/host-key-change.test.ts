import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { HostKey } from '../host-keys.js';
import { hostKeyChange } from './agent-gateway.js';

const key = (n: number): HostKey => ({
  type: 'ssh-ed25519',
  publicKey: `ssh-ed25519 KEY${n}`,
  fingerprintSha256: `SHA256:${n}`,
});
const NOW = '2026-12-05T10:00:00.000Z';

test('the pinned keys reported again, in any order, leave nothing pending', () => {
  const pinned = { hostKeys: [key(1), key(2)], pendingHostKeys: [key(3)], hostKeysChangedAt: NOW };
  assert.deepEqual(hostKeyChange(pinned, [key(2), key(1)], NOW), { pending: null, newlyReported: false });
});

test('other keys are pending from the first time they are reported, and audited once', () => {
  const first = hostKeyChange(
    { hostKeys: [key(1)], pendingHostKeys: null, hostKeysChangedAt: null },
    [key(2)],
    NOW,
  );
  assert.deepEqual(first, { pending: { hostKeys: [key(2)], since: NOW }, newlyReported: true });
  const again = hostKeyChange(
    { hostKeys: [key(1)], pendingHostKeys: [key(2)], hostKeysChangedAt: '2026-12-01T00:00:00.000Z' },
    [key(2)],
    NOW,
  );
  assert.deepEqual(again, {
    pending: { hostKeys: [key(2)], since: '2026-12-01T00:00:00.000Z' },
    newlyReported: false,
  });
  const other = hostKeyChange(
    { hostKeys: [key(1)], pendingHostKeys: [key(2)], hostKeysChangedAt: '2026-12-01T00:00:00.000Z' },
    [key(1), key(3)],
    NOW,
  );
  assert.deepEqual(other, { pending: { hostKeys: [key(1), key(3)], since: NOW }, newlyReported: true });
});

test('an enrollment without usable host keys pins none: any reported later wait for acceptance', () => {
  const r = hostKeyChange({ hostKeys: [], pendingHostKeys: null, hostKeysChangedAt: null }, [key(1)], NOW);
  assert.equal(r.newlyReported, true);
});

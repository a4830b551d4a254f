import assert from 'node:assert/strict';
import { generateKeyPairSync, sign } from 'node:crypto';
import { test } from 'node:test';
import { helloSigningInput } from '../../agent-channel/index.js';
import { rawEd25519PublicKey } from '../grant-signing-key.js';
import { decideHello, type HelloIdentity } from './hello.js';

const ID = 'i-aaaaaaaaaaaaaaaaaaaa';
const OTHER = 'i-bbbbbbbbbbbbbbbbbbbb';
const NONCE = 'bm9uY2Utbm9uY2Utbm9uY2Utbm9uY2Utbm9uY2U';

function identity(status: HelloIdentity['status'] = 'active') {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  return {
    privateKey,
    stored: { status, identityPublicKey: rawEd25519PublicKey(publicKey).toString('base64') },
  };
}

const sig = (key: import('node:crypto').KeyObject, id: string, nonce: string) =>
  sign(null, helloSigningInput(id, nonce), key).toString('base64');

test('a hello signed with the stored identity key over this challenge is accepted', () => {
  const { privateKey, stored } = identity();
  assert.deepEqual(decideHello(stored, ID, sig(privateKey, ID, NONCE), NONCE), { ok: true });
});

test('an unknown instance id is refused with 4401', () => {
  assert.deepEqual(decideHello(undefined, ID, 'AAAA', NONCE), {
    ok: false,
    reason: 'unknown-instance',
    closeCode: 4401,
  });
});

test('a signature by another key, over another nonce, or of the wrong size is refused with 4401', () => {
  const { stored } = identity();
  const stranger = identity().privateKey;
  const { privateKey } = identity();
  for (const signature of [
    sig(stranger, ID, NONCE),
    sig(privateKey, ID, 'another-nonce'),
    Buffer.alloc(63).toString('base64'),
    Buffer.alloc(64).toString('base64'),
  ]) {
    assert.deepEqual(decideHello(stored, ID, signature, NONCE), {
      ok: false,
      reason: 'bad-signature',
      closeCode: 4401,
    });
  }
});

test('an agent presenting another instance id cannot produce that instance signature', () => {
  const mine = identity();
  const theirs = identity();
  // The agent signs the other id with its own key; the check uses the other instance's stored key.
  const forged = sig(mine.privateKey, OTHER, NONCE);
  assert.equal(decideHello(theirs.stored, OTHER, forged, NONCE).ok, false);
});

test('a revoked instance is refused with 4403, but only after its signature verifies', () => {
  const { privateKey, stored } = identity('revoked');
  assert.deepEqual(decideHello(stored, ID, sig(privateKey, ID, NONCE), NONCE), {
    ok: false,
    reason: 'revoked',
    closeCode: 4403,
  });
  assert.deepEqual(decideHello(stored, ID, sig(identity().privateKey, ID, NONCE), NONCE), {
    ok: false,
    reason: 'bad-signature',
    closeCode: 4401,
  });
});

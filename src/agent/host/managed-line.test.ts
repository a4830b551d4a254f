import assert from 'node:assert/strict';
import { test } from 'node:test';
import { buildManagedLine, isManagedLine, publicKeyProblem, rewriteAuthorizedKeys } from './managed-line.js';

const ED25519 = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIP1ex71zZ5sMeT0mlKNS42giec2e3L+XuYa3F/YBumr9';
const ECDSA =
  'ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBHRByx200XGMJ8pJ/f+IcAiycJkrcKubHo8y+mMct0vysQHdTG0Zq157mcGebXrxGjAOKNO0/SMbML5tmP+qUI4=';
const LINE = `${ED25519} keyward-managed:kp-1`;

test('public keys are accepted only as a known type followed by a matching canonical base64 blob', () => {
  const table: [string, boolean][] = [
    [ED25519, true],
    [ECDSA, true],
    [`${ED25519} comment`, false],
    [`restrict ${ED25519}`, false],
    [`${ED25519}\n${ECDSA}`, false],
    [ED25519.replace('ssh-ed25519', 'ssh-rsa'), false],
    [ED25519.replace('ssh-ed25519', 'ssh-foo'), false],
    [`${ED25519}=`, false],
    [ED25519.replace('AAAAC3', 'AAAAC3 '), false],
    ['ssh-ed25519 AAAA', false],
    ['', false],
    [`ssh-ed25519 ${'A'.repeat(20_000)}`, false],
  ];
  for (const [key, valid] of table) assert.equal(publicKeyProblem(key) === null, valid, JSON.stringify(key));
});

test('the managed line is the key and the marker with the key pair name, and bad names are refused', () => {
  assert.deepEqual(buildManagedLine({ keyPairName: 'kp-1', publicKey: ED25519 }), { line: LINE });
  for (const name of ['k', '1kp', 'kp 1', 'kp\n1', 'kp"1', 'a'.repeat(129), '']) {
    assert.ok('problem' in buildManagedLine({ keyPairName: name, publicKey: ED25519 }), name);
  }
  assert.ok('problem' in buildManagedLine({ keyPairName: 'kp-1', publicKey: `command="id" ${ED25519}` }));
});

test('managed lines are recognised by the marker in their last field, never in a comment', () => {
  const table: [string, boolean][] = [
    [LINE, true],
    [`${LINE}\r`, true],
    [`${LINE}  `, true],
    [`restrict,pty ${LINE}`, true],
    [`# ${LINE}`, false],
    [`   #${LINE}`, false],
    [`${LINE} trailing`, false],
    [`${ED25519} my-keyward-managed:kp-1`, false],
    [ED25519, false],
    ['', false],
  ];
  for (const [line, managed] of table) assert.equal(isManagedLine(line), managed, JSON.stringify(line));
});

test('rewriting puts the managed line first and keeps every other byte', () => {
  const table: [string, readonly string[], string, readonly string[]][] = [
    ['', [LINE], `${LINE}\n`, []],
    ['a\n', [LINE], `${LINE}\na\n`, []],
    ['a', [LINE], `${LINE}\na`, []],
    ['# c\r\nk\r\n\r\n', [LINE], `${LINE}\n# c\r\nk\r\n\r\n`, []],
    [`a\n${ED25519} keyward-managed:old\r\nb`, [], 'a\nb', [`${ED25519} keyward-managed:old`]],
    [`a\n${ED25519} keyward-managed:old`, [LINE], `${LINE}\na\n`, [`${ED25519} keyward-managed:old`]],
    [`${LINE}\nx\n${LINE}\n`, [LINE], `${LINE}\nx\n`, [LINE, LINE]],
    [`# ${LINE}\n`, [], `# ${LINE}\n`, []],
    ['\n\n', [], '\n\n', []],
  ];
  for (const [before, lines, after, previous] of table) {
    const r = rewriteAuthorizedKeys(Buffer.from(before, 'latin1'), lines);
    assert.equal(r.content.toString('latin1'), after, JSON.stringify(before));
    assert.deepEqual(r.previous, previous, JSON.stringify(before));
  }
});

test('binding then unbinding gives back any user file byte for byte, whatever its bytes', () => {
  const alphabet = ['a', ' ', '\t', '#', '\r', '\n', '\n', '\u00ff', '\u0000', ED25519];
  let seed = 7;
  const next = (n: number): number => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    return seed % n;
  };
  for (let i = 0; i < 500; i++) {
    const user = Buffer.from(
      Array.from({ length: next(40) }, () => alphabet[next(alphabet.length)] ?? '').join(''),
      'latin1',
    );
    const bound = rewriteAuthorizedKeys(user, [LINE]).content;
    assert.deepEqual(rewriteAuthorizedKeys(bound, []).content, user);
    assert.deepEqual(rewriteAuthorizedKeys(bound, [LINE]).content, bound);
  }
});

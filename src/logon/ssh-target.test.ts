import assert from 'node:assert/strict';
import { test } from 'node:test';
import { checkDialAddress, checkSshAddress, isAllowlistEntry, type SshTargetPolicy } from './ssh-target.js';

const STRICT: SshTargetPolicy = { allowLoopback: false, allowlist: [] };
const LOOPBACK: SshTargetPolicy = { allowLoopback: true, allowlist: [] };
const OWN = ['10.0.0.5', 'fd00::5'];

test('an SSH address is accepted when it is one of the host’s own addresses', () => {
  assert.deepEqual(checkSshAddress('10.0.0.5:22', OWN, STRICT), { ok: true, host: '10.0.0.5', port: 22 });
  assert.equal(checkSshAddress('[fd00::5]:2222', OWN, STRICT).ok, true);
  assert.equal(checkSshAddress('[FD00::5]:2222', OWN, STRICT).ok, true);
  assert.equal(checkSshAddress('10.0.0.6:22', OWN, STRICT).ok, false);
});

test('link-local and unspecified addresses are refused whatever the allowlist says', () => {
  const all: SshTargetPolicy = {
    allowLoopback: true,
    allowlist: ['169.254.0.0/16', 'fe80::/10', '0.0.0.0/0'],
  };
  for (const address of [
    '169.254.169.254:80',
    '[fe80::1]:22',
    '[::ffff:169.254.169.254]:22',
    '[::ffff:a9fe:a9fe]:22',
    '0.0.0.0:22',
    '[::]:22',
  ]) {
    assert.equal(checkSshAddress(address, ['169.254.169.254', 'fe80::1'], all).ok, false, address);
  }
});

test('loopback only with --allow-loopback-hosts, even when listed or reported', () => {
  for (const address of ['127.0.0.1:22', '127.1.2.3:22', '[::1]:22', '[::ffff:127.0.0.1]:22']) {
    assert.equal(
      checkSshAddress(address, ['127.0.0.1'], { allowLoopback: false, allowlist: ['127.0.0.0/8'] }).ok,
      false,
    );
    assert.equal(checkSshAddress(address, [], LOOPBACK).ok, true, address);
  }
  assert.equal(checkDialAddress('127.0.0.1', STRICT).ok, false);
  assert.equal(checkDialAddress('::ffff:127.0.0.1', STRICT).ok, false);
  assert.equal(checkDialAddress('127.0.0.1', LOOPBACK).ok, true);
  assert.equal(checkDialAddress('192.0.2.1', STRICT).ok, true);
});

test('names and foreign addresses need the operator’s allowlist', () => {
  const listed: SshTargetPolicy = {
    allowLoopback: false,
    allowlist: ['192.0.2.0/24', 'ssh.example.com', '2001:db8::7'],
  };
  assert.equal(checkSshAddress('ssh.example.com:22', OWN, STRICT).ok, false);
  assert.equal(checkSshAddress('SSH.example.com:22', OWN, listed).ok, true);
  assert.equal(checkSshAddress('other.example.com:22', OWN, listed).ok, false);
  assert.equal(checkSshAddress('192.0.2.44:22', OWN, listed).ok, true);
  assert.equal(checkSshAddress('198.51.100.1:22', OWN, listed).ok, false);
  assert.equal(checkSshAddress('[2001:db8::7]:22', OWN, listed).ok, true);
  // Numeric forms that are not IP literals are names: refused unless listed as such.
  assert.equal(checkSshAddress('2130706433:22', OWN, listed).ok, false);
  assert.equal(checkSshAddress('127.1:22', OWN, listed).ok, false);
  assert.equal(checkSshAddress('10.0.0.5:0', OWN, STRICT).ok, false);
  assert.equal(checkSshAddress('10.0.0.5', OWN, STRICT).ok, false);
});

test('allowlist entries are IPs, CIDR blocks or DNS names', () => {
  for (const ok of ['10.0.0.0/8', '10.1.2.3', '2001:db8::/32', 'ssh.example.com', 'host-1'])
    assert.equal(isAllowlistEntry(ok), true, ok);
  for (const bad of ['10.0.0.0/33', '::/129', 'a b', 'x..y', '-x.example', ''])
    assert.equal(isAllowlistEntry(bad), false, bad);
});

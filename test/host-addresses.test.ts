/**
 * Where logons may go (test/helpers/host-trust.ts has the real server, agent and sshds): only to the SSH
 * address the host reports as its own or one the operator allowlisted; never link-local; loopback only
 * when the server runs with --allow-loopback-hosts.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import {
  refused,
  restartAgent,
  restartServer,
  sendKey,
  sshdA,
  setUpHostTrust,
  tearDownHostTrust,
} from './helpers/host-trust.js';

before(setUpHostTrust);
after(tearDownHostTrust);

test('logons go only to the host’s own or allowlisted SSH address, never link-local, loopback only when allowed', async () => {
  await restartAgent(sshdA, '169.254.169.254:22');
  assert.equal((await refused(sendKey())).code, 'Logon.SshAddressRefused');
  await restartAgent(sshdA, '[fe80::1]:22');
  assert.equal((await refused(sendKey())).code, 'Logon.SshAddressRefused');
  // An address that is not the host's own: refused, until the operator lists it.
  await restartAgent(sshdA, '10.255.255.7:22');
  assert.equal((await refused(sendKey())).code, 'Logon.SshAddressRefused');
  await restartServer(['--ssh-address-allowlist', '10.255.255.0/24,169.254.0.0/16']);
  await sendKey();
  // Even listed, link-local is never used.
  await restartAgent(sshdA, '169.254.169.254:22');
  assert.equal((await refused(sendKey())).code, 'Logon.SshAddressRefused');
  // Loopback only with --allow-loopback-hosts.
  await restartAgent(sshdA, `127.0.0.1:${String(sshdA.port)}`);
  await sendKey();
  await restartServer([], true);
  assert.equal((await refused(sendKey())).code, 'Logon.SshAddressRefused');
  await restartServer([]);
  await sendKey();
});

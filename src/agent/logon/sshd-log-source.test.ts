import assert from 'node:assert/strict';
import { test } from 'node:test';
import { resolveSshdLogSource, SSHD_UNITS, type SshdLogProbe } from './sshd-log-source.js';

function probe(files: readonly string[], systemd: boolean, units: readonly string[]): SshdLogProbe {
  return {
    exists: (p) => files.includes(p),
    systemdRunning: () => systemd,
    unitLoaded: (_systemctl, unit) => Promise.resolve(units.includes(unit)),
  };
}

const TOOLS = ['/usr/bin/journalctl', '/usr/bin/systemctl'];

test('auto: the journal when systemd runs an sshd unit, else the first auth log, else off', async () => {
  assert.deepEqual(
    await resolveSshdLogSource('auto', probe([...TOOLS, '/var/log/auth.log'], true, ['ssh.service'])),
    {
      kind: 'journald',
      journalctl: '/usr/bin/journalctl',
      units: SSHD_UNITS,
    },
  );
  assert.equal((await resolveSshdLogSource('auto', probe(TOOLS, true, ['sshd.service']))).kind, 'journald');
  // systemd installed but not running (a container), or no sshd unit: the auth log.
  assert.deepEqual(
    await resolveSshdLogSource('auto', probe([...TOOLS, '/var/log/auth.log'], false, ['ssh.service'])),
    {
      kind: 'file',
      path: '/var/log/auth.log',
    },
  );
  assert.deepEqual(await resolveSshdLogSource('auto', probe([...TOOLS, '/var/log/secure'], true, [])), {
    kind: 'file',
    path: '/var/log/secure',
  });
  assert.equal((await resolveSshdLogSource('auto', probe([], false, []))).kind, 'off');
});

test('journald, a file and off are taken as given', async () => {
  const none = probe([], false, []);
  assert.equal((await resolveSshdLogSource('journald', none)).kind, 'journald');
  assert.deepEqual(await resolveSshdLogSource('/srv/sshd.log', none), {
    kind: 'file',
    path: '/srv/sshd.log',
  });
  assert.equal((await resolveSshdLogSource('off', probe(TOOLS, true, ['ssh.service']))).kind, 'off');
});

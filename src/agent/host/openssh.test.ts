import assert from 'node:assert/strict';
import { test } from 'node:test';
import { keyTypeAccepted, keyTypeRefusal } from './host-binder.js';
import {
  expiryTimeForm,
  kbdInteractiveKeywords,
  localExpiryTime,
  parseOpenSshVersion,
  sshdTimeZone,
  type TimeZoneSources,
} from './openssh.js';
import { findMatchPasswordSettings } from './sshd-config-parse.js';

test('the release is read from sshd -V of every era', () => {
  assert.deepEqual(parseOpenSshVersion('OpenSSH_9.2, OpenSSL 3.0.22 25 Aug 2026\n'), {
    major: 9,
    minor: 2,
    text: '9.2',
  });
  const old = 'unknown option -- V\nOpenSSH_8.4p1 Debian-5+deb11u7, OpenSSL 1.1.1w  11 Sep 2023\nusage: sshd';
  assert.deepEqual(parseOpenSshVersion(old), { major: 8, minor: 4, text: '8.4p1' });
  assert.equal(parseOpenSshVersion('sshd: command not found'), null);
  // Debian 13: the package is 10.0p1, sshd -V says 10.0p2 (Debian's version addendum follows).
  const v10 = parseOpenSshVersion('OpenSSH_10.0p2 Debian-7+deb13u4, OpenSSL 3.5.9 29 Sep 2026\n');
  assert.deepEqual(v10, { major: 10, minor: 0, text: '10.0p2' });
  assert.deepEqual(kbdInteractiveKeywords(v10), ['KbdInteractiveAuthentication']);
  assert.deepEqual(parseOpenSshVersion('OpenSSH_10.2p1, OpenSSL 3.5.4'), {
    major: 10,
    minor: 2,
    text: '10.2p1',
  });
  assert.deepEqual(kbdInteractiveKeywords(parseOpenSshVersion(old)), [
    'KbdInteractiveAuthentication',
    'ChallengeResponseAuthentication',
  ]);
});

function zones(env: string | undefined, link: string | undefined): TimeZoneSources {
  return {
    sshdEnviron: () => Promise.resolve(env),
    readlink: () => Promise.resolve(link),
    readFile: () => Promise.resolve(undefined),
  };
}

test('expiry-time: UTC from 9.1; before, local time in a fixed-offset zone, else left out', async () => {
  const now = Date.parse('2026-12-06T02:00:00Z');
  const v84 = { major: 8, minor: 4, text: '8.4p1' };
  assert.deepEqual(
    await expiryTimeForm({ major: 9, minor: 1, text: '9.1' }, zones(undefined, undefined), now),
    {
      form: 'utc',
    },
  );
  assert.deepEqual(await expiryTimeForm(v84, zones(undefined, '/usr/share/zoneinfo/Etc/UTC'), now), {
    form: 'local',
    zone: 'UTC',
  });
  assert.deepEqual(await expiryTimeForm(v84, zones('PATH=/bin\0TZ=Asia/Tokyo\0', undefined), now), {
    form: 'local',
    zone: 'Asia/Tokyo',
  });
  const berlin = await expiryTimeForm(v84, zones(undefined, '../usr/share/zoneinfo/Europe/Berlin'), now);
  assert.equal(berlin.form, 'omitted');
  assert.equal(
    (await expiryTimeForm(v84, zones('TZ=EST5EDT,M3.2.0,M11.1.0', undefined), now)).form,
    'omitted',
  );
  assert.deepEqual(await sshdTimeZone(zones(undefined, undefined)), { zone: 'UTC' });
  assert.equal(localExpiryTime(now / 1000, 9 * 60), '20261206110000');
});

test('expiry-time on 10.0 is UTC, as from 9.1', async () => {
  assert.deepEqual(
    await expiryTimeForm({ major: 10, minor: 0, text: '10.0p2' }, zones('TZ=Asia/Tokyo', undefined), 0),
    { form: 'utc' },
  );
});

test('Host.KeyTypeRefused for DSA: 10.0 has no setting that brings it back, older releases do', () => {
  const v10 = { major: 10, minor: 0, text: '10.0p2' };
  const on10 = keyTypeRefusal('ssh-dss', 'PubkeyAcceptedAlgorithms', v10, 'old-dsa');
  assert.equal(on10.code, 'Host.KeyTypeRefused');
  assert.match(on10.message, /OpenSSH 10\.0p2/);
  assert.match(on10.message, /removed DSA altogether/);
  assert.match(on10.message, /PubkeyAcceptedAlgorithms \(sshd -T\) does not list ssh-dss/);
  assert.match(on10.message, /key pair old-dsa/);
  const on84 = keyTypeRefusal(
    'ssh-dss',
    'PubkeyAcceptedKeyTypes',
    { major: 8, minor: 4, text: '8.4p1' },
    'x',
  );
  assert.match(on84.message, /off by default since OpenSSH 7\.0/);
  assert.match(
    keyTypeRefusal('ssh-dss-cert-v01@openssh.com', 'PubkeyAcceptedAlgorithms', v10, 'c').message,
    /removed DSA/,
  );
  assert.doesNotMatch(
    keyTypeRefusal('ssh-ed25519', 'PubkeyAcceptedAlgorithms', v10, 'e').message,
    /removed DSA|off by default/,
  );
  assert.match(
    keyTypeRefusal('ssh-dss', 'PubkeyAcceptedAlgorithms', null, 'n').message,
    /^sshd does not accept ssh-dss keys \(DSA keys are off by default/,
  );
});

test('keyTypeAccepted: RSA keys by any RSA algorithm, DSA only when listed', () => {
  const modern = ['ssh-ed25519', 'rsa-sha2-512', 'rsa-sha2-256', 'ecdsa-sha2-nistp256'];
  assert.equal(keyTypeAccepted('ssh-rsa', modern), true);
  assert.equal(keyTypeAccepted('ssh-dss', modern), false);
  assert.equal(keyTypeAccepted('ssh-dss', [...modern, 'ssh-dss']), true);
  // OpenSSH 10.0's sshd -T list (Debian 13): no DSA, RSA through rsa-sha2-* only.
  const v10 =
    'ssh-ed25519-cert-v01@openssh.com,ecdsa-sha2-nistp256-cert-v01@openssh.com,rsa-sha2-512-cert-v01@openssh.com,' +
    'rsa-sha2-256-cert-v01@openssh.com,ssh-ed25519,ecdsa-sha2-nistp256,sk-ssh-ed25519@openssh.com,rsa-sha2-512,rsa-sha2-256';
  assert.equal(keyTypeAccepted('ssh-rsa', v10.split(',')), true);
  assert.equal(keyTypeAccepted('ssh-rsa-cert-v01@openssh.com', v10.split(',')), true);
  assert.equal(keyTypeAccepted('ssh-dss', v10.split(',')), false);
});

test('Match blocks that turn passwords on are found in included files too', async () => {
  const files: Record<string, string> = {
    '/etc/ssh/sshd_config':
      'Include /etc/ssh/sshd_config.d/*.conf\nPasswordAuthentication no\nMatch User a\n  X11Forwarding no\n',
    '/etc/ssh/sshd_config.d/10-a.conf':
      'Match Group admins\n  KbdInteractiveAuthentication yes\nMatch all\nPasswordAuthentication yes\n',
  };
  const found = await findMatchPasswordSettings(
    '/etc/ssh/sshd_config',
    (p) => Promise.resolve(files[p]),
    () => Promise.resolve(['10-a.conf', '.hidden.conf']),
  );
  assert.deepEqual(
    found.map((f) => [f.file, f.lineNo, f.match]),
    [['/etc/ssh/sshd_config.d/10-a.conf', 2, 'Match Group admins']],
  );
});

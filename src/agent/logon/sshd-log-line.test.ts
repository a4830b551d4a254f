import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { ed25519PublicKeyLine } from '../../keypairs/openssh-private-key.js';
import {
  MAX_SSHD_LOG_LINE_BYTES,
  parseAcceptedPublicKey,
  parseJournalEntry,
  parseSshdFileLine,
  sha256Fingerprint,
} from './sshd-log-line.js';

const FP = 'X2S5HoixTrP/OXrfwqfKLLJuBCV5nPyWH/eLe+Q0IaQ';
const FP2 = 'nThbg6kXUpJWGl7E1IGOCspRomTxdCARLviKw6E5SY8';

/** What `sshd -E FILE` of OpenSSH 9.2p1 (Debian 12) wrote for one key logon, verbatim. */
const OPENSSH_92_E_FILE = [
  'Server listening on 127.0.0.1 port 22991.',
  'Connection from 127.0.0.1 port 37980 on 127.0.0.1 port 22991 rdomain ""',
  `Accepted key ED25519 SHA256:${FP} found at /tmp/sx/ak:1`,
  'Postponed publickey for root from 127.0.0.1 port 37980 ssh2 [preauth]',
  `Accepted key ED25519 SHA256:${FP} found at /tmp/sx/ak:1`,
  `Accepted publickey for root from 127.0.0.1 port 37980 ssh2: ED25519 SHA256:${FP}`,
  'Starting session: command for root from 127.0.0.1 port 37980 id 0',
  'Close session: user root from 127.0.0.1 port 37980 id 0',
  'Received disconnect from 127.0.0.1 port 37980:11: disconnected by user',
  'Disconnected from user root 127.0.0.1 port 37980',
];

test('of a real OpenSSH 9.2 sshd -E log, only the Accepted publickey line is a logon', () => {
  const found = OPENSSH_92_E_FILE.map(parseSshdFileLine).filter((e) => e !== null);
  assert.deepEqual(found, [
    {
      logon: { user: 'root', address: '127.0.0.1', port: 37980, keyType: 'ED25519', fingerprint: FP },
    },
  ]);
});

test('auth log lines: the traditional and the RFC 3339 syslog prefixes, sshd and sshd-session tags', () => {
  const cases: [string, string, string, number, string][] = [
    // rsyslog on Debian 12 (RFC 3339, high precision), OpenSSH 9.2p1.
    [
      `2026-12-06T02:04:25.123456+00:00 web-1 sshd[4242]: Accepted publickey for kwuser from 192.0.2.7 port 51234 ssh2: ED25519 SHA256:${FP}`,
      'kwuser',
      '192.0.2.7',
      51234,
      'ED25519',
    ],
    // Traditional syslog format (Ubuntu 20.04, OpenSSH 8.2p1): two spaces before a one-digit day.
    [
      `Dec  6 02:04:25 web-1 sshd[901]: Accepted publickey for ubuntu from 203.0.113.5 port 50212 ssh2: RSA SHA256:${FP2}`,
      'ubuntu',
      '203.0.113.5',
      50212,
      'RSA',
    ],
    // RHEL 8 /var/log/secure (OpenSSH 8.0p1), IPv6 client.
    [
      `Mar 14 09:26:53 db-2 sshd[31337]: Accepted publickey for ec2-user from 2001:db8::1 port 60022 ssh2: ECDSA SHA256:${FP}`,
      'ec2-user',
      '2001:db8::1',
      60022,
      'ECDSA',
    ],
    // OpenSSH 9.8+: the session program logs it.
    [
      `2026-01-02T03:04:05.000000+00:00 h sshd-session[77]: Accepted publickey for root from 10.0.0.9 port 2200 ssh2: ED25519 SHA256:${FP}`,
      'root',
      '10.0.0.9',
      2200,
      'ED25519',
    ],
    // A certificate: details follow the fingerprint.
    [
      `Jan  2 03:04:05 h sshd[8]: Accepted publickey for alice from 10.0.0.1 port 4242 ssh2: ED25519-CERT SHA256:${FP} ID alice@example (serial 7) CA ED25519 SHA256:${FP2}`,
      'alice',
      '10.0.0.1',
      4242,
      'ED25519-CERT',
    ],
  ];
  for (const [line, user, address, port, keyType] of cases) {
    const e = parseSshdFileLine(line);
    assert.ok(e !== null, line);
    assert.equal(e.logon.user, user);
    assert.equal(e.logon.address, address);
    assert.equal(e.logon.port, port);
    assert.equal(e.logon.keyType, keyType);
    assert.equal(e.logon.fingerprint, keyType === 'RSA' ? FP2 : FP);
  }
  // CRLF endings are tolerated.
  assert.ok(parseSshdFileLine(`${OPENSSH_92_E_FILE[5] ?? ''}\r`) !== null);
});

test('lines that are not sshd accepting a key are not logons, forged ones included', () => {
  const accepted = `Accepted publickey for root from 192.0.2.1 port 22 ssh2: ED25519 SHA256:${FP}`;
  const lines = [
    // A user name chosen by an unauthenticated client, holding the whole text of an accepted line.
    `Dec  6 02:04:25 web-1 sshd[1]: Invalid user ${accepted} from 198.51.100.1 port 4000`,
    `Invalid user ${accepted}`,
    `Connection closed by invalid user x ${accepted} [preauth]`,
    // Another program's tag.
    `Dec  6 02:04:25 web-1 logger[5]: ${accepted}`,
    `Dec  6 02:04:25 web-1 not-sshd[5]: ${accepted}`,
    // Other outcomes.
    `Partial publickey for root from 192.0.2.1 port 22 ssh2: ED25519 SHA256:${FP}`,
    'Postponed publickey for root from 192.0.2.1 port 22 ssh2 [preauth]',
    'Accepted password for root from 192.0.2.1 port 22 ssh2',
    `Failed publickey for root from 192.0.2.1 port 22 ssh2: ED25519 SHA256:${FP}`,
    // OpenSSH before 6.8 printed MD5 fingerprints.
    'Accepted publickey for root from 192.0.2.1 port 22 ssh2: RSA 3f:4e:5d:6c:7b:8a:99:00:11:22:33:44:55:66:77:88',
    // Malformed fields.
    `Accepted publickey for root from not-an-address port 22 ssh2: ED25519 SHA256:${FP}`,
    `Accepted publickey for root from UNKNOWN port 65535 ssh2: ED25519 SHA256:${FP}`,
    `Accepted publickey for root from 192.0.2.1 port 0 ssh2: ED25519 SHA256:${FP}`,
    `Accepted publickey for root from 192.0.2.1 port 70000 ssh2: ED25519 SHA256:${FP}`,
    `Accepted publickey for Root/../x from 192.0.2.1 port 22 ssh2: ED25519 SHA256:${FP}`,
    `Accepted publickey for root from 192.0.2.1 port 22 ssh2: ED25519 SHA256:${FP.slice(0, 40)}`,
    `Accepted publickey for root from 192.0.2.1 port 22 ssh2: ED25519 SHA256:${FP}x`,
    `${accepted}${' '.repeat(MAX_SSHD_LOG_LINE_BYTES)}`,
    '',
  ];
  for (const line of lines) assert.equal(parseSshdFileLine(line), null, line.slice(0, 120));
  assert.equal(parseAcceptedPublicKey(` ${accepted}`), null, 'the message must start with it');
});

/** A `journalctl -o json --output-fields=MESSAGE,_UID,_COMM` entry as journald 252 prints it. */
function journal(fields: Record<string, unknown>): string {
  return JSON.stringify({
    __CURSOR: 's=0f1e;i=4d2;b=9a;m=1a2b;t=5f0;x=77',
    __REALTIME_TIMESTAMP: '1796522665123456',
    __MONOTONIC_TIMESTAMP: '8123456789',
    _BOOT_ID: '9a9a9a9a9a9a9a9a9a9a9a9a9a9a9a9a',
    _UID: '0',
    _COMM: 'sshd',
    MESSAGE: `Accepted publickey for kwuser from 192.0.2.7 port 51234 ssh2: ED25519 SHA256:${FP}`,
    ...fields,
  });
}

test('journald entries: MESSAGE as text or as a byte array, with the entry time', () => {
  const e = parseJournalEntry(journal({}));
  assert.deepEqual(e, {
    logon: { user: 'kwuser', address: '192.0.2.7', port: 51234, keyType: 'ED25519', fingerprint: FP },
    atMs: 1_796_522_665_123,
  });
  // journald prints a value that is not valid UTF-8 (or holds control characters) as its bytes.
  const bytes = [
    ...Buffer.from(`Accepted publickey for kwuser from 192.0.2.7 port 51234 ssh2: ED25519 SHA256:${FP} `),
    0xff,
  ];
  assert.equal(parseJournalEntry(journal({ MESSAGE: bytes }))?.logon.fingerprint, FP);
  assert.equal(parseJournalEntry(journal({ _COMM: 'sshd-session' }))?.logon.user, 'kwuser');
  assert.equal(parseJournalEntry(journal({ __REALTIME_TIMESTAMP: 'soon' }))?.atMs, undefined);
});

test('journald entries not written by sshd as root, or malformed, are not logons', () => {
  const bad = [
    journal({ _UID: '1000' }),
    journal({ _UID: undefined }),
    journal({ _COMM: 'logger' }),
    journal({ _COMM: undefined }),
    journal({ MESSAGE: [65, 300] }),
    journal({ MESSAGE: ['Accepted', 'twice'] }),
    journal({ MESSAGE: 42 }),
    journal({
      MESSAGE: `Invalid user Accepted publickey for kwuser from 192.0.2.7 port 1 ssh2: ED25519 SHA256:${FP}`,
    }),
    '{"MESSAGE": "Accepted publickey',
    '[]',
    'null',
    journal({ PADDING: 'x'.repeat(MAX_SSHD_LOG_LINE_BYTES) }),
  ];
  for (const line of bad) assert.equal(parseJournalEntry(line), null, line.slice(0, 160));
});

test('the SHA256 fingerprint of a key is the one ssh-keygen -l prints', () => {
  const dir = mkdtempSync(join(tmpdir(), 'kw-fp-'));
  try {
    for (let i = 0; i < 3; i++) {
      const line = ed25519PublicKeyLine(generateKeyPairSync('ed25519').privateKey);
      const file = join(dir, `k${i}.pub`);
      writeFileSync(file, `${line} comment\n`);
      const printed = execFileSync('/usr/bin/ssh-keygen', ['-l', '-E', 'sha256', '-f', file], {
        encoding: 'utf8',
      });
      assert.equal(`SHA256:${sha256Fingerprint(line)}`, printed.split(' ')[1]);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  assert.throws(() => sha256Fingerprint('ssh-ed25519'), TypeError);
});

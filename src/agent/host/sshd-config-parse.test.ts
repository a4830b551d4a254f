import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parsePasswdLine } from './os-account.js';
import {
  DROP_IN_CONTENT,
  DROP_IN_HEADER,
  findDropInInclude,
  findEarlierSetting,
  globMatch,
  isOurDropIn,
  parseSshdDump,
} from './sshd-config-parse.js';

test('the drop-in directory is found from the first top-level Include whose glob takes our file name', () => {
  const table: [string, string | null][] = [
    ['Include /etc/ssh/sshd_config.d/*.conf\nUsePAM yes\n', '/etc/ssh/sshd_config.d'],
    ['  include sshd_config.d/*.conf\n', '/etc/ssh/sshd_config.d'],
    ['Include=/opt/ssh/d/*.conf\n', '/opt/ssh/d'],
    ['Include = "/etc/ssh/my dir/*"\n', '/etc/ssh/my dir'],
    ['Include /etc/ssh/extra.conf /etc/ssh/d/0*\n', '/etc/ssh/d'],
    ['Include /etc/ssh/a/*.cfg\nInclude /etc/ssh/b/*.conf\n', '/etc/ssh/b'],
    ['Include /etc/ssh/d/*.cfg\n', null],
    ['Include /etc/*/d/*.conf\n', null],
    ['Include /etc/ssh/one.conf\n', null],
    ['#Include /etc/ssh/sshd_config.d/*.conf\n', null],
    ['Match User git\n  Include /etc/ssh/sshd_config.d/*.conf\n', null],
    ['Port 22\r\nInclude /etc/ssh/sshd_config.d/*.conf\r\n', '/etc/ssh/sshd_config.d'],
    ['', null],
  ];
  for (const [text, dir] of table)
    assert.equal(findDropInInclude(text)?.dir ?? null, dir, JSON.stringify(text));
  assert.equal(findDropInInclude('Port 22\nInclude /d/*.conf\n')?.lineNo, 2);
});

test('glob patterns follow glob(7): wildcards, classes, and no match for a leading dot', () => {
  const table: [string, string, boolean][] = [
    ['*.conf', '00-keyward.conf', true],
    ['*.conf', '.00-keyward.conf.keyward-0123456789abcdef.tmp', false],
    ['*', '.hidden', false],
    ['0?-*.conf', '00-keyward.conf', true],
    ['[0-9]*.conf', '00-keyward.conf', true],
    ['[!0]*', '00-keyward.conf', false],
    ['*.conf', '00-keyward.conf.bak', false],
    ['a.b', 'axb', false],
  ];
  for (const [pattern, name, match] of table)
    assert.equal(globMatch(pattern, name), match, `${pattern} ${name}`);
});

test('the line that sets a keyword before the drop-in is found in the main file or an earlier drop-in', () => {
  const include = { dir: '/d', pattern: '*.conf', lineNo: 3 };
  const main = (text: string): { file: string; text: string } => ({ file: '/main', text });
  assert.deepEqual(
    findEarlierSetting(
      'passwordauthentication',
      main('# x\nPasswordAuthentication yes\nInclude /d/*.conf\n'),
      include,
      [],
    ),
    { file: '/main', lineNo: 2, text: 'PasswordAuthentication yes' },
  );
  assert.equal(
    findEarlierSetting(
      'passwordauthentication',
      main('# x\n\nInclude /d/*.conf\nPasswordAuthentication yes\n'),
      include,
      [],
    ),
    null,
  );
  const dropIns = [
    { name: '50-cloud-init.conf', text: 'PasswordAuthentication yes\n' },
    { name: '0-first.conf', text: 'X11Forwarding no\npasswordauthentication=yes\n' },
  ];
  assert.deepEqual(findEarlierSetting('passwordauthentication', main(''), include, dropIns), {
    file: '/d/0-first.conf',
    lineNo: 2,
    text: 'passwordauthentication=yes',
  });
});

test('sshd -T output is read as lower-case keywords with every value in order', () => {
  const dump = parseSshdDump('port 22\nport 2222\nhostkey /etc/ssh/a\nPasswordAuthentication no\n\n');
  assert.deepEqual(dump.get('port'), ['22', '2222']);
  assert.deepEqual(dump.get('passwordauthentication'), ['no']);
  assert.equal(dump.get('missing'), undefined);
});

test('a drop-in is ours only when its first line is our header', () => {
  assert.equal(isOurDropIn(DROP_IN_CONTENT), true);
  assert.equal(isOurDropIn(Buffer.from(`${DROP_IN_HEADER}\r\nPasswordAuthentication no\r\n`)), true);
  assert.equal(isOurDropIn(Buffer.from(`# other\n${DROP_IN_HEADER}\n`)), false);
  assert.equal(isOurDropIn(Buffer.from('')), false);
});

test('passwd lines give uid, gid and an absolute home, or nothing', () => {
  assert.deepEqual(parsePasswdLine('kw:x:1001:1002:KW:/home/kw:/bin/sh\n', 'kw'), {
    name: 'kw',
    uid: 1001,
    gid: 1002,
    home: '/home/kw',
  });
  for (const line of [
    'kw:x:1001:1002::home/kw:/bin/sh',
    'kw:x:-1:1002::/h:/bin/sh',
    'other:x:1:1::/h:/bin/sh',
    'kw:x:1:1',
  ]) {
    assert.equal(parsePasswdLine(line, 'kw'), null, line);
  }
});

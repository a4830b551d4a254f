import assert from 'node:assert/strict';
import { test } from 'node:test';
import { BEGIN_MARKER, END_MARKER, renderBlock, withBlock, withoutBlock } from './ssh-config-file.js';

const block = renderBlock('*.keyward', [['ProxyCommand', 'keyward proxy %r %h %p']]);

test('the block goes first, is replaced in place, and its removal gives back the bytes that were there', () => {
  for (const original of [
    '',
    'Host a\n  User b\n',
    'ServerAliveInterval 5\r\nHost *\n  ForwardAgent no',
    '\n\n',
  ]) {
    const installed = withBlock(original, block);
    assert.equal(installed, block + original);
    assert.equal(withBlock(installed, block), installed);
    assert.equal(withoutBlock(installed), original);
    const other = renderBlock('prod-*', [['ProxyCommand', 'x']]);
    assert.equal(withBlock(installed, other), other + original);
  }
  // A block the user moved further down stays where it is.
  const moved = `Host a\n  User b\n${block}Host c\n`;
  assert.equal(withBlock(moved, block), moved);
  assert.equal(withoutBlock(moved), 'Host a\n  User b\nHost c\n');
  assert.ok(block.startsWith(`${BEGIN_MARKER}\nHost *.keyward\n`));
  assert.ok(block.endsWith(`Host *\n${END_MARKER}\n`));
});

test('broken markers are refused, never guessed', () => {
  for (const text of [`${BEGIN_MARKER}\nHost x\n`, `${END_MARKER}\n`, block + block]) {
    assert.throws(() => withoutBlock(text), { code: 'SshConfig.BrokenMarkers' });
    assert.throws(() => withBlock(text, block), { code: 'SshConfig.BrokenMarkers' });
  }
});

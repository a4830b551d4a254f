import assert from 'node:assert/strict';
import {
  appendFileSync,
  mkdtempSync,
  readFileSync,
  renameSync,
  rmSync,
  truncateSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { pino } from 'pino';
import { FileFollower, JournalFollower, LineSplitter } from './sshd-log-follower.js';

const logger = pino({ level: 'silent' });

/** A follower on `path` polled by hand (its own timer is far away), collecting lines. */
async function follow(path: string): Promise<{ follower: FileFollower; lines: string[] }> {
  const lines: string[] = [];
  const follower = new FileFollower({
    path,
    logger,
    pollIntervalMs: 3_600_000,
    onLine: (line) => lines.push(line),
  });
  await follower.start();
  return { follower, lines };
}

test('a file is followed from its end, across a rotation (rename and a new file) and a truncation', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'kw-follow-'));
  const path = join(dir, 'auth.log');
  writeFileSync(path, 'old 1\nold 2\n');
  const { follower, lines } = await follow(path);
  try {
    await follower.poll();
    assert.deepEqual(lines, [], 'what was there before the start is history');

    appendFileSync(path, 'one\ntw');
    await follower.poll();
    assert.deepEqual(lines, ['one'], 'an unfinished line waits for its newline');
    appendFileSync(path, 'o\n');
    await follower.poll();
    assert.deepEqual(lines, ['one', 'two']);

    // Rotation: the last lines of the old file, written just before the rename, are still read.
    appendFileSync(path, 'last of old\n');
    renameSync(path, `${path}.1`);
    writeFileSync(path, 'first of new\n');
    await follower.poll();
    assert.deepEqual(lines.slice(2), ['last of old', 'first of new']);
    appendFileSync(`${path}.1`, 'late write to the rotated file is not followed\n');
    appendFileSync(path, 'second of new\n');
    await follower.poll();
    assert.deepEqual(lines.slice(4), ['second of new']);

    // Truncation in place (copytruncate): read again from the start.
    truncateSync(path, 0);
    await follower.poll();
    appendFileSync(path, 'after truncate\n');
    await follower.poll();
    assert.deepEqual(lines.slice(5), ['after truncate']);

    // Truncated and written past the old position again before the next poll: the bytes before the
    // position differ, so the file is read again from its start.
    truncateSync(path, 0);
    appendFileSync(path, 'a longer line written after a truncation the poll did not see\n');
    await follower.poll();
    assert.deepEqual(lines.slice(6), ['a longer line written after a truncation the poll did not see']);

    // Removed, then created again later.
    rmSync(path);
    await follower.poll();
    writeFileSync(path, 'recreated\n');
    await follower.poll();
    assert.deepEqual(lines.slice(7), ['recreated']);
  } finally {
    follower.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a file that is not there at start is read from its start once it appears', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'kw-follow-'));
  const path = join(dir, 'sshd.log');
  const { follower, lines } = await follow(path);
  try {
    await follower.poll();
    writeFileSync(path, 'a\nb\n');
    await follower.poll();
    assert.deepEqual(lines, ['a', 'b']);
  } finally {
    follower.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a line longer than the bound is dropped whole; the lines around it are kept', () => {
  const lines: string[] = [];
  const split = new LineSplitter((l) => lines.push(l), 8);
  split.push(Buffer.from('short\n0123'));
  split.push(Buffer.from('45678901234'));
  split.push(Buffer.from('5678\nnext\n'));
  split.push(Buffer.from('12345678\n123456789\nok\n'));
  assert.deepEqual(lines, ['short', 'next', '12345678', 'ok']);
});

test('journalctl is asked for sshd units from now on as JSON, and started again when it exits', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'kw-journal-'));
  // A stand-in journalctl: records its arguments, prints one entry per run, then exits.
  const fake = join(dir, 'journalctl');
  const argsFile = join(dir, 'args');
  writeFileSync(
    fake,
    `#!/bin/sh\nprintf '%s\\n' "$@" > ${argsFile}\necho '{"MESSAGE":"run","_UID":"0","_COMM":"sshd"}'\n`,
    { mode: 0o755 },
  );
  const lines: string[] = [];
  const follower = new JournalFollower({
    units: ['ssh.service', 'sshd.service'],
    journalctl: fake,
    logger,
    onLine: (line) => lines.push(line),
  });
  try {
    await follower.start();
    const deadline = Date.now() + 30_000;
    while (lines.length < 2) {
      if (Date.now() > deadline) throw new Error(`journalctl was not started again: ${lines.join('\n')}`);
      await sleep(50);
    }
    assert.deepEqual(lines.slice(0, 2), [
      '{"MESSAGE":"run","_UID":"0","_COMM":"sshd"}',
      '{"MESSAGE":"run","_UID":"0","_COMM":"sshd"}',
    ]);
    assert.deepEqual(readFileSync(argsFile, 'utf8').trim().split('\n'), [
      '--follow',
      '--output=json',
      '--lines=0',
      '--no-pager',
      '--output-fields=MESSAGE,_UID,_COMM',
      '--unit',
      'ssh.service',
      '--unit',
      'sshd.service',
    ]);
  } finally {
    follower.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { AsciicastRecorder, Utf8Chunks } from './asciicast-recorder.js';

let dir = '';
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'keyward-cast-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

const header = { width: 80, height: 24, timestamp: 1_700_000_000, env: { TERM: 'xterm-256color' } };

/** A clock that moves 250 ms at each reading. */
function steppingClock(): () => number {
  let t = 0;
  return () => (t += 250);
}

function lines(text: string): unknown[] {
  return text
    .trimEnd()
    .split('\n')
    .map((l) => JSON.parse(l) as unknown);
}

test('writes an asciicast v2 header and events; a UTF-8 character split across chunks stays one character', async () => {
  const path = join(dir, 'split.cast');
  const r = new AsciicastRecorder({ path, header, maxBytes: 1 << 20, monotonicMs: steppingClock() });
  const text = Buffer.from('héllo ✓ 🚀\r\n', 'utf8');
  // Split inside "é" (2 bytes), inside "✓" (3 bytes) and inside the rocket (4 bytes).
  const cuts = [2, 8, 13, text.length];
  let from = 0;
  for (const cut of cuts) {
    assert.equal(r.output(text.subarray(from, cut)), true);
    from = cut;
  }
  r.resize(120, 40);
  r.input(Buffer.from('ls\r'));
  const s = await r.finish();
  assert.equal(s.state, 'complete');
  const file = await readFile(path);
  assert.equal(s.bytes, file.length);
  assert.equal(s.sha256, createHash('sha256').update(file).digest('hex'));
  assert.equal((await stat(path)).mode & 0o777, 0o600);
  const [head, ...events] = lines(file.toString('utf8')) as [Record<string, unknown>, ...unknown[][]];
  assert.deepEqual(head, { version: 2, ...header });
  const output = events.filter((e) => e[1] === 'o').map((e) => e[2] as string);
  assert.equal(output.join(''), 'héllo ✓ 🚀\r\n');
  assert.ok(!output.join('').includes('\uFFFD'));
  assert.deepEqual(
    events.find((e) => e[1] === 'r'),
    [events.find((e) => e[1] === 'r')?.[0], 'r', '120x40'],
  );
  assert.ok(events.some((e) => e[1] === 'i' && e[2] === 'ls\r'));
  // Times are seconds since the start and never go backwards.
  const times = events.map((e) => e[0] as number);
  assert.deepEqual(
    [...times].sort((a, b) => a - b),
    times,
  );
  assert.ok(times.every((t) => t > 0));
});

test('an event that would pass the size limit is refused and nothing after it is written', async () => {
  const path = join(dir, 'limit.cast');
  const r = new AsciicastRecorder({ path, header, maxBytes: 400, monotonicMs: steppingClock() });
  assert.equal(r.output(Buffer.from('a'.repeat(100))), true);
  assert.equal(r.output(Buffer.from('b'.repeat(300))), false);
  r.truncate();
  assert.equal(r.state, 'truncated');
  assert.equal(r.output(Buffer.from('c')), false);
  const s = await r.finish();
  assert.equal(s.state, 'truncated');
  const file = await readFile(path);
  assert.ok(file.length <= 400);
  assert.equal(s.sha256, createHash('sha256').update(file).digest('hex'));
  assert.ok(!file.toString().includes('b'));
});

test('a recording whose file cannot be created fails once and reports it', async () => {
  const failures: Error[] = [];
  const r = new AsciicastRecorder({
    path: join(dir, 'no-such-dir', 'x.cast'),
    header,
    maxBytes: 1 << 20,
    onFailure: (err) => failures.push(err),
  });
  r.output(Buffer.from('lost'));
  const s = await r.finish();
  assert.equal(s.state, 'failed');
  assert.equal(s.bytes, 0);
  assert.equal(failures.length, 1);
  assert.equal((failures[0] as NodeJS.ErrnoException).code, 'ENOENT');
});

test('streaming UTF-8 decoding: text cut anywhere decodes as the whole; invalid and unfinished bytes become U+FFFD', () => {
  const text = 'a é € 𝄞 ✓ zh 中文 😀 end';
  const bytes = Buffer.from(text, 'utf8');
  for (let cut1 = 0; cut1 <= bytes.length; cut1++) {
    for (let cut2 = cut1; cut2 <= bytes.length; cut2 += 3) {
      const d = new Utf8Chunks();
      const out =
        d.decode(bytes.subarray(0, cut1)) +
        d.decode(bytes.subarray(cut1, cut2)) +
        d.decode(bytes.subarray(cut2)) +
        d.end();
      assert.equal(out, text, `cut at ${String(cut1)} and ${String(cut2)}`);
    }
  }
  const d = new Utf8Chunks();
  // A lone continuation byte, a lead byte followed by ASCII, and a sequence the stream ends in.
  assert.equal(d.decode(Buffer.from([0x61, 0x80, 0x62])), 'a\ufffdb');
  assert.equal(d.decode(Buffer.from([0xe2, 0x82])), '');
  assert.equal(d.decode(Buffer.from([0x41])), '\ufffdA');
  assert.equal(d.decode(Buffer.from([0xf0, 0x9f, 0x98])), '');
  assert.equal(d.end(), '\ufffd');
  assert.equal(d.end(), '');
});

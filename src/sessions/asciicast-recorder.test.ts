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

/** A clock the test moves by hand. */
function handClock(): { now: () => number; advance: (ms: number) => void } {
  let t = 1_000;
  return {
    now: () => t,
    advance: (ms) => {
      t += ms;
    },
  };
}

test('output within 20 ms of the first pending chunk is one event with its time; input, resize and the end close it in order', async () => {
  const path = join(dir, 'coalesce.cast');
  const clock = handClock();
  const r = new AsciicastRecorder({ path, header, maxBytes: 1 << 20, monotonicMs: clock.now });
  clock.advance(500);
  r.output(Buffer.from('one '));
  clock.advance(10);
  // A character split across two chunks of one event, and one split across two events.
  const e = Buffer.from('é✓', 'utf8');
  r.output(e.subarray(0, 1), 'stdout');
  clock.advance(10);
  r.output(e.subarray(1, 3));
  clock.advance(15);
  r.output(e.subarray(3));
  clock.advance(1);
  r.input(Buffer.from('q'));
  r.output(Buffer.from('after input'));
  r.resize(100, 30);
  clock.advance(30);
  r.output(Buffer.from('after resize '));
  clock.advance(21);
  r.output(Buffer.from('late'));
  clock.advance(5);
  r.output(Buffer.from(' and the end'));
  const s = await r.finish();
  const file = await readFile(path);
  assert.equal(s.sha256, createHash('sha256').update(file).digest('hex'));
  const [, ...events] = lines(file.toString('utf8')) as [unknown, ...unknown[][]];
  assert.deepEqual(events, [
    [0.5, 'o', 'one é'],
    [0.535, 'o', '✓'],
    [0.536, 'i', 'q'],
    [0.536, 'o', 'after input'],
    [0.536, 'r', '100x30'],
    [0.566, 'o', 'after resize '],
    [0.587, 'o', 'late and the end'],
  ]);
});

test('a chunk of 16 KiB or more is an event of its own, after the pending output; an event gathers at most 64 KiB', async () => {
  const path = join(dir, 'big.cast');
  const clock = handClock();
  const r = new AsciicastRecorder({ path, header, maxBytes: 1 << 22, monotonicMs: clock.now });
  r.output(Buffer.from('small'));
  r.output(Buffer.alloc(16 * 1024, 'b'));
  for (let i = 0; i < 20; i++) r.output(Buffer.alloc(4 * 1024, 'c'));
  await r.finish();
  const [, ...events] = lines((await readFile(path)).toString('utf8')) as [unknown, ...unknown[][]];
  assert.deepEqual(
    events.map((e) => (e[2] as string).length),
    [5, 16 * 1024, 64 * 1024, 16 * 1024],
  );
  assert.equal(events.map((e) => e[2]).join(''), `small${'b'.repeat(16 * 1024)}${'c'.repeat(80 * 1024)}`);
});

test('pending output is written by flushed() and by finish() without waiting for the next write', async () => {
  const path = join(dir, 'flush.cast');
  const r = new AsciicastRecorder({ path, header, maxBytes: 1 << 20, monotonicMs: handClock().now });
  r.output(Buffer.from('shown'));
  await r.flushed();
  assert.ok((await readFile(path, 'utf8')).includes('"shown"'));
  r.output(Buffer.from(' last'));
  const s = await r.finish();
  const file = await readFile(path, 'utf8');
  assert.ok(file.endsWith('" last"]\n'));
  assert.equal(s.bytes, Buffer.byteLength(file));
});

test('the size limit is exact with coalescing: a chunk is refused only when its event would pass the limit', async () => {
  // Text with escapes (control characters, quotes), multi-byte characters and an invalid byte.
  const pieces = ['ab"\\\x1b[0m', '\r\n\t é', ' ✓ 🚀 ', '\ufffd', 'plain text'];
  for (let maxBytes = 150; maxBytes < 700; maxBytes += 7) {
    const path = join(dir, `exact-${String(maxBytes)}.cast`);
    const clock = handClock();
    const r = new AsciicastRecorder({ path, header, maxBytes, monotonicMs: clock.now });
    let refused: { text: string; ms: number } | undefined;
    for (let i = 0; i < 60 && refused === undefined; i++) {
      const text = pieces[i % pieces.length] as string;
      const chunk = text === '\ufffd' ? Buffer.from([0xff]) : Buffer.from(text, 'utf8');
      if (!r.output(chunk)) refused = { text, ms: clock.now() - 1_000 };
      clock.advance(3);
    }
    assert.ok(refused !== undefined);
    r.truncate();
    const s = await r.finish();
    const file = await readFile(path);
    assert.equal(s.bytes, file.length);
    assert.ok(file.length <= maxBytes, `${String(file.length)} > ${String(maxBytes)}`);
    const last = (lines(file.toString('utf8')).slice(1) as unknown[][]).at(-1) as [number, string, string];
    const joins = last[1] === 'o' && refused.ms - last[0] * 1000 <= 20;
    const json = (t: string): number => Buffer.byteLength(JSON.stringify(t));
    const needed = joins
      ? file.length - json(last[2]) + json(last[2] + refused.text)
      : file.length + Buffer.byteLength(`[${(refused.ms / 1000).toFixed(6)}, "o", ]\n`) + json(refused.text);
    assert.ok(needed > maxBytes, `limit ${String(maxBytes)}: the refused chunk needed ${String(needed)}`);
  }
});

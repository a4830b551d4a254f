import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ReadPriority } from './read-priority.js';

/** A task that runs until `finish()` is called, recording when it started. */
function task(log: string[], name: string): { run: () => Promise<string>; finish: () => void } {
  let finish: () => void = () => undefined;
  const done = new Promise<void>((resolve) => {
    finish = resolve;
  });
  return {
    run: async () => {
      log.push(`start ${name}`);
      await done;
      log.push(`end ${name}`);
      return name;
    },
    finish: () => {
      finish();
    },
  };
}

/** Lets every pending continuation run. */
const settle = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

test('with no read in flight, writes start at once, together', async () => {
  const gate = new ReadPriority();
  const log: string[] = [];
  const w1 = task(log, 'w1');
  const w2 = task(log, 'w2');
  const p1 = gate.write(w1.run);
  const p2 = gate.write(w2.run);
  await settle();
  assert.deepEqual(log, ['start w1', 'start w2']);
  w1.finish();
  w2.finish();
  assert.deepEqual(await Promise.all([p1, p2]), ['w1', 'w2']);
  assert.deepEqual(gate.state, { readsInFlight: 0, writesHolding: 0, writesWaiting: 0 });
});

test('while a read is in flight, writes start one at a time, in arrival order', async () => {
  const gate = new ReadPriority({ turnMs: 60_000 });
  const log: string[] = [];
  const r = task(log, 'r');
  const [w1, w2, w3] = [task(log, 'w1'), task(log, 'w2'), task(log, 'w3')];
  const read = gate.read(r.run);
  const writes = [gate.write(w1.run), gate.write(w2.run), gate.write(w3.run)];
  await settle();
  assert.deepEqual(log, ['start r', 'start w1']);
  assert.deepEqual(gate.state, { readsInFlight: 1, writesHolding: 1, writesWaiting: 2 });
  w1.finish();
  await settle();
  assert.deepEqual(log, ['start r', 'start w1', 'end w1', 'start w2']);
  // The read ends: every write still waiting starts.
  r.finish();
  await settle();
  assert.deepEqual(log.slice(4), ['end r', 'start w3']);
  w2.finish();
  w3.finish();
  assert.deepEqual(await Promise.all([read, ...writes]), ['r', 'w1', 'w2', 'w3']);
  assert.deepEqual(gate.state, { readsInFlight: 0, writesHolding: 0, writesWaiting: 0 });
});

test('reads never wait for writes', async () => {
  const gate = new ReadPriority({ turnMs: 60_000 });
  const log: string[] = [];
  const w = task(log, 'w');
  const write = gate.write(w.run);
  const [r1, r2] = [task(log, 'r1'), task(log, 'r2')];
  const reads = [gate.read(r1.run), gate.read(r2.run)];
  await settle();
  assert.deepEqual(log, ['start w', 'start r1', 'start r2']);
  r1.finish();
  r2.finish();
  w.finish();
  assert.deepEqual(await Promise.all([write, ...reads]), ['w', 'r1', 'r2']);
});

test('a write that holds its turn past turnMs lets the next one start', async () => {
  const gate = new ReadPriority({ turnMs: 20 });
  const log: string[] = [];
  const r = task(log, 'r');
  const [slow, next] = [task(log, 'slow'), task(log, 'next')];
  const read = gate.read(r.run);
  const writes = [gate.write(slow.run), gate.write(next.run)];
  await settle();
  assert.deepEqual(log, ['start r', 'start slow']);
  await new Promise((resolve) => setTimeout(resolve, 60));
  assert.deepEqual(log, ['start r', 'start slow', 'start next']);
  slow.finish();
  next.finish();
  r.finish();
  await Promise.all([read, ...writes]);
  assert.deepEqual(gate.state, { readsInFlight: 0, writesHolding: 0, writesWaiting: 0 });
});

test('a failing action releases its turn and its error reaches the caller', async () => {
  const gate = new ReadPriority({ turnMs: 60_000 });
  const log: string[] = [];
  const r = task(log, 'r');
  const read = gate.read(r.run);
  const failing = gate.write(() => Promise.reject(new Error('refused')));
  const w = task(log, 'w');
  const after = gate.write(w.run);
  await assert.rejects(failing, /refused/);
  await settle();
  assert.deepEqual(log, ['start r', 'start w']);
  await assert.rejects(
    gate.read(() => Promise.reject(new Error('read failed'))),
    /read failed/,
  );
  w.finish();
  r.finish();
  assert.deepEqual(await Promise.all([read, after]), ['r', 'w']);
  assert.deepEqual(gate.state, { readsInFlight: 0, writesHolding: 0, writesWaiting: 0 });
});

test('turnMs must be a positive number', () => {
  assert.throws(() => new ReadPriority({ turnMs: 0 }), TypeError);
  assert.throws(() => new ReadPriority({ turnMs: Number.NaN }), TypeError);
});

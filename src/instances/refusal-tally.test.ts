import assert from 'node:assert/strict';
import { test } from 'node:test';
import { pino } from 'pino';
import { fixedClock } from '../platform/clock.js';
import type { InstanceAuditEvent } from './instance-audit.js';
import { MAX_TALLIED_SOURCES, RefusalTally } from './refusal-tally.js';

function tally(): { t: RefusalTally; events: InstanceAuditEvent[]; clock: ReturnType<typeof fixedClock> } {
  const events: InstanceAuditEvent[] = [];
  const clock = fixedClock(0);
  const t = new RefusalTally({
    sink: { record: (e) => events.push(e) },
    clock,
    logger: pino({ level: 'silent' }),
  });
  return { t, events, clock };
}

test('the first refusal of a minute is written at once, the rest as one counted event when it ends', () => {
  const { t, events, clock } = tally();
  for (let i = 0; i < 5; i++) {
    t.record({
      event: 'agent.enroll.refused',
      reason: 'invalid-token',
      remoteAddress: '2001:db8::' + String(i + 1),
    });
  }
  assert.equal(events.length, 1);
  assert.equal(events[0]?.event === 'agent.enroll.refused' && events[0].count, 1);
  t.flush(false);
  assert.equal(events.length, 1, 'the minute has not ended');
  clock.advance(60_000);
  t.flush(false);
  assert.equal(events.length, 2);
  const counted = events[1];
  assert.ok(counted?.event === 'agent.enroll.refused');
  assert.equal(counted.count, 4);
  assert.equal(counted.remoteAddress, '2001:db8:0:0::/64');
  assert.equal(counted.firstAt, new Date(0).toISOString());
});

test('reasons and sources are counted apart; close writes what is left', () => {
  const { t, events } = tally();
  const hello = (remoteAddress: string, reason: 'malformed' | 'hello-timeout') => {
    t.record({ event: 'agent.connect.refused', reason, closeCode: 4400, remoteAddress });
  };
  hello('192.0.2.1', 'malformed');
  hello('192.0.2.1', 'malformed');
  hello('192.0.2.1', 'hello-timeout');
  hello('192.0.2.2', 'malformed');
  assert.equal(events.length, 3);
  t.close();
  assert.equal(events.length, 4);
});

test('past the table bound, refusals are counted under the source *', () => {
  const { t, events } = tally();
  for (let i = 0; i < MAX_TALLIED_SOURCES + 10; i++) {
    t.record({
      event: 'agent.enroll.refused',
      reason: 'malformed',
      remoteAddress: `10.0.${String(i >> 8)}.${String(i & 255)}`,
    });
  }
  assert.equal(events.length, MAX_TALLIED_SOURCES + 1);
  const overflow = events.at(-1);
  assert.ok(overflow?.event === 'agent.enroll.refused');
  assert.equal(overflow.remoteAddress, '*');
  t.close();
  const last = events.at(-1);
  assert.ok(last?.event === 'agent.enroll.refused');
  assert.equal(last.remoteAddress, '*');
  assert.equal(last.count, 9);
});

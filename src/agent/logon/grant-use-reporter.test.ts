import assert from 'node:assert/strict';
import { test } from 'node:test';
import { pino } from 'pino';
import type { GrantUsedMessage } from '../../agent-channel/index.js';
import { GrantUseReporter, REPORT_BURST, REPORTS_PER_SECOND } from './grant-use-reporter.js';
import type { SshdLogEntry } from './sshd-log-line.js';

const FP = 'X2S5HoixTrP/OXrfwqfKLLJuBCV5nPyWH/eLe+Q0IaQ';
const GRANT = 'lg-0123456789abcdefghij';

function reporter(start = 1_000_000): {
  r: GrantUseReporter;
  sent: GrantUsedMessage[];
  clock: { ms: number };
} {
  const sent: GrantUsedMessage[] = [];
  const clock = { ms: start };
  const r = new GrantUseReporter({
    grantForKey: (fp, user) => (fp === FP && user === 'alice' ? GRANT : undefined),
    send: (m) => sent.push(m),
    nowMs: () => clock.ms,
    logger: pino({ level: 'silent' }),
  });
  return { r, sent, clock };
}

const entry = (over: Partial<SshdLogEntry['logon']> = {}, atMs?: number): SshdLogEntry => ({
  logon: { user: 'alice', address: '127.0.0.1', port: 40000, keyType: 'ED25519', fingerprint: FP, ...over },
  ...(atMs !== undefined && { atMs }),
});

test('a logon with a live grant key is reported; other keys, users and lines are not', () => {
  const { r, sent } = reporter();
  r.handle(entry({}, 1_796_522_665_999));
  r.handle(entry({ fingerprint: 'nThbg6kXUpJWGl7E1IGOCspRomTxdCARLviKw6E5SY8' }));
  r.handle(entry({ user: 'bob' }));
  r.handle(null);
  assert.deepEqual(sent, [
    { t: 'grant-used', grantId: GRANT, at: 1_796_522_665, from: '127.0.0.1', port: 40000 },
  ]);
  // Without a time from the log, the agent's clock.
  r.handle(entry({ port: 40001 }));
  assert.equal(sent[1]?.at, 1_000);
});

test('reports are bounded: a burst, then REPORTS_PER_SECOND', () => {
  const { r, sent, clock } = reporter();
  for (let i = 0; i < REPORT_BURST * 3; i++) r.handle(entry());
  assert.equal(sent.length, REPORT_BURST);
  clock.ms += 1_000;
  for (let i = 0; i < REPORT_BURST * 3; i++) r.handle(entry());
  assert.equal(sent.length, REPORT_BURST + REPORTS_PER_SECOND);
});

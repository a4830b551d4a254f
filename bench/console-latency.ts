/**
 * Web console benchmark, every part real: a `keyward server` child, a `keyward agent` child, a private sshd,
 * and Debian's headless Chromium driven by playwright-core. Measured:
 *
 * 1. What the console ships to the browser (page, JavaScript with xterm.js, CSS), compressed as served
 *    (Brotli; gzip beside it). Target: under 300 KB in all.
 * 2. The first page: a fresh browser profile opens /console/ until the sign-in form takes input, and every
 *    request the page made to a host other than the Keyward server is counted. Target: none.
 * 3. Connect, as a person meets it: on an instance's page, from the click on Connect, the terminal comes
 *    up, `echo …` and Enter are typed the moment it is ready, until the output shows in the page (timed in
 *    the page, see measureInPage); against the broker logon alone in the same run
 *    (StartTerminalSession → WebSocket → echo, from Node), rounds interleaved. Target: p50 ≤ 1.5×.
 *
 * Needs root (useradd, sshd, /run) and /usr/bin/chromium. `--quick` runs fewer rounds.
 */
import { join } from 'node:path';
import type { Page } from 'playwright-core';
import { ConsoleAssets } from '../src/console/index.js';
import { launchChromium } from '../test/helpers/browser.js';
import { brokerLogon, REPO_ROOT, startLogonFixture } from './logon-fixture.js';
import { summarize, type LatencySummary } from './stats.js';
import { fixed, renderTable } from './table.js';
import { exitWhenIdle } from './lingering-handles.js';

const QUICK = process.argv.includes('--quick');
const ROUNDS = QUICK ? 5 : 20;
const FIRST_PAGE_ROUNDS = QUICK ? 3 : 10;
const RAM = '2015-05-01';
const USER = 'bench-admin';
const PASSWORD = 'a benchmark console password';
const TARGET_BYTES = 300 * 1024;

function row(name: string, s: LatencySummary): string[] {
  return [name, fixed(s.p50, 1), fixed(s.p99, 1), fixed(s.max, 1)];
}

/**
 * In the page, before the click: the clock starts at the click event on Connect; the moment the terminal
 * says Connected, `echo MARKER:$((6*7))` and Enter are typed into xterm.js's input (an insertText input
 * event, as a keyboard or IME sends); the clock stops when the output is in the terminal's rows. Nothing of
 * the test driver's own latency is inside the measure. Resolves with the elapsed ms.
 */
function measureInPage(marker: string): Promise<number> {
  interface El {
    textContent: string | null;
    addEventListener(type: string, fn: () => void, opts?: unknown): void;
    dispatchEvent(ev: unknown): boolean;
  }
  interface G {
    document: { querySelector(s: string): El | null; body: unknown };
    performance: { now(): number };
    MutationObserver: new (fn: () => void) => { observe(n: unknown, o: unknown): void; disconnect(): void };
    InputEvent: new (type: string, init: unknown) => unknown;
  }
  const g = globalThis as unknown as G;
  return new Promise((resolve) => {
    let t0 = 0;
    let typed = false;
    const button = g.document.querySelector('form.connect button[type="submit"]');
    button?.addEventListener('click', () => (t0 = g.performance.now()), { capture: true });
    const observer = new g.MutationObserver(() => {
      if (!typed && g.document.querySelector('.term-state')?.textContent === 'Connected') {
        typed = true;
        g.document
          .querySelector('.xterm-helper-textarea')
          ?.dispatchEvent(
            new g.InputEvent('input', { data: `echo ${marker}:$((6*7))\r`, inputType: 'insertText' }),
          );
      }
      if ((g.document.querySelector('.xterm-rows')?.textContent ?? '').includes(`${marker}:42`)) {
        observer.disconnect();
        resolve(g.performance.now() - t0);
      }
    });
    observer.observe(g.document.body, { subtree: true, childList: true, characterData: true });
  });
}

/** On the instance page: click Connect → terminal ready → `echo` typed → its output in the page. */
async function consoleConnect(
  page: Page,
  base: string,
  instanceId: string,
  osUser: string,
  marker: string,
): Promise<number> {
  await page.goto(`${base}/console/#/instances/${instanceId}`);
  await page.getByLabel('Log on as (OS user)').fill(osUser);
  const measured = page.evaluate(measureInPage, marker);
  await page.getByRole('button', { name: 'Connect' }).click();
  const ms = await measured;
  await page.goto('about:blank');
  return ms;
}

async function main(): Promise<void> {
  const assets = new ConsoleAssets(join(REPO_ROOT, 'dist', 'console-ui'));
  const sizes = assets.sizes();
  const fx = await startLogonFixture({ prefix: 'kw-console-bench' });
  const browser = await launchChromium();
  try {
    const { rpc, server, user, instanceId } = fx;
    const base = server.endpoint;
    await rpc.call('CreateUser', { UserName: USER }, { version: RAM });
    await rpc.call('CreateLoginProfile', { UserName: USER, Password: PASSWORD }, { version: RAM });
    await rpc.call(
      'AttachPolicyToUser',
      { PolicyType: 'System', PolicyName: 'AdministratorAccess', UserName: USER },
      { version: RAM },
    );

    // 2. First page in a fresh profile each time (no cache).
    const firstPage: number[] = [];
    const foreign = new Set<string>();
    for (let r = 0; r < FIRST_PAGE_ROUNDS; r++) {
      const ctx = await browser.newContext();
      const page = await ctx.newPage();
      page.on('request', (req) => {
        const url = new URL(req.url());
        if (url.origin !== base && url.protocol !== 'data:' && url.protocol !== 'blob:')
          foreign.add(url.origin);
      });
      const t0 = performance.now();
      await page.goto(`${base}/console/`);
      await page.getByLabel('User name').waitFor();
      firstPage.push(performance.now() - t0);
      await ctx.close();
    }

    // 3. Connect from the console against the broker logon alone.
    const ctx = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    const page = await ctx.newPage();
    await page.goto(`${base}/console/`);
    await page.getByLabel('User name').fill(USER);
    await page.getByLabel('Password').fill(PASSWORD);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('navigation', { name: 'Console' }).waitFor();
    const c = { rpc, endpoint: base, instanceId, user: user.name };
    for (let i = 0; i < 3; i++) {
      await brokerLogon(c, `warm${String(i)}`);
      await consoleConnect(page, base, instanceId, user.name, `warmc${String(i)}`);
    }
    const broker: number[] = [];
    const viaConsole: number[] = [];
    for (let r = 0; r < ROUNDS; r++) {
      broker.push(await brokerLogon(c, `b${String(r)}`));
      viaConsole.push(await consoleConnect(page, base, instanceId, user.name, `c${String(r)}`));
    }
    await ctx.close();

    const shipped = ['index.html', 'app.js', 'app.css'];
    const br = shipped.reduce((n, f) => n + (sizes[f]?.br ?? 0), 0);
    const gz = shipped.reduce((n, f) => n + (sizes[f]?.gzip ?? 0), 0);
    const raw = shipped.reduce((n, f) => n + (sizes[f]?.raw ?? 0), 0);
    const b = summarize(broker);
    const v = summarize(viaConsole);
    const f = summarize(firstPage);
    const kib = (n: number): string => `${fixed(n / 1024, 1)} KiB`;
    process.stdout.write(
      `\n9. Web console assets as shipped (xterm.js included)\n` +
        renderTable(
          ['file', 'raw', 'gzip', 'brotli (served)'],
          [
            ...shipped.map((file) => [
              file,
              kib(sizes[file]?.raw ?? 0),
              kib(sizes[file]?.gzip ?? 0),
              kib(sizes[file]?.br ?? 0),
            ]),
            ['total', kib(raw), kib(gz), kib(br)],
          ],
        ) +
        `\n   total served ${kib(br)} of the ${kib(TARGET_BYTES)} budget (${fixed((br / TARGET_BYTES) * 100, 0)}%; gzip ${kib(gz)})` +
        `\n   first page, fresh profile, until the sign-in form takes input: p50 ${fixed(f.p50, 1)} ms, ` +
        `max ${fixed(f.max, 1)} ms; requests to other hosts: ${String(foreign.size)}${foreign.size > 0 ? ` (${[...foreign].join(', ')})` : ''}\n` +
        `\n10. Connect in the console: click → terminal → echo typed → output shown (${String(ROUNDS)} interleaved rounds)\n` +
        renderTable(
          ['measure', 'p50 ms', 'p99 ms', 'max ms'],
          [
            row('console: click Connect → output of echo in the page (Chromium)', v),
            row('broker logon alone: StartTerminalSession → WebSocket → echo (Node)', b),
          ],
        ) +
        `\n   console / broker = ${fixed(v.p50 / b.p50, 2)}× at p50 (target ≤ 1.5×)\n`,
    );
    if (foreign.size > 0 || br > TARGET_BYTES) process.exitCode = 1;
  } finally {
    await browser.close();
    await fx.stop();
  }
}

await main();
exitWhenIdle('console latency');

/**
 * Real headless Chromium for the console tests: Debian's `chromium` driven by playwright-core (no browser
 * download), launched with the flags the CI machine needs. A missing browser fails the run with the
 * command that installs it. Screenshots go to test-artifacts/console/ (kept by CI, ignored by git).
 * `PageWatch` collects what the console's own pages report (page errors, console errors and warnings), so
 * a test fails on them unless it names the ones it provokes.
 */
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { repoRoot } from './repo-root.js';

export const CHROMIUM = '/usr/bin/chromium';
export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
];
export const ARTIFACTS = join(repoRoot(), 'test-artifacts', 'console');

/** Throws, naming the install command, unless Debian's chromium is installed. */
export function requireChromium(): void {
  if (!existsSync(CHROMIUM)) {
    throw new Error(
      `${CHROMIUM} is required by the console tests but is missing; install it with: apt-get install -y chromium`,
    );
  }
}

export async function launchChromium(): Promise<Browser> {
  requireChromium();
  return chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS, headless: true });
}

/** Saves a full-window screenshot as test-artifacts/console/NAME.png; returns its path. */
export async function screenshot(page: Page, name: string): Promise<string> {
  mkdirSync(ARTIFACTS, { recursive: true });
  const path = join(ARTIFACTS, `${name}.png`);
  await page.screenshot({ path });
  return path;
}

/**
 * Watches every page of the contexts given to `watch` for uncaught page errors (`pageerror`) and console
 * errors and warnings (`console`), keeping those of pages showing the console (`pageUrl`, any #route: the
 * console's own code; a test's page on another site, or a document a foreign form posted to, is not ours). A test that provokes one on purpose (a refused sign-in answers 401,
 * which Chromium logs) says so with `allow`; `assertClean`, run after each test, fails on any other.
 */
export class PageWatch {
  readonly #pageUrl: string;
  #problems: string[] = [];
  #allowed: RegExp[] = [];

  /** `pageUrl`: the console page's URL without its #route, e.g. `http://127.0.0.1:PORT/console/`. */
  constructor(pageUrl: string) {
    this.#pageUrl = pageUrl;
  }

  /** Watches the pages `context` has and will open; returns `context`. */
  watch(context: BrowserContext): BrowserContext {
    for (const p of context.pages()) this.#watchPage(p);
    context.on('page', (p) => {
      this.#watchPage(p);
    });
    return context;
  }

  /** Accepts the problems matching `patterns` until the next `assertClean`. */
  allow(...patterns: RegExp[]): void {
    this.#allowed.push(...patterns);
  }

  /** Every problem seen since the last `assertClean`, allowed or not. */
  problems(): readonly string[] {
    return [...this.#problems];
  }

  /** Throws, listing them, when problems no `allow` pattern covers were seen; then starts afresh. */
  assertClean(): void {
    const unexpected = this.#problems.filter((line) => !this.#allowed.some((re) => re.test(line)));
    this.#problems = [];
    this.#allowed = [];
    if (unexpected.length > 0) {
      throw new Error(`the console page reported:\n${unexpected.join('\n')}`);
    }
  }

  #watchPage(page: Page): void {
    page.on('pageerror', (err) => {
      this.#note(page, `pageerror: ${err.message}`);
    });
    page.on('console', (msg) => {
      const type = msg.type();
      if (type !== 'error' && type !== 'warning') return;
      const where = msg.location().url;
      this.#note(page, `console.${type}: ${msg.text()}${where === '' ? '' : ` (${where})`}`);
    });
  }

  #note(page: Page, line: string): void {
    if (page.url().split('#')[0] === this.#pageUrl) this.#problems.push(line);
  }
}

/**
 * Real headless Chromium for the console tests: Debian's `chromium` driven by playwright-core (no browser
 * download), launched with the flags the CI machine needs. A missing browser fails the run with the
 * command that installs it. Screenshots go to test-artifacts/console/ (kept by CI, ignored by git).
 */
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
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

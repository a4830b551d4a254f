/**
 * The `keyward` command as a child process (`node bin/keyward.cjs …`), with a controlled environment: only
 * PATH plus what the test passes, and a temporary HOME and XDG_CONFIG_HOME so no real profile is read.
 */
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { baseEnv, BIN, type Credentials } from './server.js';
import { TEST_CLIENT_TIMEOUT_MS } from './timeouts.js';
import { run, type RunResult } from './tools.js';

/** The KEYWARD_* variables that give the CLI an endpoint and credentials, and the tests' call timeout. */
export function credentialsEnv(c: Credentials): Record<string, string> {
  return {
    KEYWARD_ENDPOINT: c.endpoint,
    KEYWARD_ACCESS_KEY_ID: c.accessKeyId,
    KEYWARD_ACCESS_KEY_SECRET: c.accessKeySecret,
    KEYWARD_REGION: c.regionId,
    KEYWARD_TIMEOUT_SECONDS: String(TEST_CLIENT_TIMEOUT_MS / 1000),
  };
}

/** HOME and XDG_CONFIG_HOME under `dir` (created). */
export async function homeEnv(dir: string): Promise<Record<string, string>> {
  const home = join(dir, 'home');
  const config = join(home, '.config');
  await mkdir(config, { recursive: true, mode: 0o700 });
  return { HOME: home, XDG_CONFIG_HOME: config };
}

/** Where HOME points unless a test gives one: nothing there, so no real profile is ever read. */
const NO_HOME = '/nonexistent/keyward-test-home';

/** Runs `keyward ...args`; never throws on a non-zero exit. */
export function keyward(
  args: readonly string[],
  opts: { env?: Record<string, string>; cwd?: string; input?: string } = {},
): Promise<RunResult> {
  return run(process.execPath, [BIN, ...args], {
    env: baseEnv({ HOME: NO_HOME, XDG_CONFIG_HOME: `${NO_HOME}/.config`, ...opts.env }),
    ...(opts.cwd !== undefined && { cwd: opts.cwd }),
    ...(opts.input !== undefined && { input: opts.input }),
  });
}

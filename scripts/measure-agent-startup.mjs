// Start-up time of the agent executable (`npm run build:agent` first): the median of 20 runs of
// `keyward-agent --version` beside 20 of `node -e 0` and of `node bin/keyward.cjs --version`, each a fresh
// process (spawnSync), wall-clock. Figures for docs/agent.md. Usage: node scripts/measure-agent-startup.mjs
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const RUNS = 20;

function medianMs(command, args) {
  const times = [];
  for (let i = 0; i < RUNS; i++) {
    const start = process.hrtime.bigint();
    const run = spawnSync(command, args, { cwd: root });
    if (run.status !== 0) throw new Error(`${command} ${args.join(' ')} failed: ${String(run.stderr)}`);
    times.push(Number(process.hrtime.bigint() - start) / 1e6);
  }
  times.sort((a, b) => a - b);
  return ((times[RUNS / 2 - 1] + times[RUNS / 2]) / 2).toFixed(1);
}

const exe = join(root, 'dist', 'agent-bin', `keyward-agent-linux-${process.arch}`);
console.log(`keyward-agent --version       ${medianMs(exe, ['--version'])} ms (median of ${RUNS})`);
console.log(`node -e 0                     ${medianMs(process.execPath, ['-e', '0'])} ms`);
console.log(
  `node bin/keyward.cjs --version ${medianMs(process.execPath, ['bin/keyward.cjs', '--version'])} ms`,
);

#!/usr/bin/env node
// Entry point of the `keyward` command. The TypeScript sources are compiled to dist/ by `npm run build`,
// which `npm ci` runs through the `prepare` script.
import { existsSync } from 'node:fs';

const main = new URL('../dist/src/apps/cli/main.js', import.meta.url);
if (!existsSync(main)) {
  process.stderr.write(
    'keyward: not built yet. Run `npm ci` (or `npm run build`) in the Keyward checkout.\n',
  );
  process.exit(1);
}
const { runCli } = await import(main.href);
process.exitCode = await runCli(process.argv.slice(2));

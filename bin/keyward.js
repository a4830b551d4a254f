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
const argv = process.argv.slice(2);
// `keyward ssh` starts ssh connecting (when it knows where the instance is) before the rest of the CLI
// and the API client are loaded: that loading then overlaps ssh's key exchange instead of delaying it.
// Anything wrong with the arguments is left to the command itself, which reports it.
let ssh;
if (argv[0] === 'ssh') {
  try {
    const { prepareSsh } = await import(
      new URL('../dist/src/apps/cli/commands/ssh-command.js', import.meta.url).href
    );
    const plan = prepareSsh(argv.slice(1), process.env);
    if (plan !== 'help') ssh = plan;
  } catch {
    ssh = undefined;
  }
}
// `keyward proxy` (ssh starts one per connection) runs from the bundled CLI when the build made it: some
// fifteen chunks to load instead of some forty modules, so the ProxyCommand answers sooner
// (scripts/build-cli-bundle.mjs).
const bundled = new URL('../dist/cli-bundle/main.js', import.meta.url);
const entry = argv[0] === 'proxy' && existsSync(bundled) ? bundled : main;
const { runCli } = await import(entry.href);
process.exitCode = await runCli(argv, undefined, { ssh });

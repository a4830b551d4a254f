#!/usr/bin/env node
// Entry point of the `keyward` command. The TypeScript sources are compiled to dist/ by `npm run build`,
// which `npm ci` runs through the `prepare` script.
//
// CommonJS, unlike the rest of Keyward: Node starts it without its ES module loader, which `keyward ssh`
// does not need before it has started ssh (the loader then comes up for the CLI while ssh connects).
'use strict';
const { existsSync, statSync } = require('node:fs');
const { join } = require('node:path');
const { pathToFileURL } = require('node:url');

const dist = join(__dirname, '..', 'dist');
const main = join(dist, 'src', 'apps', 'cli', 'main.js');
if (!existsSync(main)) {
  process.stderr.write(
    'keyward: not built yet. Run `npm ci` (or `npm run build`) in the Keyward checkout.\n',
  );
  process.exit(1);
}
const argv = process.argv.slice(2);

/**
 * `keyward ssh` starts ssh connecting (when it knows where the instance is) before the rest of the command
 * and its API client are loaded: that loading then overlaps ssh's key exchange instead of delaying it. All
 * of it runs from one CommonJS file (src/apps/cli/ssh-launch.ts bundled, scripts/build-cli-bundle.mjs),
 * which loads in a fraction of the time of the compiled modules through the ES module loader; from the
 * compiled modules when that file is missing or older than any of them (`tsc` run alone). Anything wrong
 * with the arguments is left to the command itself, which reports it.
 */
async function ssh(args) {
  const launch =
    bundledLaunch() ?? (await import(pathToFileURL(join(dist, 'src', 'apps', 'cli', 'ssh-launch.js')).href));
  let plan;
  try {
    const prepared = launch.prepareSsh(args, process.env);
    if (prepared !== 'help') plan = prepared;
  } catch {
    plan = undefined;
  }
  return launch.runSsh(args, plan);
}

/** The bundled ssh-launch, when it was built from the compiled modules as they are. */
function bundledLaunch() {
  const file = join(dist, 'cli-bundle', 'ssh-launch.cjs');
  if (!existsSync(file)) return undefined;
  const built = statSync(file).mtimeMs;
  const launch = require(file);
  const src = join(dist, 'src');
  const fresh =
    Array.isArray(launch.builtFrom) &&
    launch.builtFrom.every((f) => {
      const stat = statSync(join(src, f), { throwIfNoEntry: false });
      return stat !== undefined && stat.mtimeMs <= built;
    });
  return fresh ? launch : undefined;
}

async function run() {
  if (argv[0] === 'ssh') {
    // `keyward ssh` ends when ssh has: the key's directory is removed on 'exit', and Node's teardown is
    // not waited for. Its own messages are written synchronously.
    process.exit(await ssh(argv.slice(1)));
  }
  // `keyward proxy` (ssh starts one per connection) runs from the bundled CLI when the build made it: some
  // fifteen chunks to load instead of some forty modules.
  const bundled = join(dist, 'cli-bundle', 'main.js');
  const entry = argv[0] === 'proxy' && existsSync(bundled) ? bundled : main;
  const { runCli } = await import(pathToFileURL(entry).href);
  process.exitCode = await runCli(argv);
}

run().catch((err) => {
  process.stderr.write(
    `keyward: unexpected error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`,
  );
  process.exitCode = 1;
});
